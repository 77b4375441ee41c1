//! A rank of an `srun` step: `unas run … --slurm-ranks` takes its place among the ranks from Slurm's
//! environment instead of a local launcher's. Rank = `SLURM_PROCID`, world = `SLURM_NTASKS`; the ranks
//! meet in rank 0's TCPStore on the first host of `SLURM_STEP_NODELIST` (or `SLURM_JOB_NODELIST`), at
//! a port derived from `SLURM_JOB_ID` (the same for every task of the step, different for the jobs
//! sharing a node); where a task sees several GPUs (`CUDA_VISIBLE_DEVICES` not bound per task), it
//! takes the one at `SLURM_LOCALID`.

use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::dist::{RankEnv, StoreAddr};

/// The store's port range: [BASE, BASE + SPAN), below Linux's ephemeral ports (32768 and up), so a
/// client connection of another process never holds it.
const PORT_BASE: u16 = 20000;
const PORT_SPAN: u64 = 12000;

/// The store's port for the job `job_id`: jobs whose ids differ by less than the span never share one.
pub fn port(job_id: u64) -> u16 {
    PORT_BASE + (job_id % PORT_SPAN) as u16 // port = 20000 + id mod 12000
}

/// The first host of a Slurm host list (`node[03-05,9],gpu1` → `node03`, `rack[1-2]-n[07-08]` →
/// `rack1-n07`), as `scontrol show hostnames` would print it first.
pub fn first_host(list: &str) -> Result<String> {
    let mut host = String::new();
    let mut chars = list.trim().chars();
    while let Some(c) = chars.next() {
        match c {
            ',' => break,
            '[' => {
                let inside: String = chars.by_ref().take_while(|&c| c != ']').collect();
                let first = inside.split([',', '-']).next().unwrap_or("");
                if first.is_empty() || !first.chars().all(|c| c.is_ascii_digit()) {
                    bail!("cannot read the host list `{list}` (expected e.g. node[01-04],gpu7)");
                }
                host.push_str(first);
            }
            c => host.push(c),
        }
    }
    if host.is_empty() {
        bail!("the host list `{list}` names no host");
    }
    Ok(host)
}

/// This task's place among the ranks, from Slurm's variables (`var` reads one).
pub fn rank_env(var: impl Fn(&str) -> Option<String>, timeout: Duration) -> Result<RankEnv> {
    let need = |name: &str| {
        var(name).with_context(|| {
            format!("{name} is not set: --slurm-ranks is for the tasks of an `srun` step (the scripts `unas submit --slurm --ranks-per-run R` writes start them)")
        })
    };
    let num = |name: &str| -> Result<usize> {
        let v = need(name)?;
        v.parse()
            .with_context(|| format!("{name}={v} is not a whole number"))
    };
    let (rank, world, job) = (
        num("SLURM_PROCID")?,
        num("SLURM_NTASKS")?,
        num("SLURM_JOB_ID")?,
    );
    let nodes = var("SLURM_STEP_NODELIST")
        .or_else(|| var("SLURM_JOB_NODELIST"))
        .context("neither SLURM_STEP_NODELIST nor SLURM_JOB_NODELIST is set: run under srun")?;
    Ok(RankEnv {
        rank,
        world,
        store: StoreAddr::Tcp {
            host: first_host(&nodes)?,
            port: port(job as u64),
        },
        timeout,
        deaths: None,
    })
}

/// The GPU a task at `local_id` takes of `visible` (`CUDA_VISIBLE_DEVICES`): itself when it sees one.
pub fn gpu_of_task(visible: &str, local_id: usize) -> Option<String> {
    let gpus: Vec<&str> = visible.split(',').filter(|g| !g.is_empty()).collect();
    (gpus.len() > 1).then(|| gpus[local_id % gpus.len()].to_owned())
}

/// Puts this task's rank variables (and its one GPU) into this process's environment, where
/// `dist::init` reads them; before any thread of libtorch starts.
pub fn adopt(timeout: Duration) -> Result<()> {
    let var = |name: &str| std::env::var(name).ok();
    let env = rank_env(var, timeout)?;
    for (name, value) in env.vars() {
        std::env::set_var(name, value);
    }
    if let (Some(visible), Some(local)) = (var("CUDA_VISIBLE_DEVICES"), var("SLURM_LOCALID")) {
        let local: usize = local
            .parse()
            .with_context(|| format!("SLURM_LOCALID={local} is not a whole number"))?;
        if let Some(gpu) = gpu_of_task(&visible, local) {
            std::env::set_var("CUDA_VISIBLE_DEVICES", gpu);
        }
    }
    if env.rank > 0 {
        // rank 0 speaks for the run in the step's output
        std::env::set_var("UNAS_PLAIN_PROGRESS", "1");
    }
    tracing::info!(
        rank = env.rank,
        world = env.world,
        store = %env.store.url(),
        "a rank of an srun step"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_host_of_a_slurm_host_list_is_the_one_scontrol_lists_first() {
        assert_eq!(first_host("vm").unwrap(), "vm");
        assert_eq!(first_host("node[03-05,9],gpu1").unwrap(), "node03");
        assert_eq!(first_host("gpu7,node[1-2]").unwrap(), "gpu7");
        assert_eq!(first_host("rack[1-2]-n[07-08]").unwrap(), "rack1-n07");
        assert_eq!(first_host("a[12]").unwrap(), "a12");
        assert!(first_host("").is_err());
        assert!(first_host("n[x-y]").is_err());
    }

    #[test]
    fn every_task_of_a_step_reads_the_same_store_and_its_own_rank() {
        let vars = |procid: &'static str| {
            move |name: &str| {
                match name {
                    "SLURM_PROCID" => Some(procid),
                    "SLURM_NTASKS" => Some("2"),
                    "SLURM_JOB_ID" => Some("123457"),
                    "SLURM_JOB_NODELIST" => Some("node[01-02]"),
                    "SLURM_STEP_NODELIST" => Some("node[02]"),
                    _ => None,
                }
                .map(str::to_owned)
            }
        };
        let t = Duration::from_secs(60);
        let (a, b) = (
            rank_env(vars("0"), t).unwrap(),
            rank_env(vars("1"), t).unwrap(),
        );
        assert_eq!((a.rank, b.rank, a.world), (0, 1, 2));
        assert_eq!(a.store, b.store);
        let StoreAddr::Tcp { host, port: p } = &a.store else {
            panic!("{:?}", a.store)
        };
        assert_eq!((host.as_str(), *p), ("node02", 20000 + 3457));
        assert_ne!(port(123457), port(123458));
        let missing = rank_env(|_| None, t).unwrap_err().to_string();
        assert!(missing.contains("SLURM_PROCID is not set"), "{missing}");
    }

    #[test]
    fn a_task_that_sees_every_gpu_of_its_node_takes_the_one_at_its_local_id() {
        assert_eq!(gpu_of_task("0", 1), None);
        assert_eq!(gpu_of_task("4,5,6,7", 1).as_deref(), Some("5"));
        assert_eq!(gpu_of_task("4,5", 3).as_deref(), Some("5"));
    }
}
