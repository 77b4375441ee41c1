//! Gradient estimators of the architecture parameters (spec §2). Each function returns a surrogate loss
//! S whose autograd gradient w.r.t. the logits is the estimator; the search loop calls `S.backward()`
//! and steps the architecture optimiser. `sg(·)` = detach, means are over the N examples of a draw.
//!
//! What differs between the estimators besides these functions (sampler, score function or not,
//! evaluations, ops run, state carried) is a property of [`Estimator`] in `config/estimator.rs`.
//!
//! Everything is generic over a [`Categoricals`] distribution and an [`Objective`] on per-group sample
//! tensors ([S, N, K] each), so the estimators are tested on enumerable toy problems without a network.

use tch::{Kind, Tensor};

use super::arch::SampleKind;
use super::distribution::{flatten_per_example, Categoricals, Draw, Sampler};
use super::relax_cv::RelaxControlVariate;
use crate::config::estimator::Carried;
use crate::config::Estimator;
use crate::dist::Ranks;
use crate::results::diverged::{Diverged, Finite};

/// The per-example objective f [N] of a sample given as one [S, N, K] tensor per selector group, in the
/// distribution's group order. `kind` says whether the sample is one-hot (the supernet may run only the
/// chosen ops) or relaxed. Called under `no_grad` for f(b).
pub trait Objective {
    fn eval(&mut self, sample: &[Tensor], kind: SampleKind) -> Tensor;
}

impl<F: FnMut(&[Tensor], SampleKind) -> Tensor> Objective for F {
    fn eval(&mut self, sample: &[Tensor], kind: SampleKind) -> Tensor {
        self(sample, kind)
    }
}

/// What one estimator call produced.
#[derive(Debug)]
pub struct Estimate {
    /// Scalar S; ∇_logits S is the estimator.
    pub surrogate: Tensor,
    /// mean_n f(b_n), where the estimator evaluates the discrete sample (a device scalar: the loop
    /// reads it with the step's other metrics, one sync per block of steps).
    pub f_discrete: Option<Tensor>,
    /// mean_n f(ζ_n), where the estimator evaluates a relaxed sample (a device scalar).
    pub f_relaxed: Option<Tensor>,
}

fn mean(t: &Tensor) -> Tensor {
    t.mean(t.kind())
}

/// mean_n f_n, detached, left on the device.
fn value(t: &Tensor) -> Tensor {
    t.detach().mean(Kind::Double)
}

/// f(b) [N] without gradient, checked finite.
fn eval_discrete(
    draw: &Draw,
    f: &mut impl Objective,
    chk: &mut Finite,
) -> Result<Tensor, Diverged> {
    let f_d = tch::no_grad(|| f.eval(&draw.onehot, SampleKind::OneHot)).detach();
    chk.check(&f_d, "f(b)")?;
    Ok(f_d)
}

/// f(ζ) [N] with gradient, checked finite.
fn eval_relaxed(
    xs: &[Tensor],
    kind: SampleKind,
    f: &mut impl Objective,
    chk: &mut Finite,
    term: &str,
) -> Result<Tensor, Diverged> {
    let f_c = f.eval(xs, kind);
    chk.check(&f_c, term)?;
    Ok(f_c)
}

/// `gsm` (the official `default`, spec §2.2): S = mean_n f(ζ_n), ζ = softmax((ã+g)/τ).
/// ∇S is the pathwise gradient of E_g[f(ζ)], the *relaxed* objective: E[∇S] = ∇E[f(ζ)] ≠ ∇E_q[f(b)]
/// unless f is the same on the simplex as on its vertices — biased, the bias vanishing as τ → 0.
pub fn gsm(draw: &Draw, f: &mut impl Objective, chk: &mut Finite) -> Result<Estimate, Diverged> {
    let f_c = eval_relaxed(&draw.relaxed, SampleKind::Relaxed, f, chk, "f(ζ)")?;
    Ok(Estimate {
        f_relaxed: Some(value(&f_c)),
        f_discrete: None,
        surrogate: mean(&f_c),
    })
}

