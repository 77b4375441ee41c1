//! Proof of correctness of the estimators on problems small enough to enumerate E_q[f(b)] exactly.
//! Monte-Carlo runs are vectorised (one draw of N samples, per-example logit leaves give per-sample
//! estimates) and seeded, so every number below is deterministic on the CPU.

use tch::{Device, Kind, Tensor};

use super::*;
use crate::config::estimator::OpsRun;
use crate::nas::diagnose::{
    exact_gradient, per_example_copy, per_sample_stats, GradStats, ToyProblem,
};
use crate::results::diverged::Finite;

fn dd(v: &[f64]) -> Tensor {
    Tensor::from_slice(v).to_kind(Kind::Double).reshape([1, -1])
}

/// An enumerable problem: one selector per group, f(b) = (v·b − t)² plus optionally the
/// non-differentiable step h·1[v·b > t_step], whose score-function path uses the linear surrogate
/// h·(v·ζ − t_step) evaluated on its own draw (spec §2.5).
struct Case {
    logits: Vec<Tensor>,
    eps: f64,
    smooth: ToyProblem,
    step: Option<(f64, f64)>, // (h, t_step)
}

impl Case {
    fn step_term(&self, xs: &[Tensor]) -> Option<Tensor> {
        self.step.map(|(h, t)| {
            let vb = self.smooth.linear(xs);
            vb.gt(t).to_kind(vb.kind()) * h // h·1[v·b > t]
        })
    }

    fn total(&self, xs: &[Tensor]) -> Tensor {
        let f = self.smooth.f(xs);
        match self.step_term(xs) {
            Some(s) => f + s,
            None => f,
        }
    }

    fn exact(&self) -> Vec<f64> {
        let shared = Categoricals::from_logits(
            self.logits
                .iter()
                .enumerate()
                .map(|(i, l)| (format!("g{i}"), l.detach().set_requires_grad(true)))
                .collect(),
            self.eps,
        );
        let g = exact_gradient(&shared, |b| self.total(b));
        g.iter()
            .flat_map(|t| Vec::<f64>::try_from(t.reshape([-1])).unwrap())
            .collect()
    }

    /// One batched estimate of n samples; per-sample statistics. `state` carries the baseline / φ.
    fn estimate(&self, state: &mut EstimatorState, n: i64, tau: f64, step: u64) -> GradStats {
        let dist = per_example_copy(&self.logits, n, self.eps);
        let draw = dist.sample(n, tau, state.sampler());
        let mut s = if self.step.is_some() && state.estimator == Estimator::Reinforce {
            // the score function takes any f: put the step term inside
            let mut f = |xs: &[Tensor], _: SampleKind| self.total(xs);
            state
                .estimate(&dist, &draw, &mut f, &mut Finite::eager(step))
                .unwrap()
                .surrogate
        } else {
            let mut f = |xs: &[Tensor], _: SampleKind| self.smooth.f(xs);
            state
                .estimate(&dist, &draw, &mut f, &mut Finite::eager(step))
                .unwrap()
                .surrogate
        };
        if let Some((h, t)) = self.step {
            if state.estimator != Estimator::Reinforce {
                let second = dist.sample(n, tau, Sampler::Rebar);
                let l_d = self.step_term(&second.onehot).unwrap();
                let l_c = (self.smooth.linear(&second.relaxed) - t) * h;
                s += score_with_surrogate(&second, &l_d, &l_c, &mut Finite::eager(step)).unwrap();
            }
        }
        s.backward();
        per_sample_stats(&dist.parameters())
    }
}

fn relax_state(case: &Case, tau: f64, warmup: u32) -> EstimatorState {
    let dim: i64 = case.logits.iter().map(|l| l.size()[1]).sum();
    let mut state = EstimatorState {
        estimator: Estimator::Relax,
        baseline: EmaBaseline::default(),
        relax: Some(RelaxControlVariate::new(
            dim,
            32,
            1e-2,
            Kind::Double,
            Device::Cpu,
        )),
    };
    for step in 0..warmup {
        case.estimate(&mut state, 256, tau, step as u64);
    }
    state
}

