//! SGD with momentum and Adam, written over tch tensors so that their whole state (step counts,
//! momentum buffers, moment estimates, learning rates) is a list of named tensors that a checkpoint
//! saves and restores bit for bit.
//!
//! Both follow `torch.optim` (not-foreach, not-fused code path) with L2 weight decay added to the
//! gradient, as the official code uses them: the search loop has two Adams (architecture logits with
//! wd 1e-6, supernet weights with wd 3e-4, §1.5), the from-scratch recipes one SGD (§6). Parameters
//! are named, so checkpoint keys read `<prefix>/<group>/<param>/<buffer>`.
//!
//! Floating-point note: PyTorch fuses `a + α·b` (`add(alpha=)`, `addcdiv(value=)`) where tch exposes
//! only the unfused ops, so results agree with PyTorch to rounding, not bit for bit. They are bit-exact
//! with themselves across save → restore, which is what resuming needs.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use tch::{nn, Kind, Tensor};

/// `(name, parameter)` pairs; the tensors are shallow clones sharing storage and `.grad()` with the
/// model's variables.
pub type NamedParams = Vec<(String, Tensor)>;

/// The trainable variables of a `VarStore`, sorted by name (a `HashMap`'s order is not stable, and
/// the optimiser's state must line up with the same parameters after a restore).
pub fn var_store_params(vs: &nn::VarStore) -> NamedParams {
    let mut v: NamedParams = vs
        .variables()
        .into_iter()
        .filter(|(_, t)| t.requires_grad())
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// A set of parameters sharing a learning rate and a weight decay (PyTorch's param group).
#[derive(Debug)]
pub struct ParamGroup {
    /// Names the group in checkpoint keys, e.g. `weights`, `arch`.
    pub name: String,
    pub params: NamedParams,
    /// Learning rate η, set by the schedule before every step.
    pub lr: f64,
    /// L2 weight decay: the step uses g + wd·p.
    pub weight_decay: f64,
}

impl ParamGroup {
    pub fn new(name: impl Into<String>, params: NamedParams, lr: f64, weight_decay: f64) -> Self {
        ParamGroup {
            name: name.into(),
            params,
            lr,
            weight_decay,
        }
    }
}

/// What the training loops need from an optimiser.
pub trait Optimizer {
    /// One update of every parameter that has a gradient (parameters without one are skipped, as
    /// in PyTorch when `p.grad is None`).
    fn step(&mut self);
    /// Zeroes the gradients in place (PyTorch 1.1 `zero_grad`: detach + zero).
    fn zero_grad(&mut self);
    fn groups(&self) -> &[ParamGroup];
    /// Sets the learning rate of group `group` (index into [`Optimizer::groups`]).
    fn set_lr(&mut self, group: usize, lr: f64);
    /// Sets the learning rate of every group.
    fn set_lr_all(&mut self, lr: f64) {
        for g in 0..self.groups().len() {
            self.set_lr(g, lr);
        }
    }
    /// The whole state as named tensors under `prefix` (buffers on the parameters' device, scalars
    /// as 0-d CPU tensors: `Int64` step counts, `Double` learning rates).
    fn state_tensors(&self, prefix: &str) -> Vec<(String, Tensor)>;
    /// Restores what [`Optimizer::state_tensors`] saved, moving buffers to the parameters' devices.
    /// Fails, naming the key, when something is missing or has the wrong shape.
    fn load_state_tensors(&mut self, prefix: &str, saved: &BTreeMap<String, Tensor>) -> Result<()>;
}

fn zero_grads(groups: &mut [ParamGroup]) {
    for g in groups {
        for (_, p) in g.params.iter_mut() {
            p.zero_grad();
        }
    }
}

fn key(prefix: &str, group: &str, param: &str, buffer: &str) -> String {
    format!("{prefix}/{group}/{param}/{buffer}")
}

fn get<'a>(saved: &'a BTreeMap<String, Tensor>, k: &str) -> Result<&'a Tensor> {
    saved.get(k).with_context(|| {
        format!("the checkpoint has no `{k}`; it was written for another model or optimiser — delete the run's checkpoints/ folder to start afresh")
    })
}

fn restore_buffer(saved: &BTreeMap<String, Tensor>, k: &str, like: &Tensor) -> Result<Tensor> {
    let t = get(saved, k)?;
    if t.size() != like.size() {
        bail!(
            "checkpoint tensor `{k}` has shape {:?}, the parameter has {:?}",
            t.size(),
            like.size()
        );
    }
    Ok(t.to_device(like.device())
        .to_kind(like.kind())
        .detach()
        .copy())
}

