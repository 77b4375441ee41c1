//! The candidate operations of the DARTS space (spec §5.1), with the DARTS definitions: ReLU-conv-BN
//! order, a FactorizedReduce for the strided skip, average pooling that leaves the padding out of the
//! count. BN is `affine=false` in the search supernet and `affine=true` in the evaluation networks.
//! All ops map [B, C, H, W] to [B, C, ⌈H/s⌉, ⌈W/s⌉] for stride s ∈ {1, 2}.

use crate::nas::init;
use crate::nas::space::pass_norm::PassNorm;
use std::fmt;
use std::str::FromStr;

use anyhow::{ensure, Result};
use serde::{Deserialize, Serialize};
use tch::nn::{self, ModuleT};
use tch::Tensor;

/// A candidate operation by name. The first seven are the UNAS primitives in the official order (the
/// index a genotype's `op_idx` refers to); `DilConv5x5` exists only for DARTS genotypes (DARTS_V2's op
/// list has it, UNAS's does not).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Primitive {
    #[serde(rename = "skip_connect")]
    SkipConnect,
    #[serde(rename = "sep_conv_3x3")]
    SepConv3x3,
    #[serde(rename = "max_pool_3x3")]
    MaxPool3x3,
    #[serde(rename = "dil_conv_3x3")]
    DilConv3x3,
    #[serde(rename = "sep_conv_5x5")]
    SepConv5x5,
    #[serde(rename = "avg_pool_3x3")]
    AvgPool3x3,
    #[serde(rename = "sep_conv_7x7")]
    SepConv7x7,
    #[serde(rename = "dil_conv_5x5")]
    DilConv5x5,
}

/// The UNAS primitive order (`darts/genotypes.py:PRIMITIVES`); `--num_ops K` keeps the first K
/// (CIFAR 7, ImageNet 5).
pub const PRIMITIVES: [Primitive; 7] = [
    Primitive::SkipConnect,
    Primitive::SepConv3x3,
    Primitive::MaxPool3x3,
    Primitive::DilConv3x3,
    Primitive::SepConv5x5,
    Primitive::AvgPool3x3,
    Primitive::SepConv7x7,
];

impl Primitive {
    pub const ALL: [Primitive; 8] = [
        Primitive::SkipConnect,
        Primitive::SepConv3x3,
        Primitive::MaxPool3x3,
        Primitive::DilConv3x3,
        Primitive::SepConv5x5,
        Primitive::AvgPool3x3,
        Primitive::SepConv7x7,
        Primitive::DilConv5x5,
    ];

    /// The op at index `k` of the official order, if k < 7.
    pub fn from_index(k: usize) -> Option<Primitive> {
        PRIMITIVES.get(k).copied()
    }

    /// The DARTS name (`sep_conv_3x3`); also the parameter sub-path of the op.
    pub fn name(self) -> &'static str {
        match self {
            Primitive::SkipConnect => "skip_connect",
            Primitive::SepConv3x3 => "sep_conv_3x3",
            Primitive::MaxPool3x3 => "max_pool_3x3",
            Primitive::DilConv3x3 => "dil_conv_3x3",
            Primitive::SepConv5x5 => "sep_conv_5x5",
            Primitive::AvgPool3x3 => "avg_pool_3x3",
            Primitive::SepConv7x7 => "sep_conv_7x7",
            Primitive::DilConv5x5 => "dil_conv_5x5",
        }
    }
}

impl fmt::Display for Primitive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Primitive {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        Primitive::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Primitive::ALL.iter().map(|p| p.name()).collect();
                anyhow::anyhow!(
                    "unknown DARTS op `{s}`; expected one of {}",
                    names.join(", ")
                )
            })
    }
}

/// Stride, padding, dilation and groups of a bias-free convolution.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConvGeom {
    pub stride: i64,
    pub padding: i64,
    pub dilation: i64,
    pub groups: i64,
}

impl ConvGeom {
    /// Stride s, padding p, no dilation, dense.
    pub fn plain(stride: i64, padding: i64) -> Self {
        ConvGeom {
            stride,
            padding,
            dilation: 1,
            groups: 1,
        }
    }
}

/// A bias-free 2-d convolution, as every conv of the DARTS networks is (PyTorch's initialisation).
pub(crate) fn conv(vs: &nn::Path, c_in: i64, c_out: i64, k: i64, g: ConvGeom) -> nn::Conv2D {
    let cfg = nn::ConvConfig {
        stride: g.stride,
        padding: g.padding,
        dilation: g.dilation,
        groups: g.groups,
        bias: false,
        ..Default::default()
    };
    init::conv2d(vs, c_in, c_out, k, cfg)
}

/// A depthwise k×k convolution on C channels.
fn depthwise(
    vs: &nn::Path,
    c: i64,
    k: i64,
    stride: i64,
    padding: i64,
    dilation: i64,
) -> nn::Conv2D {
    let g = ConvGeom {
        stride,
        padding,
        dilation,
        groups: c,
    };
    conv(vs, c, c, k, g)
}

