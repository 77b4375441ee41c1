//! The ProxylessNAS-space evaluation network (`proxylessnas/model.py`, spec §5.2, §6.3): the fixed
//! ProxylessNAS-GPU skeleton with one chosen candidate per searchable block.
//!
//! Stem: Conv3×3 s2 (3→40) + BN + ReLU6, then MBConv(k3, e1, 40→24). 21 blocks in six stages
//! 32×4 (s2), 56×4 (s2), 112×4 (s2), 128×4 (s1), 256×4 (s2), 432×1 (s1); identity shortcut iff
//! C_in = C_out and stride 1; `mic_zero` = the block is skipped. Head: Conv1×1 432→1728 + BN + ReLU6,
//! global average pool, Linear(1728, classes). BN eps 1e-3; no dropout (§6.3).

use crate::nas::init;
use crate::nas::space::pass_norm::PassNorm;
use anyhow::{ensure, Result};
use tch::{nn, nn::Module, Tensor};

use super::genotype::{BlockOp, ProxylessGenotype};

/// Stem width, first-block width, stage widths, head width (`C` of spec §5.2, width multiplier 1.0).
pub const STEM: i64 = 40;
pub const FIRST: i64 = 24;
pub const STAGES: [(i64, usize, i64); 6] = [
    (32, 4, 2),
    (56, 4, 2),
    (112, 4, 2),
    (128, 4, 1),
    (256, 4, 2),
    (432, 1, 1),
];
pub const HEAD: i64 = 1728;
pub(super) const BN_EPS: f64 = 1e-3;

/// (C_in, C_out, stride) of every searchable block 1..=21.
pub fn skeleton() -> Vec<(i64, i64, i64)> {
    let mut out = Vec::new();
    let mut c_in = FIRST;
    for &(c, repeats, stride) in &STAGES {
        for r in 0..repeats {
            out.push((c_in, c, if r == 0 { stride } else { 1 }));
            c_in = c;
        }
    }
    out
}

pub(super) fn conv(
    vs: &nn::Path,
    c_in: i64,
    c_out: i64,
    k: i64,
    stride: i64,
    groups: i64,
) -> nn::Conv2D {
    let cfg = nn::ConvConfig {
        stride,
        padding: k / 2,
        groups,
        bias: false,
        ..Default::default()
    };
    init::conv2d(vs, c_in, c_out, k, cfg)
}

pub(super) fn bn(vs: &nn::Path, c: i64) -> PassNorm {
    PassNorm::new(vs, c, init::batch_norm(true, BN_EPS))
}

/// Mobile inverted bottleneck: [1×1 expand, BN, ReLU6] (if e > 1) → [dw k×k, BN, ReLU6] → [1×1, BN].
#[derive(Debug)]
pub(super) struct MbConv {
    expand: Option<(nn::Conv2D, PassNorm)>,
    depthwise: (nn::Conv2D, PassNorm),
    project: (nn::Conv2D, PassNorm),
}

impl MbConv {
    pub(super) fn new(vs: &nn::Path, c_in: i64, c_out: i64, k: i64, e: i64, stride: i64) -> MbConv {
        let mid = c_in * e; // feature_dim = round(C_in · e)
        MbConv {
            expand: (e > 1).then(|| {
                (
                    conv(&(vs / "expand" / "conv"), c_in, mid, 1, 1, 1),
                    bn(&(vs / "expand" / "bn"), mid),
                )
            }),
            depthwise: (
                conv(&(vs / "depthwise" / "conv"), mid, mid, k, stride, mid),
                bn(&(vs / "depthwise" / "bn"), mid),
            ),
            project: (
                conv(&(vs / "project" / "conv"), mid, c_out, 1, 1, 1),
                bn(&(vs / "project" / "bn"), c_out),
            ),
        }
    }

    pub(super) fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let x = match &self.expand {
            Some((c, b)) => c.forward(x).apply_t(b, train).relu6(),
            None => x.shallow_clone(),
        };
        let x = self
            .depthwise
            .0
            .forward(&x)
            .apply_t(&self.depthwise.1, train)
            .relu6();
        self.project.0.forward(&x).apply_t(&self.project.1, train)
    }
}

#[derive(Debug)]
struct Block {
    conv: Option<MbConv>,
    shortcut: bool,
}

/// The network of a ProxylessNAS-space genotype.
#[derive(Debug)]
pub struct ProxylessEvalNet {
    stem: (nn::Conv2D, PassNorm),
    first: MbConv,
    blocks: Vec<Block>,
    head: (nn::Conv2D, PassNorm),
    classifier: nn::Linear,
}

impl ProxylessEvalNet {
    /// Parameters: `stem`, `first`, `blocks.{i}.…`, `head`, `classifier`.
    pub fn new(vs: &nn::Path, genotype: &ProxylessGenotype, classes: i64) -> Result<Self> {
        genotype.validate()?;
        let mut blocks = Vec::new();
        for (i, (op, (c_in, c_out, stride))) in
            genotype.blocks().into_iter().zip(skeleton()).enumerate()
        {
            let shortcut = c_in == c_out && stride == 1;
            let conv = match op {
                BlockOp::Zero => {
                    ensure!(
                        shortcut,
                        "block {} changes shape and cannot be mic_zero",
                        i + 1
                    );
                    None
                }
                BlockOp::MbConv { kernel, expand } => Some(MbConv::new(
                    &(vs / "blocks" / i as i64),
                    c_in,
                    c_out,
                    kernel,
                    expand,
                    stride,
                )),
            };
            blocks.push(Block { conv, shortcut });
        }
        let last = STAGES[STAGES.len() - 1].0;
        Ok(ProxylessEvalNet {
            stem: (
                conv(&(vs / "stem" / "conv"), 3, STEM, 3, 2, 1),
                bn(&(vs / "stem" / "bn"), STEM),
            ),
            first: MbConv::new(&(vs / "first"), STEM, FIRST, 3, 1, 1),
            blocks,
            head: (
                conv(&(vs / "head" / "conv"), last, HEAD, 1, 1, 1),
                bn(&(vs / "head" / "bn"), HEAD),
            ),
            classifier: init::linear(&(vs / "classifier"), HEAD, classes),
        })
    }

    /// x [B, 3, H, W] → logits [B, classes].
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let mut x = self.stem.0.forward(x).apply_t(&self.stem.1, train).relu6();
        x = self.first.forward_t(&x, train);
        for b in &self.blocks {
            x = match (&b.conv, b.shortcut) {
                (None, _) => x, // mic_zero: the block is skipped
                (Some(c), true) => c.forward_t(&x, train) + &x,
                (Some(c), false) => c.forward_t(&x, train),
            };
        }
        self.head
            .0
            .forward(&x)
            .apply_t(&self.head.1, train)
            .relu6()
            .adaptive_avg_pool2d([1, 1])
            .flatten(1, -1)
            .apply(&self.classifier)
    }
}
