//! What the runner's tests share: a suite of tiny experiments written into a temporary folder (the
//! smallest shapes the validation accepts: a few seconds a stage on one core), the `unas` binary with
//! one thread, and readers for run folders.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;
use polars::prelude::DataFrame;
use unas::results::{parquet, Table};

/// A search (GSM, train objective, 1 warm-up + 1 search epoch of 3 steps) then the training of its
/// genotype (1 epoch), on 48 synthetic images.
pub fn tiny(name: &str) -> String {
    format!(
        "name: {name}
dataset: {{name: synthetic, train_portion: 0.5, synthetic: {{classes: 4, train: 48, test: 16, seed: 0}}}}
space: {{name: darts, layers: 3, channels: 4, ops: 7}}
search: {{estimator: gsm, objective: {{kind: train}}, epochs: {{warmup: 1, search: 1}}, batch: 8}}
train: {{recipe: cifar, genotype: search, epochs: 1, warmup_epochs: 0, batch: 16, channels: 8, layers: 3}}
seeds: {{search: [0], train: [0]}}
device: cpu
"
    )
}

/// [`tiny`] with learning rates that make the first step non-finite.
pub fn diverging(name: &str) -> String {
    tiny(name).replace(
        "batch: 8}",
        "batch: 8, lr: {weights: 1.0e+30, arch: 1.0e+30}}",
    )
}

/// A suite folder holding `files` (name → YAML).
pub fn suite(files: &[(&str, String)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(format!("{name}.yaml")), text).unwrap();
    }
    dir
}

/// `unas --results RESULTS --threads 1 ARGS…` from the crate root.
pub fn unas(results: &Path, args: &[&str]) -> Command {
    let mut c = Command::cargo_bin("unas").unwrap();
    c.current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("UNAS_RESULTS")
        .env("OMP_NUM_THREADS", "1")
        .arg("--results")
        .arg(results)
        .args(["--threads", "1"])
        .args(args);
    c
}

/// `unas reproduce --suite SUITE --tier paper EXTRA…`.
pub fn reproduce(results: &Path, suite: &Path, extra: &[&str]) -> Command {
    let s = suite.display().to_string();
    let mut args = vec!["reproduce", "--suite", &s, "--tier", "paper"];
    args.extend_from_slice(extra);
    unas(results, &args)
}

pub fn output(mut c: Command) -> Output {
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    c.output().unwrap()
}

pub fn spawn(mut c: Command) -> Child {
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    c.spawn().unwrap()
}

pub fn show(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Every run folder under `results/runs`, sorted.
pub fn run_dirs(results: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = walkdir::WalkDir::new(results.join("runs"))
        .min_depth(3)
        .max_depth(3)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_dir())
        .map(|e| e.into_path())
        .collect();
    v.sort();
    v
}

/// The run folder of `experiment`'s `stage` (`search` or `train`).
pub fn dir_of(results: &Path, experiment: &str, stage: &str) -> Option<PathBuf> {
    run_dirs(results).into_iter().find(|d| {
        d.parent()
            .and_then(|p| p.parent())
            .and_then(|p| p.file_name())
            == Some(experiment.as_ref())
            && d.file_name().unwrap().to_string_lossy().starts_with(stage)
    })
}

pub fn status_json(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("status.json")).unwrap()).unwrap()
}