/// `st_gsm` (straight-through Gumbel-softmax): x = b − sg(ζ) + ζ, S = mean_n f(x_n).
/// Value f(b), gradient ∇_x f(b)·∂ζ/∂a: the derivative of f at a vertex times the relaxation's Jacobian,
/// which is not ∇E_q[f(b)] = Σ_b f(b)∇q(b) in general — biased. ∂f/∂x_k needs op k's output even where
/// b_k = 0, so f(x) runs every op of an edge ([`SampleKind::Dense`]: no op-skip, no discrete path).
pub fn st_gsm(draw: &Draw, f: &mut impl Objective, chk: &mut Finite) -> Result<Estimate, Diverged> {
    let x: Vec<Tensor> = draw
        .onehot
        .iter()
        .zip(&draw.relaxed)
        .map(|(b, z)| b - z.detach() + z) // x = b − sg(ζ) + ζ
        .collect();
    let f_st = eval_relaxed(&x, SampleKind::Dense, f, chk, "f(b) (straight-through)")?;
    Ok(Estimate {
        f_discrete: Some(value(&f_st)),
        f_relaxed: None,
        surrogate: mean(&f_st),
    })
}

/// `darts` (first order): the "sample" is q̃ = softmax(ã) itself, S = mean_n f(q̃).
/// ∇S = ∇f(E_q[b]), the gradient of the mixture, not of E_q[f(b)] (equal only for f linear in b).
/// DARTS's mixture runs every op ([`SampleKind::Dense`]): the 0.05 op-skip is UNAS's, for samples.
pub fn darts(
    dist: &Categoricals,
    n: i64,
    f: &mut impl Objective,
    chk: &mut Finite,
) -> Result<Estimate, Diverged> {
    let q = dist.probabilities(n);
    let f_c = eval_relaxed(&q, SampleKind::Dense, f, chk, "f(softmax(a))")?;
    Ok(Estimate {
        f_relaxed: Some(value(&f_c)),
        f_discrete: None,
        surrogate: mean(&f_c),
    })
}

/// The official moving-average baseline (`ExpMovingAvgrageMeter(momentum = 0.9)`): β₀ = 0,
/// β ← 0.1·β + 0.9·mean f(b). β lives on the device as a Double scalar, so a step never reads it back
/// (the same two IEEE double operations the official host-side meter does: bit-identical values); a
/// checkpoint reads it with [`EmaBaseline::value`] and a resume restores it with [`EmaBaseline::at`].
#[derive(Debug, Default)]
pub struct EmaBaseline {
    /// `None` until the first update (β₀ = 0).
    beta: Option<Tensor>,
}

impl EmaBaseline {
    /// A baseline at `value` (a resumed run's, or a test's).
    pub fn at(value: f64) -> EmaBaseline {
        EmaBaseline {
            beta: Some(Tensor::from(value)),
        }
    }

    /// β, read to the host (one device synchronisation: checkpoints and tests only).
    pub fn value(&self) -> f64 {
        self.beta.as_ref().map_or(0.0, |b| b.double_value(&[]))
    }

    /// β as a 0-dim tensor of `kind` on `like`'s device, for the surrogate.
    fn as_of(&self, like: &Tensor) -> Tensor {
        match &self.beta {
            Some(b) => b.to_device(like.device()).to_kind(like.kind()),
            None => Tensor::zeros([], (like.kind(), like.device())),
        }
    }

    /// β ← 0.1·β + 0.9·m, `m` the batch mean (any float kind, 0-dim or one element), on its device.
    pub fn update(&mut self, batch_mean: &Tensor) {
        let m = batch_mean
            .detach()
            .to_kind(Kind::Double)
            .reshape([] as [i64; 0]);
        let decayed = match &self.beta {
            Some(b) => b.to_device(m.device()) * 0.1,
            None => m.zeros_like(),
        };
        self.beta = Some(decayed + m * 0.9); // avg = (1 − m)·avg + m·val, m = 0.9
    }

