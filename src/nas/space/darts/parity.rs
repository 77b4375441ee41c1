//! `unas diagnose parity --device D`: the same computations of the DARTS search space on the CPU and
//! on device D, from the same weights, inputs and architecture draw (made on the CPU and copied), so
//! that a GPU build is checked against the CPU before any number it produces is trusted:
//! - the relaxed supernet at a one-hot sample equals the discrete fast path (eval-mode BN), on each;
//! - the supernet's logits on D equal the CPU's;
//! - the REBAR surrogate and its gradient w.r.t. the logits on D equal the CPU's;
//! - on D, the logits and the REBAR gradient under bf16 autocast (`precision: bf16`) are close to fp32's.
//!
//! Tolerances are relative to the largest magnitude compared. On the CPU every difference is rounding
//! (1e-4). On CUDA, cuDNN convolutions run in TF32 by default (10-bit mantissa, relative error ~1e-3
//! per product, accumulated over the cells), and the discrete path sums fewer terms: 2e-2 for forward
//! values, 5e-2 for gradients (which multiply several such errors). bf16 keeps 8 mantissa bits
//! (relative error 2⁻⁸ ≈ 4e-3 per rounding, several per cell): 5e-2 for the logits, 1e-1 for the
//! gradient — bf16 is an option for speed, and this bounds how far one forward moves.

use anyhow::{Context, Result};
use serde::Serialize;
use tch::nn::VarStore;
use tch::{Device, Kind, Reduction, Tensor};

use super::{DartsSearch, DartsSearchConfig};
use crate::autocast::Amp;
use crate::config::Precision;
use crate::nas::arch::SampleKind;
use crate::nas::distribution::{Draw, Sampler};
use crate::nas::estimator;
use crate::nas::space::SearchSpace;
use crate::results::diverged::Finite;

/// One comparison: its largest difference relative to the largest magnitude, and its tolerance.
#[derive(Debug, Serialize)]
pub struct Check {
    pub what: String,
    pub rel_diff: f64,
    pub tolerance: f64,
    pub pass: bool,
}

/// Every comparison on one device.
#[derive(Debug, Serialize)]
pub struct ParityReport {
    pub device: String,
    pub checks: Vec<Check>,
}

impl ParityReport {
    pub fn all_pass(&self) -> bool {
        self.checks.iter().all(|c| c.pass)
    }
}

/// max |a − b| / max(max |b|, 1e-12), both brought to the CPU in double precision.
fn rel_diff(a: &Tensor, b: &Tensor) -> f64 {
    let a = a.detach().to_device(Device::Cpu).to_kind(Kind::Double);
    let b = b.detach().to_device(Device::Cpu).to_kind(Kind::Double);
    let scale = b.abs().max().double_value(&[]).max(1e-12);
    (a - b).abs().max().double_value(&[]) / scale
}

fn check(what: &str, a: &Tensor, b: &Tensor, tolerance: f64) -> Check {
    let rel = rel_diff(a, b);
    Check {
        what: what.to_owned(),
        rel_diff: rel,
        tolerance,
        pass: rel.is_finite() && rel <= tolerance,
    }
}

/// A tiny CIFAR supernet (L = 3, C = 8) on `device` with weights copied from `from` when given, its
/// forwards in `precision`.
fn supernet(
    device: Device,
    from: Option<&VarStore>,
    precision: Precision,
) -> Result<(VarStore, DartsSearch)> {
    tch::manual_seed(0);
    let mut vs = VarStore::new(device);
    let cfg = DartsSearchConfig {
        layers: 3,
        channels: 8,
        ..DartsSearchConfig::cifar(10)
    };
    let space = DartsSearch::new(&vs.root(), &cfg, 0.0)?.in_precision(Amp::new(precision)?);
    if let Some(src) = from {
        vs.copy(src).context("copying the CPU supernet's weights")?;
    }
    Ok((vs, space))
}

/// The draw's tensors on `device` (copies stay differentiable w.r.t. the CPU logits).
fn draw_on(d: &Draw, device: Device) -> Draw {
    let to = |ts: &[Tensor]| ts.iter().map(|t| t.to_device(device)).collect();
    Draw {
        sampler: d.sampler,
        relaxed: to(&d.relaxed),
        onehot: to(&d.onehot),
        log_prob: d.log_prob.to_device(device),
    }
}

/// Relaxed vs discrete at a one-hot draw, logits, and the REBAR surrogate with its logit gradient.
struct Outputs {
    relaxed: Tensor,
    discrete: Tensor,
    surrogate: Tensor,
    grads: Vec<Tensor>,
}

