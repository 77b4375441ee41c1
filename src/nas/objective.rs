//! Search objectives (spec §3, §4), all per example ([N], no early mean): train / val / gen-gap, the
//! DARTS-space pair penalty, and the latency hinge with its linear ramp. The estimators consume them
//! through `estimator::Objective` (differentiable terms) or `estimator::score_with_surrogate` (the
//! non-differentiable latency term).

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use super::arch::{CellSample, DartsSample};
use crate::config::schema::{Latency, ObjectiveKind};

/// f [N] from the per-example cross-entropies of the training batch `l_tr` and, for `val` and
/// `gengap`, of the held-out batch `l_va` (example n of both evaluated with architecture sample n).
/// Panics if `l_va` is missing for `val`/`gengap` (the loop always evaluates it there).
pub fn per_example(
    kind: ObjectiveKind,
    lambda: f64,
    l_tr: &Tensor,
    l_va: Option<&Tensor>,
) -> Tensor {
    let l_va = || l_va.expect("the val and gengap objectives need the held-out losses");
    match kind {
        ObjectiveKind::Train => l_tr.shallow_clone(), // f = ℓ_tr
        ObjectiveKind::Val => l_va().shallow_clone(), // f = ℓ_va
        ObjectiveKind::Gengap => gengap(l_tr, l_va(), lambda),
    }
}

/// f_n = ℓ_tr,n + λ·|ℓ_va,n − ℓ_tr,n| (spec §3).
pub fn gengap(l_tr: &Tensor, l_va: &Tensor, lambda: f64) -> Tensor {
    l_tr + (l_va - l_tr).abs() * lambda
}

/// The logged gap terms (official `meta/loss_val`, `meta/loss_cov`, `meta/loss_diff_sign`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GapTerms {
    /// mean ℓ_tr.
    pub train_loss: f64,
    /// mean ℓ_va.
    pub val_loss: f64,
    /// mean |ℓ_va − ℓ_tr|.
    pub gap_abs: f64,
    /// fraction of examples with ℓ_va > ℓ_tr.
    pub val_above_train: f64,
}

impl GapTerms {
    pub fn new(l_tr: &Tensor, l_va: &Tensor) -> Self {
        tch::no_grad(|| {
            let m = |t: Tensor| t.mean(Kind::Double).double_value(&[]);
            GapTerms {
                train_loss: m(l_tr.detach()),
                val_loss: m(l_va.detach()),
                gap_abs: m((l_va - l_tr).abs()),
                val_above_train: m(l_va.gt_tensor(l_tr).to_kind(Kind::Double)),
            }
        })
    }
}

/// weight·P_n, P_n = Σ_{cell type, node} Σ_{j,k} input_op0[n,j,k]·input_op1[n,j,k] with
/// input_op_s = inputs[i][s] ⊗ ops[i][s] (spec §3): the probability (indicator, for one-hot samples) that
/// both selectors of a node pick the same (input, op). The sum over (j, k) factorises:
/// Σ_{j,k} in0_j op0_k in1_j op1_k = (Σ_j in0_j in1_j)·(Σ_k op0_k op1_k). Shape [N].
pub fn pair_penalty(sample: &DartsSample, weight: f64) -> Tensor {
    let cell = |c: &CellSample| {
        c.inputs
            .iter()
            .zip(&c.ops)
            .map(|(inp, op)| {
                let same_input =
                    (inp.get(0) * inp.get(1)).sum_dim_intlist(&[-1][..], false, inp.kind());
                let same_op = (op.get(0) * op.get(1)).sum_dim_intlist(&[-1][..], false, op.kind());
                same_input * same_op // [N]
            })
            .reduce(|a, b| a + b)
            .expect("a cell has at least one node")
    };
    (cell(&sample.normal) + cell(&sample.reduce)) * weight
}

/// The latency hinge c_t·relu(x − T) with c_t = coeff·clip(step / ramp, 0, 1) (spec §4), applied to
/// measured latencies (L_d) and to the surrogate's predictions (L_c) alike.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LatencyHinge {
    pub target_ms: f64,
    pub coeff: f64,
    pub ramp_steps: u64,
}

