//! The ProxylessNAS search supernet (`proxylessnas/model_search.py`, spec §5.2): the ProxylessNAS-GPU
//! skeleton at a width multiplier, every candidate of every block built, run on an architecture sample.
//!
//! Block b (1..=21) holds the candidates of its kind: a first-of-stage block the six MBConvs
//! ([`reduction_primitives`]), any other block those plus `mic_zero` at index 0 ([`BLOCK_PRIMITIVES`]).
//! A candidate's output includes the block's identity shortcut (C_in = C_out, stride 1), and
//! `mic_zero` is the identity, so at a one-hot sample the block is exactly the evaluation network's.
//! The search-time `mic_zero` is followed by dropout (official 0.1, "following P-DARTS add noise to
//! skip operation"; `zero_dropout: 0` turns it off). BN eps 1e-3, ReLU6 (in [`MbConv`]).
//!
//! Relaxed path: block(x) = Σ_k w[:, k]·op_k(x), skipping op k when max_n w[n, k] < the op-skip
//! threshold (spec §1.3). Discrete fast path (one architecture, one-hot): only the chosen op runs.

use anyhow::{ensure, Context, Result};
use tch::{nn, Kind, Tensor};

use super::genotype::{reduction_primitives, starts_stage, BlockOp, BLOCKS, BLOCK_PRIMITIVES};
use super::mbconv::MbConv;
use super::skeleton::Skeleton;
use crate::nas::arch::{ProxylessSample, SampleKind};

/// The official widths at multiplier 1.0: stem, first block, the six stages (width, blocks,
/// stride of the first), head (spec §5.2).
const STEM: i64 = 40;
const FIRST: i64 = 24;
const STAGES: [(i64, usize, i64); 6] = [
    (32, 4, 2),
    (56, 4, 2),
    (112, 4, 2),
    (128, 4, 1),
    (256, 4, 2),
    (432, 1, 1),
];
const HEAD: i64 = 1728;
pub use crate::config::limits::TOTAL_STRIDE;

/// Shape of the search supernet.
#[derive(Clone, Debug, PartialEq)]
pub struct ProxylessSearchConfig {
    pub width_multiplier: f64,
    /// Side of the (square) input the supernet runs at; images of another side are resized to it.
    pub resolution: i64,
    pub classes: i64,
    /// Op k of a block is skipped when its largest weight in the batch is below this (0 disables).
    pub op_skip_threshold: f64,
    /// Dropout probability after `mic_zero` in training (0 disables).
    pub zero_dropout: f64,
}

/// make_divisible(v, 8) of MobileNetV2/ProxylessNAS: the nearest multiple of 8, never below 8 nor
/// more than 10% below v. The official rounding of UNAS's widths is [UNCONFIRMED]; at 1.0 every
/// official width is already a multiple of 8, so the paper's network is unaffected.
pub fn make_divisible(v: f64) -> i64 {
    let d = 8i64;
    let rounded = (((v + d as f64 / 2.0) as i64) / d * d).max(d);
    if (rounded as f64) < 0.9 * v {
        rounded + d
    } else {
        rounded
    }
}

/// (C_in, C_out, stride) of a block.
pub type BlockShape = (i64, i64, i64);

/// (stem, first, head) widths and (C_in, C_out, stride) of every searchable block at `width`.
pub fn skeleton_at(width: f64) -> ((i64, i64, i64), Vec<BlockShape>) {
    let w = |c: i64| make_divisible(c as f64 * width);
    let mut blocks = Vec::with_capacity(BLOCKS);
    let mut c_in = w(FIRST);
    for &(c, repeats, stride) in &STAGES {
        for r in 0..repeats {
            blocks.push((c_in, w(c), if r == 0 { stride } else { 1 }));
            c_in = w(c);
        }
    }
    ((w(STEM), w(FIRST), w(HEAD)), blocks)
}

/// One searchable block: every candidate (`None` = `mic_zero`), and where its weights are in the
/// sample (`reduce` row for a first-of-stage block, else `normal` row).
#[derive(Debug)]
struct MixedBlock {
    ops: Vec<Option<MbConv>>,
    shortcut: bool,
    reduce: bool,
    row: i64,
}

impl MixedBlock {
    /// op_k(x), the block's shortcut included; `mic_zero` = identity (with dropout p in training).
    fn op(&self, k: usize, x: &Tensor, train: bool, p: f64) -> Tensor {
        match &self.ops[k] {
            None if p > 0.0 => x.dropout(p, train),
            None => x.shallow_clone(),
            Some(mb) if self.shortcut => mb.forward_t(x, train) + x,
            Some(mb) => mb.forward_t(x, train),
        }
    }

