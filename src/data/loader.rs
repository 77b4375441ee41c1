//! Batches for the search and training loops, the same way for every dataset.
//!
//! A [`BatchSource`] answers "batch `index` of `epoch`" as a pure function of (run seed, epoch, index):
//! the epoch's order is a permutation keyed by (seed, epoch) and each sample's augmentation is keyed by
//! (seed, epoch, sample). A [`Loader`] walks a source and keeps a [`LoaderState`] (epoch, position) that
//! a checkpoint stores; resuming from it yields exactly the batches an uninterrupted run would have seen.
//! With `prefetch > 0` a worker thread computes the next batches while the caller trains (ImageNet).

use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use anyhow::{anyhow, bail, Result};
use serde::{Deserialize, Serialize};
use tch::{Device, Tensor};

use crate::data::augment::AugmentSpec;
pub use crate::data::batch::Batch;
use crate::data::batch::{placed, Share};
use crate::data::normalization::Normalization;
use crate::data::rng::{Purpose, SplitMix64};
use crate::data::share;
use crate::data::tensor_split::TensorSplit;

/// Where a loader stands: `position` batches of `epoch` have been handed out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoaderState {
    pub epoch: u64,
    pub position: u64,
}

/// How a source orders and groups its samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Batching {
    pub batch_size: usize,
    /// Drop the last incomplete batch (UNAS search loaders: true).
    pub drop_last: bool,
    /// Reshuffle every epoch (train splits); false keeps the stored order (test splits).
    pub shuffle: bool,
    /// The run's seed: keys the shuffles and the augmentation draws.
    pub seed: u64,
}

impl Batching {
    pub fn batches(&self, samples: usize) -> usize {
        let b = self.batch_size.max(1);
        if self.drop_last {
            samples / b
        } else {
            samples.div_ceil(b)
        }
    }

    /// The dataset positions of batch `index` of `epoch`, given the epoch's order.
    fn slice<'a>(&self, order: &'a [i64], index: usize) -> &'a [i64] {
        let start = (index * self.batch_size).min(order.len());
        let end = (start + self.batch_size).min(order.len());
        &order[start..end]
    }
}

/// The order of an epoch: a permutation keyed by (seed, epoch), or 0..n without shuffling.
pub fn epoch_order(batching: &Batching, epoch: u64, n: usize) -> Vec<i64> {
    if batching.shuffle {
        SplitMix64::new(batching.seed, Purpose::Shuffle, epoch, 0).permutation(n)
    } else {
        (0..n as i64).collect()
    }
}

/// A deterministic, random-access source of batches (`Send`, not `Sync`: tch tensors are not `Sync`;
/// a prefetching [`Loader`] hands the source to its worker behind a mutex).
pub trait BatchSource: Send {
    /// Samples in the split.
    fn len(&self) -> usize;
    fn batching(&self) -> &Batching;
    /// Batch `index` (< `batches_per_epoch()`) of `epoch` (a folder batch with a share: pending,
    /// see [`settled`]).
    fn batch(&self, epoch: u64, index: usize) -> Result<Batch>;
    /// Rows `rows` (of the nominal batch `index` of `epoch`, before any was skipped) alone, decoded:
    /// the rows a rank's slices gained when another rank's image was unreadable.
    fn rows(&self, epoch: u64, index: usize, rows: &[i64]) -> Result<Batch> {
        let _ = (epoch, index, rows);
        bail!("this source loads every row of its batches")
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn batches_per_epoch(&self) -> usize {
        self.batching().batches(self.len())
    }
    /// Samples skipped so far because they could not be read (ImageNet; for the run record).
    fn unreadable(&self) -> u64 {
        0
    }
}

/// A boxed source is a source (stages pick resident or folder-backed data at run time).
impl BatchSource for Box<dyn BatchSource> {
    fn len(&self) -> usize {
        (**self).len()
    }
    fn batching(&self) -> &Batching {
        (**self).batching()
    }
    fn batch(&self, epoch: u64, index: usize) -> Result<Batch> {
        (**self).batch(epoch, index)
    }
    fn rows(&self, epoch: u64, index: usize, rows: &[i64]) -> Result<Batch> {
        (**self).rows(epoch, index, rows)
    }
    fn unreadable(&self) -> u64 {
        (**self).unreadable()
    }
}

/// Batch `index` of `epoch` of `src`, settled with the other ranks ([`share::settle`]): what the
/// loops read.
pub fn settled(src: &dyn BatchSource, epoch: u64, index: usize) -> Result<Batch> {
    settle(src.batch(epoch, index)?, |e, i, rows| src.rows(e, i, rows))
}

/// [`share::settle`] over this process's ranks.
fn settle(b: Batch, decode: impl FnOnce(u64, usize, &[i64]) -> Result<Batch>) -> Result<Batch> {
    let ranks = crate::dist::ranks();
    share::settle(
        b,
        |mask| ranks.sum("which images of the batch are unreadable", &[mask]),
        decode,
    )
}

/// Caches the order of the last epoch asked for (a permutation of N is recomputed once per epoch).
#[derive(Default)]
pub struct OrderCache(Mutex<Option<(u64, Arc<Vec<i64>>)>>);

impl OrderCache {
    pub fn get(&self, batching: &Batching, epoch: u64, n: usize) -> Arc<Vec<i64>> {
        let mut slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match &*slot {
            Some((e, order)) if *e == epoch => order.clone(),
            _ => {
                let order = Arc::new(epoch_order(batching, epoch, n));
                *slot = Some((epoch, order.clone()));
                order
            }
        }
    }
}

/// CIFAR and synthetic splits resident on the device, augmented there.
pub struct ResidentSource {
    split: TensorSplit,
    batching: Batching,
    augment: AugmentSpec,
    norm: Normalization,
    order: OrderCache,
    share: Option<Share>,
}

impl ResidentSource {
    /// `split` stays where it is (the run's device); batches are produced on that device.
    pub fn new(
        split: TensorSplit,
        batching: Batching,
        augment: AugmentSpec,
        norm: Normalization,
    ) -> Self {
        ResidentSource {
            split,
            batching,
            augment,
            norm,
            order: OrderCache::default(),
            share: None,
        }
    }

