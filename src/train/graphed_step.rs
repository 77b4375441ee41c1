//! The from-scratch training step as one CUDA graph (`train.cuda_graphs`): its ~thousands of kernel
//! launches (forward, backward, clipping, the SGD update) become one launch per step. The network and
//! the batch shape are fixed for a whole run, so the step is captured once per epoch (the drop-path
//! rate, a host scalar of the forward, changes per epoch) and replayed on every full batch:
//!
//! * the first full batch of a process is an eager step on the side stream that captures (allocator,
//!   cuDNN and cuBLAS set up for it, momentum buffers created); then the capture, which runs nothing;
//! * every later full batch: copied into the graph's static input tensors, the step seeded
//!   ([`crate::train::rng::seed_step`]) and η set as on the eager path (η is a device tensor,
//!   [`crate::train::optim::Sgd::keep_lr_on_device`], read at replay), the graph replayed; the loss,
//!   accuracy and gradient norm are the graph's static outputs, read by the step log before the
//!   next replay overwrites them;
//! * a batch of another shape (the last, smaller batch of an epoch) runs eagerly.
//!
//! Random kernels (drop-path) read the default CUDA generator's seed and offset at each replay, so
//! a step seeded alike draws the masks the eager step draws. No host read happens inside the step.
//!
//! `UNAS_CUDA_GRAPHS=emulate` (a test hook) runs the same schedule on the CPU with "replay" = the
//! step on the static tensors: the plumbing (static inputs and outputs, η on the device, recapture
//! per epoch, the eager fallback) is then checked against the plain loop bit for bit.

use anyhow::{bail, Result};
use tch::{Device, Tensor};

use crate::cuda_graph::{CudaGraph, SideStream};
use crate::data::loader::Loader;

/// The environment variable of the CPU emulation (tests).
pub const EMULATE_ENV: &str = "UNAS_CUDA_GRAPHS";

/// What a training step leaves for the step log: 0-d tensors on the device.
pub struct StepOut {
    pub loss: Tensor,
    pub acc: Tensor,
    pub gnorm: Tensor,
}

impl StepOut {
    fn shallow(&self) -> StepOut {
        StepOut {
            loss: self.loss.shallow_clone(),
            acc: self.acc.shallow_clone(),
            gnorm: self.gnorm.shallow_clone(),
        }
    }

    fn copy_from(&mut self, o: &StepOut) {
        self.loss.copy_(&o.loss);
        self.acc.copy_(&o.acc);
        self.gnorm.copy_(&o.gnorm);
    }
}

enum Backend {
    Cuda {
        side: SideStream,
        graph: Option<CudaGraph>,
    },
    Emulated,
}

/// What a capture is valid for.
#[derive(Clone, Debug, PartialEq)]
struct Key {
    drop_path_bits: u64,
}

/// How many steps ran which way (logged per epoch; the emulation test reads it).
#[derive(Clone, Copy, Debug, Default)]
pub struct Counts {
    pub captures: u64,
    pub replays: u64,
    pub eager: u64,
}

pub struct GraphedStep {
    backend: Backend,
    /// The shape of a full batch (images, labels): the first batch seen.
    full: Option<(Vec<i64>, Vec<i64>)>,
    /// An eager full-batch step ran on the capture stream in this process.
    warm: bool,
    key: Option<Key>,
    inputs: Option<(Tensor, Tensor)>,
    out: Option<StepOut>,
    pub counts: Counts,
}

impl GraphedStep {
    /// The graphed step of a run on `device` that asked for CUDA graphs. On the CPU: `None` with a
    /// warning (the eager step computes the same), or an error when `strict` (a benchmark); the
    /// emulation when [`EMULATE_ENV`] is `emulate`.
    pub fn open(device: Device, strict: bool) -> Result<Option<GraphedStep>> {
        let backend = match device {
            Device::Cuda(_) => Backend::Cuda {
                side: SideStream::new(device)?,
                graph: None,
            },
            _ if std::env::var(EMULATE_ENV).as_deref() == Ok("emulate") => Backend::Emulated,
            _ if strict => bail!(
                "train.cuda_graphs needs a CUDA device, this run is on {device:?} (run with --device cuda on a GPU machine)"
            ),
            _ => {
                tracing::warn!(
                    "train.cuda_graphs is ignored on {device:?}: CUDA graphs need a CUDA device (the eager step computes the same)"
                );
                return Ok(None);
            }
        };
        Ok(Some(GraphedStep {
            backend,
            full: None,
            warm: false,
            key: None,
            inputs: None,
            out: None,
            counts: Counts::default(),
        }))
    }

    /// One training step on (`images`, `labels`), seeded and with η set by the caller: `body` is the
    /// eager step (zero_grad, forward, backward, clip, update) on the tensors it is given. `loader`
    /// is held still during a capture (its prefetch worker may not launch work meanwhile).
    pub fn step(
        &mut self,
        drop_path: f64,
        images: &Tensor,
        labels: &Tensor,
        loader: &Loader,
        body: &mut dyn FnMut(&Tensor, &Tensor) -> StepOut,
    ) -> Result<StepOut> {
        let shape = (images.size(), labels.size());
        let full = self.full.get_or_insert_with(|| shape.clone());
        if *full != shape {
            self.counts.eager += 1;
            return Ok(body(images, labels));
        }
        if !self.warm {
            self.counts.eager += 1;
            let out = match &self.backend {
                Backend::Cuda { side, .. } => side.run(|| body(images, labels))?,
                Backend::Emulated => body(images, labels),
            };
            self.warm = true;
            return Ok(out);
        }
        let key = Key {
            drop_path_bits: drop_path.to_bits(),
        };
        let (x, y) = self
            .inputs
            .get_or_insert_with(|| (images.zeros_like(), labels.zeros_like()));
        if self.key.as_ref() != Some(&key) {
            self.key = None;
            self.out = None;
            if let Backend::Cuda { side, graph } = &mut self.backend {
                *graph = None; // frees the old graph's memory before the new capture
                let _still = loader.source();
                let (g, out) = CudaGraph::capture(side, || Ok(body(x, y)))?;
                *graph = Some(g);
                self.out = Some(out);
            }
            self.key = Some(key);
            self.counts.captures += 1;
        }
        x.copy_(images);
        y.copy_(labels);
        match &self.backend {
            Backend::Cuda { graph, .. } => graph.as_ref().expect("captured above").replay()?,
            Backend::Emulated => {
                let fresh = body(x, y);
                match &mut self.out {
                    Some(out) => out.copy_from(&fresh),
                    None => self.out = Some(fresh),
                }
            }
        }
        self.counts.replays += 1;
        Ok(self.out.as_ref().expect("set by the capture").shallow())
    }
}
