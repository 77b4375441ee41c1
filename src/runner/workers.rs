//! Many workers on one box: `unas reproduce --workers N` (CPU) or `--gpus 0,1,…` (one worker per GPU,
//! or per R GPUs with `--ranks-per-run R`) keeps one child process per slot busy with the suite's jobs
//! in dependency order (a training waits for its search). Each child is `unas run FILE --job ID` with
//! its share of the cores (`--threads`, and `OMP_NUM_THREADS` / `MKL_NUM_THREADS`) and, on a GPU slot,
//! `CUDA_VISIBLE_DEVICES` set to its GPU; with R ranks it is `unas run … --ranks R [--gpus a,b]`, a
//! rank launcher whose ranks each take one of the slot's GPUs (or `--threads` cores). The child takes
//! the run's lock and records the run as any run does; this process only schedules and reads
//! `status.json` afterwards. A child that crashes or is killed fails only its stage here (its
//! dependants are blocked, the others go on); its folder is recorded `interrupted`, so the next
//! `reproduce` resumes it from its last checkpoint.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::config::{DeviceChoice, Resolved};
use crate::results::atomic::process_alive;
use crate::results::{read_state, ResultsRoot, RunDir, State, Status};
use crate::train::signals;

use super::execute::{self, announce, blocked_by, job_dir, JobReport, Options};
use super::job_end::{record_interrupted, JobEnd};
use super::plan::{plan, Job};

/// One worker's place: GPUs (by their index as the machine numbers them; one per rank) or a share of
/// the CPU cores.
#[derive(Clone, Debug, PartialEq)]
pub struct Slot {
    /// Empty: the CPU.
    pub gpus: Vec<String>,
    /// Rank processes each job runs as (`unas run --ranks`); a job whose G (`sub_batches`) is 1
    /// runs as one process.
    pub ranks: usize,
    /// Threads each of its processes' libtorch may use.
    pub threads: usize,
}

/// The workers of a suite.
#[derive(Clone, Debug, PartialEq)]
pub struct Pool {
    pub slots: Vec<Slot>,
}

impl Pool {
    /// `n` CPU workers of `ranks` ranks each, sharing `cores` cores evenly (at least one thread each).
    pub fn cpu(n: usize, ranks: usize, cores: usize) -> Pool {
        let (n, ranks) = (n.max(1), ranks.max(1));
        Pool {
            slots: (0..n)
                .map(|_| Slot {
                    gpus: Vec::new(),
                    ranks,
                    threads: (cores / (n * ranks)).max(1),
                })
                .collect(),
        }
    }

    /// One worker per `ranks` GPUs of `gpus` (`0,1,2,3` with 2 ranks: workers on 0,1 and 2,3; disjoint),
    /// the CPU cores shared among the GPUs. `ranks` divides the number of GPUs (the CLI checks).
    pub fn gpus(gpus: &[String], ranks: usize, cores: usize) -> Pool {
        let per_gpu = (cores / gpus.len().max(1)).max(1);
        Pool {
            slots: gpus
                .chunks(ranks.max(1))
                .map(|g| Slot {
                    gpus: g.to_vec(),
                    ranks: ranks.max(1),
                    threads: per_gpu,
                })
                .collect(),
        }
    }
}

/// A job of the suite, with the experiment it belongs to.
struct Entry<'a> {
    r: &'a Resolved,
    job: Job,
}

/// A child at work.
struct Running<'a> {
    slot: usize,
    entry: Entry<'a>,
    child: Child,
    started: Instant,
}

