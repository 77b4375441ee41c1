//! Which examples of a batch share an architecture sample, and how the batch splits into the
//! sub-batches (one forward pass each) of a step.

use tch::Tensor;

use crate::data::loader;

/// Which examples share an architecture sample, and how many forward passes a step makes. Each pass
/// is one sub-batch with its own BatchNorm statistics, as one GPU of the official DDP run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ArchPer {
    /// One sample per example (CIFAR, the official default), in this many sub-batches: 4 × 32 is the
    /// official 4-GPU CIFAR search; 1 is one pass over the whole batch.
    Example(i64),
    /// One sample per sub-batch (`--same_alpha_minibatch`; G GPUs).
    SubBatch(i64),
}

impl ArchPer {
    /// Samples to draw for batch `b`.
    pub fn samples(self, b: &loader::Batch) -> i64 {
        match self {
            ArchPer::Example(_) => b.images.size()[0],
            ArchPer::SubBatch(groups) => groups,
        }
    }

    /// Forward passes per step.
    pub fn groups(self) -> i64 {
        match self {
            ArchPer::Example(g) | ArchPer::SubBatch(g) => g.max(1),
        }
    }

    /// The sub-batches of `b`, each with its rows of the draw tensors `xs` ([S, N, K]): its examples'
    /// rows (one per example), or its own row (one per sub-batch). A mixture (N = 1) broadcasts.
    pub fn parts(self, b: &loader::Batch, xs: &[Tensor]) -> Vec<(loader::Batch, Vec<Tensor>)> {
        let n = xs.first().map(|x| x.size()[1]).unwrap_or(1);
        let mut at = 0;
        b.split(self.groups())
            .into_iter()
            .enumerate()
            .map(|(g, part)| {
                let len = part.images.size()[0];
                let rows = match self {
                    _ if n == 1 => xs.iter().map(Tensor::shallow_clone).collect(),
                    ArchPer::Example(_) => xs.iter().map(|x| x.narrow(1, at, len)).collect(),
                    ArchPer::SubBatch(_) => sample_rows(xs, g as i64),
                };
                at += len;
                (part, rows)
            })
            .collect()
    }
}

/// Sample g of a draw (tensors laid out [rows, N, K]), as a draw of one.
fn sample_rows(xs: &[Tensor], g: i64) -> Vec<Tensor> {
    xs.iter().map(|x| x.narrow(1, g, 1)).collect()
}
