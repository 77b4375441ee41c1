//! The fixed ProxylessNAS-GPU skeleton around the 21 searchable blocks (spec §5.2), shared by the
//! search supernet and the evaluation network: stem Conv3×3 s2 + BN + ReLU6, the first MBConv(k3, e1),
//! then the blocks, then the head Conv1×1 + BN + ReLU6, global average pool and the classifier.
//! Parameters: `stem.{conv,bn}`, `first`, `head.{conv,bn}`, `classifier`.

use tch::{nn, nn::Module, Tensor};

use super::mbconv::{bn, conv, MbConv};
use crate::nas::space::pass_norm::PassNorm;

/// The skeleton's layers (the blocks belong to the network that holds it).
#[derive(Debug)]
pub(super) struct Skeleton {
    stem: (nn::Conv2D, PassNorm),
    first: MbConv,
    head: (nn::Conv2D, PassNorm),
    classifier: nn::Linear,
}

impl Skeleton {
    /// `(stem, first, head)` widths, `last` the last block's output width. Built after the blocks,
    /// so that the parameters are created (and initialised from the generator) in the same order as
    /// before the two networks shared it.
    pub(super) fn new(
        vs: &nn::Path,
        (stem_c, first_c, head_c): (i64, i64, i64),
        last: i64,
        classes: i64,
    ) -> Skeleton {
        Skeleton {
            stem: (
                conv(&(vs / "stem" / "conv"), 3, stem_c, 3, 2, 1),
                bn(&(vs / "stem" / "bn"), stem_c),
            ),
            first: MbConv::new(&(vs / "first"), stem_c, first_c, 3, 1, 1),
            head: (
                conv(&(vs / "head" / "conv"), last, head_c, 1, 1, 1),
                bn(&(vs / "head" / "bn"), head_c),
            ),
            classifier: crate::nas::init::linear(&(vs / "classifier"), head_c, classes),
        }
    }

    /// The fixed start: stem (Conv3×3 s2, BN, ReLU6) and the first MBConv(k3, e1).
    pub(super) fn start(&self, x: &Tensor, train: bool) -> Tensor {
        let x = self.stem.0.forward(x).apply_t(&self.stem.1, train).relu6();
        self.first.forward_t(&x, train)
    }

    /// The fixed end: Conv1×1 + BN + ReLU6, global average pool, classifier.
    pub(super) fn end(&self, x: &Tensor, train: bool) -> Tensor {
        self.head
            .0
            .forward(x)
            .apply_t(&self.head.1, train)
            .relu6()
            .adaptive_avg_pool2d([1, 1])
            .flatten(1, -1)
            .apply(&self.classifier)
    }

    /// x [B, 3, H, W] → logits [B, classes]: start, then `block(x, i)` for each of the `blocks`
    /// blocks in order, then end.
    pub(super) fn run(
        &self,
        x: &Tensor,
        train: bool,
        blocks: usize,
        mut block: impl FnMut(Tensor, usize) -> Tensor,
    ) -> Tensor {
        let mut x = self.start(x, train);
        for i in 0..blocks {
            x = block(x, i);
        }
        self.end(&x, train)
    }
}
