//! `unas submit --slurm`: the suite's unfinished jobs as Slurm job arrays, one array per dependency
//! wave (searches, then the trainings of their genotypes) with `--dependency=afterok` between waves.
//! Each array task runs `unas run FILE --tier T --job ID` on the shared results folder, which takes the
//! run's lock and records it like any run. `--signal=B:USR1@120` warns the batch script two minutes
//! before the time limit: it passes SIGTERM to unas (checkpoint, `interrupted`), then
//! `scontrol requeue`s its own task, which resumes from the checkpoint when it runs again.
//! The scripts and the task lists are written under `results/slurm/<time>/`; `--dry-run` stops there.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::config::Resolved;
use crate::results::{atomic, read_state, ResultsRoot};

use super::execute::{job_dir, settled, Options};
use super::plan::{plan, Job};

/// What each array task asks Slurm for.
#[derive(Clone, Debug, Default)]
pub struct SlurmOptions {
    pub partition: Option<String>,
    /// `--time` (e.g. `4:00:00`).
    pub time: Option<String>,
    pub gpus_per_task: Option<u32>,
    pub cpus_per_task: Option<u32>,
    /// At most this many tasks of an array at once (`%K`).
    pub array_limit: Option<u32>,
    /// Each task an `srun` step of this many ranks (`--ranks-per-run`; 1: the task runs unas itself).
    pub ranks_per_run: usize,
    pub dry_run: bool,
}

/// One array task: the experiment file, its tier, the job's run id and the ranks it runs as.
#[derive(Clone, Debug, PartialEq)]
pub struct Task {
    pub file: PathBuf,
    pub tier: String,
    pub run_id: String,
    /// `--ranks-per-run`, or 1 for a job whose G (`sub_batches`) is 1: nothing to split.
    pub ranks: usize,
    pub label: String,
}

/// The unfinished jobs of `all` in waves: a job is in the wave after the one of the search it
/// consumes (a search that is already done puts its training in the first wave).
pub fn waves(
    all: &[Resolved],
    root: &ResultsRoot,
    opts: &Options,
    ranks: usize,
) -> Result<Vec<Vec<Task>>> {
    let mut waves: Vec<Vec<Task>> = Vec::new();
    for r in all {
        let jobs = plan(r)?;
        let mut wave_of: Vec<(String, usize)> = Vec::new();
        for job in &jobs {
            if settled(read_state(job_dir(root, r, job).path()), opts).is_some() {
                continue;
            }
            let w = job
                .upstream
                .as_ref()
                .and_then(|u| wave_of.iter().find(|(id, _)| *id == u.run_id))
                .map_or(0, |(_, w)| w + 1);
            wave_of.push((job.run_id.clone(), w));
            if waves.len() <= w {
                waves.resize(w + 1, Vec::new());
            }
            waves[w].push(task(r, job, ranks)?);
        }
    }
    Ok(waves)
}

fn task(r: &Resolved, job: &Job, ranks: usize) -> Result<Task> {
    Ok(Task {
        file: std::fs::canonicalize(&r.source)
            .with_context(|| format!("finding {}", r.source.display()))?,
        tier: r.tier.as_str().into(),
        run_id: job.run_id.clone(),
        ranks: if job.sub_batches(r).1 == 1 {
            1
        } else {
            ranks.max(1)
        },
        label: format!(
            "{} {} seed {}",
            r.experiment.name,
            job.stage.as_str(),
            job.seed
        ),
    })
}

