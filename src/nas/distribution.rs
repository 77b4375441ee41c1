//! Factorised categorical architecture distributions (spec §1.1–1.2): a set of named selector groups,
//! each a logit tensor [S, K] (S independent selectors over K choices), softened by ε, sampled with the
//! Gumbel-softmax (GSM) samplers of spec §2.1. The DARTS and ProxylessNAS spaces are thin wrappers
//! ([`DartsAlphas`], [`ProxylessAlphas`]) that name the groups and build the `arch.rs` sample types.
//!
//! Randomness comes from tch's global generator (`tch::manual_seed`); the search loop seeds it.
//! Every sampled tensor has the kind and device of the logits.

use tch::{Device, Kind, Tensor};

use super::arch::{CellSample, DartsMode, DartsSample, ProxylessSample};
pub use crate::config::estimator::Sampler;
use crate::results::diverged::{Diverged, Finite};

/// One named group of selectors: `logits` is a leaf [S, K] (shared by every example), or [S, N, K]
/// when each of N examples has its own parameters (used by diagnostics to read per-sample gradients
/// from a single backward pass).
#[derive(Debug)]
pub struct SelectorGroup {
    pub name: String,
    pub logits: Tensor,
}

/// A product of independent categoricals: the architecture distribution q(b).
#[derive(Debug)]
pub struct Categoricals {
    pub groups: Vec<SelectorGroup>,
    /// Softening ε: ã = log(softmax(a) + ε), used for sampling and `log_prob` (spec §1.1).
    pub eps: f64,
}

/// One draw of every selector, N examples. All tensors are listed in group order.
#[derive(Debug)]
pub struct Draw {
    pub sampler: Sampler,
    /// ζ (`Original`) or ζ⋆ (`Rebar`), [S, N, K] per group, differentiable w.r.t. the logits.
    pub relaxed: Vec<Tensor>,
    /// b: exact one-hot of argmax ζ (not softmax(1000·ζ)), [S, N, K] per group, no gradient.
    pub onehot: Vec<Tensor>,
    /// log q̃(b) [N], summed over all selectors, differentiable w.r.t. the logits.
    pub log_prob: Tensor,
}

impl Categoricals {
    /// Logit leaves initialised to zero (uniform), one [S, K] group per `(name, S, K)`.
    pub fn zeros(shapes: &[(String, i64, i64)], eps: f64, kind: Kind, device: Device) -> Self {
        let groups = shapes
            .iter()
            .map(|(name, s, k)| SelectorGroup {
                name: name.clone(),
                logits: Tensor::zeros([*s, *k], (kind, device)).set_requires_grad(true),
            })
            .collect();
        Categoricals { groups, eps }
    }

    /// From given logit tensors ([S, K] or per-example [S, N, K]); they should be leaves with
    /// `requires_grad` for the estimators' gradients to land on them.
    pub fn from_logits(named: Vec<(String, Tensor)>, eps: f64) -> Self {
        let groups = named
            .into_iter()
            .map(|(name, logits)| SelectorGroup { name, logits })
            .collect();
        Categoricals { groups, eps }
    }

    /// The leaves an optimiser steps.
    pub fn parameters(&self) -> Vec<Tensor> {
        self.groups
            .iter()
            .map(|g| g.logits.shallow_clone())
            .collect()
    }

    /// θ = log q̃ per group: ã = log(softmax(a) + ε) (or log_softmax(a) if ε = 0), θ = ã − logsumexp(ã).
    /// Shape [S, 1, K] for shared logits, [S, N, K] for per-example logits.
    pub fn log_q(&self) -> Vec<Tensor> {
        self.groups
            .iter()
            .map(|g| {
                let a = if g.logits.dim() == 2 {
                    g.logits.unsqueeze(1)
                } else {
                    g.logits.shallow_clone()
                };
                let a_soft = if self.eps > 0.0 {
                    (a.softmax(-1, a.kind()) + self.eps).log() // ã = log(softmax(a) + ε)
                } else {
                    a.log_softmax(-1, a.kind())
                };
                &a_soft - a_soft.logsumexp([-1], true) // θ = ã − logsumexp(ã)
            })
            .collect()
    }