/// Case A: one selector, K = 5, ε = 0, f smooth.
fn case_a() -> Case {
    Case {
        logits: vec![dd(&[0.3, -0.5, 1.0, 0.0, -1.2])],
        eps: 0.0,
        smooth: ToyProblem {
            values: vec![dd(&[0.2, 0.9, -0.4, 1.3, 0.5])],
            target: 0.4,
        },
        step: None,
    }
}

/// Case B: two selectors (K = 3 and K = 7), ε = 0.08, f smooth plus a step function of b.
fn case_b() -> Case {
    Case {
        logits: vec![
            dd(&[0.5, -0.2, 0.1]),
            dd(&[0.0, 0.8, -0.6, 0.3, -1.0, 0.4, 0.2]),
        ],
        eps: 0.08,
        smooth: ToyProblem {
            values: vec![
                dd(&[0.6, -0.3, 0.1]),
                dd(&[0.4, -0.8, 0.9, 0.1, 0.3, -0.5, 0.7]),
            ],
            target: 0.2,
        },
        step: Some((0.7, 0.5)),
    }
}

const N: i64 = 50_000;
const TAU: f64 = 0.4;

/// |mean − exact| < 4 stderr in every coordinate, and the test is sharp: the standard errors are
/// small against the gradient itself.
fn assert_unbiased(name: &str, stats: &GradStats, exact: &[f64]) {
    let scale = exact.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    for (k, ((m, s), e)) in stats.mean.iter().zip(&stats.stderr).zip(exact).enumerate() {
        let z = (m - e) / s;
        eprintln!("{name} k={k}: mean {m:+.5} exact {e:+.5} stderr {s:.5} z {z:+.2}");
        assert!(
            z.abs() < 4.0,
            "{name}: coordinate {k} is {z:.2} standard errors from exact"
        );
        assert!(
            *s < 0.05 * scale,
            "{name}: stderr {s} too large for a meaningful test"
        );
    }
}

#[test]
fn reinforce_is_unbiased_on_enumerable_problem() {
    for (name, case, seed) in [("A", case_a(), 1), ("B", case_b(), 2)] {
        tch::manual_seed(seed);
        let mut state = EstimatorState {
            estimator: Estimator::Reinforce,
            baseline: EmaBaseline::default(),
            relax: None,
        };
        case.estimate(&mut state, 1000, TAU, 0); // warm the baseline
        assert!(state.baseline.value() > 0.0);
        let stats = case.estimate(&mut state, N, TAU, 1);
        assert_unbiased(&format!("reinforce {name}"), &stats, &case.exact());
    }
}

#[test]
fn rebar_is_unbiased_on_enumerable_problem() {
    for (name, case, seed) in [("A", case_a(), 3), ("B", case_b(), 4)] {
        tch::manual_seed(seed);
        let mut state = EstimatorState {
            estimator: Estimator::Rebar,
            baseline: EmaBaseline::default(),
            relax: None,
        };
        let stats = case.estimate(&mut state, N, TAU, 0);
        assert_unbiased(&format!("rebar {name}"), &stats, &case.exact());
    }
}

#[test]
fn relax_is_unbiased_on_enumerable_problem_after_training_phi() {
    for (name, case, seed) in [("A", case_a(), 5), ("B", case_b(), 6)] {
        tch::manual_seed(seed);
        let mut state = relax_state(&case, TAU, 60);
        // φ has moved away from zero, so this checks the learned control variate's correction
        let w2 = state.relax.as_ref().unwrap().parameters()[2]
            .abs()
            .sum(Kind::Double);
        assert!(w2.double_value(&[]) > 1e-3);
        let stats = case.estimate(&mut state, N, TAU, 60);
        assert_unbiased(&format!("relax {name}"), &stats, &case.exact());
    }
}

