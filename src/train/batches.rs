//! The loaders a stage needs, whatever the dataset: resident tensors (CIFAR, synthetic) augmented on
//! the device, or an ImageNet folder decoded per batch on a prefetching worker. Search and training pick
//! their transforms here from the images' shape (spec §1.5, §6).

use anyhow::{bail, Result};
use tch::Device;

use crate::config::{self, ImageShape};
use crate::data::augment::AugmentSpec;
use crate::data::batch::Share;
use crate::data::imagenet::{ImageNetSource, ImageNetTransform};
use crate::data::loader::{BatchSource, Batching, Loader, ResidentSource};
use crate::data::{split, Dataset, Splits};

/// Batches decoded ahead of the step on the ImageNet worker (resident data needs none).
const FOLDER_PREFETCH: usize = 2;

/// Unreadable JPEGs tolerated in a split before a run stops: 0.1 % of it, at least 10.
pub fn unreadable_limit(images: usize) -> u64 {
    (images as u64 / 1000).max(10)
}

/// The search's two loaders over the official split of the training set (`train_portion`, fixed
/// permutation seed 0): CIFAR-shaped data gets RandomCrop + flip on both, ImageNet-shaped data none
/// (Resize 256 → CenterCrop 224, as the official ImageNet search). Folder batches are decoded on the
/// CPU and moved to `device`; resident data is there already. Both load only the rows of `share`'s
/// slices of every batch.
pub fn search_loaders(
    ds: &Dataset,
    cfg: &config::Dataset,
    train_batching: Batching,
    val_batching: Batching,
    device: Device,
    share: &Share,
) -> Result<(Loader, Loader)> {
    let batch = train_batching.batch_size;
    let check = |train: usize, valid: usize| -> Result<()> {
        if train < batch || valid < batch {
            bail!(
                "search.batch = {batch} but the split has {train} training and {valid} validation images; lower search.batch"
            );
        }
        Ok(())
    };
    match &ds.splits {
        Splits::Resident { train, .. } => {
            let split = split::search_split(train.len(), cfg.train_portion);
            check(split.train.len(), split.valid.len())?;
            let augment = match cfg.shape() {
                ImageShape::Cifar => AugmentSpec::SEARCH,
                ImageShape::Imagenet => AugmentSpec::NONE,
            };
            let tr = train.select(&split.train);
            let va = train.select(&split.valid);
            let source = |split, batching| {
                ResidentSource::new(split, batching, augment, ds.norm).sharing(share.clone())
            };
            Ok((
                Loader::new(source(tr, train_batching), 0),
                Loader::new(source(va, val_batching), 0),
            ))
        }
        Splits::Folder { train, .. } => {
            let split = split::search_split(train.len(), cfg.train_portion);
            check(split.train.len(), split.valid.len())?;
            let source = |idx: &[i64], batching: Batching| {
                let list = train.select(idx);
                let limit = unreadable_limit(list.len());
                ImageNetSource::new(list, batching, ImageNetTransform::Eval, device, limit)
                    .sharing(share.clone())
            };
            Ok((
                Loader::new(source(&split.train, train_batching), FOLDER_PREFETCH),
                Loader::new(source(&split.valid, val_batching), FOLDER_PREFETCH),
            ))
        }
    }
}

/// Training's loader and its test source: CIFAR-shaped data trains with RandomCrop + flip (+ Cutout if
/// asked), the ImageNet folder with RandomResizedCrop + flip + ColorJitter and tests on `val` with
/// Resize 256 → CenterCrop 224. The synthetic ImageNet stand-in is already 224×224 and trains with flip
/// only (the crop and jitter belong to the JPEG decode path). The training loader loads only the rows
/// of `share`'s slices of every batch; the test source whole batches (the ranks split the test pass
/// by batches).
pub fn train_loaders(
    ds: &Dataset,
    cfg: &config::Dataset,
    batching: Batching,
    cutout: Option<i64>,
    device: Device,
    share: &Share,
) -> Result<(Loader, Box<dyn BatchSource>)> {
    let test_batching = Batching {
        shuffle: false,
        drop_last: false,
        ..batching
    };
    match &ds.splits {
        Splits::Resident { train, test } => {
            let augment = match cfg.shape() {
                ImageShape::Cifar => AugmentSpec {
                    cutout,
                    ..AugmentSpec::SEARCH
                },
                ImageShape::Imagenet => AugmentSpec {
                    crop_padding: None,
                    horizontal_flip: true,
                    cutout,
                },
            };
            Ok((
                Loader::new(
                    ResidentSource::new(train.shallow(), batching, augment, ds.norm)
                        .sharing(share.clone()),
                    0,
                ),
                Box::new(ResidentSource::new(
                    test.shallow(),
                    test_batching,
                    AugmentSpec::NONE,
                    ds.norm,
                )),
            ))
        }
        Splits::Folder { train, val } => {
            let tr = ImageNetSource::new(
                train.clone(),
                batching,
                ImageNetTransform::Train,
                device,
                unreadable_limit(train.len()),
            )
            .sharing(share.clone());
            let te = ImageNetSource::new(
                val.clone(),
                test_batching,
                ImageNetTransform::Eval,
                device,
                unreadable_limit(val.len()),
            );
            Ok((Loader::new(tr, FOLDER_PREFETCH), Box::new(te)))
        }
    }
}
