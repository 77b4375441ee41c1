//! `unas submit --slurm`: writes (and unless `--dry-run` submits) the suite's job arrays; prints each
//! wave's script and, when submitted, its Slurm job id. See [`crate::runner::slurm`].

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use crate::config::Tier;
use crate::results::ResultsRoot;
use crate::runner::slurm::{submit, SlurmOptions};

use super::EXIT_OK;

pub fn run(
    suite: &[PathBuf],
    tier: Tier,
    root: &ResultsRoot,
    retry_failed: bool,
    o: &SlurmOptions,
) -> Result<ExitCode> {
    let all = super::experiments::load_suite(suite, tier)?;
    let opts = crate::runner::Options {
        retry_failed,
        only: None,
    };
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
