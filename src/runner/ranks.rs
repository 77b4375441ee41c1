//! `unas run FILE --ranks R`: R local rank processes of this binary run the same command as one run
//! (`dist` joins them; rank 0 writes the run folder). The ranks meet in a TCPStore on 127.0.0.1;
//! on the CPU they split the cores, with `--gpus` each gets one GPU. SIGTERM / SIGINT to this
//! launcher reach every rank (they stop together at the next step, after rank 0's checkpoint). A rank
//! that dies is noted in a file the others read when their collective fails, so the run's
//! `interrupted` reason names it; a rank 0 that dies (it records the run) has its run recorded
//! `interrupted` by the launcher. A rank other than 0 whose stage fails with an error leaves the error
//! in the run folder (`rank-R.failed`, under Slurm too), and rank 0 records the run `failed` with it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use tch::Tensor;

use super::job_end::{record_interrupted, run_caught, JobEnd};
use super::plan::Job;
use super::stages::run_stage;
use crate::config::Resolved;
use crate::dist::{Candidacy, RankEnv, Ranks, StoreAddr};
use crate::results::provenance::RankRecord;
use crate::results::{atomic, RunDir, State, Status};
use crate::stage::StageError;

/// How the launcher starts its ranks.
pub struct Launch {
    pub ranks: usize,
    /// One GPU per rank (`CUDA_VISIBLE_DEVICES`), or the CPU.
    pub gpus: Vec<String>,
    pub timeout: Duration,
}

/// A port on 127.0.0.1 that was free a moment ago (rank 0's store listens there).
fn free_port() -> Result<u16> {
    let l =
        std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port on 127.0.0.1")?;
    Ok(l.local_addr()?.port())
}

/// This process's own arguments without `--ranks` and `--gpus` (and their values): what each rank runs.
fn rank_args() -> Vec<String> {
    let mut out = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--ranks" | "--gpus" => {
                args.next();
            }
            _ if a.starts_with("--ranks=") || a.starts_with("--gpus=") => {}
            _ => out.push(a),
        }
    }
    out
}

/// Starts the ranks, forwards stop signals to them, waits for all; exits as rank 0 did. A run of
/// `runs` that rank 0 left `running` (it died) is recorded `interrupted`, naming it.
pub fn launch(how: &Launch, runs: &[RunDir]) -> Result<ExitCode> {
    let _signals = crate::train::signals::Signals::install()?;
    let port = free_port()?;
    let notes = Scratch::new("ranks")?;
    let deaths = notes.path().join("deaths");
    // the cores split between the ranks, unless the command gave --threads (each rank then has that)
    let cores = super::threads::cores();
    let given = std::env::args().any(|a| a == "--threads" || a.starts_with("--threads="));
    let threads = (!given).then(|| (cores / how.ranks).max(1).to_string());
    let mut children = Vec::with_capacity(how.ranks);
    for rank in 0..how.ranks {
        let env = RankEnv {
            rank,
            world: how.ranks,
            store: StoreAddr::Tcp {
                host: "127.0.0.1".into(),
                port,
            },
            timeout: how.timeout,
            deaths: Some(deaths.clone()),
        };
        children.push(spawn(&env, threads.as_deref(), how.gpus.get(rank))?);
    }
    let statuses = supervise(&mut children, &deaths)?;
    if !statuses[0].success() {
        record_dead_first(runs, children[0].id(), statuses[0]);
    }
    let code = statuses[0].code().unwrap_or(super::EXIT_RUN_FAILED.into());
    Ok(ExitCode::from(
        u8::try_from(code).unwrap_or(super::EXIT_RUN_FAILED),
    ))
}

