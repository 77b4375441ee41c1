//! The ProxylessNAS layers both networks and the skeleton build from: a convolution and a BatchNorm with
//! PyTorch's initialisation and the official BN eps, and the mobile inverted bottleneck (MBConv).

use crate::nas::init;
use crate::nas::space::pass_norm::PassNorm;
use tch::{nn, nn::Module, Tensor};

/// BatchNorm eps of the ProxylessNAS networks (`proxylessnas/model.py`).
pub(super) const BN_EPS: f64 = 1e-3;

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