/// BatchNorm2d as PyTorch initialises it (γ = 1, β = 0, eps 1e-5, momentum 0.1).
pub(crate) fn batch_norm(vs: &nn::Path, c: i64, affine: bool) -> PassNorm {
    PassNorm::new(vs, c, init::batch_norm(affine, 1e-5))
}

/// ReLU → 1×1 conv → BN (the cell preprocessing of a non-reduced input).
#[derive(Debug)]
pub struct ReluConvBn {
    conv: nn::Conv2D,
    bn: PassNorm,
}

impl ReluConvBn {
    pub fn new(vs: &nn::Path, c_in: i64, c_out: i64, affine: bool) -> Self {
        ReluConvBn {
            conv: conv(&(vs / "conv"), c_in, c_out, 1, ConvGeom::plain(1, 0)),
            bn: batch_norm(&(vs / "bn"), c_out, affine),
        }
    }
}

impl ModuleT for ReluConvBn {
    /// [B, C_in, H, W] → [B, C_out, H, W].
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        x.relu().apply(&self.conv).apply_t(&self.bn, train)
    }
}

/// ReLU → two 1×1 stride-2 convs (the second on x shifted by one pixel) → concat → BN.
#[derive(Debug)]
pub struct FactorizedReduce {
    conv_1: nn::Conv2D,
    conv_2: nn::Conv2D,
    bn: PassNorm,
}

impl FactorizedReduce {
    /// Fails on an odd C_out (two halves of C_out / 2 channels each).
    pub fn new(vs: &nn::Path, c_in: i64, c_out: i64, affine: bool) -> Result<Self> {
        ensure!(
            c_out % 2 == 0,
            "a factorised reduction needs an even number of channels, got {c_out}: choose an even \
             width (`space.channels` / `train.channels`)"
        );
        Ok(FactorizedReduce {
            conv_1: conv(&(vs / "conv_1"), c_in, c_out / 2, 1, ConvGeom::plain(2, 0)),
            conv_2: conv(&(vs / "conv_2"), c_in, c_out / 2, 1, ConvGeom::plain(2, 0)),
            bn: batch_norm(&(vs / "bn"), c_out, affine),
        })
    }
}

impl ModuleT for FactorizedReduce {
    /// [B, C_in, H, W] → [B, C_out, H/2, W/2] (H, W even).
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let x = x.relu();
        let shifted = x
            .narrow(2, 1, x.size()[2] - 1)
            .narrow(3, 1, x.size()[3] - 1);
        Tensor::cat(&[x.apply(&self.conv_1), shifted.apply(&self.conv_2)], 1)
            .apply_t(&self.bn, train)
    }
}

/// ReLU → depthwise k×k (stride s) → 1×1 → BN → ReLU → depthwise k×k → 1×1 → BN.
#[derive(Debug)]
pub struct SepConv {
    dw1: nn::Conv2D,
    pw1: nn::Conv2D,
    bn1: PassNorm,
    dw2: nn::Conv2D,
    pw2: nn::Conv2D,
    bn2: PassNorm,
}

impl SepConv {
    pub fn new(vs: &nn::Path, c: i64, k: i64, stride: i64, affine: bool) -> Self {
        let pad = k / 2;
        SepConv {
            dw1: depthwise(&(vs / "dw1"), c, k, stride, pad, 1),
            pw1: conv(&(vs / "pw1"), c, c, 1, ConvGeom::plain(1, 0)),
            bn1: batch_norm(&(vs / "bn1"), c, affine),
            dw2: depthwise(&(vs / "dw2"), c, k, 1, pad, 1),
            pw2: conv(&(vs / "pw2"), c, c, 1, ConvGeom::plain(1, 0)),
            bn2: batch_norm(&(vs / "bn2"), c, affine),
        }
    }
}

impl ModuleT for SepConv {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        x.relu()
            .apply(&self.dw1)
            .apply(&self.pw1)
            .apply_t(&self.bn1, train)
            .relu()
            .apply(&self.dw2)
            .apply(&self.pw2)
            .apply_t(&self.bn2, train)
    }
}

/// ReLU → depthwise k×k with dilation 2 (stride s, padding k−1) → 1×1 → BN.
#[derive(Debug)]
pub struct DilConv {
    dw: nn::Conv2D,
    pw: nn::Conv2D,
    bn: PassNorm,
}

impl DilConv {
    pub fn new(vs: &nn::Path, c: i64, k: i64, stride: i64, affine: bool) -> Self {
        DilConv {
            dw: depthwise(&(vs / "dw"), c, k, stride, k - 1, 2),
            pw: conv(&(vs / "pw"), c, c, 1, ConvGeom::plain(1, 0)),
            bn: batch_norm(&(vs / "bn"), c, affine),
        }
    }
}