#[test]
fn relax_has_lower_variance_than_rebar_after_training_phi() {
    let case = case_a();
    tch::manual_seed(7);
    let mut rebar_state = EstimatorState {
        estimator: Estimator::Rebar,
        baseline: EmaBaseline::default(),
        relax: None,
    };
    let rebar = case.estimate(&mut rebar_state, 20_000, TAU, 0);
    let untrained = case.estimate(&mut relax_state(&case, TAU, 0), 20_000, TAU, 0);
    let mut state = relax_state(&case, TAU, 200);
    let relax = case.estimate(&mut state, 20_000, TAU, 200);
    eprintln!(
        "variance: rebar {:.5}, relax untrained {:.5}, relax trained {:.5}",
        rebar.variance, untrained.variance, relax.variance
    );
    // φ starts as PyTorch's nn.Linear layers (not at r ≡ 0): training it must beat both REBAR and
    // the untrained control variate
    assert!(
        relax.variance < 0.8 * rebar.variance && relax.variance < 0.8 * untrained.variance,
        "RELAX {} vs REBAR {} (untrained {})",
        relax.variance,
        rebar.variance,
        untrained.variance
    );
}

/// A case where the bias of the relaxed estimators is known. f(x) = ‖x‖² = Σ_k x_k² equals 1 on every
/// vertex of the simplex, so E_q[f(b)] = 1 for all logits and the exact gradient is 0. Inside the
/// simplex ‖ζ‖² < 1 and grows as ζ approaches a vertex, and ζ = softmax((ã+g)/τ) lands nearer the
/// vertex of the most likely choice the more likely it is: GSM, the pathwise gradient of E[‖ζ‖²],
/// pushes the largest logit *up* (positive). Straight-through takes ∇f(b) = 2b at the vertex:
/// ĝ_j = 2 ∂ζ_{k*}/∂a_j = (2/τ) ζ_{k*}(1[j = k*] − ζ_j) with k* = argmax, positive for j = k* — again
/// a positive push on the logit that usually wins. Both biases shrink as τ → 0 (ζ → b, and for ST the
/// factor ζ_{k*}(1 − ζ_{k*}) → 0 faster than 1/τ grows).
#[test]
fn gsm_and_st_gsm_are_biased_towards_the_most_likely_choice() {
    let logits = [dd(&[1.0, 0.0, -0.5])];
    let f = |xs: &[Tensor], _: SampleKind| {
        xs[0]
            .square()
            .sum_dim_intlist(&[0, 2][..], false, Kind::Double) // ‖x‖²
    };
    let run = |estimator: Estimator, tau: f64, seed: i64| {
        tch::manual_seed(seed);
        let dist = per_example_copy(&logits, 50_000, 0.0);
        let draw = dist.sample(50_000, tau, Sampler::Original);
        let mut f = f;
        let est = match estimator {
            Estimator::Gsm => gsm(&draw, &mut f, &mut Finite::eager(0)),
            _ => st_gsm(&draw, &mut f, &mut Finite::eager(0)),
        };
        est.unwrap().surrogate.backward();
        per_sample_stats(&dist.parameters())
    };
    for estimator in [Estimator::Gsm, Estimator::StGsm] {
        let hot = run(estimator, 0.4, 8);
        let cold = run(estimator, 0.1, 9);
        eprintln!("{estimator:?} τ=0.4 {:?} ± {:?}", hot.mean, hot.stderr);
        eprintln!("{estimator:?} τ=0.1 {:?} ± {:?}", cold.mean, cold.stderr);
        // sign: the favoured logit is pushed up, far beyond noise, although the exact gradient is 0
        assert!(
            hot.mean[0] > 10.0 * hot.stderr[0],
            "{estimator:?}: {:?}",
            hot.mean
        );
        // rough size: a sizeable fraction of the largest possible q-gradient scale, but bounded
        assert!(
            hot.mean[0] > 0.02 && hot.mean[0] < 0.5,
            "{estimator:?}: {}",
            hot.mean[0]
        );
        // the gradient of a softmax parameterisation sums to zero over the selector
        assert!(hot.mean.iter().sum::<f64>().abs() < 1e-9);
        // and the bias shrinks as τ → 0
        assert!(
            cold.mean[0] < 0.5 * hot.mean[0],
            "{estimator:?}: {} vs {}",
            cold.mean[0],
            hot.mean[0]
        );
    }
}

