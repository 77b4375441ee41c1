//! The latency term on problems without a network: its control-variate estimator is unbiased for
//! ∇E_q[c·relu(Lat(b) − T)] (enumerated exactly), and on a tight target it moves the distribution's
//! mass to the fast ops.

use tch::{Device, Kind, Tensor};

use super::Surrogate;
use crate::nas::diagnose::{exact_gradient, per_example_copy, per_sample_stats};
use crate::nas::distribution::{flatten_per_example, Categoricals, Sampler};
use crate::nas::estimator::score_with_surrogate;
use crate::nas::objective::LatencyHinge;
use crate::results::diverged::Finite;

fn dd(v: &[f64]) -> Tensor {
    Tensor::from_slice(v).to_kind(Kind::Double).reshape([1, -1])
}

/// Per-op costs of two blocks (K = 3 and K = 4) and an interaction the linear surrogate cannot
/// represent: +1.5 ms when both blocks take their op 0.
fn measured(xs: &[Tensor]) -> Tensor {
    let c0 = dd(&[0.5, 2.0, 3.5]);
    let c1 = dd(&[1.0, 1.2, 3.0, 0.2]);
    let lin = |x: &Tensor, c: &Tensor| {
        (x * c.unsqueeze(1)).sum_dim_intlist(&[0, 2][..], false, Kind::Double)
    };
    let both0 = xs[0].select(2, 0).select(0, 0) * xs[1].select(2, 0).select(0, 0);
    lin(&xs[0], &c0) + lin(&xs[1], &c1) + both0 * 1.5 // [N]
}

/// A fixed (deliberately imperfect) linear surrogate of `measured`, weights over the 7 features.
fn surrogate() -> Surrogate {
    Surrogate {
        weights: vec![0.8, 2.0, 3.3, 1.1, 1.0, 3.2, 0.3],
        bias_ms: 0.1,
        fit: super::FitReport {
            n_train: 0,
            n_test: 0,
            ridge: 1.0,
            mae_train_ms: 0.0,
            mae_test_ms: 0.0,
            r2_test: f64::NAN,
        },
    }
}

#[test]
fn control_variate_latency_estimator_is_unbiased_on_enumerable_problem() {
    let logits = [dd(&[0.4, -0.3, 0.1]), dd(&[0.0, 0.5, -0.8, 0.2])];
    let eps = 0.08;
    let hinge = LatencyHinge {
        target_ms: 3.0,
        coeff: 0.7,
        ramp_steps: 0,
    };
    let s = surrogate();
    // exact ∇ E_q[c·relu(Lat(b) − T)]
    let shared = Categoricals::from_logits(
        logits
            .iter()
            .enumerate()
            .map(|(i, l)| (format!("g{i}"), l.detach().set_requires_grad(true)))
            .collect(),
        eps,
    );
    let exact: Vec<f64> = exact_gradient(&shared, |b| hinge.penalty(&measured(b), 0))
        .iter()
        .flat_map(|t| Vec::<f64>::try_from(t.reshape([-1])).unwrap())
        .collect();
    tch::manual_seed(11);
    let n = 200_000;
    let dist = per_example_copy(&logits, n, eps);
    let second = dist.sample(n, 0.4, Sampler::Rebar);
    let l_d = hinge.penalty(&measured(&second.onehot), 0); // c·relu(Lat(b') − T)
    let l_c = hinge.penalty(&s.predict(&flatten_per_example(&second.relaxed)), 0); // c·relu(s(ζ'⋆) − T)
    score_with_surrogate(&second, &l_d, &l_c, &mut Finite::eager(0))
        .unwrap()
        .backward();
    let stats = per_sample_stats(&dist.parameters());
    let scale = exact.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    assert!(scale > 0.05, "a non-trivial gradient: {exact:?}");
    for (k, ((m, se), e)) in stats.mean.iter().zip(&stats.stderr).zip(&exact).enumerate() {
        let z = (m - e) / se;
        assert!(
            z.abs() < 4.0,
            "coordinate {k}: mean {m} exact {e} stderr {se} (z {z:.2})"
        );
        assert!(*se < 0.05 * scale, "stderr {se} too large for a sharp test");
    }
    // the control variate helps: the same samples scored without it (L_c ≡ 0) vary more
    let dist2 = per_example_copy(&logits, n, eps);
    tch::manual_seed(11);
    let again = dist2.sample(n, 0.4, Sampler::Rebar);
    let l_d2 = hinge.penalty(&measured(&again.onehot), 0);
    score_with_surrogate(&again, &l_d2, &l_d2.zeros_like(), &mut Finite::eager(0))
        .unwrap()
        .backward();
    let plain = per_sample_stats(&dist2.parameters());
    assert!(
        stats.variance < plain.variance,
        "{} vs {}",
        stats.variance,
        plain.variance
    );
}