    /// Only the rows of `share`'s slices are gathered and augmented (the others are zeros).
    pub fn sharing(self, share: Share) -> Self {
        let share = Some(share).filter(|s| !s.whole());
        ResidentSource { share, ..self }
    }

    pub fn device(&self) -> Device {
        self.split.images.device()
    }
}

impl BatchSource for ResidentSource {
    fn len(&self) -> usize {
        self.split.len()
    }
    fn batching(&self) -> &Batching {
        &self.batching
    }
    fn batch(&self, epoch: u64, index: usize) -> Result<Batch> {
        let order = self.order.get(&self.batching, epoch, self.len());
        let all = self.batching.slice(&order, index);
        let rows = match &self.share {
            Some(s) => s.rows(all.len()),
            None => 0..all.len(),
        };
        let ids = &all[rows.clone()];
        let dev = self.device();
        let idx = Tensor::from_slice(ids).to_device(dev);
        let images = self.split.images.index_select(0, &idx);
        let size = images.size();
        let draws = self
            .augment
            .draw(self.batching.seed, epoch, ids, size[2], size[3]);
        let images = self.augment.apply(&images, &draws, &self.norm);
        let mut full = images.size();
        full[0] = all.len() as i64;
        let every = Tensor::from_slice(all).to_device(dev);
        Ok(Batch {
            images: placed(&full, rows, &images),
            labels: self.split.labels.index_select(0, &every),
            pending: None,
        })
    }
}

struct Prefetcher {
    rx: Receiver<Result<Batch>>,
    _worker: JoinHandle<()>,
}

/// Walks a source epoch after epoch; its state goes into checkpoints.
pub struct Loader {
    source: Arc<Mutex<dyn BatchSource>>,
    batches: usize,
    state: LoaderState,
    prefetch: usize,
    worker: Option<Prefetcher>,
}

impl Loader {
    /// `prefetch`: batches computed ahead on a worker thread (0: compute on demand).
    pub fn new(source: impl BatchSource + 'static, prefetch: usize) -> Self {
        let batches = source.batches_per_epoch();
        Loader {
            source: Arc::new(Mutex::new(source)),
            batches,
            state: LoaderState::default(),
            prefetch,
            worker: None,
        }
    }