impl From<&Latency> for LatencyHinge {
    fn from(l: &Latency) -> Self {
        LatencyHinge {
            target_ms: l.target_ms,
            coeff: l.coeff,
            ramp_steps: l.ramp_steps,
        }
    }
}

impl LatencyHinge {
    /// c_t = coeff·clip(step / ramp, 0, 1); `step` counts post-warm-up architecture steps.
    pub fn coeff_at(&self, step: u64) -> f64 {
        if self.ramp_steps == 0 {
            return self.coeff;
        }
        self.coeff * (step as f64 / self.ramp_steps as f64).clamp(0.0, 1.0)
    }

    /// c_t·relu(lat_ms − T), per example.
    pub fn penalty(&self, lat_ms: &Tensor, step: u64) -> Tensor {
        (lat_ms - self.target_ms).relu() * self.coeff_at(step)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn t(v: &[f64]) -> Tensor {
        Tensor::from_slice(v)
    }

    #[test]
    fn gengap_adds_lambda_times_the_absolute_gap_per_example() {
        let f = gengap(&t(&[1.0, 2.0]), &t(&[1.5, 1.0]), 0.5);
        assert_eq!(Vec::<f64>::try_from(&f).unwrap(), vec![1.25, 2.5]);
        let terms = GapTerms::new(&t(&[1.0, 2.0]), &t(&[1.5, 1.0]));
        assert_eq!(terms.val_above_train, 0.5);
        assert_eq!(terms.gap_abs, 0.75);
        let val = per_example(ObjectiveKind::Val, 0.5, &t(&[1.0]), Some(&t(&[3.0])));
        assert_eq!(val.double_value(&[0]), 3.0);
    }

    fn onehot(idx: &[i64], k: i64) -> Tensor {
        // idx: per selector s (2) the chosen entry, one example → [2, 1, k]
        Tensor::from_slice(idx)
            .one_hot(k)
            .to_kind(Kind::Double)
            .reshape([2, 1, k])
    }

    #[test]
    fn pair_penalty_counts_nodes_whose_selectors_agree_on_input_and_op() {
        let cell = |same_node0: bool| CellSample {
            inputs: vec![onehot(&[0, 0], 2), onehot(&[1, 1], 3)],
            ops: vec![
                onehot(&[2, if same_node0 { 2 } else { 3 }], 7),
                onehot(&[4, 5], 7),
            ],
        };
        let sample = DartsSample {
            normal: cell(true),
            reduce: cell(false),
        };
        // normal node0: same input and op → 1; node1: different op → 0; reduce: none.
        let p = pair_penalty(&sample, 0.2);
        assert!((p.double_value(&[0]) - 0.2).abs() < 1e-12);
        // relaxed: uniform selectors over 2 inputs and 7 ops give (1/2)·(1/7) per node
        let uni = |k: i64| Tensor::full([2, 1, k], 1.0 / k as f64, (Kind::Double, Device::Cpu));
        let relaxed = CellSample {
            inputs: vec![uni(2)],
            ops: vec![uni(7)],
        };
        let s = DartsSample {
            normal: relaxed,
            reduce: CellSample {
                inputs: vec![uni(2)],
                ops: vec![uni(7)],
            },
        };
        let expected = 2.0 * (0.5 * (1.0 / 7.0));
        assert!((pair_penalty(&s, 1.0).double_value(&[0]) - expected).abs() < 1e-12);
    }

    #[test]
    fn latency_coefficient_ramps_linearly_then_holds() {
        let h = LatencyHinge {
            target_ms: 10.0,
            coeff: 0.1,
            ramp_steps: 30_000,
        };
        assert_eq!(h.coeff_at(0), 0.0);
        assert!((h.coeff_at(15_000) - 0.05).abs() < 1e-12);
        assert_eq!(h.coeff_at(60_000), 0.1);
        let p = h.penalty(&t(&[8.0, 12.0]), 30_000);
        let p = Vec::<f64>::try_from(&p).unwrap();
        assert_eq!(p[0], 0.0);
        assert!((p[1] - 0.2).abs() < 1e-12);
    }
}