/// Three blocks of four ops, op 0 the fastest; the target only the fastest architecture meets; no
/// accuracy term. A few hundred REBAR/RELAX latency steps (a surrogate fitted on 40 timings) with
/// Adam-free plain gradient steps on the logits must put most of every block's mass on op 0.
#[test]
fn latency_term_moves_the_mass_to_the_fast_ops_on_a_tight_target() {
    let cost = [
        [1.0, 2.0, 3.0, 4.0],
        [0.5, 1.5, 2.5, 3.5],
        [1.0, 3.0, 2.0, 4.0],
    ];
    let lat = |xs: &[Tensor]| -> Tensor {
        let c = Tensor::from_slice(&cost.concat())
            .to_kind(Kind::Float)
            .reshape([3, 1, 4]);
        (&xs[0] * c).sum_dim_intlist(&[0, 2][..], false, Kind::Float)
    };
    let hinge = LatencyHinge {
        target_ms: 2.6, // the fastest architecture is 2.5 ms
        coeff: 1.0,
        ramp_steps: 0,
    };
    tch::manual_seed(3);
    let dist = Categoricals::zeros(&[("blocks".into(), 3, 4)], 0.08, Kind::Float, Device::Cpu);
    // the surrogate: timings of 40 architectures of the uniform distribution
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for _ in 0..40 {
        let d = tch::no_grad(|| dist.sample(1, 0.4, Sampler::Original));
        xs.push(
            Vec::<f64>::try_from(
                flatten_per_example(&d.onehot)
                    .reshape([-1])
                    .to_kind(Kind::Double),
            )
            .unwrap(),
        );
        ys.push(lat(&d.onehot).double_value(&[0]));
    }
    let s = Surrogate::fit(&xs, &ys, 1.0, 0).unwrap();
    assert!(s.fit.r2_test > 0.9, "{:?}", s.fit);
    let p0 = |d: &Categoricals| d.log_q()[0].exp().select(2, 0).squeeze();
    let before = Vec::<f64>::try_from(p0(&dist).to_kind(Kind::Double)).unwrap();
    for step in 0..300 {
        let second = dist.sample(1, 0.4, Sampler::Rebar);
        let l_d = hinge.penalty(&lat(&second.onehot), step);
        let l_c = hinge.penalty(&s.predict(&flatten_per_example(&second.relaxed)), step);
        let g = Tensor::run_backward(
            &[&score_with_surrogate(&second, &l_d, &l_c, &mut Finite::eager(step)).unwrap()],
            &dist.parameters(),
            false,
            false,
        );
        tch::no_grad(|| {
            let mut a = dist.parameters()[0].shallow_clone();
            let _ = a.f_sub_(&(&g[0] * 0.5)).unwrap(); // a ← a − 0.5·ĝ
        });
    }
    let after = Vec::<f64>::try_from(p0(&dist).to_kind(Kind::Double)).unwrap();
    for (b, (p_before, p_after)) in before.iter().zip(&after).enumerate() {
        assert!((p_before - 0.25).abs() < 1e-6);
        assert!(
            *p_after > 0.6,
            "block {b}: P(fastest op) {p_before} → {p_after}"
        );
    }
}