fn scalar_f64(v: f64) -> Tensor {
    Tensor::from(v).to_kind(Kind::Double)
}

fn scalar_i64(v: i64) -> Tensor {
    Tensor::from(v).to_kind(Kind::Int64)
}

/// d_p = g + wd·p (L2 weight decay folded into the gradient, `torch.optim` semantics).
fn decayed_grad(p: &Tensor, g: &Tensor, wd: f64) -> Tensor {
    if wd != 0.0 {
        g + p * wd
    } else {
        g.copy()
    }
}

/// SGD with momentum μ (dampening 0, no Nesterov), as `torch.optim.SGD`:
/// d_p = g + wd·p; buf = μ·buf + d_p (buf = d_p on a parameter's first step); p ← p − η·buf.
#[derive(Debug)]
pub struct Sgd {
    groups: Vec<ParamGroup>,
    momentum: f64,
    /// Momentum buffer per group per parameter, created on the parameter's first step.
    buffers: Vec<Vec<Option<Tensor>>>,
    /// η per group as a 0-d tensor on the parameters' device ([`Sgd::keep_lr_on_device`]): a captured
    /// CUDA graph reads it at every replay, where a host η would be frozen into the capture.
    lr_device: Option<Vec<Tensor>>,
}

impl Sgd {
    pub fn new(groups: Vec<ParamGroup>, momentum: f64) -> Sgd {
        let buffers = groups
            .iter()
            .map(|g| (0..g.params.len()).map(|_| None).collect())
            .collect();
        Sgd {
            groups,
            momentum,
            buffers,
            lr_device: None,
        }
    }

    /// From now on the update reads η from a 0-d tensor of each group's parameter kind and device,
    /// refilled by [`Optimizer::set_lr`]: p ← p − η·buf with the same rounding of η as the scalar.
    pub fn keep_lr_on_device(&mut self) {
        let lrs = self
            .groups
            .iter()
            .map(|g| {
                let (kind, device) = g
                    .params
                    .first()
                    .map_or((Kind::Float, tch::Device::Cpu), |(_, p)| {
                        (p.kind(), p.device())
                    });
                Tensor::from(g.lr).to_kind(kind).to_device(device)
            })
            .collect();
        self.lr_device = Some(lrs);
    }
}

impl Optimizer for Sgd {
    fn step(&mut self) {
        let mu = self.momentum;
        let lr_device = self.lr_device.as_ref();
        tch::no_grad(|| {
            for (gi, (g, bufs)) in self
                .groups
                .iter_mut()
                .zip(self.buffers.iter_mut())
                .enumerate()
            {
                for ((_, p), buf) in g.params.iter_mut().zip(bufs.iter_mut()) {
                    let grad = p.grad();
                    if !grad.defined() {
                        continue;
                    }
                    let d_p = decayed_grad(p, &grad, g.weight_decay);
                    let update = if mu != 0.0 {
                        match buf {
                            // buf = μ·buf + d_p
                            Some(b) => {
                                let _ = b.g_mul_scalar_(mu).g_add_(&d_p);
                                b.shallow_clone()
                            }
                            // buf = d_p on the first step
                            None => {
                                let b = d_p.copy();
                                *buf = Some(b.shallow_clone());
                                b
                            }
                        }
                    } else {
                        d_p
                    };
                    // p ← p − η·buf
                    let step = match lr_device {
                        Some(lrs) => update * &lrs[gi],
                        None => update * g.lr,
                    };
                    let _ = p.g_sub_(&step);
                }
            }
        });
    }

    fn zero_grad(&mut self) {
        zero_grads(&mut self.groups);
    }

    fn groups(&self) -> &[ParamGroup] {
        &self.groups
    }

    fn set_lr(&mut self, group: usize, lr: f64) {
        self.groups[group].lr = lr;
        if let Some(lrs) = self.lr_device.as_mut() {
            let _ = lrs[group].fill_(lr);
        }
    }

