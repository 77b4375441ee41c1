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
use crate::results::provenance::{host_name, Provenance};
use crate::results::{layout, parquet, read_state, ResultsRoot, State, Table};

use super::execute::job_dir;
use super::plan::{plan, Job};

/// Where a planned job stands, as `unas status` shows it: the state its run folder records (the one
/// run state, [`State`]) with the process of a running one, or why there is none to read. The JSON
/// of a row carries `state` (the label) and the variant's fields.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Standing {
    Recorded {
        #[serde(flatten)]
        state: State,
        /// The process of a `running` run.
        #[serde(flatten, skip_serializing_if = "Option::is_none")]
        process: Option<Process>,
    },
    Unrecorded(NoRun),
}

/// The process a `running` run's folder names.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Process {
    pub host: String,
    pub pid: u32,
    /// `None` when the run is on another host (its pid cannot be checked from here).
    pub alive: Option<bool>,
}

/// Why a job has no state to read.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum NoRun {
    /// Not started.
    Pending,
    /// Its search failed, diverged or is damaged.
    Blocked { by: String },
    /// A file of the folder cannot be read: which, and the way out ([`crate::results::Damaged`]).
    Damaged { why: String },
}

impl Standing {
    pub fn label(&self) -> &'static str {
        match self {
            Standing::Recorded { state, .. } => state.label(),
            Standing::Unrecorded(NoRun::Pending) => "pending",
            Standing::Unrecorded(NoRun::Blocked { .. }) => "blocked",
            Standing::Unrecorded(NoRun::Damaged { .. }) => "damaged",
        }
    }

    /// The detail column: reason, host/pid, what blocks it.
    pub fn detail(&self) -> String {
        match self {
            Standing::Recorded {
                process: Some(Process { host, pid, alive }),
                ..
            } => format!(
                "{host} pid {pid} ({})",
                match alive {
                    Some(true) => "alive",
                    Some(false) => "gone: interrupted, resumes at the next run",
                    None => "on another host",
                }
            ),
            Standing::Recorded { state, .. } => state.detail(),
            Standing::Unrecorded(NoRun::Pending) => String::new(),
            Standing::Unrecorded(NoRun::Blocked { by }) => by.clone(),
            Standing::Unrecorded(NoRun::Damaged { why }) => why.clone(),
        }
    }

    fn finished(&self) -> bool {
        self.recorded() == Some(&State::Done)
    }

    fn recorded(&self) -> Option<&State> {
        match self {
            Standing::Recorded { state, .. } => Some(state),
            Standing::Unrecorded(_) => None,
        }
    }

    /// Failed, diverged or damaged: what blocks the jobs that consume it.
    fn blocks(&self) -> bool {
        match self {
            Standing::Recorded { state, .. } => match state {
                State::Failed { .. } | State::Diverged { .. } => true,
                State::Done | State::Running | State::Interrupted { .. } => false,
            },
            Standing::Unrecorded(NoRun::Damaged { .. }) => true,
            Standing::Unrecorded(NoRun::Pending | NoRun::Blocked { .. }) => false,
        }
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
    pub state: Standing,
    /// Epochs finished, of the stage's total.
    pub epochs_done: u64,
    /// Measured seconds of a finished run.
    pub wall_s: Option<f64>,
    /// Seconds still to go, from finished runs of the same shape (`None`: no such run yet).
    pub eta_s: Option<f64>,
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
    let mut state = read_standing(&dir);
    if state == Standing::Unrecorded(NoRun::Pending) {
        if let Some(u) = job.upstream.as_ref() {
            // Run ids repeat across experiments: the upstream is this experiment's.
            let up = earlier
                .iter()
                .find(|x| x.run_id == u.run_id && x.experiment == r.experiment.name);
            if let Some(up) = up {
                if up.state.blocks() {
                    state = Standing::Unrecorded(NoRun::Blocked {
                        by: format!("its search (seed {}) is {}", up.seed, up.state.label()),
                    });
                }
            }
        }
    }
    let epochs_done = epochs_done(&dir);
    let total = super::execute::epochs_of(r, job);
    let wall_s = state.finished().then(|| summary_wall(&dir)).flatten();
    let eta_s = match (&state, state.recorded()) {
        (_, Some(State::Done)) => Some(0.0),
        (_, Some(State::Failed { .. } | State::Diverged { .. }))
        | (Standing::Unrecorded(NoRun::Blocked { .. }), _) => None,
        _ => speeds.get(&job.shape_id).map(|&per_run| {
            let left = 1.0 - (epochs_done as f64 / total.max(1) as f64).min(1.0);
            per_run * left
        }),
    };
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
    }
}

/// The state a run folder records (pending when it has none).
pub fn read_standing(dir: &Path) -> Standing {
    let status = match read_state(dir) {
        Ok(Some(s)) => s,
        Ok(None) => return Standing::Unrecorded(NoRun::Pending),
        Err(damaged) => {
            return Standing::Unrecorded(NoRun::Damaged {
                why: damaged.to_string(),
            })
        }
    };
    let process = (status.state == State::Running).then(|| {
        let prov = read_provenance(dir);
        let host = prov.as_ref().map_or_else(host_name, |p| p.host.clone());
        let pid = std::fs::read_to_string(dir.join("lock"))
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(status.pid);
        let alive = (host == host_name()).then(|| process_alive(pid as i32));
        Process { host, pid, alive }
    });
    Standing::Recorded {
        state: status.state,
        process,
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
        if !read_standing(dir).finished() {
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