    /// Draw N samples of every selector with temperature τ (spec §2.1). Per-example logits require
    /// `n` to equal their N.
    pub fn sample(&self, n: i64, temperature: f64, sampler: Sampler) -> Draw {
        let mut relaxed = Vec::with_capacity(self.groups.len());
        let mut onehot = Vec::with_capacity(self.groups.len());
        for theta in self.log_q() {
            let size = theta.size();
            let theta = theta.expand([size[0], n, size[2]], false);
            let (zeta, b) = match sampler {
                Sampler::Original => gsm_original(&theta, temperature),
                Sampler::Rebar => gsm_rebar(&theta, temperature),
            };
            relaxed.push(zeta);
            onehot.push(b);
        }
        let log_prob = self.log_prob(&onehot);
        Draw {
            sampler,
            relaxed,
            onehot,
            log_prob,
        }
    }

    /// log q̃(b) [N] = Σ_{groups, selectors} Σ_k b_k θ_k (spec §1.1), for b given as [S, N, K] per group.
    pub fn log_prob(&self, b: &[Tensor]) -> Tensor {
        self.log_q()
            .iter()
            .zip(b)
            .map(|(theta, b)| (b * theta).sum_dim_intlist(&[0, 2][..], false, theta.kind()))
            .reduce(|x, y| x + y)
            .expect("a distribution has at least one selector group")
    }

    /// H(q̃) = −Σ_selectors Σ_k q̃_k log q̃_k, a scalar (averaged over N for per-example logits).
    /// Logged only, as in the official code.
    pub fn entropy(&self) -> Tensor {
        self.log_q()
            .iter()
            .map(|theta| {
                let h = -(theta.exp() * theta).sum_dim_intlist(&[0, 2][..], false, theta.kind());
                h.mean(theta.kind())
            })
            .reduce(|x, y| x + y)
            .expect("a distribution has at least one selector group")
    }

    /// The deterministic "sample" of DARTS: q̃ = softmax(ã) itself, [S, N, K] per group.
    pub fn probabilities(&self, n: i64) -> Vec<Tensor> {
        self.log_q()
            .into_iter()
            .map(|theta| {
                let s = theta.size();
                theta.exp().expand([s[0], n, s[2]], false)
            })
            .collect()
    }

    /// argmax of every selector: per group, S indices (first example for per-example logits).
    pub fn mode(&self) -> Vec<Vec<usize>> {
        self.log_q()
            .iter()
            .map(|theta| {
                let idx = theta.select(1, 0).argmax(-1, false);
                Vec::<i64>::try_from(&idx)
                    .expect("argmax indices are int64")
                    .into_iter()
                    .map(|i| i as usize)
                    .collect()
            })
            .collect()
    }

    /// Error if any logit is NaN or ±∞ (now, or at the step log's read: `chk`).
    pub fn check_finite(&self, chk: &mut Finite) -> Result<(), Diverged> {
        for g in &self.groups {
            chk.check(&g.logits, &format!("logits {}", g.name))?;
        }
        Ok(())
    }
}

impl Draw {
    /// max |b − softmax(1000·ζ)|: how far the official `softmax(1000·ζ)` discretisation would be from
    /// the exact one-hot b we use (spec §2.1, recorded as a deviation). One device synchronisation.
    pub fn onehot_deviation(&self) -> f64 {
        tch::no_grad(|| {
            self.relaxed
                .iter()
                .zip(&self.onehot)
                .map(|(z, b)| {
                    (b - (z * 1000.0).softmax(-1, z.kind()))
                        .abs()
                        .max()
                        .double_value(&[])
                })
                .fold(0.0, f64::max)
        })
    }

    /// N: the batch axis.
    pub fn batch(&self) -> i64 {
        self.log_prob.size()[0]
    }
}

/// b = one_hot(argmax x) along the last axis, same kind as x, no gradient.
fn argmax_onehot(x: &Tensor) -> Tensor {
    let k = x.argmax(-1, true);
    x.detach().zeros_like().scatter_value(-1, &k, 1.0)
}

/// `original` sampler: g = −log(−log(U+1e-20)+1e-20), ζ = softmax((θ+g)/τ), b = one_hot(argmax ζ).
/// θ: [S, N, K]. (θ differs from the official ã by a per-selector constant: same ζ and b.)
fn gsm_original(theta: &Tensor, temperature: f64) -> (Tensor, Tensor) {
    let u = Tensor::rand(theta.size(), (theta.kind(), theta.device()));
    let g = -(-(u + 1e-20).log() + 1e-20).log(); // g = −log(−log(U+1e-20)+1e-20)
    let logits = theta + g;
    let zeta = (&logits / temperature).softmax(-1, theta.kind()); // ζ = softmax((ã+g)/τ)
    let b = argmax_onehot(&logits);
    (zeta, b)
}