    fn state_tensors(&self, prefix: &str) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for (g, bufs) in self.groups.iter().zip(&self.buffers) {
            out.push((format!("{prefix}/{}/lr", g.name), scalar_f64(g.lr)));
            for ((name, _), buf) in g.params.iter().zip(bufs) {
                if let Some(b) = buf {
                    out.push((key(prefix, &g.name, name, "momentum_buffer"), b.detach()));
                }
            }
        }
        out
    }

    fn load_state_tensors(&mut self, prefix: &str, saved: &BTreeMap<String, Tensor>) -> Result<()> {
        for (gi, (g, bufs)) in self
            .groups
            .iter_mut()
            .zip(self.buffers.iter_mut())
            .enumerate()
        {
            g.lr = get(saved, &format!("{prefix}/{}/lr", g.name))?.double_value(&[]);
            if let Some(lrs) = self.lr_device.as_mut() {
                let _ = lrs[gi].fill_(g.lr);
            }
            for ((name, p), buf) in g.params.iter().zip(bufs.iter_mut()) {
                let k = key(prefix, &g.name, name, "momentum_buffer");
                // A parameter that never had a gradient has no buffer yet.
                *buf = if saved.contains_key(&k) {
                    Some(restore_buffer(saved, &k, p)?)
                } else {
                    None
                };
            }
        }
        Ok(())
    }
}

/// Where Adam adds ε.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdamEps {
    /// PyTorch ≥ 1.5 (today's `torch.optim.Adam`): denom = √v / √(1−β₂ᵗ) + ε, step = η / (1−β₁ᵗ).
    #[default]
    AfterBiasCorrection,
    /// PyTorch 1.1 (the official code's `requirements.txt`): denom = √v + ε,
    /// step = η·√(1−β₂ᵗ) / (1−β₁ᵗ) — the same update with ε scaled by 1/√(1−β₂ᵗ).
    BeforeBiasCorrection,
}

/// Adam hyper-parameters besides the per-group lr and weight decay.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdamConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub eps_placement: AdamEps,
}

impl Default for AdamConfig {
    /// `torch.optim.Adam` defaults: β = (0.9, 0.999), ε = 1e-8.
    fn default() -> Self {
        AdamConfig {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            eps_placement: AdamEps::AfterBiasCorrection,
        }
    }
}

/// Per-parameter Adam state: step count t and the moment estimates m, v.
#[derive(Debug)]
struct AdamSlot {
    step: i64,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
}

/// Adam with L2 weight decay, as `torch.optim.Adam` (not AdamW):
/// g ← g + wd·p; m ← β₁m + (1−β₁)g; v ← β₂v + (1−β₂)g²; p ← p − η/(1−β₁ᵗ) · m / (√v/√(1−β₂ᵗ) + ε).
#[derive(Debug)]
pub struct Adam {
    groups: Vec<ParamGroup>,
    config: AdamConfig,
    slots: Vec<Vec<Option<AdamSlot>>>,
}

impl Adam {
    pub fn new(groups: Vec<ParamGroup>, config: AdamConfig) -> Adam {
        let slots = groups
            .iter()
            .map(|g| (0..g.params.len()).map(|_| None).collect())
            .collect();
        Adam {
            groups,
            config,
            slots,
        }
    }
}

impl Optimizer for Adam {
    fn step(&mut self) {
        let AdamConfig {
            beta1,
            beta2,
            eps,
            eps_placement,
        } = self.config;
        tch::no_grad(|| {
            for (g, slots) in self.groups.iter_mut().zip(self.slots.iter_mut()) {
                for ((_, p), slot) in g.params.iter_mut().zip(slots.iter_mut()) {
                    let grad = p.grad();
                    if !grad.defined() {
                        continue;
                    }
                    let s = slot.get_or_insert_with(|| AdamSlot {
                        step: 0,
                        exp_avg: p.zeros_like(),
                        exp_avg_sq: p.zeros_like(),
                    });
                    s.step += 1;
                    // g ← g + wd·p
                    let grad = decayed_grad(p, &grad, g.weight_decay);
                    // m ← β₁·m + (1−β₁)·g
                    let _ = s
                        .exp_avg
                        .g_mul_scalar_(beta1)
                        .g_add_(&(&grad * (1.0 - beta1)));
                    // v ← β₂·v + (1−β₂)·g²
                    let _ = s
                        .exp_avg_sq
                        .g_mul_scalar_(beta2)
                        .addcmul_(&grad, &(&grad * (1.0 - beta2)));
                    // Python's `β ** step` is C `pow`, not repeated multiplication.
                    let bias_correction1 = 1.0 - beta1.powf(s.step as f64);
                    let bias_correction2 = 1.0 - beta2.powf(s.step as f64);
                    let (denom, step_size) = match eps_placement {
                        // denom = √v / √(1−β₂ᵗ) + ε;  step = η / (1−β₁ᵗ)
                        AdamEps::AfterBiasCorrection => (
                            s.exp_avg_sq.sqrt() / bias_correction2.sqrt() + eps,
                            g.lr / bias_correction1,
                        ),
                        // denom = √v + ε;  step = η·√(1−β₂ᵗ) / (1−β₁ᵗ)
                        AdamEps::BeforeBiasCorrection => (
                            s.exp_avg_sq.sqrt() + eps,
                            g.lr * bias_correction2.sqrt() / bias_correction1,
                        ),
                    };
                    // p ← p − step · m / denom
                    let _ = p.g_sub_(&(&s.exp_avg / denom * step_size));
                }
            }
        });
    }

