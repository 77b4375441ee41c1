//! Where every planned job of a suite stands, read from its run folder (never written): done, running
//! (host, pid, whether that pid is alive), failed (reason), diverged (step, term), interrupted (reason),
//! blocked (by its failed search) or pending; with an ETA from the measured wall time of finished runs
//! of the same shape (same stage and config but another seed; `shape_id` in `provenance.json`).
//! What `unas status` prints. A folder a killed process left half-written reads as what it is.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::Resolved;
use crate::results::atomic::process_alive;
use crate::results::provenance::{host_name, Provenance, RankRecord};
use crate::results::{layout, parquet, ResultsRoot, State, Status, Table};

use super::execute::job_dir;
use super::plan::{plan, Job};

/// A job's state, as `unas status` shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Where {
    Done,
    Running {
        host: String,
        pid: u32,
        /// `None` when the run is on another host (its pid cannot be checked from here).
        alive: Option<bool>,
    },
    Failed {
        reason: String,
    },
    Diverged {
        step: u64,
        term: String,
    },
    Interrupted {
        reason: String,
    },
    Blocked {
        by: String,
    },
    Pending,
    /// The folder's `status.json` could not be read.
    Unreadable {
        why: String,
    },
}

impl Where {
    pub fn label(&self) -> &'static str {
        match self {
            Where::Done => "done",
            Where::Running { .. } => "running",
            Where::Failed { .. } => "failed",
            Where::Diverged { .. } => "diverged",
            Where::Interrupted { .. } => "interrupted",
            Where::Blocked { .. } => "blocked",
            Where::Pending => "pending",
            Where::Unreadable { .. } => "unreadable",
        }
    }

    /// The detail column: reason, host/pid, what blocks it.
    pub fn detail(&self) -> String {
        match self {
            Where::Done | Where::Pending => String::new(),
            Where::Running { host, pid, alive } => format!(
                "{host} pid {pid} ({})",
                match alive {
                    Some(true) => "alive",
                    Some(false) => "gone: interrupted, resumes at the next run",
                    None => "on another host",
                }
            ),
            Where::Failed { reason } | Where::Interrupted { reason } => reason.clone(),
            Where::Diverged { step, term } => format!("non-finite `{term}` at step {step}"),
            Where::Blocked { by } => by.clone(),
            Where::Unreadable { why } => why.clone(),
        }
    }

    fn finished(&self) -> bool {
        matches!(self, Where::Done)
    }
}

/// One planned job.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub experiment: String,
    pub tier: String,
    pub stage: &'static str,
    pub seed: u64,
    pub run_id: String,
    pub dir: PathBuf,
    #[serde(flatten)]
    pub state: Where,
    /// Epochs finished, of the stage's total.
    pub epochs_done: u64,
    /// Measured seconds of a finished run.
    pub wall_s: Option<f64>,
    /// Seconds still to go, from finished runs of the same shape (`None`: no such run yet).
    pub eta_s: Option<f64>,
    /// The processes that ran it together (`unas run --ranks R`): one run, R ranks; empty for one
    /// process or a run not started.
    pub ranks: Vec<RankRecord>,
}

/// Every planned job of `all` (in plan order), and the experiments that could not be planned.
pub fn survey(all: &[Resolved], root: &ResultsRoot) -> (Vec<Row>, Vec<(String, String)>) {
    let speeds = speeds(&root.runs());
    let mut rows: Vec<Row> = Vec::new();
    let mut unplanned = Vec::new();
    for r in all {
        let jobs = match plan(r) {
            Ok(j) => j,
            Err(e) => {
                unplanned.push((r.experiment.name.clone(), format!("{e:#}")));
                continue;
            }
        };
        for job in jobs {
            let row = row_of(root, r, &job, &rows, &speeds);
            rows.push(row);
        }
    }
    (rows, unplanned)
}