    /// S = mean_n[log q(b_n)·sg(f_n − β)] + β with β before this step's update, then the update with
    /// mean_n f_n: the score-function surrogate with this baseline (`f` [N], `log_prob` [N]).
    pub fn surrogate(&mut self, log_prob: &Tensor, f: &Tensor) -> Tensor {
        let beta = self.as_of(f);
        let s = mean(&(log_prob * (f - &beta).detach())) + &beta;
        self.update(&f.detach().mean(Kind::Double));
        s
    }
}

/// `reinforce` (spec §2.3): S = mean_n[log q(b_n)·sg(f(b_n) − β)] + β, with β the baseline *before*
/// this step's update. Unbiased: E_b[(f(b) − β)∇log q(b)] = ∇E_q[f(b)] − β·Σ_b ∇q(b) = ∇E_q[f(b)],
/// because β does not depend on this step's b and Σ_b q(b) = 1.
pub fn reinforce(
    draw: &Draw,
    f: &mut impl Objective,
    baseline: &mut EmaBaseline,
    chk: &mut Finite,
) -> Result<Estimate, Diverged> {
    let f_d = eval_discrete(draw, f, chk)?;
    let surrogate = baseline.surrogate(&draw.log_prob, &f_d);
    Ok(Estimate {
        surrogate,
        f_discrete: Some(value(&f_d)),
        f_relaxed: None,
    })
}

/// `rebar`, the UNAS estimator (spec §2.4; REBAR with η = 1, fixed τ), on a `Sampler::Rebar` draw:
/// S = mean_n[log q(b_n)·sg(f(b_n) − f(ζ⋆_n))] + mean_n f(ζ⋆_n).
/// ∇S = (f(b) − f(ζ̃))∇log q(b) + ∇f(ζ) − ∇f(ζ̃). Unbiased: E[f(ζ̃)∇log q(b)] + E_b[∇E_{ζ̃|b} f(ζ̃)]
/// = ∇E_b[E_{ζ̃|b} f(ζ̃)] = ∇E_z[f(ζ)] = E[∇f(ζ)], so the control variate has zero mean.
pub fn rebar(draw: &Draw, f: &mut impl Objective, chk: &mut Finite) -> Result<Estimate, Diverged> {
    assert_eq!(
        draw.sampler,
        Sampler::Rebar,
        "rebar needs a Sampler::Rebar draw"
    );
    let f_d = eval_discrete(draw, f, chk)?;
    let f_c = eval_relaxed(&draw.relaxed, SampleKind::Relaxed, f, chk, "f(ζ)")?;
    let surrogate = mean(&(&draw.log_prob * (&f_d - &f_c).detach())) + mean(&f_c);
    Ok(Estimate {
        surrogate,
        f_discrete: Some(value(&f_d)),
        f_relaxed: Some(value(&f_c)),
    })
}