/// Rank 0 (pid `pid`) ended with `status` without recording how its run ended: each of `runs` it
/// left `running` becomes `interrupted`, naming rank 0, its host and why (it resumes next time).
fn record_dead_first(runs: &[RunDir], pid: u32, status: ExitStatus) {
    let host = crate::results::provenance::host_name();
    for dir in runs {
        let running = matches!(
            Status::read(dir.path()),
            Ok(Some(Status { state: State::Running, pid: p, .. })) if p == pid
        );
        if !running {
            continue;
        }
        let why = format!(
            "rank 0 (pid {pid} on {host}) ended ({status}) in the middle of the run; it resumes from its last checkpoint at the next `unas run`"
        );
        tracing::warn!("{}: {why}", dir.path().display());
        if let Err(e) = record_interrupted(dir.path(), &why) {
            tracing::warn!("recording that failed: {e:#}");
        }
    }
}

fn spawn(env: &RankEnv, threads: Option<&str>, gpu: Option<&String>) -> Result<Child> {
    let exe = std::env::current_exe().context("finding the unas binary to start a rank")?;
    let mut c = Command::new(exe);
    c.envs(env.vars());
    if let Some(t) = threads {
        c.env("OMP_NUM_THREADS", t)
            .env("MKL_NUM_THREADS", t)
            .args(["--threads", t]);
    }
    if let Some(g) = gpu {
        c.env("CUDA_VISIBLE_DEVICES", g)
            .args(["--device", "cuda:0"]);
    }
    // each rank in a process group of its own: a terminal's Ctrl-C reaches the launcher alone, which
    // forwards it once (a second SIGINT would make a rank exit without its checkpoint)
    std::os::unix::process::CommandExt::process_group(&mut c, 0);
    if env.rank > 0 {
        // rank 0 speaks for the run; the others' progress would only repeat it
        c.env("UNAS_PLAIN_PROGRESS", "1").stdout(Stdio::null());
    }
    c.args(rank_args());
    c.spawn()
        .with_context(|| format!("starting rank {} of {}", env.rank, env.world))
}