    fn zero_grad(&mut self) {
        zero_grads(&mut self.groups);
    }

    fn groups(&self) -> &[ParamGroup] {
        &self.groups
    }

    fn set_lr(&mut self, group: usize, lr: f64) {
        self.groups[group].lr = lr;
    }

    fn state_tensors(&self, prefix: &str) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for (g, slots) in self.groups.iter().zip(&self.slots) {
            out.push((format!("{prefix}/{}/lr", g.name), scalar_f64(g.lr)));
            for ((name, _), slot) in g.params.iter().zip(slots) {
                if let Some(s) = slot {
                    out.push((key(prefix, &g.name, name, "step"), scalar_i64(s.step)));
                    out.push((key(prefix, &g.name, name, "exp_avg"), s.exp_avg.detach()));
                    out.push((
                        key(prefix, &g.name, name, "exp_avg_sq"),
                        s.exp_avg_sq.detach(),
                    ));
                }
            }
        }
        out
    }

    fn load_state_tensors(&mut self, prefix: &str, saved: &BTreeMap<String, Tensor>) -> Result<()> {
        for (g, slots) in self.groups.iter_mut().zip(self.slots.iter_mut()) {
            g.lr = get(saved, &format!("{prefix}/{}/lr", g.name))?.double_value(&[]);
            for ((name, p), slot) in g.params.iter().zip(slots.iter_mut()) {
                let k = key(prefix, &g.name, name, "step");
                *slot = if saved.contains_key(&k) {
                    Some(AdamSlot {
                        step: get(saved, &k)?.int64_value(&[]),
                        exp_avg: restore_buffer(saved, &key(prefix, &g.name, name, "exp_avg"), p)?,
                        exp_avg_sq: restore_buffer(
                            saved,
                            &key(prefix, &g.name, name, "exp_avg_sq"),
                            p,
                        )?,
                    })
                } else {
                    None
                };
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn param(values: &[f64]) -> Tensor {
        Tensor::from_slice(values).set_requires_grad(true)
    }

    /// Gives `p` the gradient of Σ c·p² (= 2c·p), like a backward pass would.
    fn quadratic_grad(p: &Tensor, c: f64) {
        let loss = (p * p * c).sum(Kind::Double);
        loss.backward();
    }

    fn values(t: &Tensor) -> Vec<f64> {
        Vec::<f64>::try_from(t.detach().to_device(Device::Cpu)).unwrap()
    }

    #[test]
    fn sgd_with_momentum_matches_hand_computed_steps() {
        let p = param(&[1.0, -2.0]);
        let (lr, mu, wd) = (0.1, 0.9, 0.01);
        let mut opt = Sgd::new(
            vec![ParamGroup::new(
                "w",
                vec![("p".into(), p.shallow_clone())],
                lr,
                wd,
            )],
            mu,
        );
        let mut expect = [1.0f64, -2.0];
        let mut buf = [0.0f64; 2];
        for t in 0..3 {
            opt.zero_grad();
            quadratic_grad(&p, 0.5); // g = p
            opt.step();
            for i in 0..2 {
                let d_p = expect[i] + wd * expect[i];
                buf[i] = if t == 0 { d_p } else { mu * buf[i] + d_p };
                expect[i] -= lr * buf[i];
            }
            let got = values(&p);
            for i in 0..2 {
                assert!(
                    (got[i] - expect[i]).abs() < 1e-14,
                    "step {t}: {got:?} vs {expect:?}"
                );
            }
        }
    }

    fn hand_adam(p0: f64, steps: usize, lr: f64, wd: f64, placement: AdamEps) -> f64 {
        let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8);
        let (mut p, mut m, mut v) = (p0, 0.0, 0.0);
        for t in 1..=steps {
            let g = 2.0 * p + wd * p; // d/dp p² plus L2
            m = b1 * m + (1.0 - b1) * g;
            v = b2 * v + (1.0 - b2) * g * g;
            let bc1 = 1.0 - b1.powi(t as i32);
            let bc2 = 1.0 - b2.powi(t as i32);
            p -= match placement {
                AdamEps::AfterBiasCorrection => lr / bc1 * m / (v.sqrt() / bc2.sqrt() + eps),
                AdamEps::BeforeBiasCorrection => lr * bc2.sqrt() / bc1 * m / (v.sqrt() + eps),
            };
        }
        p
    }

    #[test]
    fn adam_with_l2_decay_matches_hand_computed_steps_for_both_eps_placements() {
        for placement in [AdamEps::AfterBiasCorrection, AdamEps::BeforeBiasCorrection] {
            let p = param(&[0.7, -1.3, 1e-3]);
            let mut opt = Adam::new(
                vec![ParamGroup::new(
                    "a",
                    vec![("p".into(), p.shallow_clone())],
                    0.05,
                    1e-2,
                )],
                AdamConfig {
                    eps_placement: placement,
                    ..AdamConfig::default()
                },
            );
            for _ in 0..4 {
                opt.zero_grad();
                quadratic_grad(&p, 1.0);
                opt.step();
            }
            let got = values(&p);
            for (i, p0) in [0.7, -1.3, 1e-3].into_iter().enumerate() {
                let want = hand_adam(p0, 4, 0.05, 1e-2, placement);
                assert!(
                    (got[i] - want).abs() < 1e-13,
                    "{placement:?}[{i}]: {} vs {want}",
                    got[i]
                );
            }
        }
        // The placements really differ where √v is comparable to ε.
        assert_ne!(
            hand_adam(1e-9, 1, 0.1, 0.0, AdamEps::AfterBiasCorrection),
            hand_adam(1e-9, 1, 0.1, 0.0, AdamEps::BeforeBiasCorrection)
        );
    }

    #[test]
    fn per_group_learning_rates_apply_to_their_own_group_only() {
        let a = param(&[1.0]);
        let b = param(&[1.0]);
        let mut opt = Sgd::new(
            vec![
                ParamGroup::new("a", vec![("a".into(), a.shallow_clone())], 0.1, 0.0),
                ParamGroup::new("b", vec![("b".into(), b.shallow_clone())], 0.1, 0.0),
            ],
            0.0,
        );
        opt.set_lr(1, 0.5);
        quadratic_grad(&a, 0.5);
        quadratic_grad(&b, 0.5);
        opt.step();
        assert_eq!(values(&a), vec![0.9]);
        assert_eq!(values(&b), vec![0.5]);
        assert_eq!(opt.groups()[1].lr, 0.5);
    }

    #[test]
    fn a_parameter_without_gradient_is_left_alone_and_gets_no_state() {
        let a = param(&[1.0]);
        let unused = param(&[3.0]);
        let mut opt = Adam::new(
            vec![ParamGroup::new(
                "w",
                vec![
                    ("a".into(), a.shallow_clone()),
                    ("unused".into(), unused.shallow_clone()),
                ],
                0.1,
                0.1,
            )],
            AdamConfig::default(),
        );
        quadratic_grad(&a, 1.0);
        opt.step();
        assert_eq!(values(&unused), vec![3.0]);
        let keys: Vec<_> = opt
            .state_tensors("opt")
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert!(keys.iter().all(|k| !k.contains("unused")), "{keys:?}");
        assert!(keys.contains(&"opt/w/a/exp_avg_sq".to_owned()), "{keys:?}");
    }

    /// Runs `n` steps of a noisy problem (the gradient depends on the step through `seed + t`).
    fn run<O: Optimizer>(opt: &mut O, p: &Tensor, from: usize, to: usize) {
        for t in from..to {
            opt.zero_grad();
            tch::manual_seed(17 + t as i64);
            let noise = Tensor::randn([3], (Kind::Float, Device::Cpu));
            let loss = ((p - noise).square()).sum(Kind::Float);
            loss.backward();
            opt.set_lr_all(0.01 * (1.0 + t as f64).sqrt());
            opt.step();
        }
    }

    fn save_restore_continue_is_bit_identical<O: Optimizer>(make: impl Fn(NamedParams) -> O) {
        let init = Tensor::from_slice(&[0.5f32, -0.25, 2.0]);
        // Uninterrupted: 7 steps.
        let p1 = init.copy().set_requires_grad(true);
        let mut o1 = make(vec![("p".into(), p1.shallow_clone())]);
        run(&mut o1, &p1, 0, 7);
        // Interrupted after 4: save the state, rebuild everything, restore, continue.
        let p2 = init.copy().set_requires_grad(true);
        let mut o2 = make(vec![("p".into(), p2.shallow_clone())]);
        run(&mut o2, &p2, 0, 4);
        let saved: BTreeMap<String, Tensor> = o2
            .state_tensors("opt")
            .into_iter()
            .map(|(k, t)| (k, t.copy()))
            .collect();
        let p_saved = p2.detach().copy();
        drop(o2);
        let p3 = p_saved.set_requires_grad(true);
        let mut o3 = make(vec![("p".into(), p3.shallow_clone())]);
        o3.load_state_tensors("opt", &saved).unwrap();
        run(&mut o3, &p3, 4, 7);
        assert!(p1.equal(&p3), "{p1} vs {p3}");
        for ((k1, a), (k3, b)) in o1
            .state_tensors("opt")
            .iter()
            .zip(o3.state_tensors("opt").iter())
        {
            assert_eq!(k1, k3);
            assert!(a.equal(b), "{k1} differs");
        }
    }

    #[test]
    fn adam_save_restore_continue_equals_uninterrupted_bit_for_bit() {
        save_restore_continue_is_bit_identical(|ps| {
            Adam::new(
                vec![ParamGroup::new("w", ps, 1e-3, 3e-4)],
                AdamConfig::default(),
            )
        });
    }

    #[test]
    fn sgd_save_restore_continue_equals_uninterrupted_bit_for_bit() {
        save_restore_continue_is_bit_identical(|ps| {
            Sgd::new(vec![ParamGroup::new("w", ps, 0.05, 3e-4)], 0.9)
        });
    }

    /// The η a CUDA graph reads from the device rounds and multiplies as the host scalar does: the
    /// same parameters, bit for bit, over steps whose η changes every step.
    #[test]
    fn sgd_with_the_learning_rate_on_the_device_equals_the_host_scalar_bit_for_bit() {
        let init = Tensor::from_slice(&[0.5f32, -0.25, 2.0]);
        let make = |p: &Tensor| {
            Sgd::new(
                vec![ParamGroup::new(
                    "w",
                    vec![("p".into(), p.shallow_clone())],
                    0.05,
                    3e-4,
                )],
                0.9,
            )
        };
        let p1 = init.copy().set_requires_grad(true);
        let mut host = make(&p1);
        run(&mut host, &p1, 0, 6);
        let p2 = init.copy().set_requires_grad(true);
        let mut dev = make(&p2);
        dev.keep_lr_on_device();
        run(&mut dev, &p2, 0, 6);
        assert!(p1.equal(&p2), "{p1} vs {p2}");
        // η really moved (run sets 0.01·√(1+t)), so a frozen η would have shown
        assert!((host.groups()[0].lr - 0.01 * 6f64.sqrt()).abs() < 1e-15);
        let frozen = init.copy().set_requires_grad(true);
        let mut f = make(&frozen);
        f.keep_lr_on_device();
        for t in 0..6 {
            f.zero_grad();
            tch::manual_seed(17 + t);
            let noise = Tensor::randn([3], (Kind::Float, Device::Cpu));
            ((&frozen - noise).square()).sum(Kind::Float).backward();
            f.step(); // η stays 0.05
        }
        assert!(!frozen.equal(&p2));
    }

    #[test]
    fn restoring_from_a_checkpoint_of_another_model_names_the_missing_key() {
        let p = param(&[1.0]);
        let mut opt = Adam::new(
            vec![ParamGroup::new(
                "w",
                vec![("p".into(), p.shallow_clone())],
                0.1,
                0.0,
            )],
            AdamConfig::default(),
        );
        let err = opt
            .load_state_tensors("opt", &BTreeMap::new())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("opt/w/lr") && err.contains("checkpoints/"),
            "{err}"
        );
    }

    #[test]
    fn var_store_params_are_sorted_by_name() {
        let vs = nn::VarStore::new(Device::Cpu);
        let root = vs.root();
        let _z = root.zeros("z", &[1]);
        let _a = root.sub("a").zeros("w", &[2]);
        let names: Vec<_> = var_store_params(&vs).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, vec!["a.w".to_owned(), "z".to_owned()]);
    }
}