    /// The output of a block whose every candidate the op-skip rule dropped: Σ over no ops = zeros
    /// [B, C_out, H/s, W/s] (the DARTS cell's empty node likewise). The largest weight of a block is
    /// ≥ 1/K, so this happens only above a threshold of 1/7 (normal) or 1/6 (first of a stage). The
    /// shape comes from candidate 0 in inference mode, so no BatchNorm statistic moves.
    fn skipped(&self, x: &Tensor) -> Tensor {
        tch::no_grad(|| self.op(0, x, false, 0.0)).zeros_like()
    }

    /// The block's weights in the sample, [N, K].
    fn weights(&self, s: &ProxylessSample) -> Tensor {
        if self.reduce {
            s.reduce.get(self.row)
        } else {
            s.normal.get(self.row)
        }
    }
}

/// The weight-sharing supernet of the ProxylessNAS space.
#[derive(Debug)]
pub struct ProxylessSearchNet {
    skeleton: Skeleton,
    blocks: Vec<MixedBlock>,
    cfg: ProxylessSearchConfig,
}

impl ProxylessSearchNet {
    /// Parameters: `stem`, `first`, `blocks.{b}.{op name}.…`, `head`, `classifier`.
    pub fn new(vs: &nn::Path, cfg: &ProxylessSearchConfig) -> Result<Self> {
        ensure!(
            cfg.width_multiplier > 0.0 && cfg.width_multiplier.is_finite(),
            "width multiplier must be > 0, got {}",
            cfg.width_multiplier
        );
        ensure!(
            cfg.resolution >= TOTAL_STRIDE as i64 && cfg.resolution % TOTAL_STRIDE as i64 == 0,
            "resolution {} is not a multiple of the skeleton's total stride {TOTAL_STRIDE}",
            cfg.resolution
        );
        let ((stem_c, first_c, head_c), skeleton) = skeleton_at(cfg.width_multiplier);
        let (mut normal_row, mut reduce_row) = (0, 0);
        let mut blocks = Vec::with_capacity(BLOCKS);
        for (i, &(c_in, c_out, stride)) in skeleton.iter().enumerate() {
            let reduce = starts_stage(i + 1);
            let path = vs / "blocks" / i as i64;
            let ops = candidates(i)
                .iter()
                .map(|op| match *op {
                    BlockOp::Zero => None,
                    BlockOp::MbConv { kernel, expand } => Some(MbConv::new(
                        &(&path / op.name()),
                        c_in,
                        c_out,
                        kernel,
                        expand,
                        stride,
                    )),
                })
                .collect();
            let row = if reduce {
                &mut reduce_row
            } else {
                &mut normal_row
            };
            blocks.push(MixedBlock {
                ops,
                shortcut: c_in == c_out && stride == 1,
                reduce,
                row: *row,
            });
            *row += 1;
        }
        let last = skeleton[BLOCKS - 1].1;
        Ok(ProxylessSearchNet {
            skeleton: Skeleton::new(vs, (stem_c, first_c, head_c), last, cfg.classes),
            blocks,
            cfg: cfg.clone(),
        })
    }

    pub fn config(&self) -> &ProxylessSearchConfig {
        &self.cfg
    }

    /// The input at the supernet's resolution: area-averaged down, or bilinearly up.
    pub fn at_resolution(&self, x: &Tensor) -> Tensor {
        let r = self.cfg.resolution;
        let s = x.size();
        if s[2] == r && s[3] == r {
            x.shallow_clone()
        } else if s[2] > r {
            x.adaptive_avg_pool2d([r, r])
        } else {
            x.upsample_bilinear2d([r, r], false, None, None)
        }
    }

    /// x [B, 3, H, W] → logits [B, classes] with the sample's weights. A one-hot sample of one
    /// architecture (N = 1) takes the discrete fast path; any other runs the relaxed blocks.
    pub fn forward(
        &self,
        x: &Tensor,
        sample: &ProxylessSample,
        kind: SampleKind,
        train: bool,
    ) -> Tensor {
        let one_arch = sample.normal.size()[1] == 1;
        if kind == SampleKind::OneHot && one_arch {
            let choices = choices_of(sample);
            let body = |x: Tensor, b: &MixedBlock, k: usize| {
                // ·w_k (= 1) keeps the path from the logits to the loss (straight-through callers)
                b.op(k, &x, train, self.cfg.zero_dropout) * b.weights(sample).get(0).get(k as i64)
            };
            return self.run(x, train, |x, i, b| body(x, b, choices[i]));
        }
        let w_max = block_maxima(sample, &self.blocks);
        let thr = match kind {
            SampleKind::Relaxed => self.cfg.op_skip_threshold,
            SampleKind::OneHot => f64::MIN_POSITIVE, // only the chosen ops of the batch
            SampleKind::Dense => 0.0,                // every op (st_gsm, darts)
        };
        self.run(x, train, |x, i, b| {
            let w = b.weights(sample);
            let n = w.size()[0];
            let keep: Vec<usize> = (0..b.ops.len())
                .filter(|&k| thr <= 0.0 || w_max[i][k] >= thr)
                .collect();
            keep.iter()
                .map(|&k| {
                    w.select(1, k as i64).reshape([n, 1, 1, 1])
                        * b.op(k, &x, train, self.cfg.zero_dropout)
                })
                .reduce(|a, c| a + c)
                .unwrap_or_else(|| b.skipped(&x))
        })
    }