/// `rebar` sampler (spec §2.1 steps 1–6): returns ζ⋆ = ζ − ζ̃ + sg(ζ̃) and b = one_hot(argmax z).
/// ζ̃ is REBAR's conditional relaxation given b, built from the same u inverted (so its value equals ζ
/// and v ~ U(0,1) independent of b), with gradient through q only.
fn gsm_rebar(theta: &Tensor, temperature: f64) -> (Tensor, Tensor) {
    let q = theta.exp(); // q = softmax(θ)
    let u = Tensor::rand(theta.size(), (theta.kind(), theta.device())).clamp(1e-3, 1.0 - 1e-3);
    let log_u = u.log();
    let z = theta - (-&log_u).log(); // z = θ − log(−log u)
    let zeta = (&z / temperature).softmax(-1, theta.kind()); // ζ = softmax(z/τ)
    let k = z.argmax(-1, true).detach();
    let b = z.detach().zeros_like().scatter_value(-1, &k, 1.0);
    let (log_vk, log_v) = tch::no_grad(|| {
        let q = q.detach();
        let log_vk = log_u.gather(-1, &k, false) / q.gather(-1, &k, false); // log v_k = log u_k / q_k
        let log_v = (&log_u - &q * &log_vk) // log v = log u − q·log v_k
            .scatter_value(-1, &k, 0.0); // exactly 0 at k
        (log_vk, log_v)
    });
    let g_tilde = -((-log_v) / &q - log_vk).log(); // g̃_i = −log(−log v_i / q_i − log v_k)
    let zeta_tilde = (g_tilde / temperature).softmax(-1, theta.kind()); // ζ̃ = softmax(g̃/τ)
    let zeta_star = &zeta - &zeta_tilde + zeta_tilde.detach(); // ζ⋆ = ζ − ζ̃ + sg(ζ̃)
    (zeta_star, b)
}

/// The DARTS-space distribution (spec §1.1): per cell type (normal, reduce), per node i ∈ 0..nodes,
/// groups `"{cell}/node{i}/inputs"` [2, i+2] and `"{cell}/node{i}/ops"` [2, K]; zeros init, shared by
/// all cells of a type.
#[derive(Debug)]
pub struct DartsAlphas {
    pub dist: Categoricals,
    pub nodes: usize,
    pub ops: i64,
}

const CELL_TYPES: [&str; 2] = ["normal", "reduce"];

impl DartsAlphas {
    pub fn new(nodes: usize, ops: i64, eps: f64, device: Device) -> Self {
        let mut shapes = Vec::new();
        for cell in CELL_TYPES {
            for i in 0..nodes {
                shapes.push((format!("{cell}/node{i}/inputs"), 2, i as i64 + 2));
                shapes.push((format!("{cell}/node{i}/ops"), 2, ops));
            }
        }
        DartsAlphas {
            dist: Categoricals::zeros(&shapes, eps, Kind::Float, device),
            nodes,
            ops,
        }
    }

    /// Unpack per-group tensors ([S, N, K] in group order: a draw's `relaxed` or `onehot`) into the
    /// supernet's sample type (shallow clones: gradients flow).
    pub fn to_sample(&self, xs: &[Tensor]) -> DartsSample {
        let cell = |c: usize| {
            let base = c * 2 * self.nodes;
            CellSample {
                inputs: (0..self.nodes)
                    .map(|i| xs[base + 2 * i].shallow_clone())
                    .collect(),
                ops: (0..self.nodes)
                    .map(|i| xs[base + 2 * i + 1].shallow_clone())
                    .collect(),
            }
        };
        DartsSample {
            normal: cell(0),
            reduce: cell(1),
        }
    }

    /// The inverse of [`DartsAlphas::to_sample`]: per-group tensors in group order.
    pub fn from_sample(sample: &DartsSample) -> Vec<Tensor> {
        [&sample.normal, &sample.reduce]
            .into_iter()
            .flat_map(|c| {
                c.inputs
                    .iter()
                    .zip(&c.ops)
                    .flat_map(|(i, o)| [i.shallow_clone(), o.shallow_clone()])
            })
            .collect()
    }

