//! Dispatch of one job to the code that executes its stage, through the contract in [`crate::stage`].

use crate::config::Resolved;
use crate::results::RunDir;
use crate::stage::{Outcome, StageCtx};

use super::plan::{Job, Stage};

/// Runs one job's stage in its run folder. `upstream` is the run folder of the search a training job
/// consumes.
pub fn run_stage(
    r: &Resolved,
    job: &Job,
    dir: &RunDir,
    upstream: Option<RunDir>,
    device: tch::Device,
) -> Outcome {
    let ctx = StageCtx {
        resolved: r,
        seed: job.seed,
        run_id: &job.run_id,
        dir,
        device,
        upstream: job
            .upstream
            .as_ref()
            .zip(upstream)
            .map(|(u, d)| (u.run_id.as_str(), d)),
    };
    match job.stage {
        Stage::Search => crate::train::search::run(&ctx),
        Stage::Train => crate::train::from_scratch::run(&ctx),
    }
}
