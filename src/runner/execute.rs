//! Runs the jobs of an experiment: lock the run folder, skip what is done (and report what failed
//! before, unless asked to retry), record config, provenance, status and `run.log`, dispatch the
//! stage, and leave a status that says how it ended (and why, if it failed or was interrupted).

use std::time::Instant;

use anyhow::{Context, Result};

use crate::config::Resolved;
use crate::results::provenance::{host_name, Provenance, RankRecord, RunIdentity};
use crate::results::{
    atomic, layout, read_state, run_log, Damaged, ResultsRoot, RunDir, State, Status,
};
use crate::train::rng::Determinism;
use crate::train::signals;

use super::job_end::run_caught;
use super::job_end::JobEnd;
use super::plan::{plan, Job, Stage};
use super::ranks;
use super::stages::run_stage;
use crate::stage::StageError;

#[derive(Clone, Debug)]
pub struct JobReport {
    pub experiment: String,
    pub stage: &'static str,
    pub seed: u64,
    pub run_id: String,
    pub dir: Option<RunDir>,
    pub end: JobEnd,
    pub wall_s: f64,
}

/// How the runner treats what earlier runs left.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Rerun failed and diverged runs (otherwise they are reported as they are).
    pub retry_failed: bool,
    /// Run only the job whose run id starts with this (`unas run --job ID`).
    pub only: Option<String>,
}

/// The folder of one job of `r`.
pub fn job_dir(root: &ResultsRoot, r: &Resolved, job: &Job) -> RunDir {
    root.run_dir(
        &r.experiment.name,
        r.tier.as_str(),
        job.stage.as_str(),
        job.seed,
        &job.run_id,
    )
}

/// Why `job` cannot run yet, if its upstream search did not finish (here, or in the folder).
pub fn blocked_by(
    root: &ResultsRoot,
    r: &Resolved,
    job: &Job,
    reports: &[JobReport],
) -> Option<String> {
    let u = job.upstream.as_ref()?;
    // Run ids are per stage content: two experiments may share one, in different folders.
    let mine = |rep: &&JobReport| rep.run_id == u.run_id && rep.experiment == r.experiment.name;
    match reports.iter().find(mine) {
        Some(rep) => match rep.end {
            JobEnd::Done { .. } => None,
            JobEnd::Taken(_) => Some(format!(
                "its search (seed {}) is being run by another process",
                rep.seed
            )),
            _ => Some(format!("its search (seed {}) did not finish", rep.seed)),
        },
        None => match read_state(job_dir(root, r, u).path()) {
            Ok(Some(Status {
                state: State::Done, ..
            })) => None,
            Ok(Some(s)) => Some(format!("its search (seed {}) is {}", u.seed, s.label())),
            Ok(None) => Some(format!("its search (seed {}) has not run", u.seed)),
            Err(damaged) => Some(format!("its search (seed {}): {damaged}", u.seed)),
        },
    }
}

/// The jobs of `r` that `opts` selects, or the reason planning failed.
pub fn selected_jobs(r: &Resolved, opts: &Options) -> Result<Vec<Job>> {
    let mut jobs = plan(r)?;
    if let Some(id) = &opts.only {
        jobs.retain(|j| j.run_id.starts_with(id.as_str()));
    }
    Ok(jobs)
}

/// Runs every job of `r`; one failure does not stop the others (only their dependants). A stop signal
/// does: the running job checkpoints, and the ones after it are not started.
pub fn run_experiment(
    r: &Resolved,
    root: &ResultsRoot,
    device: tch::Device,
    opts: &Options,
) -> Vec<JobReport> {
    if let Err(e) = signals::Signals::install() {
        tracing::warn!("signals: {e:#}");
    }
    let jobs = match selected_jobs(r, opts) {
        Ok(jobs) => jobs,
        Err(e) => return vec![unplanned(r, e)],
    };
    let mut reports: Vec<JobReport> = Vec::new();
    for job in jobs {
        let t0 = Instant::now();
        let dir = job_dir(root, r, &job);
        let end = if let Some(sig) = signals::stop_requested() {
            JobEnd::Stopped(format!("stopped by {} before its turn", sig.name()))
        } else if let Some(why) = blocked_by(root, r, &job, &reports) {
            JobEnd::Blocked(why)
        } else {
            match run_job(r, &job, &dir, upstream_dir(root, r, &job), device, opts) {
                Ok(end) => end,
                Err(e) => JobEnd::Unrecorded(format!("{e:#}")),
            }
        };
        let ran = !matches!(end, JobEnd::Blocked(_) | JobEnd::Stopped(_));
        let rep = JobReport {
            experiment: r.experiment.name.clone(),
            stage: job.stage.as_str(),
            seed: job.seed,
            run_id: job.run_id.clone(),
            dir: ran.then_some(dir),
            end,
            wall_s: t0.elapsed().as_secs_f64(),
        };
        announce(&rep);
        reports.push(rep);
    }
    reports
}

