//! `unas bench search` / `unas bench train`: throughput of the real loops on an experiment (default: the
//! paper's CIFAR-10 search at the smoke tier), run into a temporary results folder. Each figure is
//! quoted as a ratio against a baseline measured in the same run: the warm-up phase's weight-only
//! supernet step for the search, the same for training (both run in one `unas run`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::config::{self, Tier};
use crate::report::text_table::TextTable;
use crate::results::{parquet, ResultsRoot, Table};
use crate::runner::{self, JobEnd};

/// Peak resident memory of this process (VmHWM), MiB.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
    Some(v[v.len() / 2])
}

/// Median images/s per phase, from a run folder's steps table (the first block of each phase is
/// dropped as warm-up of the process when there is more than one).
fn per_phase(dir: &Path) -> Result<Vec<(String, usize, f64)>> {
    let df = parquet::read(&dir.join(Table::Steps.file_name()), Table::Steps)?;
    let phase = df.column("phase")?.str()?.clone();
    let ips = df.column("images_per_s")?.f64()?.clone();
    let mut out: Vec<(String, Vec<f64>)> = Vec::new();
    for i in 0..df.height() {
        let (Some(p), Some(v)) = (phase.get(i), ips.get(i)) else {
            continue;
        };
        match out.iter_mut().find(|(q, _)| q == p) {
            Some((_, vs)) => vs.push(v),
            None => out.push((p.to_owned(), vec![v])),
        }
    }
    Ok(out
        .into_iter()
        .filter_map(|(p, mut v)| {
            v.dedup(); // one value per block of logged steps
            let n = v.len();
            if n > 1 {
                v.remove(0);
            }
            median(v).map(|m| (p, n, m))
        })
        .collect())
}

/// Runs `file` at `tier` with `sets` and prints images/s per phase with ratios to the warm-up phase.
pub fn run(
    file: &Path,
    tier: Tier,
    sets: &[String],
    device: Option<config::DeviceChoice>,
) -> Result<()> {
    let r = config::load(file, tier, sets).map_err(|e| anyhow::anyhow!("{e}"))?;
    let dev = crate::device::resolve(device.unwrap_or(r.experiment.device))?;
    let tmp = std::env::temp_dir().join(format!("unas-bench-{}", std::process::id()));
    let root = ResultsRoot(tmp.clone());
    let reports = runner::run_experiment(&r, &root, dev);
    let result = (|| -> Result<()> {
        let mut t = TextTable::new(&[
            "stage",
            "phase",
            "logged blocks",
            "median images/s",
            "ratio to warm-up",
        ]);
        let mut baseline = None;
        for rep in &reports {
            if let JobEnd::Failed(why) | JobEnd::Blocked(why) = &rep.end {
                bail!("{} stage failed: {why}", rep.stage);
            }
            let dir: PathBuf = rep.dir.as_ref().context("run folder")?.path().to_path_buf();
            for (phase, n, m) in per_phase(&dir)? {
                if phase == "warmup" {
                    baseline = Some(m);
                }
                let ratio = baseline
                    .map(|b| format!("{:.2}×", m / b))
                    .unwrap_or_default();
                t.push(vec![
                    rep.stage.into(),
                    phase,
                    n.to_string(),
                    format!("{m:.1}"),
                    ratio,
                ]);
            }
        }
        println!(
            "{} at tier {} on {} ({} threads){}",
            r.experiment.name,
            r.tier,
            crate::device::describe(dev),
            tch::get_num_threads(),
            if cfg!(debug_assertions) {
                ", debug build"
            } else {
                ", release build"
            }
        );
        print!("{}", t.render());
        if let Some(m) = peak_rss_mib() {
            println!("peak resident memory of the process: {m:.0} MiB");
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&tmp);
    result
}
