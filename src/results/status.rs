//! The `status.json` of a run folder: running, done, failed (with the reason), diverged (with the step
//! and the term that went non-finite) or interrupted (stopped by a signal after a checkpoint, or its
//! worker killed). Written atomically at every change. An interrupted run, and a folder whose status
//! says `running` but whose lock's process is gone, resume at the next `unas reproduce`; a failed or
//! diverged one is reported and rerun only with `--retry-failed`.

use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::atomic;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum State {
    Running,
    Done,
    Failed {
        reason: String,
    },
    Diverged {
        step: u64,
        term: String,
    },
    /// Stopped before it finished, with its checkpoint kept: the next run resumes it.
    Interrupted {
        reason: String,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Status {
    #[serde(flatten)]
    pub state: State,
    pub pid: u32,
    /// RFC 3339, UTC.
    pub updated_at: String,
}

impl Status {
    pub fn now(state: State) -> Status {
        Status {
            state,
            pid: std::process::id(),
            updated_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        }
    }

    pub fn write(&self, dir: &Path) -> Result<()> {
        atomic::write_json(&dir.join(super::layout::STATUS), self)
    }

    /// `None` if the folder has no status yet.
    pub fn read(dir: &Path) -> Result<Option<Status>> {
        let p = dir.join(super::layout::STATUS);
        match std::fs::read_to_string(&p) {
            Ok(t) => Ok(Some(
                serde_json::from_str(&t).with_context(|| format!("reading {}", p.display()))?,
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", p.display())),
        }
    }

    pub fn label(&self) -> &'static str {
        match self.state {
            State::Running => "running",
            State::Done => "done",
            State::Failed { .. } => "failed",
            State::Diverged { .. } => "diverged",
            State::Interrupted { .. } => "interrupted",
        }
    }
}

/// A stage stopped by a signal after saving a checkpoint (recorded as [`State::Interrupted`]).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("stopped by {signal} after a checkpoint at epoch {epoch} — run again to resume")]
pub struct Interrupted {
    /// `SIGTERM` or `SIGINT`.
    pub signal: String,
    pub epoch: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trips_with_its_reason() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Status::read(dir.path()).unwrap(), None);
        let s = Status::now(State::Diverged {
            step: 17,
            term: "f_relaxed".into(),
        });
        s.write(dir.path()).unwrap();
        let back = Status::read(dir.path()).unwrap().unwrap();
        assert_eq!(back, s);
        let text = std::fs::read_to_string(dir.path().join("status.json")).unwrap();
        assert!(text.contains("\"state\": \"diverged\""), "{text}");
        let i = Status::now(State::Interrupted {
            reason: "stopped by SIGINT".into(),
        });
        i.write(dir.path()).unwrap();
        assert_eq!(
            Status::read(dir.path()).unwrap().unwrap().label(),
            "interrupted"
        );
    }
}
