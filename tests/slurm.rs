//! `unas submit --slurm` against a real single-node Slurm (Debian's slurmctld, slurmd and munge,
//! started here with a private configuration and stopped by pid at the end): a small suite is
//! submitted as two job arrays (searches, then trainings after them), one search task gets Slurm's
//! pre-emption warning (SIGUSR1 to its batch script) once it has a checkpoint, checkpoints, requeues
//! itself and resumes; every stage lands in the shared results folder and the report builds. Where
//! Slurm is not installed or does not start, the test says so loudly and only `--dry-run` is checked.
//! With `--ranks-per-run 2` every task is an `srun` step of two ranks that meet through Slurm's
//! environment: the search is requeued the same way and resumes, the training finishes.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A Slurm cluster of this one machine, for the test's life.
struct Cluster {
    dir: tempfile::TempDir,
    children: Vec<Child>,
}

impl Cluster {
    fn conf(&self) -> PathBuf {
        self.dir.path().join("slurm.conf")
    }

    fn start() -> Result<Cluster, String> {
        for bin in [
            "/usr/sbin/munged",
            "/usr/sbin/slurmctld",
            "/usr/sbin/slurmd",
        ] {
            if !Path::new(bin).exists() {
                return Err(format!(
                    "{bin} is not installed (make test-deps installs Slurm)"
                ));
            }
        }
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let d = dir.path();
        for sub in ["state", "spool", "munge"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        let key = d.join("munge/munge.key");
        let bytes: Vec<u8> = (0..1024u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        std::fs::write(&key, bytes).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o400)).unwrap();
        std::fs::set_permissions(d.join("munge"), std::fs::Permissions::from_mode(0o700)).unwrap();
        let socket = d.join("munge/munge.socket");
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .unwrap()
            .trim()
            .to_owned();
        // ports of its own for each cluster of this process, below the 20000–31999 where the
        // ranks of a job meet (20000 + job id mod 12000)
        static CLUSTERS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = CLUSTERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 2;
        let port = (10000 + (std::process::id() % 2500) * 4 + n * 2) as u16;
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let conf = format!(
            "ClusterName=unastest\nSlurmctldHost={host}\nSlurmctldPort={port}\nSlurmdPort={}\n\
             SlurmUser=root\nSlurmdUser=root\nAuthType=auth/munge\nAuthInfo=socket={},cred_expire=10\n\
             CredType=cred/munge\nStateSaveLocation={}\nSlurmdSpoolDir={}\nSwitchType=switch/none\n\
             ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\nMpiDefault=none\n\
             SchedulerType=sched/backfill\nSelectType=select/cons_tres\nSelectTypeParameters=CR_Core\n\
             ReturnToService=2\nJobRequeue=1\nSlurmctldLogFile={d}/slurmctld.log\n\
             SlurmdLogFile={d}/slurmd.log\nSlurmctldPidFile={d}/slurmctld.pid\n\
             SlurmdPidFile={d}/slurmd.pid\nNodeName={host} CPUs={cpus} State=UNKNOWN\n\
             PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP\n",
            port + 1,
            socket.display(),
            d.join("state").display(),
            d.join("spool").display(),
            d = d.display(),
        );
        std::fs::write(d.join("slurm.conf"), conf).unwrap();
        let mut c = Cluster {
            dir,
            children: Vec::new(),
        };
        let d = c.dir.path().to_path_buf();
        let spawn = |cmd: &mut Command| cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn();
        let munged = spawn(
            Command::new("/usr/sbin/munged")
                .arg("--foreground")
                .arg("--force")
                .arg(format!("--key-file={}", key.display()))
                .arg(format!("--socket={}", socket.display()))
                .arg(format!(
                    "--pid-file={}",
                    d.join("munge/munged.pid").display()
                ))
                .arg(format!(
                    "--log-file={}",
                    d.join("munge/munged.log").display()
                ))
                .arg(format!(
                    "--seed-file={}",
                    d.join("munge/munged.seed").display()
                )),
        )
        .map_err(|e| format!("munged: {e}"))?;
        c.children.push(munged);
        std::thread::sleep(Duration::from_secs(1));
        let ctld = spawn(
            Command::new("/usr/sbin/slurmctld")
                .args(["-D", "-c", "-f"])
                .arg(c.conf()),
        )
        .map_err(|e| format!("slurmctld: {e}"))?;
        c.children.push(ctld);
        std::thread::sleep(Duration::from_secs(3));
        let slurmd = spawn(
            Command::new("/usr/sbin/slurmd")
                .args(["-D", "-f"])
                .arg(c.conf()),
        )
        .map_err(|e| format!("slurmd: {e}"))?;
        c.children.push(slurmd);
        let t0 = Instant::now();
        loop {
            let out = c.cmd("sinfo").args(["-h", "-o", "%T"]).output();
            if let Ok(o) = &out {
                let s = String::from_utf8_lossy(&o.stdout);
                if s.contains("idle") {
                    return Ok(c);
                }
            }
            if t0.elapsed() > Duration::from_secs(40) {
                let log = |f: &str| std::fs::read_to_string(d.join(f)).unwrap_or_default();
                return Err(format!(
                    "the node never became idle; sinfo: {out:?}\nslurmctld.log:\n{}\nslurmd.log:\n{}",
                    log("slurmctld.log"),
                    log("slurmd.log")
                ));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// A Slurm client command on this cluster.
    fn cmd(&self, name: &str) -> Command {
        let mut c = Command::new(name);
        c.env("SLURM_CONF", self.conf());
        c
    }

    /// (task id, state) of every task in the queue; `None` when squeue failed (slurmctld busy).
    fn queue(&self) -> Option<Vec<(String, String)>> {
        let o = self
            .cmd("squeue")
            .args(["-h", "-r", "-o", "%i %T"])
            .output()
            .ok()?;
        o.status.success().then(|| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter_map(|l| l.split_once(' '))
                .map(|(a, b)| (a.to_owned(), b.to_owned()))
                .collect()
        })
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in self.children.iter_mut().rev() {
            // SAFETY: SIGTERM to a daemon this test started, by its pid.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let _ = c.wait();
        }
    }
}

fn submit(
    results: &Path,
    suite: &Path,
    extra: &[&str],
    slurm_conf: Option<&Path>,
) -> std::process::Output {
    let s = suite.display().to_string();
    let mut args = vec![
        "submit",
        "--slurm",
        "--suite",
        &s,
        "--tier",
        "paper",
        "--cpus-per-task",
        "1",
    ];
    args.extend_from_slice(extra);
    let mut c = unas(results, &args);
    if let Some(conf) = slurm_conf {
        c.env("SLURM_CONF", conf);
    }
    output(c)
}

#[test]
fn a_suite_submitted_as_job_arrays_lands_every_stage_and_a_requeued_task_resumes() {
    let suite = suite(&[("t-a", tiny("t-a")), ("t-b", tiny("t-b"))]);
    let results = tempfile::tempdir().unwrap();
    let r = results.path();

    // --dry-run: two waves, written and not submitted.
    let dry = submit(
        r,
        suite.path(),
        &["--dry-run", "--time", "30", "--array-limit", "2"],
        None,
    );
    assert!(dry.status.success(), "{}", show(&dry));
    let text = String::from_utf8_lossy(&dry.stdout);
    assert!(text.contains("4 task(s) in 2 wave(s)"), "{text}");
    // The real submission runs one experiment (two waves of one task each): enough for the
    // dependency and the requeue, at half the cost.
    std::fs::remove_file(suite.path().join("t-b.yaml")).unwrap();
    let scripts: Vec<PathBuf> = walkdir::WalkDir::new(r.join("slurm"))
        .into_iter()
        .filter_map(|e| e.ok())
        .map(|e| e.into_path())
        .filter(|p| p.extension().is_some_and(|x| x == "sbatch"))
        .collect();
    assert_eq!(scripts.len(), 2, "{scripts:?}");
    let wave0 = std::fs::read_to_string(
        scripts
            .iter()
            .find(|p| p.ends_with("wave0.sbatch"))
            .unwrap(),
    )
    .unwrap();
    assert!(
        wave0.contains("#SBATCH --array=0-1%2") && wave0.contains("#SBATCH --time=30"),
        "{wave0}"
    );
    let tasks0 = std::fs::read_to_string(scripts[0].with_file_name("wave0.tasks")).unwrap();
    assert!(
        tasks0.lines().all(|l| l.contains("search seed 0")),
        "{tasks0}"
    );
    assert!(run_dirs(r).is_empty(), "a dry run runs nothing");

    let cluster = match Cluster::start() {
        Ok(c) => c,
        Err(why) => {
            eprintln!("\n!!! SLURM NOT TESTED: a local Slurm could not be started: {why}\n!!! only --dry-run was checked\n");
            return;
        }
    };
    let out = submit(r, suite.path(), &[], Some(&cluster.conf()));
    assert!(out.status.success(), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let ids = job_ids(&text);
    assert_eq!(ids.len(), 2, "{text}");

    // Slurm's warning to the t-a search's task once it has a checkpoint.
    let t0 = Instant::now();
    let limit = Duration::from_secs(400);
    let a_search = cluster.first_checkpoint(r, "t-a", t0, limit);
    eprintln!("checkpoint after {:?}", t0.elapsed());
    let list = std::fs::read_dir(r.join("slurm"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("wave0.tasks").is_file())
        .max()
        .unwrap();
    let index = std::fs::read_to_string(list.join("wave0.tasks"))
        .unwrap()
        .lines()
        .position(|l| l.contains("t-a search"))
        .unwrap();
    let task = format!("{}_{index}", ids[0]);
    cluster.warn(&task);
    // Slurm holds a requeued task back for the credential lifetime before it runs again
    // (`AuthInfo=cred_expire`, 120 s by default, 10 s in this cluster's slurm.conf). (Making it eligible
    // at once with `scontrol update StartTime=now` lost the task on an idle machine.)
    // Everything lands.
    cluster.drain(t0, limit);
    eprintln!("queue empty after {:?}", t0.elapsed());
    let doc = status_doc(r, suite.path());
    assert_eq!(states(&doc).len(), 2, "{doc}");
    assert!(
        states(&doc).iter().all(|(_, _, s)| s == "done"),
        "{doc}\n{}",
        slurm_output(&list)
    );
    let log = std::fs::read_to_string(a_search.join("run.log")).unwrap();
    assert_eq!(
        starts(&a_search),
        2,
        "started, requeued, started again:\n{log}"
    );
    assert!(
        log.contains("stopped after a checkpoint") && log.contains("resuming from a checkpoint"),
        "{log}"
    );
    assert!(
        slurm_output(&list).contains("requeueing"),
        "{}",
        slurm_output(&list)
    );
    let rep = output(unas(r, &["report"]));
    assert!(rep.status.success(), "{}", show(&rep));
    assert!(r.join("reports/index.html").is_file() || r.join("reports").is_dir());
}

fn slurm_output(dir: &Path) -> String {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "out"))
        .map(|p| {
            format!(
                "== {}\n{}",
                p.display(),
                std::fs::read_to_string(&p).unwrap_or_default()
            )
        })
        .collect()
}

/// The job ids `unas submit` printed, one per wave.
fn job_ids(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.split("submitted as job ").nth(1))
        .map(|l| l.split(':').next().unwrap().to_owned())
        .collect()
}

impl Cluster {
    /// The search folder of `experiment` once it holds its first checkpoint and still runs.
    fn first_checkpoint(
        &self,
        r: &Path,
        experiment: &str,
        t0: Instant,
        limit: Duration,
    ) -> PathBuf {
        loop {
            if let Some(d) = dir_of(r, experiment, "search") {
                if d.join("checkpoints/epoch-1/meta.json").is_file()
                    && status_json(&d)["state"] == "running"
                {
                    return d;
                }
            }
            assert!(
                t0.elapsed() < limit,
                "no {experiment} checkpoint; queue {:?}",
                self.queue()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the queue is empty (three polls in a row; a failed squeue does not count).
    fn drain(&self, t0: Instant, limit: Duration) {
        let mut empty = 0;
        while empty < 3 {
            empty = match self.queue() {
                Some(q) if q.is_empty() => empty + 1,
                _ => 0,
            };
            assert!(
                t0.elapsed() < limit,
                "still queued after {limit:?}: {:?}",
                self.queue()
            );
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    /// Slurm's pre-emption warning (SIGUSR1) to the batch script of array task `task`.
    fn warn(&self, task: &str) {
        let sig = self
            .cmd("scancel")
            .args(["--signal=USR1", "--batch", task])
            .output()
            .unwrap();
        assert!(
            sig.status.success(),
            "scancel: {}",
            String::from_utf8_lossy(&sig.stderr)
        );
    }
}

/// The provenance of a run folder.
fn provenance(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("provenance.json")).unwrap()).unwrap()
}

#[test]
fn with_two_ranks_per_run_each_task_is_a_two_task_srun_step_that_finishes_or_resumes_after_a_requeue(
) {
    let name = "t-ranks";
    let text = tiny(name)
        .replace("batch: 8}", "batch: 8, sub_batches: 2}")
        .replace("layers: 3}", "layers: 3, sub_batches: 2}");
    assert_eq!(text.matches("sub_batches: 2").count(), 2, "{text}");
    let suite = suite(&[(name, text)]);
    let results = tempfile::tempdir().unwrap();
    let r = results.path();
    let cluster = match Cluster::start() {
        Ok(c) => c,
        Err(why) => {
            eprintln!("\n!!! SLURM NOT TESTED: a local Slurm could not be started: {why}\n");
            let dry = submit(
                r,
                suite.path(),
                &["--dry-run", "--ranks-per-run", "2"],
                None,
            );
            assert!(dry.status.success(), "{}", show(&dry));
            return;
        }
    };
    let out = submit(
        r,
        suite.path(),
        &["--ranks-per-run", "2"],
        Some(&cluster.conf()),
    );
    assert!(out.status.success(), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let ids = job_ids(&text);
    assert_eq!(ids.len(), 2, "{text}");
    let t0 = Instant::now();
    let limit = Duration::from_secs(300);
    let search = cluster.first_checkpoint(r, name, t0, limit);
    cluster.warn(&format!("{}_0", ids[0]));
    cluster.drain(t0, limit);
    eprintln!("queue empty after {:?}", t0.elapsed());
    let list = std::fs::read_dir(r.join("slurm"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .max()
        .unwrap();
    let log = std::fs::read_to_string(search.join("run.log")).unwrap();
    let out = slurm_output(&list);
    assert_eq!(status_json(&search)["state"], "done", "{log}\n{out}");
    assert_eq!(
        starts(&search),
        2,
        "started, requeued, started again:\n{log}\n{out}"
    );
    assert!(
        log.contains("stopped after a checkpoint") && log.contains("resuming from a checkpoint"),
        "{log}"
    );
    assert!(out.contains("requeueing"), "{out}");
    let train = dir_of(r, name, "train").expect("the training ran");
    assert_eq!(status_json(&train)["state"], "done", "{out}");
    for dir in [&search, &train] {
        let prov = provenance(dir);
        assert_eq!(prov["world_size"], 2, "{}: {prov}", dir.display());
        let ranks = prov["ranks"].as_array().unwrap();
        assert_ne!(ranks[0]["pid"], ranks[1]["pid"]);
    }
}