/// `relax` (Grathwohl et al., 2018) on a `Sampler::Rebar` draw: control variate c_φ(ζ) = f(ζ) + r_φ(ζ),
/// ĝ = [f(b) − c_φ(ζ̃)]∇log q(b) + ∇c_φ(ζ) − ∇c_φ(ζ̃), unbiased for every φ by the same identity as
/// REBAR's (applied to c_φ instead of f). ζ⋆ carries value ζ = ζ̃ and gradient ∂ζ − ∂ζ̃, so
/// ∇r_φ(ζ) − ∇r_φ(ζ̃) = ∇r_φ(ζ⋆). Then one Adam step on φ minimises the variance proxy ‖ĝ‖²
/// (its φ-dependent part is the variance, since E[ĝ] does not depend on φ); ĝ is built with a double
/// backward. The returned S has gradient ĝ (computed with φ before the step) and value mean f(ζ).
/// The gradients w.r.t. the logits are taken with `run_backward`, so nothing else receives gradients.
/// Over `ranks` (f whole, its gradient through this rank's entries): the REBAR part of ĝ is summed
/// over the ranks (its log q(b) term counted on rank 0), the learned part is of the whole draw and the
/// same on every rank, so every rank holds the whole ĝ and takes the same step on φ; S's gradient ĝ
/// is then kept on rank 0 alone.
pub fn relax(
    dist: &Categoricals,
    draw: &Draw,
    f: &mut impl Objective,
    cv: &mut RelaxControlVariate,
    chk: &mut Finite,
    ranks: &Ranks,
) -> Result<Estimate, Diverged> {
    assert_eq!(
        draw.sampler,
        Sampler::Rebar,
        "relax needs a Sampler::Rebar draw"
    );
    let logits = dist.parameters();
    let f_d = eval_discrete(draw, f, chk)?;
    let f_c = eval_relaxed(&draw.relaxed, SampleKind::Relaxed, f, chk, "f(ζ)")?;
    let x = flatten_per_example(&draw.relaxed); // ζ⋆ [N, D]
    let r = cv.forward(&x); // r_φ(ζ⋆)
    let r_coef = cv.forward(&x.detach()); // r_φ(sg ζ̃): a function of φ only
    chk.check(&r, "r_φ(ζ)")?;
    // REBAR part of ĝ: (f(b) − f(ζ̃))∇log q(b) + ∇f(ζ) − ∇f(ζ̃)
    let s_rebar = mean(&(ranks.once(&draw.log_prob) * (&f_d - &f_c).detach())) + mean(&f_c);
    // learned part of ĝ: −r_φ(ζ̃)∇log q(b) + ∇r_φ(ζ) − ∇r_φ(ζ̃), differentiable in φ
    let s_phi = mean(&(-&draw.log_prob * &r_coef + &r));
    let g_rebar = if ranks.world() > 1 {
        // + 0·Σa: a rank's part may reach no logit; then Σ over the ranks (constants in φ)
        let s = logits
            .iter()
            .fold(s_rebar, |acc, a| acc + (a * 0.0).sum(a.kind()));
        let g: Vec<Tensor> = Tensor::run_backward(&[&s], &logits, true, false);
        let refs: Vec<&Tensor> = g.iter().collect();
        // a failure is sticky: the caller's `ranks.check()` reports it after this step
        ranks.sum("the RELAX gradient ĝ", &refs).ok();
        g
    } else {
        Tensor::run_backward(&[&s_rebar], &logits, true, false)
    };
    let g_phi = Tensor::run_backward(&[&s_phi], &logits, true, true);
    let g_hat: Vec<Tensor> = g_rebar.iter().zip(&g_phi).map(|(a, b)| a + b).collect();
    let variance_proxy = g_hat
        .iter()
        .map(|g| g.square().sum(g.kind()))
        .reduce(|a, b| a + b)
        .expect("at least one selector group"); // ‖ĝ‖²
    chk.check(&variance_proxy, "RELAX ‖ĝ‖²")?;
    let grads_phi = Tensor::run_backward(&[&variance_proxy], cv.parameters(), false, false);
    cv.adam_step(&grads_phi);
    let linear = logits
        .iter()
        .zip(&g_hat)
        .map(|(a, g)| (a * g.detach()).sum(a.kind()))
        .reduce(|a, b| a + b)
        .expect("at least one selector group");
    let surrogate = mean(&f_c).detach() + ranks.once(&linear) - linear.detach(); // value mean f(ζ), gradient ĝ
    Ok(Estimate {
        surrogate,
        f_discrete: Some(value(&f_d)),
        f_relaxed: Some(value(&f_c)),
    })
}

