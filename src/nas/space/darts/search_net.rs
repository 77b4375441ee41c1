//! The search supernets (`darts/model_search.py:Network`, spec §5.1): a stem, L paired-input search
//! cells with reductions at ⌊L/3⌋ and ⌊2L/3⌋, global average pooling, a linear classifier. All normal
//! cells read the sample's `normal` weights, all reduction cells its `reduce` weights.

use anyhow::{ensure, Result};
use tch::nn;
use tch::Tensor;

use super::search_cell::{CellPlan, SearchCell, STEPS};
use super::stem::{Stem, StemKind};
use crate::nas::arch::{DartsSample, SampleKind};

/// Shape of a search supernet.
#[derive(Clone, Debug, PartialEq)]
pub struct DartsSearchConfig {
    pub stem: StemKind,
    pub layers: i64,
    /// C: the width of the first cells (CIFAR) or a third of it (ImageNet: cells start at 3C).
    pub channels: i64,
    /// K: the first K ops of the official order (2..=7).
    pub num_ops: usize,
    pub classes: i64,
    /// Op k of an edge is skipped when its largest weight in the batch is below this (0 disables).
    pub op_skip_threshold: f64,
}

impl DartsSearchConfig {
    /// CIFAR search: L = 8, C = 16, 7 ops (cells 16/32/64 channels, reductions at 2 and 5).
    pub fn cifar(classes: i64) -> Self {
        DartsSearchConfig {
            stem: StemKind::Cifar,
            layers: 8,
            channels: 16,
            num_ops: 7,
            classes,
            op_skip_threshold: 0.05,
        }
    }

    /// ImageNet search: L = 14, C = 16 (cells from 48 channels), 5 ops, reductions at 4 and 9.
    pub fn imagenet(classes: i64) -> Self {
        DartsSearchConfig {
            stem: StemKind::Imagenet,
            layers: 14,
            channels: 16,
            num_ops: 5,
            classes,
            op_skip_threshold: 0.05,
        }
    }
}

/// The weight-sharing supernet of the DARTS space.
#[derive(Debug)]
pub struct DartsSearchNet {
    stem: Stem,
    cells: Vec<SearchCell>,
    classifier: nn::Linear,
    num_ops: usize,
    op_skip_threshold: f64,
}