/// The report of an experiment that could not be planned (its dataset is missing).
pub fn unplanned(r: &Resolved, e: anyhow::Error) -> JobReport {
    JobReport {
        experiment: r.experiment.name.clone(),
        stage: "(all)",
        seed: 0,
        run_id: String::new(),
        dir: None,
        end: JobEnd::Unrecorded(format!("{e:#}")),
        wall_s: 0.0,
    }
}

/// One line per finished job as it happens (the summary table comes at the end).
pub fn announce(rep: &JobReport) {
    let what = match &rep.end {
        JobEnd::Unrecorded(why) => format!("could not start ({why})"),
        JobEnd::Taken(why) => format!("not run here: {why}"),
        JobEnd::Interrupted(why) => format!("interrupted ({why})"),
        end => end.word().to_owned(),
    };
    crate::progress::suite_job_done();
    crate::progress::suspend(|| {
        eprintln!(
            "{} {} seed {}: {what} in {:.1} s",
            rep.experiment, rep.stage, rep.seed, rep.wall_s
        )
    });
}

fn upstream_dir(root: &ResultsRoot, r: &Resolved, job: &Job) -> Option<RunDir> {
    job.upstream.as_deref().map(|u| job_dir(root, r, u))
}

/// Epochs the stage of `job` runs (for its progress bar).
pub fn epochs_of(r: &Resolved, job: &Job) -> u64 {
    let e = &r.experiment;
    match job.stage {
        Stage::Search => e
            .search
            .as_ref()
            .map_or(0, |s| u64::from(s.epochs.warmup + s.epochs.search)),
        Stage::Train => e
            .train
            .as_ref()
            .map_or(0, |t| u64::from(crate::config::TrainRecipe::of(t).epochs)),
    }
}

/// What an earlier run left ([`read_state`] of its folder), if it settles the job without running it:
/// a damaged folder is reported with its way out, never run over.
pub fn settled(found: Result<Option<Status>, Damaged>, opts: &Options) -> Option<JobEnd> {
    let status = match found {
        Ok(status) => status,
        Err(damaged) => return Some(JobEnd::Failed(damaged.to_string())),
    };
    match status?.state {
        State::Done => Some(JobEnd::Done { skipped: true }),
        State::Failed { reason } if !opts.retry_failed => Some(JobEnd::Failed(format!(
            "{reason} (recorded by an earlier run; `--retry-failed` runs it again)"
        ))),
        State::Diverged { step, term } if !opts.retry_failed => Some(JobEnd::Failed(format!(
            "diverged: non-finite `{term}` at step {step} (recorded by an earlier run; `--retry-failed` runs it again)"
        ))),
        _ => None,
    }
}