    /// The source (waits while the prefetch worker computes a batch).
    pub fn source(&self) -> MutexGuard<'_, dyn BatchSource + 'static> {
        self.source.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn batches_per_epoch(&self) -> usize {
        self.batches
    }

    pub fn state(&self) -> LoaderState {
        self.state
    }

    /// Continue from a checkpointed state.
    pub fn resume(&mut self, state: LoaderState) {
        self.state = state;
        self.worker = None;
    }

    fn start_worker(&mut self) -> &Prefetcher {
        let (tx, rx) = sync_channel(self.prefetch);
        let source = self.source.clone();
        let LoaderState { epoch, position } = self.state;
        let batches = self.batches;
        let worker = std::thread::spawn(move || {
            for i in position as usize..batches {
                let batch = source
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .batch(epoch, i);
                if tx.send(batch).is_err() {
                    return;
                }
            }
        });
        self.worker.insert(Prefetcher {
            rx,
            _worker: worker,
        })
    }

    /// The next batch of the current epoch, or `None` at its end (the state then moves to the start of
    /// the next epoch).
    pub fn next_batch(&mut self) -> Result<Option<Batch>> {
        let LoaderState { epoch, position } = self.state;
        if position as usize >= self.batches {
            self.state = LoaderState {
                epoch: epoch + 1,
                position: 0,
            };
            self.worker = None;
            return Ok(None);
        }
        let batch = if self.prefetch == 0 {
            settled(&*self.source(), epoch, position as usize)?
        } else {
            let worker = match &self.worker {
                Some(w) => w,
                None => self.start_worker(),
            };
            let batch = worker
                .rx
                .recv()
                .map_err(|_| anyhow!("the prefetch worker stopped unexpectedly"))??;
            // in this thread: the ranks settle their batches in the loop's order
            settle(batch, |e, i, rows| self.source().rows(e, i, rows))?
        };
        self.state.position += 1;
        Ok(Some(batch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    fn source(drop_last: bool, shuffle: bool) -> ResidentSource {
        let n = 10;
        let images = Tensor::arange(n, (Kind::Int64, Device::Cpu))
            .view([n, 1, 1, 1])
            .expand([n, 3, 8, 8], false)
            .to_kind(Kind::Uint8);
        let split =
            TensorSplit::new(images, Tensor::arange(n, (Kind::Int64, Device::Cpu))).unwrap();
        let norm = Normalization {
            mean: [0.0; 3],
            std: [1.0 / 255.0; 3],
        };
        ResidentSource::new(
            split,
            Batching {
                batch_size: 4,
                drop_last,
                shuffle,
                seed: 1,
            },
            AugmentSpec::SEARCH,
            norm,
        )
    }

    fn epoch_labels(loader: &mut Loader) -> Vec<Vec<i64>> {
        let mut out = vec![];
        while let Some(b) = loader.next_batch().unwrap() {
            out.push(Vec::<i64>::try_from(b.labels).unwrap());
        }
        out
    }

    #[test]
    fn drop_last_drops_the_incomplete_batch_and_shuffle_covers_each_sample_once() {
        let mut l = Loader::new(source(true, true), 0);
        let e0 = epoch_labels(&mut l);
        assert_eq!(e0.len(), 2);
        let mut l = Loader::new(source(false, true), 0);
        let mut all: Vec<i64> = epoch_labels(&mut l).concat();
        assert_eq!(all.len(), 10);
        all.sort_unstable();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
        assert_eq!(
            l.state(),
            LoaderState {
                epoch: 1,
                position: 0
            }
        );
    }

    #[test]
    fn epochs_are_shuffled_differently_and_unshuffled_keeps_order() {
        let mut l = Loader::new(source(false, true), 0);
        assert_ne!(epoch_labels(&mut l), epoch_labels(&mut l));
        let mut l = Loader::new(source(false, false), 0);
        assert_eq!(epoch_labels(&mut l)[0], vec![0, 1, 2, 3]);
    }

    #[test]
    fn resume_at_epoch_and_position_replays_the_same_batches() {
        let mut a = Loader::new(source(false, true), 0);
        epoch_labels(&mut a);
        a.next_batch().unwrap();
        let saved: LoaderState =
            serde_json::from_str(&serde_json::to_string(&a.state()).unwrap()).unwrap();
        let want = a.next_batch().unwrap().unwrap();
        let mut b = Loader::new(source(false, true), 2);
        b.resume(saved);
        let got = b.next_batch().unwrap().unwrap();
        assert!(want.images.equal(&got.images) && want.labels.equal(&got.labels));
    }

    #[test]
    fn prefetching_loader_yields_what_the_direct_one_does() {
        let mut a = Loader::new(source(false, true), 0);
        let mut b = Loader::new(source(false, true), 3);
        for _ in 0..2 {
            assert_eq!(epoch_labels(&mut a), epoch_labels(&mut b));
        }
    }

    #[test]
    fn a_batch_splits_into_parts_that_differ_by_at_most_one_and_cover_it_in_order() {
        for (n, parts) in [(192i64, 8i64), (191, 8), (8, 8), (7, 3)] {
            let b = Batch {
                images: Tensor::arange(n, (tch::Kind::Float, Device::Cpu)).view([n, 1, 1, 1]),
                labels: Tensor::arange(n, (tch::Kind::Int64, Device::Cpu)),
                pending: None,
            };
            let split = b.split(parts);
            assert_eq!(split.len(), parts as usize);
            let sizes: Vec<i64> = split.iter().map(|p| p.labels.size()[0]).collect();
            let (lo, hi) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
            assert!(hi - lo <= 1 && *lo >= 1, "{n}/{parts}: {sizes:?}");
            let labels: Vec<&Tensor> = split.iter().map(|p| &p.labels).collect();
            assert!(Tensor::cat(&labels, 0).equal(&b.labels), "{n}/{parts}");
        }
    }
}
