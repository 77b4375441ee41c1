//! The ProxylessNAS-space evaluation network (`proxylessnas/model.py`, spec §5.2, §6.3): the fixed
//! ProxylessNAS-GPU skeleton with one chosen candidate per searchable block.
//!
//! Stem: Conv3×3 s2 (3→40) + BN + ReLU6, then MBConv(k3, e1, 40→24). 21 blocks in six stages
//! 32×4 (s2), 56×4 (s2), 112×4 (s2), 128×4 (s1), 256×4 (s2), 432×1 (s1); identity shortcut iff
//! C_in = C_out and stride 1; `mic_zero` = the block is skipped. Head: Conv1×1 432→1728 + BN + ReLU6,
//! global average pool, Linear(1728, classes). BN eps 1e-3; no dropout (§6.3).

use anyhow::{ensure, Result};
use tch::{nn, Tensor};

use super::genotype::{BlockOp, ProxylessGenotype};
use super::mbconv::MbConv;
use super::skeleton::Skeleton;

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

#[derive(Debug)]
struct Block {
    conv: Option<MbConv>,
    shortcut: bool,
}

/// The network of a ProxylessNAS-space genotype.
#[derive(Debug)]
pub struct ProxylessEvalNet {
    skeleton: Skeleton,
    blocks: Vec<Block>,
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
            skeleton: Skeleton::new(vs, (STEM, FIRST, HEAD), last, classes),
            blocks,
        })
    }

    /// x [B, 3, H, W] → logits [B, classes].
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        self.skeleton.run(x, train, self.blocks.len(), |x, i| {
            let b = &self.blocks[i];
            match (&b.conv, b.shortcut) {
                (None, _) => x, // mic_zero: the block is skipped
                (Some(c), true) => c.forward_t(&x, train) + &x,
                (Some(c), false) => c.forward_t(&x, train),
            }
        })
    }
}