fn outputs(space: &DartsSearch, logits: &[Tensor], x: &Tensor, y: &Tensor, d: &Draw) -> Outputs {
    let onehot = space.sample(&d.onehot);
    let relaxed = space.forward(x, &onehot, SampleKind::Relaxed, false);
    let discrete = space.forward(x, &onehot, SampleKind::OneHot, false);
    let mut f = |xs: &[Tensor], kind: SampleKind| {
        let path = if kind == SampleKind::OneHot {
            SampleKind::Relaxed // per-example b through the relaxed path, as the search does
        } else {
            kind
        };
        space
            .forward(x, &space.sample(xs), path, true)
            .cross_entropy_loss::<Tensor>(y, None, Reduction::None, -100, 0.0)
    };
    let est =
        estimator::rebar(d, &mut f, &mut Finite::eager(0)).expect("finite on a fresh supernet");
    // the draw's graph is shared by the CPU and the device pass: keep it for the second backward
    let grads = Tensor::run_backward(&[&est.surrogate], logits, true, false);
    Outputs {
        relaxed,
        discrete,
        surrogate: est.surrogate.detach(),
        grads,
    }
}

/// Runs every comparison between the CPU and `device`.
pub fn run(device: Device) -> Result<ParityReport> {
    let (cpu_vs, cpu) = supernet(Device::Cpu, None, Precision::Fp32)?;
    let (_dev_vs, dev) = supernet(device, Some(&cpu_vs), Precision::Fp32)?;
    let (_bf_vs, dev_bf16) = supernet(device, Some(&cpu_vs), Precision::Bf16)?;
    tch::manual_seed(1);
    let (b, classes) = (6, 10);
    let x = Tensor::randn([b, 3, 16, 16], (Kind::Float, Device::Cpu));
    let y = Tensor::randint(classes, [b], (Kind::Int64, Device::Cpu));
    let logits = cpu.distribution().parameters();
    tch::no_grad(|| {
        for l in &logits {
            l.shallow_clone().copy_(&(Tensor::randn_like(l) * 0.5));
        }
    });
    let draw = cpu.distribution().sample(b, 0.4, Sampler::Rebar);
    let on_cpu = outputs(&cpu, &logits, &x, &y, &draw);
    let (x_dev, y_dev, draw_dev) = (
        x.to_device(device),
        y.to_device(device),
        draw_on(&draw, device),
    );
    let on_dev = outputs(&dev, &logits, &x_dev, &y_dev, &draw_dev);
    let on_bf16 = outputs(&dev_bf16, &logits, &x_dev, &y_dev, &draw_dev);
    let gpu = device.is_cuda();
    let (fwd, grad) = if gpu { (2e-2, 5e-2) } else { (1e-4, 1e-4) };
    let name = crate::device::describe(device);
    let mut checks = vec![
        check(
            "cpu: relaxed at one-hot = discrete fast path",
            &on_cpu.discrete,
            &on_cpu.relaxed,
            1e-4,
        ),
        check(
            &format!("{name}: relaxed at one-hot = discrete fast path"),
            &on_dev.discrete,
            &on_dev.relaxed,
            fwd,
        ),
        check(
            &format!("{name} vs cpu: supernet logits"),
            &on_dev.relaxed,
            &on_cpu.relaxed,
            fwd,
        ),
        check(
            &format!("{name} vs cpu: REBAR surrogate"),
            &on_dev.surrogate,
            &on_cpu.surrogate,
            fwd,
        ),
    ];
    let flat =
        |g: &[Tensor]| Tensor::cat(&g.iter().map(|t| t.flatten(0, -1)).collect::<Vec<_>>(), 0);
    checks.push(check(
        &format!("{name} vs cpu: REBAR gradient w.r.t. the logits"),
        &flat(&on_dev.grads),
        &flat(&on_cpu.grads),
        grad,
    ));
    checks.push(check(
        &format!("{name}: bf16 autocast vs fp32 supernet logits"),
        &on_bf16.relaxed,
        &on_dev.relaxed,
        5e-2,
    ));
    checks.push(check(
        &format!("{name}: bf16 autocast vs fp32 REBAR gradient w.r.t. the logits"),
        &flat(&on_bf16.grads),
        &flat(&on_dev.grads),
        1e-1,
    ));
    Ok(ParityReport {
        device: name,
        checks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_agrees_with_itself_and_the_fast_path_with_the_relaxed_path() {
        let r = run(Device::Cpu).unwrap();
        assert_eq!(r.checks.len(), 7);
        assert!(r.all_pass(), "{r:#?}");
        // the same device twice: the copied weights and draw give the very same numbers
        assert!(r.checks[2..5].iter().all(|c| c.rel_diff == 0.0), "{r:#?}");
        // bf16 really ran in bf16 (not bit-identical) and stayed within its tolerance
        assert!(r.checks[5..].iter().all(|c| c.rel_diff > 0.0), "{r:#?}");
    }

    #[test]
    fn a_difference_beyond_tolerance_fails_its_check() {
        let a = Tensor::from_slice(&[1.0f32, 2.0, 3.0]);
        let b = Tensor::from_slice(&[1.0f32, 2.0, 3.3]);
        let c = check("x", &b, &a, 1e-2);
        assert!(!c.pass && (c.rel_diff - 0.1).abs() < 1e-6, "{c:?}");
        let nan = Tensor::from_slice(&[f32::NAN, 2.0, 3.0]);
        assert!(!check("nan", &nan, &a, 1.0).pass);
    }
}