impl DartsSearchNet {
    /// Parameters: `stem*`, `cells.{l}.node{i}.edge{j}.{op}.…`, `classifier`.
    /// Fails on a shape it cannot build (K outside 2..=7, an odd width where a reduction halves it).
    pub fn new(vs: &nn::Path, cfg: &DartsSearchConfig) -> Result<Self> {
        ensure!(
            (2..=7).contains(&cfg.num_ops),
            "num_ops must be in 2..=7 (the first K of the official op order), got {}",
            cfg.num_ops
        );
        let stem_c = 3 * cfg.channels; // stem_multiplier 3
        let stem = Stem::new(vs, cfg.stem, stem_c);
        let (mut c_pp, mut c_p, mut c) = match cfg.stem {
            StemKind::Cifar => (stem_c, stem_c, cfg.channels),
            StemKind::Imagenet => (stem_c, stem_c, stem_c),
        };
        let mut reduction_prev = cfg.stem == StemKind::Imagenet;
        let cells_vs = vs / "cells";
        let cells = (0..cfg.layers)
            .map(|i| {
                let reduction = i == cfg.layers / 3 || i == 2 * cfg.layers / 3;
                if reduction {
                    c *= 2;
                }
                let cell = SearchCell::new(
                    &(&cells_vs / i),
                    c_pp,
                    c_p,
                    c,
                    cfg.num_ops,
                    reduction,
                    reduction_prev,
                )?;
                reduction_prev = reduction;
                (c_pp, c_p) = (c_p, STEPS as i64 * c);
                Ok(cell)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(DartsSearchNet {
            stem,
            cells,
            classifier: crate::nas::init::linear(&(vs / "classifier"), c_p, cfg.classes),
            num_ops: cfg.num_ops,
            op_skip_threshold: cfg.op_skip_threshold,
        })
    }

    /// K, the number of candidate ops per edge.
    pub fn num_ops(&self) -> usize {
        self.num_ops
    }

    /// x [B, 3, H, W] → logits [B, classes]. `sample` holds N = B architectures (one per example) or
    /// N = 1 (one for the batch); `kind` = OneHot runs only the chosen ops (the discrete fast path).
    pub fn forward(
        &self,
        x: &Tensor,
        sample: &DartsSample,
        kind: SampleKind,
        train: bool,
    ) -> Tensor {
        let (mut s0, mut s1) = self.stem.forward_t(x, train);
        // the host-side facts each cell type's sample implies, read once for all cells (one sync)
        let mut plans = CellPlan::for_cells(
            &[&sample.normal, &sample.reduce],
            kind,
            self.op_skip_threshold,
        );
        let (plan_reduce, plan_normal) =
            (plans.pop().expect("reduce"), plans.pop().expect("normal"));
        for cell in &self.cells {
            let (cell_sample, plan) = if cell.reduction {
                (&sample.reduce, &plan_reduce)
            } else {
                (&sample.normal, &plan_normal)
            };
            let next = cell.forward(&s0, &s1, cell_sample, plan, self.op_skip_threshold, train);
            (s0, s1) = (s1, next);
        }
        s1.adaptive_avg_pool2d([1, 1])
            .flatten(1, -1)
            .apply(&self.classifier)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nas::arch::CellSample;
    use crate::nas::space::op_skip_check::{
        assert_input_ignored_only_when_all_skipped, assert_trains_at, LARGEST_THRESHOLD,
    };
    use tch::nn::VarStore;
    use tch::{Device, Kind};

    /// A tiny CIFAR supernet: cells 0 normal, 1 and 2 reduction (L = 3), C = 4.
    fn tiny(threshold: f64) -> (VarStore, DartsSearchNet) {
        tch::manual_seed(0);
        let vs = VarStore::new(Device::Cpu);
        let cfg = DartsSearchConfig {
            layers: 3,
            channels: 4,
            op_skip_threshold: threshold,
            ..DartsSearchConfig::cifar(10)
        };
        let net = DartsSearchNet::new(&vs.root(), &cfg).unwrap();
        (vs, net)
    }

    fn images(b: i64) -> Tensor {
        Tensor::randn([b, 3, 16, 16], (Kind::Float, Device::Cpu))
    }

    fn sample(n: i64, kind: SampleKind) -> DartsSample {
        DartsSample {
            normal: CellSample::random(n, 7, kind, Device::Cpu),
            reduce: CellSample::random(n, 7, kind, Device::Cpu),
        }
    }

    /// Every node: selector 0 takes (input 0, op `k0`), selector 1 (input 1, op `k1`); N = 1.
    fn fixed_cell(k0: i64, k1: i64) -> CellSample {
        let one_hot = |idx: [i64; 2], n: i64| {
            Tensor::from_slice(&idx)
                .one_hot(n)
                .to_kind(Kind::Float)
                .view([2, 1, n])
                .set_requires_grad(true)
        };
        CellSample {
            inputs: (0..4).map(|i| one_hot([0, 1], i + 2)).collect(),
            ops: (0..4).map(|_| one_hot([k0, k1], 7)).collect(),
        }
    }

    fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
        (a - b).abs().max().double_value(&[])
    }

    #[test]
    fn relaxed_forward_on_a_one_hot_sample_equals_the_discrete_fast_path() {
        let (_vs, net) = tiny(0.05);
        let x = images(6);
        // one architecture per example: BN in eval mode, since the fast path normalises each group alone
        let s = sample(6, SampleKind::OneHot);
        let relaxed = net.forward(&x, &s, SampleKind::Relaxed, false);
        let discrete = net.forward(&x, &s, SampleKind::OneHot, false);
        assert!(max_abs_diff(&relaxed, &discrete) < 1e-5);
        // one architecture per batch: identical in train mode too
        let s = sample(1, SampleKind::OneHot);
        let relaxed = net.forward(&x, &s, SampleKind::Relaxed, true);
        let discrete = net.forward(&x, &s, SampleKind::OneHot, true);
        assert!(max_abs_diff(&relaxed, &discrete) < 1e-5);
    }

    #[test]
    fn selectors_choosing_the_same_branch_count_twice_on_both_paths() {
        let (_vs, net) = tiny(0.05);
        let x = images(3);
        let mut s = DartsSample {
            normal: fixed_cell(1, 1),
            reduce: fixed_cell(4, 4),
        };
        // both selectors of every node on input 0
        for t in s.normal.inputs.iter_mut().chain(s.reduce.inputs.iter_mut()) {
            let n = t.size()[2];
            *t = Tensor::from_slice(&[0i64, 0])
                .one_hot(n)
                .to_kind(Kind::Float)
                .view([2, 1, n]);
        }
        let relaxed = net.forward(&x, &s, SampleKind::Relaxed, false);
        let discrete = net.forward(&x, &s, SampleKind::OneHot, false);
        assert!(max_abs_diff(&relaxed, &discrete) < 1e-5);
    }

    #[test]
    fn gradients_reach_only_the_ops_that_ran() {
        let (vs, net) = tiny(0.05);
        let x = images(4);
        // sep_conv_3x3 (1) on input 0 and dil_conv_3x3 (3) on input 1, in every node of every cell
        let s = DartsSample {
            normal: fixed_cell(1, 3),
            reduce: fixed_cell(1, 3),
        };
        net.forward(&x, &s, SampleKind::OneHot, true)
            .sum(Kind::Float)
            .backward();
        let mut ran = 0;
        for (name, t) in vs.variables() {
            if !name.contains(".edge") || !t.requires_grad() {
                continue;
            }
            let chosen =
                name.contains(".edge0.sep_conv_3x3.") || name.contains(".edge1.dil_conv_3x3.");
            assert_eq!(t.grad().defined(), chosen, "{name}");
            ran += chosen as usize;
        }
        assert!(ran > 0);
        // the straight-through gradient reaches the sample
        assert!(s.normal.ops[0].grad().defined() && s.normal.inputs[3].grad().defined());
    }

    #[test]
    fn per_example_architectures_give_per_example_outputs() {
        // threshold 0: the op-skip rule couples the examples of a batch through the batch maximum
        let (_vs, net) = tiny(0.0);
        let x1 = images(1);
        let x = Tensor::cat(&[&x1, &x1], 0);
        for kind in [SampleKind::Relaxed, SampleKind::OneHot] {
            let s = sample(2, kind);
            let out = net.forward(&x, &s, kind, false);
            assert!(
                max_abs_diff(&out.get(0), &out.get(1)) > 1e-6,
                "{kind:?}: same image, two archs"
            );
            let row0 = |c: &CellSample| CellSample {
                inputs: c.inputs.iter().map(|t| t.narrow(1, 0, 1)).collect(),
                ops: c.ops.iter().map(|t| t.narrow(1, 0, 1)).collect(),
            };
            let alone = DartsSample {
                normal: row0(&s.normal),
                reduce: row0(&s.reduce),
            };
            let single = net.forward(&x1, &alone, kind, false);
            // float32 kernels for batch 1 and batch 2 may sum in another order: relative tolerance
            let scale = 1.0 + out.abs().max().double_value(&[]);
            let diff = max_abs_diff(&single.get(0), &out.get(0));
            assert!(
                diff < 1e-5 * scale,
                "{kind:?}: batch of one differs by {diff} at scale {scale}"
            );
        }
    }

    #[test]
    fn op_skip_drops_ops_whose_batch_max_weight_is_below_threshold() {
        let x = images(2);
        let s = sample(1, SampleKind::Relaxed);
        let (_vs, skipping) = tiny(0.05);
        let (_vs2, full) = tiny(0.0);
        // same seed, same weights: differ only where some weight is below 0.05
        let below = s
            .normal
            .ops
            .iter()
            .chain(&s.reduce.ops)
            .any(|t| t.min().double_value(&[]) < 0.05);
        let diff = max_abs_diff(
            &skipping.forward(&x, &s, SampleKind::Relaxed, false),
            &full.forward(&x, &s, SampleKind::Relaxed, false),
        );
        assert_eq!(diff > 1e-7, below, "diff {diff}");
    }

    #[test]
    fn a_dense_forward_runs_every_op_even_with_op_skip_on() {
        let x = images(2);
        let s = sample(1, SampleKind::Relaxed);
        let (_vs, skipping) = tiny(0.05);
        let (_vs2, full) = tiny(0.0);
        // with a threshold, Dense equals the threshold-0 relaxed forward: nothing is skipped
        let diff = max_abs_diff(
            &skipping.forward(&x, &s, SampleKind::Dense, false),
            &full.forward(&x, &s, SampleKind::Relaxed, false),
        );
        assert!(diff < 1e-6, "diff {diff}");
        // a one-hot sample (selector 0: input 0 with op 1, selector 1: input 1 with op 3): the
        // straight-through gradient of an unchosen op reaches it only on the dense path (the relaxed
        // path skips it, its weight being 0 in the whole batch)
        let hard = DartsSample {
            normal: fixed_cell(1, 3),
            reduce: fixed_cell(1, 3),
        };
        let unchosen_grad = |kind: SampleKind| {
            let out = skipping.forward(&x, &hard, kind, true);
            let ops = &hard.normal.ops[0];
            let g = Tensor::run_backward(&[out.sum(Kind::Float)], &[ops], false, false);
            (&g[0] * ops.ones_like().g_sub(ops))
                .abs()
                .sum(Kind::Float)
                .double_value(&[])
        };
        assert!(unchosen_grad(SampleKind::Dense) > 0.0);
        assert_eq!(unchosen_grad(SampleKind::Relaxed), 0.0);
    }

    #[test]
    fn every_threshold_validation_accepts_trains_and_an_all_skipped_node_outputs_zeros() {
        tch::manual_seed(11);
        let x = images(2);
        let s = sample(1, SampleKind::Relaxed);
        assert_trains_at(&[0.0, 0.05, 0.9, LARGEST_THRESHOLD], [2, 10], |thr| {
            let (vs, net) = tiny(thr);
            let out = net.forward(&x, &s, SampleKind::Relaxed, true);
            (vs, out)
        });
        // at the largest threshold every op of a uniform sample is skipped (every node is zeros),
        // so the logits no longer depend on the images; at 0 they do
        let uniform = |k: i64| Tensor::full([2, 1, k], 1.0 / k as f64, (Kind::Float, Device::Cpu));
        let cell = || CellSample {
            inputs: (0..4).map(|i| uniform(i + 2)).collect(),
            ops: (0..4).map(|_| uniform(7)).collect(),
        };
        let s = DartsSample {
            normal: cell(),
            reduce: cell(),
        };
        assert_input_ignored_only_when_all_skipped(&x, |thr, images| {
            let (_vs, net) = tiny(thr);
            net.forward(images, &s, SampleKind::Relaxed, false)
        });
    }

    #[test]
    fn parameter_names_mirror_the_structure() {
        let (vs, _net) = tiny(0.05);
        let names = vs.variables();
        for n in [
            "cells.0.node2.edge0.sep_conv_3x3.dw1.weight",
            "cells.1.node5.edge4.sep_conv_7x7.pw2.weight",
            "cells.1.node3.edge1.skip_connect.conv_1.weight",
            "cells.2.preprocess0.conv_1.weight",
            "stem.conv.weight",
            "classifier.weight",
        ] {
            assert!(names.contains_key(n), "missing {n}");
        }
    }

    #[test]
    fn imagenet_search_net_starts_its_cells_at_three_c() {
        let vs = VarStore::new(Device::Cpu);
        let cfg = DartsSearchConfig {
            layers: 3,
            ..DartsSearchConfig::imagenet(10)
        };
        let net = DartsSearchNet::new(&vs.root(), &cfg).unwrap();
        let w = vs.variables()["cells.0.preprocess1.conv.weight"].size();
        assert_eq!(w[..2], [48, 48]);
        let x = Tensor::randn([1, 3, 64, 64], (Kind::Float, Device::Cpu));
        let s = DartsSample {
            normal: CellSample::random(1, 5, SampleKind::OneHot, Device::Cpu),
            reduce: CellSample::random(1, 5, SampleKind::OneHot, Device::Cpu),
        };
        assert_eq!(
            net.forward(&x, &s, SampleKind::OneHot, false).size(),
            [1, 10]
        );
    }
}
