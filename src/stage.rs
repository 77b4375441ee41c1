//! The one contract between the runner and the stages. The runner builds a [`StageCtx`] for a job and
//! calls a stage; the stage (`train::search`, `train::from_scratch`) answers with its [`Outcome`] or a
//! [`StageError`] that says how it ended: not built yet, diverged, or failed. The runner depends on
//! this module and on the stages; the stages depend on this module, never on the runner.

use tch::Device;

use crate::config::Resolved;
use crate::dist::PeerLost;
use crate::results::{Diverged, Interrupted, RunDir, State};

/// Everything a stage run needs to know about itself.
pub struct StageCtx<'a> {
    pub resolved: &'a Resolved,
    pub seed: u64,
    pub run_id: &'a str,
    pub dir: &'a RunDir,
    pub device: Device,
    /// For a training job of a searched genotype: the search's run id and folder.
    pub upstream: Option<(&'a str, RunDir)>,
}

/// How a stage that did not finish ended.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// The capability the stage needs is not in this version: it never pretends to run. (Every
    /// stage of the shipped experiments is built today; the variant stays in the contract.)
    #[allow(dead_code)]
    #[error("stage `{stage}` cannot run yet: {capability} is not built in this version of unas")]
    NotBuilt {
        stage: &'static str,
        capability: &'static str,
    },
    /// A value went NaN or ±Inf (the term, step and value are kept).
    #[error(transparent)]
    Diverged(Diverged),
    /// Stopped by SIGTERM / SIGINT after a checkpoint: resumes at the next run.
    #[error(transparent)]
    Interrupted(Interrupted),
    /// A peer rank died, hung past the timeout, or left: stopped as `interrupted` (the next run
    /// resumes from the last checkpoint).
    #[error("{0} — run again to resume from the last checkpoint")]
    RankLost(PeerLost),
    #[error(transparent)]
    Failed(anyhow::Error),
}

impl From<anyhow::Error> for StageError {
    /// A [`Diverged`] anywhere in the chain becomes [`StageError::Diverged`], an [`Interrupted`]
    /// [`StageError::Interrupted`], a [`PeerLost`] [`StageError::RankLost`]; anything else `Failed`.
    fn from(e: anyhow::Error) -> StageError {
        let e = match e.downcast::<Interrupted>() {
            Ok(i) => return StageError::Interrupted(i),
            Err(e) => e,
        };
        let e = match e.downcast::<PeerLost>() {
            Ok(p) => return StageError::RankLost(p),
            Err(e) => e,
        };
        match e.downcast::<Diverged>() {
            Ok(d) => StageError::Diverged(d),
            Err(e) => StageError::Failed(e),
        }
    }
}

impl From<Diverged> for StageError {
    fn from(d: Diverged) -> StageError {
        StageError::Diverged(d)
    }
}

impl StageError {
    /// The state its run folder records.
    pub fn state(&self) -> State {
        match self {
            StageError::Diverged(d) => d.state(),
            StageError::Interrupted(i) => State::Interrupted {
                reason: i.to_string(),
            },
            StageError::RankLost(_) => State::Interrupted {
                reason: self.to_string(),
            },
            StageError::NotBuilt { .. } => State::Failed {
                reason: self.to_string(),
            },
            StageError::Failed(e) => State::Failed {
                reason: format!("{e:#}"),
            },
        }
    }

    /// The one-line reason shown to the user.
    pub fn reason(&self) -> String {
        match self {
            StageError::Failed(e) => format!("{e:#}"),
            _ => self.to_string(),
        }
    }
}

/// How a stage run ends: `Ok` when its run folder holds the finished results (tables, genotype, summary).
pub type Outcome = Result<(), StageError>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::Phase;

    #[test]
    fn a_divergence_anywhere_in_an_error_chain_is_recorded_as_diverged_with_its_term() {
        let d = Diverged {
            at: Some((Phase::Search, 3)),
            step: 41,
            term: "f(ζ)".into(),
            value: f64::NAN,
        };
        let e: StageError = anyhow::Error::new(d.clone())
            .context("architecture step")
            .into();
        assert!(
            matches!(&e, StageError::Diverged(x) if x.step == 41 && x.term == d.term && x.value.is_nan())
        );
        assert_eq!(
            e.state(),
            State::Diverged {
                step: 41,
                term: "f(ζ)".into()
            }
        );
        let stopped: StageError = anyhow::Error::new(Interrupted {
            signal: "SIGINT".into(),
            epoch: 2,
        })
        .context("search")
        .into();
        assert!(matches!(
            stopped.state(),
            State::Interrupted { reason } if reason.contains("SIGINT") && reason.contains("epoch 2")
        ));
        let lost: StageError = anyhow::Error::new(PeerLost {
            rank: 0,
            world: 2,
            what: "the weight gradients".into(),
            message: "Connection closed by peer".into(),
            died: Some("rank 1 (pid 7 on h) ended: signal: 9 (SIGKILL)".into()),
        })
        .context("search step")
        .into();
        assert!(matches!(
            lost.state(),
            State::Interrupted { reason } if reason.contains("rank 1 (pid 7 on h)") && reason.contains("the weight gradients")
        ));
        let failed: StageError = anyhow::anyhow!("disk full").into();
        assert_eq!(
            failed.state(),
            State::Failed {
                reason: "disk full".into()
            }
        );
    }
}