/// Runs the whole suite on the pool's workers; returns one report per job, in plan order.
pub fn run_suite(
    all: &[Resolved],
    root: &ResultsRoot,
    device: Option<DeviceChoice>,
    pool: &Pool,
    opts: &Options,
) -> Vec<JobReport> {
    let mut reports = Vec::new();
    // This process obeys SIGTERM / SIGINT too: it stops starting jobs and passes the signal on.
    if let Err(e) = signals::Signals::install() {
        tracing::warn!("signals: {e:#}");
    }
    let mut pending: Vec<Entry> = Vec::new();
    for r in all {
        match plan(r) {
            Ok(jobs) => pending.extend(jobs.into_iter().map(|job| Entry { r, job })),
            Err(e) => reports.push(execute::unplanned(r, e)),
        }
    }
    let mut running: Vec<Running> = Vec::new();
    let mut forwarded = false;
    while !pending.is_empty() || !running.is_empty() {
        if signals::stop_requested().is_some() && !forwarded {
            forwarded = true;
            for w in &running {
                // SAFETY: kill on the pid of a child we spawned and have not reaped.
                unsafe { libc::kill(w.child.id() as i32, libc::SIGTERM) };
            }
        }
        let mut i = 0;
        while i < running.len() {
            match running[i].child.try_wait() {
                Ok(Some(status)) => {
                    let w = running.swap_remove(i);
                    let rep = finished(root, w, status);
                    announce(&rep);
                    reports.push(rep);
                }
                Ok(None) => i += 1,
                Err(e) => {
                    tracing::warn!("waiting for a worker: {e}");
                    i += 1;
                }
            }
        }
        start_ready(
            root,
            device,
            pool,
            opts,
            &mut pending,
            &mut running,
            &mut reports,
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    reports
}

/// Fills every free slot with the next job whose search (if any) is done; settles on the way the jobs
/// that need no worker (done, failed before, blocked, stopped).
fn start_ready<'a>(
    root: &ResultsRoot,
    device: Option<DeviceChoice>,
    pool: &Pool,
    opts: &Options,
    pending: &mut Vec<Entry<'a>>,
    running: &mut Vec<Running<'a>>,
    reports: &mut Vec<JobReport>,
) {
    let mut i = 0;
    while i < pending.len() {
        let e = &pending[i];
        // The same experiment's job of that id (run ids repeat across experiments).
        let is_up = |x: &Entry, u: &Job| {
            x.job.run_id == u.run_id && x.r.experiment.name == e.r.experiment.name
        };
        let upstream_busy = e.job.upstream.as_ref().is_some_and(|u| {
            running.iter().any(|w| is_up(&w.entry, u)) || pending.iter().any(|p| is_up(p, u))
        });
        if upstream_busy {
            i += 1;
            continue;
        }
        let quick = if let Some(sig) = signals::stop_requested() {
            Some(JobEnd::Stopped(format!(
                "stopped by {} before its turn",
                sig.name()
            )))
        } else if let Some(why) = blocked_by(root, e.r, &e.job, reports) {
            Some(JobEnd::Blocked(why))
        } else {
            execute::settled(read_state(job_dir(root, e.r, &e.job).path()), opts)
        };
        if let Some(end) = quick {
            let e = pending.remove(i);
            let rep = report(root, &e, end, 0.0);
            announce(&rep);
            reports.push(rep);
            continue;
        }
        let Some(slot) = (0..pool.slots.len()).find(|s| running.iter().all(|w| w.slot != *s))
        else {
            return;
        };
        let e = pending.remove(i);
        match spawn(root, device, &pool.slots[slot], opts, &e) {
            Ok(child) => running.push(Running {
                slot,
                entry: e,
                child,
                started: Instant::now(),
            }),
            Err(err) => {
                let rep = report(root, &e, JobEnd::Unrecorded(format!("{err:#}")), 0.0);
                announce(&rep);
                reports.push(rep);
            }
        }
    }
}

fn report(root: &ResultsRoot, e: &Entry, end: JobEnd, wall_s: f64) -> JobReport {
    let ran = !matches!(end, JobEnd::Blocked(_) | JobEnd::Stopped(_));
    JobReport {
        experiment: e.r.experiment.name.clone(),
        stage: e.job.stage.as_str(),
        seed: e.job.seed,
        run_id: e.job.run_id.clone(),
        dir: ran.then(|| job_dir(root, e.r, &e.job)),
        end,
        wall_s,
    }
}

/// `unas run FILE --tier T --job ID` for `e` on `slot`; its stderr comes through this process's, each
/// line prefixed with the worker.
fn spawn(
    root: &ResultsRoot,
    device: Option<DeviceChoice>,
    slot: &Slot,
    opts: &Options,
    e: &Entry,
) -> Result<Child> {
    let exe = std::env::current_exe().context("finding the unas binary to start a worker")?;
    let mut c = Command::new(exe);
    c.arg("--results").arg(&root.0);
    let threads = slot.threads.to_string();
    c.args(["--threads", &threads]);
    c.env("OMP_NUM_THREADS", &threads)
        .env("MKL_NUM_THREADS", &threads)
        .env("UNAS_PLAIN_PROGRESS", "1");
    // a job whose G is 1 has nothing to split: one process, on the slot's first GPU
    let ranks = if e.job.sub_batches(e.r).1 == 1 {
        1
    } else {
        slot.ranks
    };
    match (slot.gpus.as_slice(), device) {
        ([], Some(d)) => {
            c.args(["--device", &d.to_string()]);
        }
        ([], None) => {}
        ([g, ..], _) if ranks == 1 => {
            c.env("CUDA_VISIBLE_DEVICES", g)
                .args(["--device", "cuda:0"]);
        }
        (gpus, _) => {
            // the rank launcher gives each rank its GPU
            c.arg("--gpus").arg(
                gpus.iter()
                    .take(ranks)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(","),
            );
        }
    }
    c.arg("run")
        .arg(&e.r.source)
        .args(["--tier", e.r.tier.as_str(), "--job", &e.job.run_id]);
    if ranks > 1 {
        c.args(["--ranks", &ranks.to_string()]);
    }
    if opts.retry_failed {
        c.arg("--retry-failed");
    }
    c.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = c
        .spawn()
        .with_context(|| format!("starting a worker for {}", e.r.source.display()))?;
    if let Some(err) = child.stderr.take() {
        let tag = match slot.gpus.as_slice() {
            [] => format!("[worker {}] ", child.id()),
            gpus => format!("[gpu {}] ", gpus.join(",")),
        };
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(|l| l.ok()) {
                crate::progress::suspend(|| eprintln!("{tag}{line}"));
            }
        });
    }
    Ok(child)
}

