//! Search objectives (spec §3, §4), all per example ([N], no early mean): train / val / gen-gap, the
//! DARTS-space pair penalty, and the latency hinge with its linear ramp. The estimators consume them
//! through `estimator::Objective` (differentiable terms) or `estimator::score_with_surrogate` (the
//! non-differentiable latency term).

use tch::Tensor;

use super::arch::{CellSample, DartsSample};
use crate::config::schema::Latency;

/// The gen-gap objective per example (spec §3): f_n = ℓ_tr,n + λ·|ℓ_va,n − ℓ_tr,n| with example n of
/// both batches evaluated with architecture sample n. Returns (f, the gap |ℓ_va − ℓ_tr|) [N] each.
pub fn gengap(l_tr: &Tensor, l_va: &Tensor, lambda: f64) -> (Tensor, Tensor) {
    let gap = (l_va - l_tr).abs(); // |ℓ_va − ℓ_tr|
    (l_tr + &gap * lambda, gap) // f = ℓ_tr + λ·|ℓ_va − ℓ_tr|
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
        linear_ramp(self.coeff, step, self.ramp_steps)
    }

    /// c_t·relu(lat_ms − T), per example.
    pub fn penalty(&self, lat_ms: &Tensor, step: u64) -> Tensor {
        (lat_ms - self.target_ms).relu() * self.coeff_at(step)
    }
}

/// A coefficient ramped linearly from 0: c_t = c · clip(t / R, 0, 1) (the latency coefficient over
/// R = 30 000 post-warm-up steps, §4). R = 0 means no ramp.
pub fn linear_ramp(c: f64, step: u64, ramp_steps: u64) -> f64 {
    if ramp_steps == 0 {
        return c;
    }
    // c_t = c·clip(step/R, 0, 1)
    c * (step as f64 / ramp_steps as f64).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;
    use tch::Kind;

    fn t(v: &[f64]) -> Tensor {
        Tensor::from_slice(v)
    }

    #[test]
    fn gengap_adds_lambda_times_the_absolute_gap_per_example() {
        let (f, gap) = gengap(&t(&[1.0, 2.0]), &t(&[1.5, 1.0]), 0.5);
        assert_eq!(Vec::<f64>::try_from(&f).unwrap(), vec![1.25, 2.5]);
        assert_eq!(gap.mean(Kind::Double).double_value(&[]), 0.75);
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

    #[test]
    fn linear_ramp_rises_from_zero_and_saturates() {
        assert_eq!(linear_ramp(0.1, 0, 30_000), 0.0);
        assert!((linear_ramp(0.1, 15_000, 30_000) - 0.05).abs() <= 1e-12);
        assert_eq!(linear_ramp(0.1, 30_000, 30_000), 0.1);
        assert_eq!(linear_ramp(0.1, 90_000, 30_000), 0.1);
        assert_eq!(linear_ramp(0.1, 5, 0), 0.1);
    }
}