    /// The discrete network of `choices` (one op index per block, in its group's order), as the
    /// latency term times it: only the chosen op per block, no weights.
    pub fn forward_discrete(&self, x: &Tensor, choices: &[usize], train: bool) -> Tensor {
        self.run(x, train, |x, i, b| {
            b.op(choices[i], &x, train, self.cfg.zero_dropout)
        })
    }

    /// Stem, first block, the 21 blocks through `block(x, index, block)`, head, classifier.
    fn run(
        &self,
        x: &Tensor,
        train: bool,
        mut block: impl FnMut(Tensor, usize, &MixedBlock) -> Tensor,
    ) -> Tensor {
        self.skeleton
            .run(&self.at_resolution(x), train, self.blocks.len(), |x, i| {
                block(x, i, &self.blocks[i])
            })
    }

    /// The fixed start: stem (Conv3×3 s2, BN, ReLU6) and the first MBConv(k3, e1).
    pub fn stem_first(&self, x: &Tensor, train: bool) -> Tensor {
        self.skeleton.start(x, train)
    }

    /// Candidate `k` of block `i` (0-based) alone, shortcut included.
    pub fn block_op(&self, i: usize, k: usize, x: &Tensor, train: bool) -> Tensor {
        self.blocks[i].op(k, x, train, self.cfg.zero_dropout)
    }

    /// The fixed end: Conv1×1 + BN + ReLU6, global average pool, classifier.
    pub fn head(&self, x: &Tensor, train: bool) -> Tensor {
        self.skeleton.end(x, train)
    }
}

/// The candidates of block `i` (0-based), in the order of its logits.
pub fn candidates(i: usize) -> &'static [BlockOp] {
    if starts_stage(i + 1) {
        reduction_primitives()
    } else {
        &BLOCK_PRIMITIVES
    }
}

/// The per-block indices (into [`candidates`]) of a genotype's ops.
pub fn indices_of(genotype: &super::ProxylessGenotype) -> Result<Vec<usize>> {
    genotype.validate()?;
    genotype
        .blocks()
        .iter()
        .enumerate()
        .map(|(i, op)| {
            candidates(i)
                .iter()
                .position(|c| c == op)
                .with_context(|| format!("block {} cannot take {}", i + 1, op.name()))
        })
        .collect()
}

/// `normal` and `reduce` (each 1-d or 2-d, of `kind`) to the host in one read: the two as row lists.
fn read_both<T: tch::kind::Element>(
    normal: &Tensor,
    reduce: &Tensor,
    kind: Kind,
) -> [Vec<Vec<T>>; 2]
where
    Vec<T>: TryFrom<Tensor>,
{
    let rows = |t: &Tensor| if t.dim() == 1 { 1 } else { t.size()[0] };
    let flat = Tensor::cat(&[normal.flatten(0, -1), reduce.flatten(0, -1)], 0).to_kind(kind);
    let all = Vec::<T>::try_from(flat)
        .ok()
        .expect("a 1-d tensor of the kind asked for converts");
    let n_normal = normal.numel();
    let split = |part: &[T], rows: i64| -> Vec<Vec<T>> {
        let width = part.len() / rows.max(1) as usize;
        part.chunks(width.max(1)).map(<[T]>::to_vec).collect()
    };
    [
        split(&all[..n_normal], rows(normal)),
        split(&all[n_normal..], rows(reduce)),
    ]
}

/// Per block, the chosen op of a one-architecture one-hot sample (one host read).
pub fn choices_of(sample: &ProxylessSample) -> Vec<usize> {
    let pick = |t: &Tensor| t.select(1, 0).argmax(-1, false);
    let [normal, reduce] =
        read_both::<i64>(&pick(&sample.normal), &pick(&sample.reduce), Kind::Int64);
    let (mut n, mut r) = (normal.concat().into_iter(), reduce.concat().into_iter());
    (1..=BLOCKS)
        .map(|b| {
            let next = if starts_stage(b) { r.next() } else { n.next() };
            next.expect("15 normal and 6 reduce rows") as usize
        })
        .collect()
}

/// max_n w[n, k] of every block (one host read for both groups).
fn block_maxima(sample: &ProxylessSample, blocks: &[MixedBlock]) -> Vec<Vec<f64>> {
    let amax = |t: &Tensor| t.detach().amax([1], false); // [S, N, K] → [S, K]
    let [normal, reduce] =
        read_both::<f64>(&amax(&sample.normal), &amax(&sample.reduce), Kind::Double);
    blocks
        .iter()
        .map(|b| {
            let g = if b.reduce { &reduce } else { &normal };
            g[b.row as usize].clone()
        })
        .collect()
}

#[cfg(test)]
mod tests;
