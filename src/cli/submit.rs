//! `unas submit --slurm`: writes (and unless `--dry-run` submits) the suite's job arrays; prints each
//! wave's script and, when submitted, its Slurm job id. See [`crate::runner::slurm`].

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use crate::config::Tier;
use crate::results::ResultsRoot;
use crate::runner::slurm::{submit, SlurmOptions};

use super::exit::EXIT_OK;
use super::experiments::{check_ranks, OneSlice};

/// `unas submit`'s options.
#[derive(clap::Args, Debug)]
pub struct SubmitArgs {
    /// The scheduler (Slurm is the one there is).
    #[arg(long, required = true)]
    pub slurm: bool,
    #[arg(long, value_enum, default_value_t = Tier::Smoke)]
    pub tier: Tier,
    #[arg(long, default_value = "experiments/paper")]
    pub suite: Vec<PathBuf>,
    #[arg(long)]
    pub partition: Option<String>,
    /// Time limit of each task (sbatch --time, e.g. 4:00:00).
    #[arg(long)]
    pub time: Option<String>,
    #[arg(long)]
    pub gpus_per_task: Option<u32>,
    #[arg(long)]
    pub cpus_per_task: Option<u32>,
    /// At most K tasks of an array at once.
    #[arg(long)]
    pub array_limit: Option<u32>,
    /// Each task an `srun` step of R tasks (ranks, one GPU each with --gpus-per-task 1) that meet
    /// through Slurm's environment: R must divide every job's `sub_batches` G, except a job with
    /// G = 1, which runs as one process.
    #[arg(long, value_name = "R", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub ranks_per_run: u16,
    /// Write the scripts, submit nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Include failed and diverged runs.
    #[arg(long)]
    pub retry_failed: bool,
}

pub fn run(a: &SubmitArgs, root: &ResultsRoot) -> Result<ExitCode> {
    let tier = a.tier;
    let all = super::experiments::load_suite(&a.suite, tier)?;
    let opts = crate::runner::Options {
        retry_failed: a.retry_failed,
        only: None,
    };
    let o = &SlurmOptions {
        partition: a.partition.clone(),
        time: a.time.clone(),
        gpus_per_task: a.gpus_per_task,
        cpus_per_task: a.cpus_per_task,
        array_limit: a.array_limit,
        ranks_per_run: usize::from(a.ranks_per_run),
        dry_run: a.dry_run,
    };
    check_ranks(
        &all,
        o.ranks_per_run,
        &opts,
        "--ranks-per-run",
        OneSlice::RunAlone,
    )?;
    let sub = submit(&all, root, &opts, o)?;
    if sub.tasks == 0 {
        println!("nothing to submit: every job of the suite is done (or failed: --retry-failed)");
        return Ok(ExitCode::from(EXIT_OK));
    }
    for (k, script) in sub.scripts.iter().enumerate() {
        match sub.job_ids.get(k) {
            Some(id) => println!("wave {k}: submitted as job {id}: {}", script.display()),
            None => println!("wave {k}: {} (dry run: not submitted)", script.display()),
        }
    }
    println!(
        "scripts, task lists and Slurm's output: {}",
        sub.dir.display()
    );
    println!(
        "{} task(s) in {} wave(s); follow them with `unas status --tier {tier}` and `squeue`",
        sub.tasks,
        sub.scripts.len()
    );
    Ok(ExitCode::from(EXIT_OK))
}
