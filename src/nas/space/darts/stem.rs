//! The stems of the DARTS networks (spec §5.1, §6.2). CIFAR: 3×3 conv + BN at full resolution.
//! ImageNet: stem0 = two stride-2 3×3 convs (3 → C/2 → C) with BN and a ReLU between, stem1 = ReLU +
//! stride-2 3×3 conv + BN, so that a 224×224 image reaches the cells at 56 (s0) and 28 (s1).

use crate::nas::space::pass_norm::PassNorm;
use tch::nn;
use tch::Tensor;

use super::ops::{batch_norm, conv, ConvGeom};

/// Which stem (and so which input resolution) a DARTS network has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StemKind {
    /// 32×32 inputs, one stem; both cell inputs of the first cell are the stem output.
    Cifar,
    /// 224×224 inputs, two stems; the first cell sees stem0 (56×56) and stem1 (28×28).
    Imagenet,
}

/// The built stem; `c` is its output width. (Built once per network, so the variant sizes don't matter.)
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Stem {
    Cifar {
        conv: nn::Conv2D,
        bn: PassNorm,
    },
    Imagenet {
        conv0a: nn::Conv2D,
        bn0a: PassNorm,
        conv0b: nn::Conv2D,
        bn0b: PassNorm,
        conv1: nn::Conv2D,
        bn1: PassNorm,
    },
}

impl Stem {
    /// Stem with `c` output channels (BN affine, as in the official code for both nets).
    pub fn new(vs: &nn::Path, kind: StemKind, c: i64) -> Stem {
        match kind {
            StemKind::Cifar => {
                let vs = vs / "stem";
                Stem::Cifar {
                    conv: conv(&(&vs / "conv"), 3, c, 3, ConvGeom::plain(1, 1)),
                    bn: batch_norm(&(&vs / "bn"), c, true),
                }
            }
            StemKind::Imagenet => {
                let (s0, s1) = (vs / "stem0", vs / "stem1");
                Stem::Imagenet {
                    conv0a: conv(&(&s0 / "conv_a"), 3, c / 2, 3, ConvGeom::plain(2, 1)),
                    bn0a: batch_norm(&(&s0 / "bn_a"), c / 2, true),
                    conv0b: conv(&(&s0 / "conv_b"), c / 2, c, 3, ConvGeom::plain(2, 1)),
                    bn0b: batch_norm(&(&s0 / "bn_b"), c, true),
                    conv1: conv(&(&s1 / "conv"), c, c, 3, ConvGeom::plain(2, 1)),
                    bn1: batch_norm(&(&s1 / "bn"), c, true),
                }
            }
        }
    }

    /// [B, 3, H, W] → (s0, s1): CIFAR both [B, c, H, W]; ImageNet [B, c, H/4, W/4], [B, c, H/8, W/8].
    pub fn forward_t(&self, x: &Tensor, train: bool) -> (Tensor, Tensor) {
        match self {
            Stem::Cifar { conv, bn } => {
                let s = x.apply(conv).apply_t(bn, train);
                (s.shallow_clone(), s)
            }
            Stem::Imagenet {
                conv0a,
                bn0a,
                conv0b,
                bn0b,
                conv1,
                bn1,
            } => {
                let s0 = x
                    .apply(conv0a)
                    .apply_t(bn0a, train)
                    .relu()
                    .apply(conv0b)
                    .apply_t(bn0b, train);
                let s1 = s0.relu().apply(conv1).apply_t(bn1, train);
                (s0, s1)
            }
        }
    }
}