/// How a worker's job ended, read from its run folder. A worker that ended without recording an end
/// (killed, crashed) leaves the run `interrupted` (it resumes next time) and fails here.
fn finished(root: &ResultsRoot, w: Running, status: ExitStatus) -> JobReport {
    let dir = job_dir(root, w.entry.r, &w.entry.job);
    let wall = w.started.elapsed().as_secs_f64();
    let pid = w.child.id();
    let end = match Status::read(dir.path()) {
        Ok(Some(s)) => match s.state {
            State::Done => JobEnd::Done { skipped: false },
            State::Failed { reason } => JobEnd::Failed(reason),
            State::Diverged { step, term } => {
                JobEnd::Failed(format!("diverged: non-finite `{term}` at step {step}"))
            }
            State::Interrupted { reason } => JobEnd::Interrupted(reason),
            // a multi-rank job's run names its rank 0, a child of the worker's launcher
            State::Running if s.pid == pid || !process_alive(s.pid as i32) => {
                worker_died(&dir, pid, status)
            }
            State::Running => JobEnd::Taken(format!(
                "{} is being run by process {} (elsewhere)",
                dir.path().display(),
                s.pid
            )),
        },
        Ok(None) if status.code() == Some(super::EXIT_CONFIG.into()) => JobEnd::Unrecorded(
            format!("its worker refused the job (bad input, {status}): run `unas run {} --tier {} --job {}` to see why", w.entry.r.source.display(), w.entry.r.tier.as_str(), &w.entry.job.run_id[..16]),
        ),
        Ok(None) => JobEnd::Unrecorded(format!("its worker ended ({status}) before recording anything")),
        Err(e) => JobEnd::Unrecorded(format!("{e:#}")),
    };
    report(root, &w.entry, end, wall)
}

/// Records a run whose worker died mid-run as `interrupted` (under its lock, which the dead worker no
/// longer holds) and says so.
fn worker_died(dir: &RunDir, pid: u32, status: ExitStatus) -> JobEnd {
    let why = format!(
        "its worker (pid {pid}) ended ({status}) in the middle of the run; it resumes from its last checkpoint at the next `unas reproduce`"
    );
    match record_interrupted(dir.path(), &why) {
        Ok(()) => JobEnd::Failed(why),
        Err(e) => JobEnd::Failed(format!("{why} (and recording that failed: {e:#})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_share_the_cores_evenly_and_each_gets_at_least_one() {
        assert_eq!(Pool::cpu(2, 1, 16).slots[1].threads, 8);
        assert_eq!(Pool::cpu(3, 1, 2).slots.len(), 3);
        assert!(Pool::cpu(3, 1, 2).slots.iter().all(|s| s.threads == 1));
        let g = Pool::gpus(&["0".into(), "3".into()], 1, 16);
        assert_eq!(g.slots[1].gpus, ["3"]);
        assert_eq!(g.slots[0].threads, 8);
    }

    #[test]
    fn with_ranks_per_run_each_worker_gets_disjoint_gpus_and_its_ranks_split_the_cores() {
        let gpus: Vec<String> = (0..4).map(|g| g.to_string()).collect();
        let g = Pool::gpus(&gpus, 2, 16);
        assert_eq!(g.slots.len(), 2);
        assert_eq!(
            (g.slots[0].gpus.clone(), g.slots[1].gpus.clone()),
            (
                vec!["0".to_string(), "1".into()],
                vec!["2".to_string(), "3".into()]
            )
        );
        assert!(g.slots.iter().all(|s| s.ranks == 2 && s.threads == 4));
        let c = Pool::cpu(1, 2, 16);
        assert_eq!(
            (c.slots.len(), c.slots[0].ranks, c.slots[0].threads),
            (1, 2, 8)
        );
        assert_eq!(Pool::cpu(2, 2, 2).slots[1].threads, 1);
    }
}
