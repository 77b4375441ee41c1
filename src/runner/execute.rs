//! Runs the jobs of an experiment: skip what is done, lock the run folder, record config, provenance
//! and status, dispatch the stage, and leave a status that says how it ended (and why, if it failed).

use std::time::Instant;

use anyhow::{Context, Result};

use crate::config::Resolved;
use crate::results::provenance::{now_rfc3339, Provenance, RunIdentity};
use crate::results::{atomic, layout, ResultsRoot, RunDir, State, Status};

use super::plan::{plan, Job};
use super::stages::run_stage;
use crate::stage::StageError;

/// How one job ended, for the summary table.
#[derive(Clone, Debug, PartialEq)]
pub enum JobEnd {
    Done {
        skipped: bool,
    },
    /// The stage ran and failed or diverged: its run folder's `status.json` says why.
    Failed(String),
    /// The run could not start or could not be recorded (its folder could not be created or written),
    /// so no `status.json` says why: the reason is here.
    Unrecorded(String),
    /// Another live process holds the run's lock: not a failure.
    Taken(String),
    /// Not run because the job it consumes did not finish.
    Blocked(String),
}

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

/// Runs every job of `r`; one failure does not stop the others (only their dependants).
pub fn run_experiment(r: &Resolved, root: &ResultsRoot, device: tch::Device) -> Vec<JobReport> {
    let mut reports: Vec<JobReport> = Vec::new();
    for job in plan(r) {
        let t0 = Instant::now();
        let blocked = job.upstream.as_ref().and_then(|u| {
            reports
                .iter()
                .find(|rep| rep.run_id == u.run_id)
                .filter(|rep| !matches!(rep.end, JobEnd::Done { .. }))
                .map(|rep| match rep.end {
                    JobEnd::Taken(_) => format!(
                        "its search (seed {}) is being run by another process",
                        rep.seed
                    ),
                    _ => format!("its search (seed {}) did not finish", rep.seed),
                })
        });
        let dir = root.run_dir(
            &r.experiment.name,
            r.tier.as_str(),
            job.stage.as_str(),
            job.seed,
            &job.run_id,
        );
        let end = match blocked {
            Some(why) => JobEnd::Blocked(why),
            None => match run_job(r, &job, &dir, upstream_dir(root, r, &job), device) {
                Ok(end) => end,
                Err(e) => JobEnd::Unrecorded(format!("{e:#}")),
            },
        };
        let ran = !matches!(end, JobEnd::Blocked(_));
        // One line per finished job as it happens (the summary table comes at the end).
        let what = match &end {
            JobEnd::Done { skipped: true } => "done (already)".to_owned(),
            JobEnd::Done { skipped: false } => "done".to_owned(),
            JobEnd::Failed(_) => "FAILED".to_owned(),
            JobEnd::Unrecorded(why) => format!("could not start ({why})"),
            JobEnd::Taken(why) => format!("not run here: {why}"),
            JobEnd::Blocked(_) => "blocked".to_owned(),
        };
        eprintln!(
            "{} {} seed {}: {what} in {:.1} s",
            r.experiment.name,
            job.stage.as_str(),
            job.seed,
            t0.elapsed().as_secs_f64()
        );
        reports.push(JobReport {
            experiment: r.experiment.name.clone(),
            stage: job.stage.as_str(),
            seed: job.seed,
            run_id: job.run_id.clone(),
            dir: ran.then_some(dir),
            end,
            wall_s: t0.elapsed().as_secs_f64(),
        });
    }
    reports
}

fn upstream_dir(root: &ResultsRoot, r: &Resolved, job: &Job) -> Option<RunDir> {
    job.upstream.as_ref().map(|u| {
        root.run_dir(
            &r.experiment.name,
            r.tier.as_str(),
            u.stage.as_str(),
            u.seed,
            &u.run_id,
        )
    })
}

fn run_job(
    r: &Resolved,
    job: &Job,
    dir: &RunDir,
    upstream: Option<RunDir>,
    device: tch::Device,
) -> Result<JobEnd> {
    // Lock first, then decide: two processes must never both start the same run.
    let _lock = match crate::results::atomic::RunLock::acquire(dir.path()) {
        Ok(lock) => lock,
        Err(e) => {
            return match e.downcast_ref::<crate::results::atomic::LockTaken>() {
                Some(taken) => Ok(JobEnd::Taken(taken.to_string())),
                None => Err(e),
            }
        }
    };
    if let Some(Status {
        state: State::Done, ..
    }) = Status::read(dir.path())?
    {
        return Ok(JobEnd::Done { skipped: true });
    }
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
    };
    let mut prov = Provenance::collect(&who, device);
    prov.write(dir.path())?;
    Status::now(State::Running).write(dir.path())?;

    let result = run_caught(|| run_stage(r, job, dir, upstream, device));

    prov.ended_at = Some(now_rfc3339());
    prov.write(dir.path())?;
    match result {
        Ok(()) => {
            Status::now(State::Done).write(dir.path())?;
            Ok(JobEnd::Done { skipped: false })
        }
        Err(e) => {
            // A non-finite value is `diverged` (with the step and the term), not a crash.
            Status::now(e.state()).write(dir.path())?;
            Ok(JobEnd::Failed(e.reason()))
        }
    }
}

/// Runs a stage; a panic inside it becomes [`StageError::Failed`] with the panic's message, so the run
/// folder records `failed` instead of being left `running`.
fn run_caught(stage: impl FnOnce() -> crate::stage::Outcome) -> crate::stage::Outcome {
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