    /// The mode (argmax of every selector) → genotype: per node, per selector, (input, op).
    pub fn mode(&self) -> DartsMode {
        let m = self.dist.mode();
        let cell = |c: usize| {
            let base = c * 2 * self.nodes;
            (0..self.nodes)
                .map(|i| {
                    let (inp, op) = (&m[base + 2 * i], &m[base + 2 * i + 1]);
                    [(inp[0], op[0]), (inp[1], op[1])]
                })
                .collect()
        };
        DartsMode {
            normal: cell(0),
            reduce: cell(1),
        }
    }
}

/// The ProxylessNAS-space distribution (spec §1.2): `normal` [15, 7] (with `mic_zero`), `reduce` [6, 6].
#[derive(Debug)]
pub struct ProxylessAlphas {
    pub dist: Categoricals,
}

impl ProxylessAlphas {
    pub const NORMAL: (i64, i64) = (15, 7);
    pub const REDUCE: (i64, i64) = (6, 6);

    pub fn new(eps: f64, device: Device) -> Self {
        let shapes = [
            ("normal".to_owned(), Self::NORMAL.0, Self::NORMAL.1),
            ("reduce".to_owned(), Self::REDUCE.0, Self::REDUCE.1),
        ];
        ProxylessAlphas {
            dist: Categoricals::zeros(&shapes, eps, Kind::Float, device),
        }
    }

    pub fn to_sample(&self, xs: &[Tensor]) -> ProxylessSample {
        ProxylessSample {
            normal: xs[0].shallow_clone(),
            reduce: xs[1].shallow_clone(),
        }
    }

    /// `get_arch_sample`: concat(ζ_normal.flatten, ζ_reduce.flatten) per example, [N, 141].
    pub fn arch_vector(xs: &[Tensor]) -> Tensor {
        flatten_per_example(xs)
    }

    /// argmax per block: normal (15 indices), reduce (6 indices).
    pub fn mode(&self) -> (Vec<usize>, Vec<usize>) {
        let mut m = self.dist.mode();
        let reduce = m.pop().expect("two groups");
        let normal = m.pop().expect("two groups");
        (normal, reduce)
    }
}

