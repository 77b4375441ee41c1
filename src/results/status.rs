//! The `status.json` of a run folder: running, done, failed (with the reason), diverged (with the step
//! and the term that went non-finite) or interrupted (stopped by a signal after a checkpoint, or its
//! worker killed). Written atomically at every change. An interrupted run, and a folder whose status
//! says `running` but whose lock's process is gone, resume at the next `unas reproduce`; a failed or
//! diverged one is reported and rerun only with `--retry-failed`.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::{atomic, layout, parquet, Table};

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
        self.state.label()
    }
}

impl State {
    /// The one word `unas run`, `unas status` and the report show.
    pub fn label(&self) -> &'static str {
        match self {
            State::Running => "running",
            State::Done => "done",
            State::Failed { .. } => "failed",
            State::Diverged { .. } => "diverged",
            State::Interrupted { .. } => "interrupted",
        }
    }

    /// The reason in words (empty for a finished run).
    pub fn detail(&self) -> String {
        match self {
            State::Done => String::new(),
            State::Running => "still running, or interrupted (run it again to resume)".into(),
            State::Failed { reason } | State::Interrupted { reason } => reason.clone(),
            State::Diverged { step, term } => format!("non-finite `{term}` at step {step}"),
        }
    }
}

/// A file of a run folder that cannot be read (cut short by a disk error, edited by hand): which
/// file, why, and the command that recomputes that one run. `unas run`, `unas status` and the report
/// print it the same way (its `Display`).
#[derive(Clone, Debug, PartialEq)]
pub struct Damaged {
    pub file: PathBuf,
    pub why: String,
    /// `unas run <experiment file> --tier <tier> [--set …] --job <run id>`.
    pub rerun: String,
}

impl fmt::Display for Damaged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dir = self.file.parent().unwrap_or(Path::new("."));
        write!(
            f,
            "{} is damaged ({}); to recompute this one run, remove its folder {} and run `{}`",
            self.file.display(),
            self.why,
            dir.display(),
            self.rerun
        )
    }
}

/// What a run folder says about its run, read the one way `unas run` (skip-done), `unas status` and
/// the report share: `Ok(None)` before its first start, else its status, unless `status.json` or, for
/// a finished run, one of its tables cannot be read: then the damaged file.
pub fn read_state(dir: &Path) -> Result<Option<Status>, Damaged> {
    let damaged = |file: PathBuf, e: anyhow::Error| {
        // the error's causes without the ones that only repeat the file's name
        let named = file.display().to_string();
        let causes: Vec<String> = e.chain().map(|c| c.to_string()).collect();
        let own: Vec<&str> = causes
            .iter()
            .filter(|c| !c.contains(&named))
            .map(String::as_str)
            .collect();
        Damaged {
            why: if own.is_empty() {
                e.root_cause().to_string()
            } else {
                own.join(": ")
            },
            file,
            rerun: rerun_command(dir),
        }
    };
    let status = Status::read(dir).map_err(|e| damaged(dir.join(layout::STATUS), e))?;
    if let Some(Status {
        state: State::Done, ..
    }) = &status
    {
        for table in Table::ALL.into_iter().chain(Table::OPTIONAL) {
            let path = dir.join(table.file_name());
            if path.exists() {
                parquet::read(&path, table).map_err(|e| damaged(path.clone(), e))?;
            }
        }
    }
    Ok(status)
}

/// The command that recomputes the run in `dir` alone: the experiment file, tier and `--set`s from
/// the header of its `config.yaml` (`Resolved::to_yaml`), the run id from the folder's name
/// (`<stage>-seed<seed>-<run id>`).
pub fn rerun_command(dir: &Path) -> String {
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned());
    let id = name
        .as_deref()
        .and_then(|n| n.rsplit('-').next())
        .unwrap_or("<run id>")
        .to_owned();
    let tier_dir = dir.parent().and_then(|p| p.file_name());
    let mut source = "<experiment file>".to_owned();
    let mut tier = tier_dir.map_or_else(|| "<tier>".into(), |t| t.to_string_lossy().into_owned());
    let mut sets = String::new();
    let header = std::fs::read_to_string(dir.join(layout::CONFIG)).unwrap_or_default();
    for line in header.lines().take_while(|l| l.starts_with('#')) {
        if let Some(rest) = line.strip_prefix("# resolved from ") {
            if let Some((src, t)) = rest.rsplit_once(" (tier ") {
                source = src.to_owned();
                tier = t.trim_end_matches(')').to_owned();
            }
        } else if let Some(set) = line.strip_prefix("# --set ") {
            sets.push_str(&format!(" --set {}", shell_word(set)));
        }
    }
    format!(
        "unas run {} --tier {tier}{sets} --job {id}",
        shell_word(&source)
    )
}

/// `w`, single-quoted when a shell would split or expand it.
fn shell_word(w: &str) -> String {
    if w.chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
    {
        w.to_owned()
    } else {
        format!("'{}'", w.replace('\'', "'\\''"))
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
    fn the_rerun_command_is_the_one_that_made_the_run_for_that_run_alone() {
        let root = tempfile::tempdir().unwrap();
        let dir = root
            .path()
            .join("runs/c10/smoke/search-seed0-0123456789abcdef");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join(layout::CONFIG),
            "# resolved from experiments/my c10.yaml (tier smoke)\n# id 99\n\
             # --set search.batch=8\n# --set description=a b\nname: c10\n",
        )
        .unwrap();
        assert_eq!(
            rerun_command(&dir),
            "unas run 'experiments/my c10.yaml' --tier smoke --set search.batch=8 \
             --set 'description=a b' --job 0123456789abcdef"
        );
        // a cut-short status.json is damaged, named, with that command
        std::fs::write(dir.join(layout::STATUS), "{\"state\": \"do").unwrap();
        let d = read_state(&dir).unwrap_err();
        assert_eq!(d.file, dir.join(layout::STATUS));
        assert!(d.to_string().contains(&d.rerun), "{d}");
        assert!(!d.why.contains("status.json"), "the name is said once: {d}");
    }

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
