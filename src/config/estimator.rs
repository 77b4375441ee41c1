//! The gradient estimators of the architecture parameters (spec §2) as a choice, and everything that
//! differs between them: the sampler, whether the estimator is a score-function one (and so may carry
//! the non-differentiable latency term), how many times a step evaluates the objective, which ops a
//! step runs, what the weight step trains on, and what state an estimator carries between steps.
//! Each property is one exhaustive `match`: adding an estimator is one new arm in each, and the
//! compiler lists them. The estimators themselves (one function each, returning a surrogate whose
//! gradient is the estimator) are in `nas/estimator.rs`.

use serde::{Deserialize, Serialize};

/// Gradient estimator of the architecture parameters (§2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum Estimator {
    /// Plain Gumbel-softmax relaxation (the official `default`; biased).
    Gsm,
    /// Straight-through Gumbel-softmax: discrete forward, relaxed gradient (biased).
    StGsm,
    /// Deterministic softmax mixture of DARTS (first order).
    Darts,
    /// Score function with the official moving-average baseline.
    Reinforce,
    /// REBAR with η = 1 and fixed τ: the UNAS estimator.
    Rebar,
    /// RELAX: REBAR's control variate plus a learned control-variate network.
    Relax,
}

/// Which GSM sampler draws the relaxed sample ζ (spec §2.1; `gsm_utils.py`; the official `gsm_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sampler {
    /// `original`: g = −log(−log(U+1e-20)+1e-20), ζ = softmax((ã+g)/τ).
    Original,
    /// `rebar`: u clamped to [1e-3, 1−1e-3], ζ⋆ = ζ − ζ̃ + sg(ζ̃) with ζ̃ the conditional relaxation
    /// given b (value ζ, gradient ∂ζ − ∂ζ̃).
    Rebar,
}

/// The control variate of a score-function estimator: what is subtracted from f(b) in
/// (f(b) − c)·∇log q(b). The latency term (spec §2.5) goes through the same path with the same kind
/// of control variate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlVariate {
    /// β, the official moving average of f(b) (`reinforce`); the latency term gets its own β.
    MovingAverage,
    /// f(ζ̃), the relaxation conditioned on b (`rebar`, `relax`); the latency term uses the latency
    /// surrogate evaluated on ζ'⋆.
    ConditionalRelaxation,
}

/// Which ops of an edge or block the architecture step's network runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpsRun {
    /// Only those the sample selects: the chosen op of a one-hot sample, the ops above the op-skip
    /// threshold of a relaxed one.
    Sampled,
    /// Every op, no op-skip: the gradient must reach the ops a sample leaves out (`st_gsm`), or the
    /// mixture's small weights are not negligible (`darts`).
    Every,
}

/// What the weight step (and the search-time validation) trains the supernet on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightSample {
    /// The architecture step's relaxed sample ζ, detached, with op-skip (the official code).
    Relaxed,
    /// The softmax mixture q̃ = softmax(ã), every op run (first-order DARTS).
    Mixture,
}

/// State an estimator carries from one step to the next (saved in checkpoints).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Carried {
    /// Nothing: every step stands alone.
    Nothing,
    /// The moving-average baseline β (`reinforce`).
    Baseline,
    /// The control-variate network r_φ and its Adam state (`relax`).
    ControlVariateNet,
}

impl Estimator {
    /// The six estimators, in the paper's order.
    pub const ALL: [Estimator; 6] = [
        Estimator::Gsm,
        Estimator::StGsm,
        Estimator::Darts,
        Estimator::Reinforce,
        Estimator::Rebar,
        Estimator::Relax,
    ];

