//! How a job ended ([`JobEnd`]), shared by the runner's three ways of running a job: in this process
//! (`execute`), as ranks (`ranks`), on a worker (`workers`). A leaf: it imports nothing of the runner.

use std::path::Path;

use crate::results::{atomic::RunLock, State, Status};
use crate::stage::StageError;

/// How one job ended, for the summary table.
#[derive(Clone, Debug, PartialEq)]
pub enum JobEnd {
    Done {
        skipped: bool,
    },
    /// The stage failed or diverged (now, or in an earlier run not retried): its run folder's
    /// `status.json` says why.
    Failed(String),
    /// Stopped by a signal after a checkpoint (or its worker was killed): the next run resumes it.
    Interrupted(String),
    /// Not started: the suite was stopped by a signal before its turn.
    Stopped(String),
    /// The run could not start or could not be recorded (its folder could not be created or written),
    /// so no `status.json` says why: the reason is here.
    Unrecorded(String),
    /// Another live process holds the run's lock: not a failure.
    Taken(String),
    /// Not run because the job it consumes did not finish.
    Blocked(String),
}

impl JobEnd {
    /// The one-line word of the summary table and the per-job line.
    pub fn word(&self) -> &'static str {
        match self {
            JobEnd::Done { skipped: true } => "done (already)",
            JobEnd::Done { skipped: false } => "done",
            JobEnd::Failed(_) => "FAILED",
            JobEnd::Interrupted(_) => "interrupted",
            JobEnd::Stopped(_) => "not started",
            JobEnd::Unrecorded(_) => "NOT STARTED",
            JobEnd::Taken(_) => "taken",
            JobEnd::Blocked(_) => "blocked",
        }
    }

    /// Why (empty for a finished job).
    pub fn detail(&self) -> &str {
        match self {
            JobEnd::Done { .. } => "",
            JobEnd::Failed(w)
            | JobEnd::Interrupted(w)
            | JobEnd::Stopped(w)
            | JobEnd::Unrecorded(w)
            | JobEnd::Taken(w)
            | JobEnd::Blocked(w) => w,
        }
    }
}

/// Runs a stage; a panic inside it becomes [`StageError::Failed`] with the panic's message, so the run
/// folder records `failed` instead of being left `running`.
pub fn run_caught(stage: impl FnOnce() -> crate::stage::Outcome) -> crate::stage::Outcome {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(stage)).unwrap_or_else(|payload| {
        let msg = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".into());
        Err(StageError::Failed(anyhow::anyhow!(
            "the stage panicked: {msg} (a bug in unas: please report it with this run's config.yaml)"
        )))
    })
}

/// Records `dir`'s run as `interrupted` with `why`, under its lock, once the process that ran it (and
/// held the lock) is gone: a run whose process died mid-run never stays `running`. `Err` says why the
/// record could not be written.
pub fn record_interrupted(dir: &Path, why: &str) -> anyhow::Result<()> {
    let _lock = RunLock::acquire(dir)?;
    Status::now(State::Interrupted {
        reason: why.to_owned(),
    })
    .write(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_stage_becomes_a_failure_with_the_panic_message() {
        let out = run_caught(|| panic!("needs an even C_out, got 3"));
        let err = out.unwrap_err();
        assert!(matches!(err, StageError::Failed(_)));
        let reason = err.reason();
        assert!(
            reason.contains("panicked") && reason.contains("even C_out, got 3"),
            "{reason}"
        );
        assert!(run_caught(|| Ok(())).is_ok());
    }
}
