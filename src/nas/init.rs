//! PyTorch's default initialisation of every layer type we build, in one place. The official code
//! (NVlabs/unas: `darts/operations.py`, `darts/model*.py`, `proxylessnas/operations.py`,
//! `proxylessnas/model*.py`) never re-initialises a parameter, so every network starts where the
//! layers' own `reset_parameters` put it (torch.nn.modules.{conv,linear,batchnorm}):
//!
//! * Conv2d / Linear weight: `kaiming_uniform_(a=√5)` = U(±1/√fan_in), fan_in = C_in/groups·k_h·k_w
//!   (Linear: in_features), so std = 1/√(3·fan_in);
//! * Conv2d / Linear bias: U(±1/√fan_in), the same fan_in;
//! * BatchNorm weight 1, bias 0 (when affine), running mean 0, running variance 1.
//!
//! tch's own defaults differ (Kaiming-uniform with the ReLU gain, U(±√6/√fan_in), a conv bias of 0 and
//! a BatchNorm γ ~ U(0, 1)): every constructor goes through the functions here instead.

use tch::nn;
use tch::{Device, Kind, Tensor};

/// The initialisation scheme's name, part of every run id (`runner/plan.rs`): runs started from
/// another initialisation computed other numbers and must not be taken for these.
pub const SCHEME: &str = "pytorch-default";

/// 1/√fan_in: the bound of PyTorch's default weight and bias initialisation.
pub fn bound(fan_in: i64) -> f64 {
    1.0 / (fan_in as f64).sqrt() // b = 1/√fan_in
}

/// kaiming_uniform_(a=√5): gain √(2/(1+a²)) = 1/√3, bound = √3·gain/√fan_in = 1/√fan_in.
const WEIGHT: nn::Init = nn::Init::Kaiming {
    dist: nn::init::NormalOrUniform::Uniform,
    fan: nn::init::FanInOut::FanIn,
    non_linearity: nn::init::NonLinearity::ExplicitGain(0.577_350_269_189_625_8), // 1/√3
};

/// U(±1/√fan_in) of the given fan-in.
fn uniform(fan_in: i64) -> nn::Init {
    let b = bound(fan_in);
    nn::Init::Uniform { lo: -b, up: b }
}

/// nn.Conv2d: `cfg` gives stride, padding, dilation, groups and whether there is a bias; its
/// initialisers are replaced by PyTorch's.
pub fn conv2d(vs: &nn::Path, c_in: i64, c_out: i64, k: i64, cfg: nn::ConvConfig) -> nn::Conv2D {
    let fan_in = c_in / cfg.groups * k * k;
    let cfg = nn::ConvConfig {
        ws_init: WEIGHT,
        bs_init: uniform(fan_in),
        ..cfg
    };
    nn::conv2d(vs, c_in, c_out, k, cfg)
}

/// nn.Linear(in, out) with a bias.
pub fn linear(vs: &nn::Path, c_in: i64, c_out: i64) -> nn::Linear {
    let cfg = nn::LinearConfig {
        ws_init: WEIGHT,
        bs_init: Some(uniform(c_in)),
        bias: true,
    };
    nn::linear(vs, c_in, c_out, cfg)
}

/// nn.BatchNorm2d(c, eps, affine): γ = 1, β = 0, momentum 0.1.
pub fn batch_norm(affine: bool, eps: f64) -> nn::BatchNormConfig {
    nn::BatchNormConfig {
        affine,
        eps,
        ws_init: nn::Init::Const(1.0),
        bs_init: nn::Init::Const(0.0),
        ..Default::default()
    }
}

/// A Linear layer's weight or bias outside a VarStore, of any `shape`: U(±1/√fan_in) (the RELAX
/// control variate's layers).
pub fn linear_tensor(shape: &[i64], fan_in: i64, kind: Kind, device: Device) -> Tensor {
    let b = bound(fan_in);
    Tensor::empty(shape, (kind, device)).uniform_(-b, b)
}

#[cfg(test)]
mod tests;