/// `random_ws` (random search with weight sharing, Li & Talwalkar 2019): no architecture gradient.
/// S = 0 with ∇S = 0 for every logit, so the distribution stays uniform; the search loop does not
/// even take an architecture step for it ([`crate::config::estimator::Selection::BestCandidate`]).
pub fn random_ws(dist: &Categoricals) -> Estimate {
    let surrogate = dist
        .parameters()
        .iter()
        .map(|a| (a * 0.0).sum(a.kind()))
        .reduce(|a, b| a + b)
        .expect("at least one selector group"); // S = Σ 0·a: defined, zero gradient
    Estimate {
        surrogate,
        f_discrete: None,
        f_relaxed: None,
    }
}

/// A non-differentiable term through the score-function path with a differentiable surrogate as
/// control variate (spec §2.5), on its own `Sampler::Rebar` draw b', ζ'⋆:
/// S_lat = mean_n[log q(b'_n)·sg(L_d,n − L_c,n) + L_c,n], with L_d [N] measured on b' (no gradient) and
/// L_c [N] the surrogate evaluated on ζ'⋆. Unbiased by REBAR's identity with L_c in the place of f, for
/// any L_c that is continuous and almost everywhere differentiable in ζ.
pub fn score_with_surrogate(
    draw: &Draw,
    l_d: &Tensor,
    l_c: &Tensor,
    chk: &mut Finite,
) -> Result<Tensor, Diverged> {
    chk.check(l_d, "non-differentiable term L_d")?;
    chk.check(l_c, "surrogate term L_c")?;
    Ok(mean(
        &(&draw.log_prob * (l_d.detach() - l_c).detach() + l_c),
    ))
}

/// RELAX network defaults for the search: hidden units and Adam learning rate of φ.
pub const RELAX_HIDDEN: i64 = 64;
pub const RELAX_LR: f64 = 1e-3;

/// The per-run state of the chosen estimator: the REINFORCE baseline and RELAX's φ.
#[derive(Debug)]
pub struct EstimatorState {
    pub estimator: Estimator,
    pub baseline: EmaBaseline,
    pub relax: Option<RelaxControlVariate>,
}

impl EstimatorState {
    /// For `relax`, φ is sized to the distribution's Σ S·K inputs.
    pub fn new(estimator: Estimator, dist: &Categoricals) -> Self {
        let relax = (estimator.carried() == Carried::ControlVariateNet).then(|| {
            let dim: i64 = dist
                .groups
                .iter()
                .map(|g| {
                    let s = g.logits.size();
                    s[0] * s[s.len() - 1]
                })
                .sum();
            let l = &dist.groups[0].logits;
            RelaxControlVariate::new(dim, RELAX_HIDDEN, RELAX_LR, l.kind(), l.device())
        });
        EstimatorState {
            estimator,
            baseline: EmaBaseline::default(),
            relax,
        }
    }

    pub fn sampler(&self) -> Sampler {
        self.estimator.sampler()
    }

    /// Run the chosen estimator on `draw` (drawn with [`EstimatorState::sampler`]; `darts` ignores
    /// it except for N).
    pub fn estimate(
        &mut self,
        dist: &Categoricals,
        draw: &Draw,
        f: &mut impl Objective,
        chk: &mut Finite,
    ) -> Result<Estimate, Diverged> {
        self.estimate_over(dist, draw, f, chk, &Ranks::one())
    }

    /// [`EstimatorState::estimate`] on one of `ranks`, whose `f` returns the whole [N] with a gradient
    /// only through the entries this rank computed (`Ranks::assemble`). log q(b) is of the whole
    /// draw, which every rank holds: its gradient is kept on rank 0 alone ([`Ranks::once`]), so the sum
    /// of the ranks' ∇S is the one-process ∇S. A failed collective is left for `ranks.check()`.
    pub fn estimate_over(
        &mut self,
        dist: &Categoricals,
        draw: &Draw,
        f: &mut impl Objective,
        chk: &mut Finite,
        ranks: &Ranks,
    ) -> Result<Estimate, Diverged> {
        dist.check_finite(chk)?;
        let shared = Draw {
            sampler: draw.sampler,
            relaxed: draw.relaxed.iter().map(Tensor::shallow_clone).collect(),
            onehot: draw.onehot.iter().map(Tensor::shallow_clone).collect(),
            log_prob: ranks.once(&draw.log_prob),
        };
        match self.estimator {
            Estimator::Gsm => gsm(draw, f, chk),
            Estimator::StGsm => st_gsm(draw, f, chk),
            Estimator::Darts => darts(dist, draw.batch(), f, chk),
            Estimator::Reinforce => reinforce(&shared, f, &mut self.baseline, chk),
            Estimator::Rebar => rebar(&shared, f, chk),
            Estimator::Relax => {
                let cv = self
                    .relax
                    .as_mut()
                    .expect("EstimatorState::new builds φ for relax");
                relax(dist, draw, f, cv, chk, ranks)
            }
            Estimator::RandomWs => Ok(random_ws(dist)),
        }
    }
}