/// Waits for every rank; forwards SIGTERM / SIGINT; writes a note for each rank that died of a
/// signal or ended while the others still ran.
fn supervise(children: &mut [Child], deaths: &Path) -> Result<Vec<ExitStatus>> {
    let mut ended: Vec<Option<ExitStatus>> = vec![None; children.len()];
    let mut forwarded = false;
    let host = crate::results::provenance::host_name();
    loop {
        if !forwarded {
            if let Some(sig) = crate::train::signals::stop_requested() {
                for c in children.iter() {
                    // SAFETY: kill(2) on a child this process started and has not reaped.
                    unsafe { libc::kill(c.id() as libc::pid_t, sig.number()) };
                }
                forwarded = true;
            }
        }
        for (rank, c) in children.iter_mut().enumerate() {
            if ended[rank].is_some() {
                continue;
            }
            if let Some(status) = c.try_wait()? {
                ended[rank] = Some(status);
                remove_scratch_of(rank, c.id());
                let others_running = ended.iter().any(Option::is_none);
                if !status.success() && others_running {
                    note_death(deaths, rank, c.id(), &host, status)?;
                }
            }
        }
        if ended.iter().all(Option::is_some) {
            return Ok(ended.into_iter().flatten().collect());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Removes what a rank that ended left in the temporary directory (its private run folders: a rank
/// killed with SIGKILL could not remove them itself).
fn remove_scratch_of(rank: usize, pid: u32) {
    let prefix = format!("unas-rank{rank}-{pid}-");
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// Appends "rank R (pid P on HOST) ended: STATUS" to the notes the surviving ranks read.
fn note_death(deaths: &Path, rank: usize, pid: u32, host: &str, status: ExitStatus) -> Result<()> {
    use std::io::Write;
    let line = format!("rank {rank} (pid {pid} on {host}) ended: {status}\n");
    tracing::warn!("{}", line.trim_end());
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(deaths)
        .and_then(|mut f| f.write_all(line.as_bytes()))
        .with_context(|| format!("writing {}", deaths.display()))
}

/// Rank 0 tells the other ranks whether it runs the job it just looked at (it holds the lock and the
/// run is not settled); one rank: nothing to tell.
pub fn tell(ranks: &Ranks, go: bool) -> Result<()> {
    let t = Tensor::from_slice(&[i64::from(go)]);
    ranks.broadcast("rank 0's word on the next job", &[&t])
}

/// What rank 0 told ([`tell`]).
fn told(ranks: &Ranks) -> Result<bool> {
    let t = Tensor::from_slice(&[0i64]);
    ranks.broadcast("rank 0's word on the next job", &[&t])?;
    Ok(i64::try_from(&t)? != 0)
}

/// Every rank's host, pid and device, in rank order (empty for one rank); each rank calls it once
/// per job, after [`tell`]. With them the ranks choose the backend of the job's CUDA tensors
/// together (NCCL where each rank has a GPU of its own and NCCL, Gloo otherwise: `dist::backend`).
pub fn members(ranks: &Ranks, device: tch::Device) -> Result<Vec<RankRecord>> {
    if ranks.world() == 1 {
        return Ok(Vec::new());
    }
    const LEN: usize = 512;
    let me = format!(
        "{}\t{}\t{}\t{}",
        crate::results::provenance::host_name(),
        std::process::id(),
        crate::device::describe(device),
        ranks.candidacy(device).encode()
    );
    let mut bytes = me.into_bytes();
    bytes.truncate(LEN); // a long reason loses its end, never its fields
    bytes.resize(LEN, 0);
    let all = ranks.gather("the ranks' identities", &Tensor::from_slice(&bytes))?;
    let all = Vec::<u8>::try_from(&all.view([-1]))?;
    let mut candidacies = Vec::with_capacity(ranks.world());
    let records = all
        .chunks(LEN)
        .enumerate()
        .map(|(rank, c)| {
            let text = String::from_utf8_lossy(c).trim_end_matches('\0').to_owned();
            let mut f = text.split('\t');
            let mut next = || f.next().unwrap_or("").to_owned();
            let (host, pid, device, candidacy) = (next(), next(), next(), next());
            candidacies.push(Candidacy::decode(&candidacy));
            RankRecord {
                rank,
                host,
                pid: pid.parse().unwrap_or(0),
                device,
            }
        })
        .collect();
    ranks.take_backend(device, &candidacies)?;
    Ok(records)
}

/// Set once a job failed on this rank: it then runs no other job (its peers may still be in that
/// job's collectives, which they leave when this process ends; a next job's first collective would
/// meet theirs instead).
static LEFT: AtomicBool = AtomicBool::new(false);

/// A job failed (or diverged) on this rank of several: it takes no further job.
pub fn leave(ranks: &Ranks) {
    if ranks.world() > 1 {
        LEFT.store(true, Ordering::Relaxed);
    }
}

/// What a rank that [`leave`]s reports for every later job (the rerun runs them).
pub fn left(ranks: &Ranks) -> Option<JobEnd> {
    LEFT.load(Ordering::Relaxed).then(|| {
        JobEnd::Unrecorded(format!(
            "not run: rank {} of {} left the run after a job failed on it (a rerun runs it)",
            ranks.rank(),
            ranks.world()
        ))
    })
}

/// A rank other than 0 runs the job rank 0 runs, on a private copy of its run folder: it restores
/// from rank 0's last checkpoint, and what it writes (the same rows, its own checkpoints) stays in
/// the copy, removed at the end. Rank 0 alone records the run; a failure here (an error, not a
/// lost peer) is left as a note in the run folder, which rank 0 records as the run's reason.
pub fn follow_job(
    r: &Resolved,
    job: &Job,
    dir: &RunDir,
    upstream: Option<RunDir>,
    device: tch::Device,
    ranks: &Ranks,
) -> Result<JobEnd> {
    if let Some(end) = left(ranks) {
        return Ok(end);
    }
    if !told(ranks)? {
        return Ok(JobEnd::Taken("rank 0 runs nothing for this job".into()));
    }
    members(ranks, device)?;
    let scratch = Scratch::new(&format!("rank{}", ranks.rank()))?;
    copy_tree(dir.path(), scratch.path())?;
    let mine = RunDir(scratch.path().to_path_buf());
    let result = run_caught(|| run_stage(r, job, &mine, upstream, device));
    log_costs(ranks);
    Ok(match result {
        Ok(()) => JobEnd::Done { skipped: false },
        Err(StageError::Interrupted(i)) => JobEnd::Interrupted(i.to_string()),
        Err(e @ StageError::RankLost(_)) => JobEnd::Interrupted(e.to_string()),
        Err(e @ (StageError::Failed(_) | StageError::Diverged(_))) => {
            let why = format!(
                "rank {} of {} (pid {} on {}) failed: {}",
                ranks.rank(),
                ranks.world(),
                std::process::id(),
                crate::results::provenance::host_name(),
                e.reason()
            );
            leave(ranks);
            if let Err(err) =
                atomic::write_atomic(&failure_note(dir.path(), ranks.rank()), why.as_bytes())
            {
                tracing::warn!("could not leave the failure note for rank 0: {err:#}");
            }
            JobEnd::Failed(why)
        }
    })
}

/// Where rank `rank` notes that its stage failed (`rank-R.failed` in the run folder: a folder every
/// rank sees, on one host or, under Slurm, on the shared filesystem).
fn failure_note(dir: &Path, rank: usize) -> PathBuf {
    dir.join(format!("rank-{rank}{FAILED_SUFFIX}"))
}

const FAILED_SUFFIX: &str = ".failed";

/// The notes of [`failure_note`] in `dir`, removed.
fn take_failure_notes(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut notes: Vec<(PathBuf, String)> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(FAILED_SUFFIX))
        .filter_map(|p| std::fs::read_to_string(&p).ok().map(|t| (p, t)))
        .collect();
    notes.sort();
    for (p, _) in &notes {
        let _ = std::fs::remove_file(p);
    }
    notes
        .into_iter()
        .map(|(_, t)| t.trim().to_owned())
        .collect()
}

/// Rank 0, before a job: notes an earlier attempt left are not this one's.
pub fn clear_failure_notes(dir: &Path) {
    take_failure_notes(dir);
}

/// Rank 0, when a peer left a collective: what the ranks that failed with an error said (the note is
/// written before the rank exits, and so before its peers see it leave; a moment is allowed for a
/// shared filesystem), or `None` when the peer died or hung instead.
pub fn peer_failure(dir: &Path) -> Option<String> {
    let start = std::time::Instant::now();
    loop {
        let notes = take_failure_notes(dir);
        if !notes.is_empty() {
            return Some(notes.join("; "));
        }
        if start.elapsed() > NOTE_WAIT {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// How long rank 0 looks for a failed peer's note.
const NOTE_WAIT: Duration = Duration::from_secs(2);

/// Logs what the ranks cost this process: time in collectives and peak memory (`make bench-ranks`
/// reads these lines).
pub fn log_costs(ranks: &Ranks) {
    if ranks.world() > 1 {
        tracing::info!(
            "rank {} of {}: {:.3} s in collectives, peak RSS {:.0} MiB",
            ranks.rank(),
            ranks.world(),
            ranks.collective_time().as_secs_f64(),
            crate::results::provenance::peak_rss_mib().unwrap_or(f64::NAN)
        );
    }
}

/// Copies the files under `from` into `to` (a file that vanishes meanwhile, a temporary being
/// renamed by rank 0, is skipped).
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    let entries = match std::fs::read_dir(from) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", from.display())),
    };
    for entry in entries {
        let entry = entry?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if entry.file_type()?.is_dir() {
            std::fs::create_dir_all(&dst)?;
            copy_tree(&src, &dst)?;
            continue;
        }
        match std::fs::copy(&src, &dst) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("copying {}", src.display())),
        }
    }
    Ok(())
}

/// A folder of this process's own in the temporary directory, removed when dropped.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new(what: &str) -> Result<Scratch> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!("unas-{what}-{}-{nanos}", std::process::id()));
        std::fs::create_dir(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Scratch(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
