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

pub fn run_stage(
    _r: &Resolved,
    job: &Job,
    _dir: &RunDir,
    _device: tch::Device,
) -> Result<Outcome, StageError> {
    match job.stage {
        Stage::Search => Err(StageError::NotBuilt {
            stage: "search",
            capability: "the search loop (architecture distribution, estimators, supernet and data pipeline)",
        }),
        Stage::Train => Err(StageError::NotBuilt {
            stage: "train",
            capability: "from-scratch training (evaluation networks, recipes and data pipeline)",
        }),
    }
}