fn row_of(
    root: &ResultsRoot,
    r: &Resolved,
    job: &Job,
    earlier: &[Row],
    speeds: &HashMap<String, f64>,
) -> Row {
    let dir = job_dir(root, r, job).path().to_path_buf();
    let mut state = read_where(&dir);
    if state == Where::Pending {
        if let Some(u) = job.upstream.as_ref() {
            // Run ids repeat across experiments: the upstream is this experiment's.
            let up = earlier
                .iter()
                .find(|x| x.run_id == u.run_id && x.experiment == r.experiment.name);
            if let Some(up) = up {
                if matches!(
                    up.state,
                    Where::Failed { .. } | Where::Diverged { .. } | Where::Unreadable { .. }
                ) {
                    state = Where::Blocked {
                        by: format!("its search (seed {}) is {}", up.seed, up.state.label()),
                    };
                }
            }
        }
    }
    let epochs_done = epochs_done(&dir);
    let total = super::execute::epochs_of(r, job);
    let wall_s = state.finished().then(|| summary_wall(&dir)).flatten();
    let eta_s = match &state {
        Where::Done => Some(0.0),
        Where::Failed { .. } | Where::Diverged { .. } | Where::Blocked { .. } => None,
        _ => speeds.get(&job.shape_id).map(|&per_run| {
            let left = 1.0 - (epochs_done as f64 / total.max(1) as f64).min(1.0);
            per_run * left
        }),
    };
    let ranks = read_provenance(&dir).map(|p| p.ranks).unwrap_or_default();
    Row {
        experiment: r.experiment.name.clone(),
        tier: r.tier.as_str().into(),
        stage: job.stage.as_str(),
        seed: job.seed,
        run_id: job.run_id.clone(),
        dir,
        state,
        epochs_done,
        wall_s,
        eta_s,
        ranks,
    }
}

/// The state a run folder records (pending when it has none).
pub fn read_where(dir: &Path) -> Where {
    let status = match Status::read(dir) {
        Ok(Some(s)) => s,
        Ok(None) => return Where::Pending,
        Err(e) => {
            return Where::Unreadable {
                why: format!("{e:#}"),
            }
        }
    };
    match status.state {
        State::Done => Where::Done,
        State::Failed { reason } => Where::Failed { reason },
        State::Diverged { step, term } => Where::Diverged { step, term },
        State::Interrupted { reason } => Where::Interrupted { reason },
        State::Running => {
            let prov = read_provenance(dir);
            let host = prov.as_ref().map_or_else(host_name, |p| p.host.clone());
            let pid = std::fs::read_to_string(dir.join("lock"))
                .ok()
                .and_then(|t| t.trim().parse().ok())
                .unwrap_or(status.pid);
            let alive = (host == host_name()).then(|| process_alive(pid as i32));
            Where::Running { host, pid, alive }
        }
    }
}

fn read_provenance(dir: &Path) -> Option<Provenance> {
    let text = std::fs::read_to_string(dir.join(layout::PROVENANCE)).ok()?;
    serde_json::from_str(&text).ok()
}

fn epochs_done(dir: &Path) -> u64 {
    let p = dir.join(Table::Epochs.file_name());
    if !p.exists() {
        return 0;
    }
    parquet::read(&p, Table::Epochs).map_or(0, |df| df.height() as u64)
}

/// The run's measured wall seconds (its summary's `wall_s`, over all resumes).
fn summary_wall(dir: &Path) -> Option<f64> {
    let df = parquet::read(&dir.join(Table::Summary.file_name()), Table::Summary).ok()?;
    df.column("wall_s").ok()?.f64().ok()?.get(0)
}

/// Mean wall seconds of finished runs per shape, over every run folder under `runs`.
fn speeds(runs: &Path) -> HashMap<String, f64> {
    let mut sums: HashMap<String, (f64, u32)> = HashMap::new();
    for e in walkdir::WalkDir::new(runs)
        .min_depth(3)
        .max_depth(3)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_dir())
    {
        let dir = e.path();
        if read_where(dir) != Where::Done {
            continue;
        }
        let (Some(prov), Some(wall)) = (read_provenance(dir), summary_wall(dir)) else {
            continue;
        };
        if prov.shape_id.is_empty() {
            continue;
        }
        let s = sums.entry(prov.shape_id).or_default();
        s.0 += wall;
        s.1 += 1;
    }
    sums.into_iter()
        .map(|(k, (sum, n))| (k, sum / f64::from(n)))
        .collect()
}
