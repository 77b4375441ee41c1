//! One search iteration: the draw, the architecture step (outside the warm-up) and the weight step.

use anyhow::Result;
use tch::Tensor;

use crate::config::{self, estimator::Selection};
use crate::data::loader;
use crate::nas::space::SearchSpace;
use crate::results::diverged::{Checks, Finite};
use crate::results::rows::Term;
use crate::train::rng::StepStreams;

use super::plan::{EpochPlan, StepContext, StepTerms};
use super::state::SearchState;
use super::{arch_step, weight_step};

/// One search iteration on batch `b`: one architecture sample per step (per example, or per
/// sub-batch); the architecture step differentiates through it (outside the warm-up), the weight step
/// uses its relaxed value, detached (spec §1.3). Returns the step's terms and finite checks for the
/// log and, with a latency term, the latency measured of the step's sample (ms).
pub(super) fn iteration<S: SearchSpace>(
    st: &mut SearchState<S>,
    s: &config::Search,
    ep: &EpochPlan,
    b: &loader::Batch,
    step: u64,
    seed: u64,
) -> Result<(StepTerms, Checks, Option<f64>)> {
    let n = st.arch.samples(b);
    let sampler = st.est.sampler();
    let dist = st.space.distribution();
    let draw = if ep.warm() {
        tch::no_grad(|| dist.sample(n, s.temperature, sampler))
    } else {
        dist.sample(n, s.temperature, sampler)
    };
    let mut terms: Vec<(Term, Tensor)> = Vec::new();
    let mut lat_ms = None;
    let mut chk = Finite::deferred(step);
    let cx = StepContext {
        s,
        ep,
        b,
        draw: &draw,
        at: StepStreams {
            run_seed: seed,
            phase: ep.phase,
            epoch: ep.epoch,
            step,
        },
    };
    // random search has no architecture step: its logits stay at the uniform initialisation
    if !ep.warm() && s.estimator.selection() == Selection::Mode {
        lat_ms = arch_step::arch_step(st, &cx, &mut chk, &mut terms)?;
    }
    weight_step::weight_step(st, &cx, &mut terms)?;
    Ok((terms, chk.take(), lat_ms))
}
