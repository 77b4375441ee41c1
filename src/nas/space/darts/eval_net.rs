//! The evaluation networks (`darts/model.py:Network`, `NetworkImageNet`; spec §6.1–6.2): a stem, L
//! evaluation cells with reductions at ⌊L/3⌋ and ⌊2L/3⌋ (width ×2), an auxiliary head after cell
//! ⌊2L/3⌋, global average pooling and a linear classifier.

use crate::nas::init;
use crate::nas::space::pass_norm::PassNorm;
use anyhow::Result;
use tch::nn;
use tch::Tensor;

use super::eval_cell::{CellShape, EvalCell};
use super::genotype::Genotype;
use super::ops::{batch_norm, conv, ConvGeom};
use super::stem::{Stem, StemKind};

/// Shape of an evaluation network.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalConfig {
    pub dataset: StemKind,
    /// Initial channels C (CIFAR 36; ImageNet from [`super::count::auto_width`]).
    pub channels: i64,
    pub layers: i64,
    pub classes: i64,
    pub auxiliary: bool,
    /// Drop-path probability at the start; the trainer raises it with [`DartsEvalNet::set_drop_path`].
    pub drop_path_prob: f64,
}

impl EvalConfig {
    /// CIFAR `Network`: C = 36, L = 20, auxiliary head (§6.1).
    pub fn cifar(classes: i64) -> Self {
        EvalConfig {
            dataset: StemKind::Cifar,
            channels: 36,
            layers: 20,
            classes,
            auxiliary: true,
            drop_path_prob: 0.0,
        }
    }

    /// `NetworkImageNet`: L = 14 at width C, auxiliary head with BN, no drop-path (§6.2).
    pub fn imagenet(classes: i64, channels: i64) -> Self {
        EvalConfig {
            dataset: StemKind::Imagenet,
            channels,
            layers: 14,
            classes,
            auxiliary: true,
            drop_path_prob: 0.0,
        }
    }

    /// Whether cell `i` is a reduction cell.
    pub fn is_reduction(&self, i: i64) -> bool {
        i == self.layers / 3 || i == 2 * self.layers / 3
    }

    /// The cell after which the auxiliary head reads (⌊2L/3⌋).
    pub fn aux_cell(&self) -> i64 {
        2 * self.layers / 3
    }

    /// Output width of the stem: 3C on CIFAR (stem_multiplier), C on ImageNet.
    pub fn stem_channels(&self) -> i64 {
        match self.dataset {
            StemKind::Cifar => 3 * self.channels,
            StemKind::Imagenet => self.channels,
        }
    }
}

/// The auxiliary classifier on the ⌊2L/3⌋ cell's output (8×8 on CIFAR, 7×7 on ImageNet):
/// ReLU, AvgPool 5 (stride 3 CIFAR / 2 ImageNet, padding excluded), 1×1 → 128, BN, ReLU, 2×2 → 768, BN,
/// ReLU, Linear(768, classes).
#[derive(Debug)]
pub struct AuxiliaryHead {
    pool_stride: i64,
    conv1: nn::Conv2D,
    bn1: PassNorm,
    conv2: nn::Conv2D,
    bn2: PassNorm,
    classifier: nn::Linear,
}

impl AuxiliaryHead {
    pub fn new(vs: &nn::Path, dataset: StemKind, c: i64, classes: i64) -> Self {
        AuxiliaryHead {
            pool_stride: match dataset {
                StemKind::Cifar => 3,
                StemKind::Imagenet => 2,
            },
            conv1: conv(&(vs / "conv1"), c, 128, 1, ConvGeom::plain(1, 0)),
            bn1: batch_norm(&(vs / "bn1"), 128, true),
            conv2: conv(&(vs / "conv2"), 128, 768, 2, ConvGeom::plain(1, 0)),
            bn2: batch_norm(&(vs / "bn2"), 768, true),
            classifier: init::linear(&(vs / "classifier"), 768, classes),
        }
    }

    /// [B, C, 8, 8] (or 7×7) → [B, classes].
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let s = self.pool_stride;
        x.relu()
            .avg_pool2d([5, 5], [s, s], [0, 0], false, false, None::<i64>)
            .apply(&self.conv1)
            .apply_t(&self.bn1, train)
            .relu()
            .apply(&self.conv2)
            .apply_t(&self.bn2, train)
            .relu()
            .flatten(1, -1)
            .apply(&self.classifier)
    }
}

/// A genotype trained from scratch.
#[derive(Debug)]
pub struct DartsEvalNet {
    stem: Stem,
    cells: Vec<EvalCell>,
    auxiliary_head: Option<AuxiliaryHead>,
    aux_cell: usize,
    classifier: nn::Linear,
    drop_path_prob: f64,
}