/// The sbatch script of wave `k` whose tasks are listed (one per line) in `list`.
pub fn script(
    k: usize,
    n: usize,
    list: &Path,
    unas: &Path,
    results: &Path,
    out_dir: &Path,
    o: &SlurmOptions,
) -> String {
    let mut s = String::from("#!/bin/bash\n");
    let mut sb = |line: String| {
        let _ = writeln!(s, "#SBATCH {line}");
    };
    sb(format!("--job-name=unas-wave{k}"));
    let limit = o.array_limit.map(|l| format!("%{l}")).unwrap_or_default();
    sb(format!("--array=0-{}{limit}", n.saturating_sub(1)));
    if let Some(p) = &o.partition {
        sb(format!("--partition={p}"));
    }
    if let Some(t) = &o.time {
        sb(format!("--time={t}"));
    }
    if o.ranks_per_run > 1 {
        sb(format!("--ntasks={}", o.ranks_per_run));
    }
    sb(format!("--cpus-per-task={}", o.cpus_per_task.unwrap_or(1)));
    if let Some(g) = o.gpus_per_task {
        sb(format!("--gpus-per-task={g}"));
    }
    sb("--signal=B:USR1@120".into());
    sb("--requeue".into());
    sb("--open-mode=append".into());
    sb(format!("--output={}/wave{k}-%A_%a.out", out_dir.display()));
    // the device is the experiment's (`auto`: the task's GPU, which Slurm binds to it)
    let unas = format!(
        r#"{} --results {} --threads "${{SLURM_CPUS_PER_TASK:-1}}""#,
        shell_quote(unas),
        shell_quote(results)
    );
    let run = r#"run "$file" --tier "$tier" --job "$job""#;
    let (start, stop) = start_and_stop(o.ranks_per_run, &unas, run);
    let _ = write!(
        s,
        r#"set -u
# Task i runs line i+1 of the list: experiment file, tier, run id, ranks, label (tab-separated).
IFS=$'\t' read -r file tier job ranks label < <(sed -n "$((SLURM_ARRAY_TASK_ID + 1))p" {list})
export OMP_NUM_THREADS=${{SLURM_CPUS_PER_TASK:-1}} MKL_NUM_THREADS=${{SLURM_CPUS_PER_TASK:-1}}
{start}
pid=$!
echo "unas: task ${{SLURM_ARRAY_JOB_ID}}_${{SLURM_ARRAY_TASK_ID}} runs $label on $ranks rank(s) (pid $pid)"
# Two minutes before the time limit: checkpoint (SIGTERM → `interrupted`), then requeue this task,
# which resumes from the checkpoint.
requeue() {{
  echo "unas: SIGUSR1 from Slurm: checkpointing and requeueing ${{SLURM_ARRAY_JOB_ID}}_${{SLURM_ARRAY_TASK_ID}}"
  {stop}
  wait "$pid"
  scontrol requeue "${{SLURM_ARRAY_JOB_ID}}_${{SLURM_ARRAY_TASK_ID}}"
  exit 0
}}
trap requeue USR1
wait "$pid"
"#,
        list = shell_quote(list),
    );
    s
}

/// The script's lines that start unas in the background (`pid=$!` after them) and that stop it.
fn start_and_stop(ranks_per_run: usize, unas: &str, run: &str) -> (String, &'static str) {
    // One rank: unas itself. R ranks: an srun step of R tasks that meet through Slurm's environment,
    // stopped by SIGTERM to the step (scancel signals every step of the job, not this script).
    if ranks_per_run > 1 {
        (
            format!(
                r#"if [ "$ranks" -gt 1 ]; then
  srun --ntasks="$ranks" --kill-on-bad-exit=0 {unas} {run} --slurm-ranks &
else
  {unas} {run} &
fi"#
            ),
            r#"if [ "$ranks" -gt 1 ]; then scancel --signal=TERM "$SLURM_JOB_ID"; else kill -TERM "$pid"; fi"#,
        )
    } else {
        (format!("{unas} {run} &"), r#"kill -TERM "$pid""#)
    }
}

fn shell_quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', r"'\''"))
}

/// What `submit` wrote and (unless a dry run) the Slurm job id of each wave's array.
#[derive(Debug)]
pub struct Submitted {
    pub dir: PathBuf,
    pub scripts: Vec<PathBuf>,
    pub job_ids: Vec<String>,
    pub tasks: usize,
}