/// Lines of the folder's `run.log` that record a start.
pub fn starts(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("run.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("run start:"))
        .count()
}

/// Waits until `ready()` (panics after `limit`, or when `child` ends first).
pub fn wait_for(child: &mut Child, limit: Duration, what: &str, ready: impl Fn() -> bool) {
    let t0 = Instant::now();
    while !ready() {
        if let Some(st) = child.try_wait().unwrap() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut err);
            }
            panic!("the process ended ({st}) before {what}:\n{err}");
        }
        assert!(t0.elapsed() < limit, "no {what} after {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends `sig` to process `pid`.
pub fn signal(pid: u32, sig: i32) {
    // SAFETY: kill on a pid this test started (or read from a lock file the test's child wrote).
    assert_eq!(unsafe { libc::kill(pid as i32, sig) }, 0, "kill {pid}");
}

/// `unas status --json` of the suite, parsed.
pub fn status_doc(results: &Path, suite: &Path) -> serde_json::Value {
    let s = suite.display().to_string();
    let o = output(unas(
        results,
        &["status", "--suite", &s, "--tier", "paper", "--json"],
    ));
    assert!(o.status.success(), "{}", show(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// (experiment, stage) → state of `unas status --json`.
pub fn states(doc: &serde_json::Value) -> Vec<(String, String, String)> {
    doc["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| {
            (
                j["experiment"].as_str().unwrap().to_owned(),
                j["stage"].as_str().unwrap().to_owned(),
                j["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// A table of a run folder without the columns that measure time.
pub fn numbers(dir: &Path, t: Table) -> DataFrame {
    let df = parquet::read(&dir.join(t.file_name()), t).unwrap();
    let keep: Vec<&str> = t
        .columns()
        .iter()
        .map(|c| c.name)
        .filter(|n| *n != "wall_s" && *n != "images_per_s")
        .collect();
    df.select(keep).unwrap()
}

/// The tensors of a run folder's first (`last` false) or last checkpoint, sorted by name, BatchNorm
/// running statistics left out (over ranks each rank's see only its sub-batches, as each GPU's under
/// DDP; the search never reads them).
pub fn checkpoint_tensors(dir: &Path, last: bool) -> Vec<(String, tch::Tensor)> {
    let mut epochs: Vec<PathBuf> = std::fs::read_dir(dir.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    epochs.sort();
    let at = if last { epochs.last() } else { epochs.first() };
    let file = at.expect("a checkpoint").join("tensors.safetensors");
    let mut t = tch::Tensor::read_safetensors(file).unwrap();
    t.retain(|(name, _)| !name.contains("running_") && !name.contains("num_batches_tracked"));
    t.sort_by(|a, b| a.0.cmp(&b.0));
    t
}

/// Every tensor of run folder `a`'s last checkpoint (BatchNorm statistics aside) within `tol` of
/// `b`'s, relative to max(1, |x|) (`tol` 0: bit-identical); the weights must be among them.
pub fn assert_checkpoints_close(a: &Path, b: &Path, tol: f64) {
    let (ta, tb) = (checkpoint_tensors(a, true), checkpoint_tensors(b, true));
    assert_eq!(ta.len(), tb.len());
    assert!(ta.iter().any(|(n, _)| n.starts_with("w/")), "weights saved");
    for ((na, xa), (nb, xb)) in ta.iter().zip(&tb) {
        assert_eq!(na, nb);
        let (xa, xb) = (xa.to_kind(tch::Kind::Double), xb.to_kind(tch::Kind::Double));
        let bound = xa.abs().clamp_min(1.0) * tol;
        let over = ((&xa - &xb).abs() - bound).max().double_value(&[]);
        assert!(over <= 0.0, "{na}: differs by more than {tol} relative");
    }
}

/// Every number of `tables` of run folder `a` within `tol` of `b`'s, relative to max(1, |x|) (`tol`
/// 0: bit-identical); the other columns equal.
pub fn assert_tables_close(a: &Path, b: &Path, tables: &[Table], tol: f64) {
    for &t in tables {
        let (da, db) = (numbers(a, t), numbers(b, t));
        assert!(da.height() > 0, "{t:?} has rows");
        assert_eq!(da.height(), db.height(), "{t:?} rows");
        for c in da.get_column_names() {
            let (cx, cy) = (da.column(c).unwrap(), db.column(c).unwrap());
            let (Ok(x), Ok(y)) = (cx.f64(), cy.f64()) else {
                assert!(cx.equals_missing(cy), "{t:?} column {c} differs");
                continue;
            };
            for i in 0..x.len() {
                match (x.get(i), y.get(i)) {
                    (Some(p), Some(q)) => assert!(
                        (p - q).abs() <= tol * p.abs().max(1.0),
                        "{t:?} {c} row {i}: {p} vs {q}"
                    ),
                    (p, q) => assert_eq!(p.is_none(), q.is_none(), "{t:?} {c} row {i}"),
                }
            }
        }
    }
}