impl ModuleT for DilConv {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        x.relu()
            .apply(&self.dw)
            .apply(&self.pw)
            .apply_t(&self.bn, train)
    }
}

/// The preprocessing of a cell's input c_{k-2}: a FactorizedReduce if the previous cell reduced (so that
/// both inputs have the same resolution), else ReLU-conv1×1-BN.
#[derive(Debug)]
pub enum Preprocess {
    Reduce(FactorizedReduce),
    Plain(ReluConvBn),
}

impl Preprocess {
    pub fn new(vs: &nn::Path, c_in: i64, c_out: i64, halve: bool, affine: bool) -> Result<Self> {
        Ok(if halve {
            Preprocess::Reduce(FactorizedReduce::new(vs, c_in, c_out, affine)?)
        } else {
            Preprocess::Plain(ReluConvBn::new(vs, c_in, c_out, affine))
        })
    }
}

impl ModuleT for Preprocess {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        match self {
            Preprocess::Reduce(op) => op.forward_t(x, train),
            Preprocess::Plain(op) => op.forward_t(x, train),
        }
    }
}

/// One built candidate operation on C channels.
#[derive(Debug)]
pub enum Op {
    Identity,
    FactorizedReduce(Box<FactorizedReduce>),
    SepConv(Box<SepConv>),
    DilConv(Box<DilConv>),
    /// 3×3, padding 1.
    MaxPool {
        stride: i64,
    },
    /// 3×3, padding 1, `count_include_pad=False`.
    AvgPool {
        stride: i64,
    },
}

impl Op {
    /// Builds `prim` on C channels; parameters go under `vs` (the caller names the sub-path).
    pub fn new(vs: &nn::Path, prim: Primitive, c: i64, stride: i64, affine: bool) -> Result<Op> {
        Ok(match prim {
            Primitive::SkipConnect if stride == 1 => Op::Identity,
            Primitive::SkipConnect => {
                Op::FactorizedReduce(Box::new(FactorizedReduce::new(vs, c, c, affine)?))
            }
            Primitive::SepConv3x3 => Op::SepConv(Box::new(SepConv::new(vs, c, 3, stride, affine))),
            Primitive::SepConv5x5 => Op::SepConv(Box::new(SepConv::new(vs, c, 5, stride, affine))),
            Primitive::SepConv7x7 => Op::SepConv(Box::new(SepConv::new(vs, c, 7, stride, affine))),
            Primitive::DilConv3x3 => Op::DilConv(Box::new(DilConv::new(vs, c, 3, stride, affine))),
            Primitive::DilConv5x5 => Op::DilConv(Box::new(DilConv::new(vs, c, 5, stride, affine))),
            Primitive::MaxPool3x3 => Op::MaxPool { stride },
            Primitive::AvgPool3x3 => Op::AvgPool { stride },
        })
    }

    /// Drop-path leaves Identity branches alone (`darts/model.py:FactorizedCell`).
    pub fn is_identity(&self) -> bool {
        matches!(self, Op::Identity)
    }
}

impl ModuleT for Op {
    /// [B, C, H, W] → [B, C, ⌈H/s⌉, ⌈W/s⌉].
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        match self {
            Op::Identity => x.shallow_clone(),
            Op::FactorizedReduce(op) => op.forward_t(x, train),
            Op::SepConv(op) => op.forward_t(x, train),
            Op::DilConv(op) => op.forward_t(x, train),
            Op::MaxPool { stride } => {
                x.max_pool2d([3, 3], [*stride, *stride], [1, 1], [1, 1], false)
            }
            Op::AvgPool { stride } => x.avg_pool2d(
                [3, 3],
                [*stride, *stride],
                [1, 1],
                false,
                false,
                None::<i64>,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn every_op_keeps_channels_and_halves_the_map_at_stride_2() {
        let vs = nn::VarStore::new(Device::Cpu);
        let x = Tensor::randn([2, 8, 16, 16], (Kind::Float, Device::Cpu));
        for prim in Primitive::ALL {
            for (stride, side) in [(1, 16), (2, 8)] {
                for affine in [false, true] {
                    let op = Op::new(&vs.root().sub(prim.name()), prim, 8, stride, affine).unwrap();
                    let y = op.forward_t(&x, true);
                    assert_eq!(y.size(), [2, 8, side, side], "{prim} stride {stride}");
                }
            }
        }
    }

    #[test]
    fn primitive_names_round_trip_through_str_and_json() {
        for prim in Primitive::ALL {
            assert_eq!(prim.name().parse::<Primitive>().unwrap(), prim);
            let json = serde_json::to_string(&prim).unwrap();
            assert_eq!(json, format!("\"{}\"", prim.name()));
        }
        assert_eq!(Primitive::from_index(6), Some(Primitive::SepConv7x7));
        assert_eq!(Primitive::from_index(7), None);
        assert!("none".parse::<Primitive>().is_err());
    }
}