impl DartsEvalNet {
    /// Parameters: `stem*`, `cells.{l}.…`, `auxiliary_head.…`, `classifier`.
    pub fn new(vs: &nn::Path, genotype: &Genotype, cfg: &EvalConfig) -> Result<Self> {
        genotype.validate()?;
        let stem = Stem::new(vs, cfg.dataset, cfg.stem_channels());
        let (mut c_pp, mut c_p, mut c) = match cfg.dataset {
            StemKind::Cifar => (3 * cfg.channels, 3 * cfg.channels, cfg.channels),
            StemKind::Imagenet => (cfg.channels, cfg.channels, cfg.channels),
        };
        // ImageNet: stem0 is at twice stem1's resolution, as after a reduction
        let mut reduction_prev = cfg.dataset == StemKind::Imagenet;
        let cells_vs = vs / "cells";
        let mut cells = Vec::with_capacity(cfg.layers as usize);
        let mut c_aux = 0;
        for i in 0..cfg.layers {
            let reduction = cfg.is_reduction(i);
            if reduction {
                c *= 2;
            }
            let (genes, concat) = if reduction {
                (&genotype.reduce, &genotype.reduce_concat)
            } else {
                (&genotype.normal, &genotype.normal_concat)
            };
            let cell = EvalCell::new(
                &(&cells_vs / i),
                genes,
                concat,
                CellShape {
                    c_pp,
                    c_p,
                    c,
                    reduction,
                    reduction_prev,
                },
            )?;
            reduction_prev = reduction;
            (c_pp, c_p) = (c_p, cell.multiplier() * c);
            if i == cfg.aux_cell() {
                c_aux = c_p;
            }
            cells.push(cell);
        }
        let auxiliary_head = cfg
            .auxiliary
            .then(|| AuxiliaryHead::new(&(vs / "auxiliary_head"), cfg.dataset, c_aux, cfg.classes));
        Ok(DartsEvalNet {
            stem,
            cells,
            auxiliary_head,
            aux_cell: cfg.aux_cell() as usize,
            classifier: init::linear(&(vs / "classifier"), c_p, cfg.classes),
            drop_path_prob: cfg.drop_path_prob,
        })
    }

    /// The drop-path probability of the next forwards (the trainer sets p·epoch/epochs each epoch).
    pub fn set_drop_path(&mut self, p: f64) {
        self.drop_path_prob = p;
    }

    /// x [B, 3, H, W] → (logits [B, classes], auxiliary logits [B, classes] when training with the head).
    pub fn forward_t(&self, x: &Tensor, train: bool) -> (Tensor, Option<Tensor>) {
        let (mut s0, mut s1) = self.stem.forward_t(x, train);
        let mut aux = None;
        for (i, cell) in self.cells.iter().enumerate() {
            let next = cell.forward_t(&s0, &s1, self.drop_path_prob, train);
            (s0, s1) = (s1, next);
            if i == self.aux_cell && train {
                aux = self
                    .auxiliary_head
                    .as_ref()
                    .map(|h| h.forward_t(&s1, train));
            }
        }
        let logits = s1
            .adaptive_avg_pool2d([1, 1])
            .flatten(1, -1)
            .apply(&self.classifier);
        (logits, aux)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nas::space::darts::eval_cell::drop_path;
    use tch::nn::VarStore;
    use tch::{Device, Kind};

    #[test]
    fn cifar_net_gives_logits_and_aux_logits_only_in_training() {
        let vs = VarStore::new(Device::Cpu);
        let cfg = EvalConfig {
            channels: 8,
            layers: 5,
            drop_path_prob: 0.2,
            ..EvalConfig::cifar(10)
        };
        let net = DartsEvalNet::new(&vs.root(), &Genotype::unas_cifar10(), &cfg).unwrap();
        let x = Tensor::randn([2, 3, 32, 32], (Kind::Float, Device::Cpu));
        let (logits, aux) = net.forward_t(&x, true);
        assert_eq!(logits.size(), [2, 10]);
        assert_eq!(aux.expect("aux head in training").size(), [2, 10]);
        assert!(net.forward_t(&x, false).1.is_none());
    }

    #[test]
    fn imagenet_net_reaches_7x7_with_its_aux_head() {
        let vs = VarStore::new(Device::Cpu);
        let cfg = EvalConfig {
            layers: 3,
            ..EvalConfig::imagenet(5, 8)
        };
        let net = DartsEvalNet::new(&vs.root(), &Genotype::darts_v2(), &cfg).unwrap();
        let x = Tensor::randn([1, 3, 224, 224], (Kind::Float, Device::Cpu));
        let (logits, aux) = net.forward_t(&x, true);
        assert_eq!(logits.size(), [1, 5]);
        assert_eq!(aux.unwrap().size(), [1, 5]);
    }

    #[test]
    fn parameter_names_mirror_the_genotype() {
        let vs = VarStore::new(Device::Cpu);
        DartsEvalNet::new(
            &vs.root(),
            &Genotype::unas_cifar10(),
            &EvalConfig::cifar(10),
        )
        .unwrap();
        let names = vs.variables();
        for n in [
            "cells.3.node2.branch0.sep_conv_5x5.dw1.weight",
            "cells.6.node2.branch1.sep_conv_5x5.pw2.weight",
            "cells.7.preprocess0.conv_1.weight",
            "auxiliary_head.conv2.weight",
        ] {
            assert!(names.contains_key(n), "missing {n}");
        }
        // node 3 branch 0 of a normal cell is skip_connect on c_{k-2}: Identity, no parameters
        assert!(!names.keys().any(|k| k.starts_with("cells.3.node3.branch0")));
    }

    #[test]
    fn drop_path_zeroes_whole_examples_and_keeps_the_mean() {
        tch::manual_seed(1);
        let x = Tensor::ones([4000, 2, 2, 2], (Kind::Float, Device::Cpu));
        let y = drop_path(&x, 0.3);
        let per_example = y.amax([1i64, 2, 3].as_slice(), false);
        let min = y.amin([1i64, 2, 3].as_slice(), false);
        assert!(per_example.eq_tensor(&min).all().int64_value(&[]) == 1);
        let mean = y.mean(Kind::Float).double_value(&[]);
        assert!((mean - 1.0).abs() < 0.05, "mean {mean}");
        let dropped = y
            .eq(0.0)
            .to_kind(Kind::Float)
            .mean(Kind::Float)
            .double_value(&[]);
        assert!((dropped - 0.3).abs() < 0.03, "dropped {dropped}");
    }
}