/// Writes one script per wave and, unless `o.dry_run`, submits them in order, each after the last.
pub fn submit(
    all: &[Resolved],
    root: &ResultsRoot,
    opts: &Options,
    o: &SlurmOptions,
) -> Result<Submitted> {
    let waves = waves(all, root, opts, o.ranks_per_run)?;
    let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        .to_string()
        .replace(':', "-");
    let results = absolute(&root.0)?;
    let dir = results.join("slurm").join(stamp);
    let unas = std::env::current_exe().context("finding the unas binary for the scripts")?;
    let mut sub = Submitted {
        dir: dir.clone(),
        scripts: Vec::new(),
        job_ids: Vec::new(),
        tasks: waves.iter().map(Vec::len).sum(),
    };
    for (k, wave) in waves.iter().enumerate() {
        let list = dir.join(format!("wave{k}.tasks"));
        let text: String = wave
            .iter()
            .map(|t| {
                format!(
                    "{}\t{}\t{}\t{}\t{}\n",
                    t.file.display(),
                    t.tier,
                    t.run_id,
                    t.ranks,
                    t.label
                )
            })
            .collect();
        atomic::write_atomic(&list, text.as_bytes())?;
        let path = dir.join(format!("wave{k}.sbatch"));
        let body = script(k, wave.len(), &list, &unas, &results, &dir, o);
        atomic::write_atomic(&path, body.as_bytes())?;
        sub.scripts.push(path.clone());
        if !o.dry_run {
            let id = sbatch(&path, sub.job_ids.last().map(String::as_str))?;
            sub.job_ids.push(id);
        }
    }
    Ok(sub)
}

fn absolute(p: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(p).with_context(|| format!("creating {}", p.display()))?;
    std::fs::canonicalize(p).with_context(|| format!("finding {}", p.display()))
}

/// `sbatch --parsable [--dependency=afterok:AFTER] SCRIPT` → the array's job id.
fn sbatch(script: &Path, after: Option<&str>) -> Result<String> {
    let mut c = Command::new("sbatch");
    c.arg("--parsable");
    if let Some(a) = after {
        c.arg(format!("--dependency=afterok:{a}"))
            .arg("--kill-on-invalid-dep=yes");
    }
    let out = c.arg(script).output().with_context(|| {
        "running sbatch (is Slurm installed here, and this a submit host? `--dry-run` writes the scripts only)"
    })?;
    if !out.status.success() {
        bail!(
            "sbatch {} failed ({}): {}",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let id = text.trim().split(';').next().unwrap_or("").to_owned();
    if id.is_empty() {
        bail!("sbatch {} printed no job id", script.display());
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_runs_its_line_of_the_list_and_requeues_itself_on_usr1() {
        let o = SlurmOptions {
            partition: Some("gpu".into()),
            time: Some("4:00:00".into()),
            gpus_per_task: Some(1),
            cpus_per_task: Some(8),
            array_limit: Some(3),
            ranks_per_run: 1,
            dry_run: true,
        };
        let s = script(
            1,
            5,
            Path::new("/r/slurm/t/wave1.tasks"),
            Path::new("/bin/unas"),
            Path::new("/r"),
            Path::new("/r/slurm/t"),
            &o,
        );
        for line in [
            "#SBATCH --array=0-4%3",
            "#SBATCH --partition=gpu",
            "#SBATCH --time=4:00:00",
            "#SBATCH --gpus-per-task=1",
            "#SBATCH --cpus-per-task=8",
            "#SBATCH --signal=B:USR1@120",
            "#SBATCH --requeue",
            "'/bin/unas' --results '/r'",
            "--job \"$job\"",
            "scontrol requeue",
            "trap requeue USR1",
        ] {
            assert!(s.contains(line), "{line}:\n{s}");
        }
    }

    #[test]
    fn with_ranks_per_run_a_task_is_an_srun_step_of_that_many_ranks_stopped_through_slurm() {
        let o = SlurmOptions {
            gpus_per_task: Some(1),
            ranks_per_run: 2,
            ..SlurmOptions::default()
        };
        let at = |p: &str| PathBuf::from(p);
        let s = script(
            0,
            3,
            &at("/r/w0.tasks"),
            &at("/bin/unas"),
            &at("/r"),
            &at("/r"),
            &o,
        );
        for line in [
            "#SBATCH --ntasks=2",
            "#SBATCH --gpus-per-task=1",
            r#"srun --ntasks="$ranks" --kill-on-bad-exit=0 '/bin/unas' --results '/r' --threads"#,
            r#"--job "$job" --slurm-ranks &"#,
            r#"scancel --signal=TERM "$SLURM_JOB_ID""#,
            "read -r file tier job ranks label",
            "trap requeue USR1",
        ] {
            assert!(s.contains(line), "{line}:\n{s}");
        }
        let one = script(
            0,
            3,
            &at("/r/w0.tasks"),
            &at("/bin/unas"),
            &at("/r"),
            &at("/r"),
            &SlurmOptions::default(),
        );
        assert!(!one.contains("srun") && !one.contains("--ntasks"), "{one}");
    }
}