/// Per-group [S, N, K] tensors → one row per example: [N, Σ S·K] (group order, selector-major).
pub fn flatten_per_example(xs: &[Tensor]) -> Tensor {
    let rows: Vec<Tensor> = xs
        .iter()
        .map(|x| {
            let s = x.size();
            x.permute([1, 0, 2]).reshape([s[1], s[0] * s[2]])
        })
        .collect();
    Tensor::cat(&rows, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_selector(logits: &[f64], eps: f64) -> Categoricals {
        let a = Tensor::from_slice(logits)
            .to_kind(Kind::Double)
            .reshape([1, -1])
            .set_requires_grad(true);
        Categoricals::from_logits(vec![("s".into(), a)], eps)
    }

    #[test]
    fn samplers_draw_b_with_the_softened_probabilities() {
        tch::manual_seed(11);
        let logits = [0.5, -1.0, 1.2, 0.0];
        for eps in [0.0, 0.08] {
            let dist = one_selector(&logits, eps);
            let q = dist.log_q()[0].exp().reshape([-1]);
            for sampler in [Sampler::Original, Sampler::Rebar] {
                let n = 40_000;
                let d = dist.sample(n, 0.4, sampler);
                let freq = d.onehot[0].mean_dim(&[0, 1][..], false, Kind::Double);
                // binomial stderr ≤ sqrt(0.25/n) = 0.0025; the clamp of u in `rebar` moves q by ~1e-3.
                let err = (&freq - &q).abs().max().double_value(&[]);
                assert!(err < 0.012, "{sampler:?} ε={eps}: |freq − q| = {err}");
                let row_sums = d.onehot[0].sum_dim_intlist(&[-1][..], false, Kind::Double);
                assert_eq!(row_sums.min().double_value(&[]), 1.0);
                assert_eq!(row_sums.max().double_value(&[]), 1.0);
            }
        }
    }

    #[test]
    fn rebar_sample_has_value_zeta_and_b_at_its_argmax() {
        tch::manual_seed(3);
        let dist = one_selector(&[0.1, 0.7, -0.4], 0.0);
        let d = dist.sample(512, 0.4, Sampler::Rebar);
        let z = &d.relaxed[0];
        let sums = z.sum_dim_intlist(&[-1][..], false, Kind::Double);
        assert!((sums - 1.0).abs().max().double_value(&[]) < 1e-9);
        let same = z
            .argmax(-1, false)
            .eq_tensor(&d.onehot[0].argmax(-1, false));
        assert_eq!(same.all().int64_value(&[]), 1);
    }

    #[test]
    fn onehot_deviation_measures_the_official_softmax_1000_discretisation() {
        // ζ = (0.5005, 0.4995): softmax(1000·ζ) = (σ(1), σ(−1)), 0.269 away from b = (1, 0)
        let zeta = Tensor::from_slice(&[0.5005, 0.4995]).reshape([1, 1, 2]);
        let draw = Draw {
            sampler: Sampler::Original,
            onehot: vec![argmax_onehot(&zeta)],
            relaxed: vec![zeta],
            log_prob: Tensor::zeros([1], (Kind::Double, Device::Cpu)),
        };
        let expected = 1.0 - 1.0 / (1.0 + (-1.0f64).exp());
        assert!((draw.onehot_deviation() - expected).abs() < 1e-9);
    }

    #[test]
    fn log_prob_sums_log_q_of_the_chosen_entries() {
        let dist = one_selector(&[0.0, (2.0f64).ln(), 0.0], 0.0);
        let b = Tensor::from_slice(&[0.0, 1.0, 0.0, 1.0, 0.0, 0.0])
            .to_kind(Kind::Double)
            .reshape([1, 2, 3]);
        let lp = Vec::<f64>::try_from(&dist.log_prob(&[b])).unwrap();
        assert!((lp[0] - 0.5f64.ln()).abs() < 1e-12);
        assert!((lp[1] - 0.25f64.ln()).abs() < 1e-12);
        let h = dist.entropy().double_value(&[]);
        let expected = -(0.5 * 0.5f64.ln() + 2.0 * 0.25 * 0.25f64.ln());
        assert!((h - expected).abs() < 1e-12);
    }

    #[test]
    fn softening_mixes_in_uniform_mass() {
        // q̃ = (softmax(a) + ε) / (1 + Kε)
        let dist = one_selector(&[10.0, -10.0], 0.08);
        let q = Vec::<f64>::try_from(dist.log_q()[0].exp().reshape([-1])).unwrap();
        let p0 = 1.0 / (1.0 + (-20.0f64).exp());
        assert!((q[0] - (p0 + 0.08) / 1.16).abs() < 1e-12);
    }

    #[test]
    fn darts_space_round_trips_and_has_the_official_shapes() {
        tch::manual_seed(0);
        let alphas = DartsAlphas::new(4, 7, 0.0, Device::Cpu);
        assert_eq!(alphas.dist.groups.len(), 16);
        let total: i64 = alphas
            .dist
            .groups
            .iter()
            .map(|g| g.logits.numel() as i64)
            .sum();
        assert_eq!(total, 168); // spec §1.1: 2·(28 + 56)
        let d = alphas.dist.sample(5, 0.4, Sampler::Original);
        let s = alphas.to_sample(&d.relaxed);
        assert_eq!(s.normal.inputs[3].size(), vec![2, 5, 5]);
        assert_eq!(s.reduce.ops[0].size(), vec![2, 5, 7]);
        assert_eq!(s.normal.batch(), 5);
        assert_eq!(DartsAlphas::from_sample(&s).len(), 16);
        let m = alphas.mode();
        assert_eq!(m.normal.len(), 4);
        assert_eq!(m.normal[0], [(0, 0), (0, 0)]); // zeros init → argmax picks the first entry
    }

    #[test]
    fn proxyless_space_arch_vector_has_141_entries() {
        let alphas = ProxylessAlphas::new(0.08, Device::Cpu);
        let d = alphas.dist.sample(1, 0.4, Sampler::Rebar);
        assert_eq!(ProxylessAlphas::arch_vector(&d.onehot).size(), vec![1, 141]);
        assert_eq!(alphas.to_sample(&d.onehot).reduce.size(), vec![6, 1, 6]);
    }

    #[test]
    fn non_finite_logits_are_reported_with_step_and_term() {
        let dist = one_selector(&[0.0, f64::NAN], 0.0);
        let err = dist.check_finite(&mut Finite::eager(17)).unwrap_err();
        assert_eq!(err.step, 17);
        assert!(err.to_string().contains("logits s"));
    }
}