    /// The name in an experiment file and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Estimator::Gsm => "gsm",
            Estimator::StGsm => "st_gsm",
            Estimator::Darts => "darts",
            Estimator::Reinforce => "reinforce",
            Estimator::Rebar => "rebar",
            Estimator::Relax => "relax",
        }
    }

    /// The sampler of the estimator's draws (spec §2: `rebar` and `relax` force `gsm_type = rebar`);
    /// the latency term's second draw uses the same one.
    pub fn sampler(self) -> Sampler {
        match self {
            Estimator::Rebar | Estimator::Relax => Sampler::Rebar,
            Estimator::Gsm | Estimator::StGsm | Estimator::Darts | Estimator::Reinforce => {
                Sampler::Original
            }
        }
    }

    /// The control variate of a score-function estimator; `None` for the pathwise and mixture ones,
    /// which need a differentiable f and so cannot carry measured latency.
    pub fn control_variate(self) -> Option<ControlVariate> {
        match self {
            Estimator::Reinforce => Some(ControlVariate::MovingAverage),
            Estimator::Rebar | Estimator::Relax => Some(ControlVariate::ConditionalRelaxation),
            Estimator::Gsm | Estimator::StGsm | Estimator::Darts => None,
        }
    }

    /// Whether the estimator goes through the score function ∇log q(b), and so may carry a
    /// non-differentiable term such as measured latency (spec §2.5).
    pub fn is_score_function(self) -> bool {
        self.control_variate().is_some()
    }

    /// Evaluations of the objective per architecture step: f(b) and f(ζ) for REBAR and RELAX, one for
    /// the others.
    pub fn evaluations(self) -> u32 {
        match self {
            Estimator::Rebar | Estimator::Relax => 2,
            Estimator::Gsm | Estimator::StGsm | Estimator::Darts | Estimator::Reinforce => 1,
        }
    }

    /// Which ops the architecture step runs: every op for `st_gsm` (∂f/∂x_k needs op k's output even
    /// where b_k = 0) and `darts` (the mixture), the sampled ones otherwise.
    pub fn ops_run(self) -> OpsRun {
        match self {
            Estimator::StGsm | Estimator::Darts => OpsRun::Every,
            Estimator::Gsm | Estimator::Reinforce | Estimator::Rebar | Estimator::Relax => {
                OpsRun::Sampled
            }
        }
    }

    /// What the weight step trains on: the relaxed sample (official), or DARTS's mixture.
    pub fn weight_sample(self) -> WeightSample {
        match self {
            Estimator::Darts => WeightSample::Mixture,
            Estimator::Gsm
            | Estimator::StGsm
            | Estimator::Reinforce
            | Estimator::Rebar
            | Estimator::Relax => WeightSample::Relaxed,
        }
    }

    /// The state the estimator carries between steps.
    pub fn carried(self) -> Carried {
        match self {
            Estimator::Reinforce => Carried::Baseline,
            Estimator::Relax => Carried::ControlVariateNet,
            Estimator::Gsm | Estimator::StGsm | Estimator::Darts | Estimator::Rebar => {
                Carried::Nothing
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_is_the_experiment_file_spelling() {
        for e in Estimator::ALL {
            let serde_name = serde_json::to_value(e).unwrap();
            assert_eq!(serde_name.as_str(), Some(e.name()), "{e:?}");
            let parsed: Estimator = serde_json::from_value(serde_name).unwrap();
            assert_eq!(parsed, e);
        }
    }

    #[test]
    fn score_function_estimators_are_the_ones_with_a_control_variate() {
        let score: Vec<_> = Estimator::ALL
            .into_iter()
            .filter(|e| e.is_score_function())
            .collect();
        assert_eq!(
            score,
            [Estimator::Reinforce, Estimator::Rebar, Estimator::Relax]
        );
        // the conditional relaxation f(ζ̃) needs the sampler that draws ζ̃ given b
        for e in Estimator::ALL {
            let conditional = e.control_variate() == Some(ControlVariate::ConditionalRelaxation);
            assert_eq!(conditional, e.sampler() == Sampler::Rebar, "{e:?}");
            assert_eq!(conditional, e.evaluations() == 2, "{e:?}");
        }
    }

    #[test]
    fn only_darts_trains_the_weights_on_its_mixture() {
        for e in Estimator::ALL {
            assert_eq!(
                e.weight_sample() == WeightSample::Mixture,
                e == Estimator::Darts
            );
            // a mixture trained on runs every op in the architecture step too
            if e.weight_sample() == WeightSample::Mixture {
                assert_eq!(e.ops_run(), OpsRun::Every);
            }
        }
    }
}