#[test]
fn darts_gradient_is_that_of_the_softmax_mixture() {
    let case = case_a();
    let dist = per_example_copy(&case.logits, 3, 0.0);
    let mut f = |xs: &[Tensor], _: SampleKind| case.smooth.f(xs);
    darts(&dist, 3, &mut f, &mut Finite::eager(0))
        .unwrap()
        .surrogate
        .backward();
    let stats = per_sample_stats(&dist.parameters());
    // ∇_a (v·q − t)² = 2(v·q − t)·q ⊙ (v − v·q)
    let q = case.logits[0].softmax(-1, Kind::Double);
    let v = &case.smooth.values[0];
    let vq = (&q * v).sum(Kind::Double);
    let expected = (&vq - case.smooth.target) * 2.0 * &q * (v - &vq);
    let expected = Vec::<f64>::try_from(expected.reshape([-1])).unwrap();
    for (m, e) in stats.mean.iter().zip(&expected) {
        assert!((m - e).abs() < 1e-10, "{m} vs {e}");
    }
    assert!(stats.variance < 1e-20); // deterministic
}

#[test]
fn reinforce_uses_the_baseline_before_its_update() {
    let dist = per_example_copy(&[dd(&[0.0, 0.0])], 4, 0.0);
    let draw = dist.sample(4, TAU, Sampler::Original);
    let mut baseline = EmaBaseline::at(2.0);
    let mut f = |xs: &[Tensor], _: SampleKind| {
        xs[0].sum_dim_intlist(&[0, 2][..], false, Kind::Double) * 3.0
    }; // f ≡ 3
    let est = reinforce(&draw, &mut f, &mut baseline, &mut Finite::eager(0)).unwrap();
    // S = mean(log q·sg(f − β)) + β with β = 2 (before the update): log q = log ½
    let expected = 0.5f64.ln() * (3.0 - 2.0) + 2.0;
    assert!((est.surrogate.double_value(&[]) - expected).abs() < 1e-12);
    assert_eq!(baseline.value(), 0.1 * 2.0 + 0.9 * 3.0);
}

#[test]
fn the_device_baseline_is_bit_identical_to_the_host_meter() {
    // the official meter on the host: avg = 0.1·avg + 0.9·val, from 0
    let batch_means = [
        std::f64::consts::E,
        -0.3,
        1e-9,
        123.456,
        0.1 + 0.2,
        7.0 / 3.0,
    ];
    let mut host = 0.0f64;
    let mut device = EmaBaseline::default();
    assert_eq!(device.value(), 0.0);
    for (i, m) in batch_means.iter().enumerate() {
        host = 0.1 * host + 0.9 * m;
        // as the loop feeds it: a Float mean or a Double one
        let t = if i % 2 == 0 {
            Tensor::from(*m)
        } else {
            Tensor::from_slice(&[*m]).to_kind(Kind::Double)
        };
        device.update(&t);
        assert_eq!(device.value().to_bits(), host.to_bits(), "update {i}");
    }
    // a checkpoint's value restores the same β
    assert_eq!(
        EmaBaseline::at(device.value()).value().to_bits(),
        host.to_bits()
    );
}

#[test]
fn non_finite_objective_is_an_error_naming_step_and_term() {
    let dist = per_example_copy(&[dd(&[0.0, 1.0, 2.0])], 2, 0.0);
    let draw = dist.sample(2, TAU, Sampler::Rebar);
    let mut f = |xs: &[Tensor], kind: SampleKind| {
        let v = xs[0].sum_dim_intlist(&[0, 2][..], false, Kind::Double);
        match kind {
            SampleKind::OneHot => v,
            SampleKind::Relaxed | SampleKind::Dense => v * f64::NAN,
        }
    };
    let err = rebar(&draw, &mut f, &mut Finite::eager(42)).unwrap_err();
    assert_eq!((err.step, err.term.as_str()), (42, "f(ζ)"));
}