fn run_job(
    r: &Resolved,
    job: &Job,
    dir: &RunDir,
    upstream: Option<RunDir>,
    device: tch::Device,
    opts: &Options,
) -> Result<JobEnd> {
    // With several ranks, rank 0 decides and records; the others follow its word.
    let ranks = crate::dist::ranks();
    if !ranks.is_first() {
        return ranks::follow_job(r, job, dir, upstream, device, ranks);
    }
    if let Some(end) = ranks::left(ranks) {
        return Ok(end);
    }
    // Lock first, then decide: two processes must never both start the same run.
    let _lock = match crate::results::atomic::RunLock::acquire(dir.path()) {
        Ok(lock) => lock,
        Err(e) => {
            ranks::tell(ranks, false)?;
            return match e.downcast_ref::<crate::results::atomic::LockTaken>() {
                Some(taken) => Ok(JobEnd::Taken(taken.to_string())),
                None => Err(e),
            };
        }
    };
    if let Some(end) = settled(read_state(dir.path()), opts) {
        ranks::tell(ranks, false)?;
        return Ok(end);
    }
    // Half-written files of a killed run (never read: the finished ones were renamed into place).
    let stale = atomic::remove_stale_temps(dir.path())?;
    let _log = run_log::attach(dir.path())?;
    tracing::info!(
        pid = std::process::id(),
        host = %host_name(),
        "run start: {} {} seed {} ({})",
        r.experiment.name,
        job.stage.as_str(),
        job.seed,
        dir.path().display()
    );
    if stale > 0 {
        tracing::info!(files = stale, "removed temporaries a killed run left");
    }
    let label = format!(
        "{} {} seed {}",
        r.experiment.name,
        job.stage.as_str(),
        job.seed
    );
    if ranks.world() > 1 {
        ranks::clear_failure_notes(dir.path());
    }
    ranks::tell(ranks, true)?;
    let members = match ranks::members(ranks, device) {
        Ok(m) => m,
        // every rank reached the job, but they cannot run it as asked (UNAS_DIST_BACKEND=nccl where
        // NCCL cannot carry it): recorded, as a stage that fails is
        Err(e) if e.downcast_ref::<crate::dist::PeerLost>().is_none() => {
            let why = format!("{e:#}");
            Status::now(State::Failed {
                reason: why.clone(),
            })
            .write(dir.path())?;
            return Ok(JobEnd::Failed(why));
        }
        Err(e) => return Err(e),
    };
    crate::progress::stage_begin(&label, epochs_of(r, job));
    let end = record_and_run(r, job, dir, upstream, device, members);
    if matches!(end, Ok(JobEnd::Failed(_))) {
        ranks::leave(ranks);
    }
    ranks::log_costs(ranks);
    crate::progress::stage_end();
    if let Ok(end) = &end {
        tracing::info!("run end: {} {}", end.word(), end.detail());
    }
    end
}

/// Writes config, provenance and `running`, runs the stage, and records how it ended.
fn record_and_run(
    r: &Resolved,
    job: &Job,
    dir: &RunDir,
    upstream: Option<RunDir>,
    device: tch::Device,
    members: Vec<RankRecord>,
) -> Result<JobEnd> {
    atomic::write_atomic(&dir.file(layout::CONFIG), r.to_yaml().as_bytes())
        .context("writing config.yaml")?;
    let who = RunIdentity {
        experiment: &r.experiment.name,
        tier: r.tier.as_str(),
        stage: job.stage.as_str(),
        config_id: &r.id,
        run_id: &job.run_id,
        seed: job.seed,
        deterministic: r.experiment.deterministic,
        data_fingerprint: &job.fingerprint,
        shape_id: &job.shape_id,
        precision: r.experiment.precision.as_str(),
    };
    let mut prov = Provenance::collect(&who, device);
    prov.world_size = members.len().max(1);
    prov.rank_backend = (members.len() > 1).then(|| crate::dist::ranks().backend());
    prov.ranks = members;
    // the switches the stage runs under, read back from libtorch (the stage applies the same again)
    let d = Determinism::apply(r.experiment.deterministic);
    (
        prov.cudnn_benchmark,
        prov.deterministic_algorithms,
        prov.cudnn_deterministic,
    ) = (
        d.cudnn_benchmark,
        d.deterministic_algorithms,
        d.cudnn_deterministic,
    );
    prov.write(dir.path())?;
    Status::now(State::Running).write(dir.path())?;

    let result = run_caught(|| run_stage(r, job, dir, upstream, device));

    prov.end(device);
    prov.write(dir.path())?;
    match result {
        Ok(()) => {
            Status::now(State::Done).write(dir.path())?;
            Ok(JobEnd::Done { skipped: false })
        }
        Err(e) => {
            // a peer that left because its stage failed with an error: the run failed with that error
            let e = match e {
                StageError::RankLost(lost) => match ranks::peer_failure(dir.path()) {
                    Some(why) => StageError::Failed(anyhow::anyhow!(why)),
                    None => StageError::RankLost(lost),
                },
                e => e,
            };
            // A non-finite value is `diverged` (with the step and the term), a signal `interrupted`.
            Status::now(e.state()).write(dir.path())?;
            Ok(match e {
                StageError::Interrupted(i) => JobEnd::Interrupted(i.to_string()),
                e @ StageError::RankLost(_) => JobEnd::Interrupted(e.to_string()),
                e => JobEnd::Failed(e.reason()),
            })
        }
    }
}
