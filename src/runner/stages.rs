//! Dispatch of one job to the code that executes its stage. A stage whose capability is not built yet
//! returns [`StageError::NotBuilt`], naming what is missing; it never pretends to run.

use crate::config::Resolved;
use crate::results::RunDir;

use super::plan::{Job, Stage};

#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error("stage `{stage}` cannot run yet: {capability} is not built in this version of unas")]
    NotBuilt {
        stage: &'static str,
        capability: &'static str,
    },
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

/// What a finished stage tells the runner.
#[derive(Debug, Default)]
pub struct Outcome {
    pub summary: String,
}

/// Runs one job's stage in its run folder. `upstream` is the run folder of the search a training job
/// consumes.
pub fn run_stage(
    r: &Resolved,
    job: &Job,
    dir: &RunDir,
    upstream: Option<RunDir>,
    device: tch::Device,
) -> Result<Outcome, StageError> {
    let ctx = crate::train::search::StageCtx {
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
        Stage::Search => {
            let genotype = crate::train::search::run(&ctx)?;
            Ok(Outcome { summary: genotype })
        }
        Stage::Train => {
            crate::train::from_scratch::run(&ctx)?;
            Ok(Outcome::default())
        }
    }
}