/// Running estimate of the estimator's gradient variance for the logs (issue item 6):
/// Var ≈ EMA(‖g‖²) − ‖EMA(g)‖², g the flattened gradient of the logits after each step.
#[derive(Debug)]
pub struct GradVariance {
    pub decay: f64,
    mean: Option<Tensor>,
    mean_sq: Option<Tensor>,
}

impl GradVariance {
    pub fn new(decay: f64) -> Self {
        GradVariance {
            decay,
            mean: None,
            mean_sq: None,
        }
    }

    /// Feed the logits' gradients of one step; returns the current variance estimate as a device
    /// scalar (no synchronisation).
    pub fn observe(&mut self, grads: &[Tensor]) -> Tensor {
        let g = Tensor::cat(
            &grads
                .iter()
                .map(|t| t.detach().to_kind(Kind::Double).reshape([-1]))
                .collect::<Vec<_>>(),
            0,
        );
        let sq = g.square().sum(Kind::Double);
        match (&self.mean, &self.mean_sq) {
            (Some(m), Some(m_sq)) => {
                let d = self.decay;
                self.mean = Some(m * d + g * (1.0 - d)); // EMA(g)
                self.mean_sq = Some(m_sq * d + sq * (1.0 - d)); // EMA(‖g‖²)
            }
            _ => {
                self.mean = Some(g);
                self.mean_sq = Some(sq);
            }
        }
        self.variance_tensor()
    }

    /// EMA(‖g‖²) − ‖EMA(g)‖², clamped at 0, as a device scalar.
    fn variance_tensor(&self) -> Tensor {
        match (&self.mean, &self.mean_sq) {
            (Some(m), Some(m_sq)) => (m_sq - m.square().sum(Kind::Double)).clamp_min(0.0),
            _ => Tensor::from(0.0f64),
        }
    }

    /// The current variance estimate, read to the host.
    pub fn variance(&self) -> f64 {
        self.variance_tensor().double_value(&[])
    }

    /// The two moving averages as checkpoint tensors under `prefix/` (none before the first step).
    pub fn state_tensors(&self, prefix: &str) -> Vec<(String, Tensor)> {
        match (&self.mean, &self.mean_sq) {
            (Some(m), Some(m_sq)) => vec![
                (format!("{prefix}/mean"), m.shallow_clone()),
                (format!("{prefix}/mean_sq"), m_sq.shallow_clone()),
            ],
            _ => Vec::new(),
        }
    }

    /// Back from [`GradVariance::state_tensors`]; a checkpoint without them (taken before the
    /// first step, or by an older `unas`) starts the averages afresh.
    pub fn load_state_tensors(
        &mut self,
        prefix: &str,
        tensors: &std::collections::BTreeMap<String, Tensor>,
    ) {
        let get = |k: &str| tensors.get(&format!("{prefix}/{k}")).map(|t| t.copy());
        (self.mean, self.mean_sq) = match (get("mean"), get("mean_sq")) {
            (Some(m), Some(m_sq)) => (Some(m), Some(m_sq)),
            _ => (None, None),
        };
    }
}

#[cfg(test)]
mod tests;
