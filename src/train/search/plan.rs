//! What an epoch and one step of the search work on: the epoch's phase and learning rates
//! ([`EpochPlan`], set on the optimisers by [`begin_epoch`]), and the inputs of one step's
//! architecture and weight steps ([`StepContext`]).

use tch::Tensor;

use crate::config;
use crate::data::loader::Batch;
use crate::nas::distribution::Draw;
use crate::nas::space::SearchSpace;
use crate::results::rows::Term;
use crate::results::Phase;
use crate::train::optim::Optimizer;
use crate::train::rng::StepStreams;

use super::state::SearchState;

/// The phase an epoch belongs to, its index within the phase, and its learning rates.
pub(super) struct EpochPlan {
    pub phase: Phase,
    pub epoch: u32,
    pub lr_weights: f64,
    /// `None` in the warm-up (the architecture is frozen).
    pub lr_arch: Option<f64>,
}

impl EpochPlan {
    pub fn warm(&self) -> bool {
        self.phase == Phase::Warmup
    }
}

/// The inputs of one search step: the search's settings, the epoch's plan, the training batch, the
/// step's draw and its random streams.
#[derive(Clone, Copy)]
pub(super) struct StepContext<'a> {
    pub s: &'a config::Search,
    pub ep: &'a EpochPlan,
    pub b: &'a Batch,
    pub draw: &'a Draw,
    pub at: StepStreams,
}

/// The terms one step logs.
pub(super) type StepTerms = Vec<(Term, Tensor)>;

/// The epoch's phase and learning rates, set on the optimisers.
pub(super) fn begin_epoch<S: SearchSpace>(
    st: &mut SearchState<S>,
    s: &config::Search,
) -> EpochPlan {
    let warmup = s.epochs.warmup;
    let plan = if st.meta.epoch < warmup {
        EpochPlan {
            phase: Phase::Warmup,
            epoch: st.meta.epoch,
            lr_weights: st.rates.weights,
            lr_arch: None,
        }
    } else {
        let epoch = st.meta.epoch - warmup;
        EpochPlan {
            phase: Phase::Search,
            epoch,
            lr_weights: st.rates.cos_weights.for_epoch(epoch),
            lr_arch: Some(st.rates.cos_arch.for_epoch(epoch)),
        }
    };
    st.opt_w.set_lr_all(plan.lr_weights);
    if let Some(l) = plan.lr_arch {
        st.opt_a.set_lr_all(l);
    }
    plan
}