#[test]
fn grad_variance_is_zero_for_constant_gradients_and_positive_for_noisy_ones() {
    let mut constant = GradVariance::new(0.9);
    let mut noisy = GradVariance::new(0.9);
    let mut last = Tensor::from(0.0f64);
    for i in 0..50 {
        let _ = constant.observe(&[dd(&[1.0, -1.0])]);
        let s = if i % 2 == 0 { 1.0 } else { -1.0 };
        last = noisy.observe(&[dd(&[s, -s])]);
    }
    // What `observe` hands the loop (on the device) is what `variance` reads back.
    assert_eq!(last.double_value(&[]), noisy.variance());
    assert!(constant.variance() < 1e-12);
    assert!(noisy.variance() > 1.5); // ‖g‖² = 2, EMA(g) ≈ 0
}

#[test]
fn estimator_state_routes_each_estimator_to_its_sampler() {
    let dist = Categoricals::zeros(&[("s".into(), 2, 4)], 0.0, Kind::Float, Device::Cpu);
    let state = EstimatorState::new(Estimator::Relax, &dist);
    assert_eq!(state.sampler(), Sampler::Rebar);
    assert_eq!(
        EstimatorState::new(Estimator::Gsm, &dist).sampler(),
        Sampler::Original
    );
    let cv = state.relax.as_ref().unwrap();
    assert_eq!(cv.parameters()[0].size(), vec![8, RELAX_HIDDEN]);
}

#[test]
fn diagnose_json_has_exactly_the_documented_keys() {
    use crate::nas::diagnose::{estimator, ProblemArgs};
    let problem = ProblemArgs {
        logits: vec![0.2, -0.1, 0.4],
        values: vec![1.0, 0.0, -1.0],
        target: 0.3,
        temperature: 0.4,
        eps: 0.0,
        samples: 2000,
        seed: 0,
        relax_warmup: 2,
        relax_batch: 16,
        json: true,
    };
    let out = estimator(Estimator::Rebar, &problem).unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        ["estimator", "exact", "grad_mean", "grad_stderr", "samples"]
    );
    assert_eq!(v["estimator"], "rebar");
    assert_eq!(v["grad_mean"].as_array().unwrap().len(), 3);
}

#[test]
fn st_gsm_and_darts_ask_for_every_op_and_the_others_for_the_official_op_skip() {
    let dist = per_example_copy(&[dd(&[0.0, 1.0, 2.0])], 2, 0.0);
    let kinds_asked = |estimator: Estimator| {
        let mut seen = Vec::new();
        let mut f = |xs: &[Tensor], kind: SampleKind| {
            seen.push(kind);
            xs[0].sum_dim_intlist(&[0, 2][..], false, Kind::Float)
        };
        let mut state = EstimatorState::new(estimator, &dist);
        let draw = dist.sample(2, TAU, state.sampler());
        state
            .estimate(&dist, &draw, &mut f, &mut Finite::eager(0))
            .unwrap();
        seen
    };
    // the properties of `config::estimator` say what the functions do
    for e in Estimator::ALL {
        let seen = kinds_asked(e);
        assert_eq!(seen.len() as u32, e.evaluations(), "{e:?}: {seen:?}");
        let dense = seen.contains(&SampleKind::Dense);
        assert_eq!(dense, e.ops_run() == OpsRun::Every, "{e:?}: {seen:?}");
    }
    assert_eq!(kinds_asked(Estimator::StGsm), [SampleKind::Dense]);
    assert_eq!(kinds_asked(Estimator::Darts), [SampleKind::Dense]);
    assert_eq!(kinds_asked(Estimator::Gsm), [SampleKind::Relaxed]);
    assert_eq!(
        kinds_asked(Estimator::Rebar),
        [SampleKind::OneHot, SampleKind::Relaxed]
    );
}
