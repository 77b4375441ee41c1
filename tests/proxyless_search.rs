//! The ProxylessNAS search end to end on the CPU (smoke tier, smaller still): the latency term runs,
//! the surrogate is cached and a second search on the same device reuses it, and a search killed with
//! SIGKILL and run again ends with the same numbers as one that was never interrupted. The latency of
//! the sampled architectures is the surrogate's (`measure: surrogate`) so that two runs can agree to
//! the bit; the mode architecture's timed latency is the one number left out of the comparison.

use std::path::{Path, PathBuf};
use std::process::{Command as Proc, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;
use polars::prelude::*;
use unas::results::{parquet, Table};

const SETS: [&str; 10] = [
    "train=null",
    "dataset.synthetic.train=80",
    "dataset.synthetic.test=16",
    "space.resolution=32",
    "search.epochs={warmup: 1, search: 2}",
    "search.objective.latency.surrogate_samples=10",
    "search.objective.latency.repeats=1",
    "search.objective.latency.measure=surrogate",
    "search.objective.latency.ramp_steps=4",
    "search.objective.latency.target_ms=0.001",
];

fn unas(results: &Path) -> Proc {
    let mut c = Proc::cargo_bin("unas").unwrap();
    c.current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("OMP_NUM_THREADS", "1")
        .arg("--results")
        .arg(results)
        .args([
            "run",
            "experiments/paper/proxyless-unas.yaml",
            "--tier",
            "smoke",
        ]);
    for s in SETS {
        c.args(["--set", s]);
    }
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    c
}

fn search_dir(results: &Path) -> PathBuf {
    let base = results.join("runs/proxyless-unas/smoke");
    let dirs: Vec<PathBuf> = std::fs::read_dir(&base)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    assert!(dirs.len() <= 1, "only the search runs: {dirs:?}");
    dirs.into_iter().next().unwrap_or(base)
}

/// A table without the columns that measure time (wall clock, throughput, the timed mode latency).
fn numbers(dir: &Path, table: Table) -> DataFrame {
    let df = parquet::read(&dir.join(table.file_name()), table).unwrap();
    let keep: Vec<&str> = table
        .columns()
        .iter()
        .map(|c| c.name)
        .filter(|n| !["wall_s", "images_per_s", "mode_lat_ms"].contains(n))
        .collect();
    df.select(keep).unwrap()
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn proxyless_search_reuses_its_cached_surrogate_and_resumes_after_sigkill_to_the_same_numbers() {
    let a = tempfile::tempdir().unwrap();
    let out = unas(a.path()).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let da = search_dir(a.path());
    let sa = json(&da.join("latency_surrogate.json"));
    assert!(
        sa["cache_file"].is_string(),
        "the first search fits and caches: {sa}"
    );
    assert_eq!(sa["stamp"]["device"], "cpu");
    // every epoch has the mode architecture's timed latency, named by its device
    let lat = numbers(&da, Table::Latency);
    assert_eq!(lat.height(), 3);
    let full = parquet::read(&da.join("latency.parquet"), Table::Latency).unwrap();
    let mode = full.column("mode_lat_ms").unwrap().f64().unwrap().clone();
    assert!((0..3).all(|i| mode.get(i).unwrap() > 0.0));
    let devices = lat.column("device").unwrap().str().unwrap().clone();
    assert!(devices.iter().all(|d| d == Some("cpu")));
    // the latency term ran: every search step has the sample's latency
    let steps = numbers(&da, Table::Steps);
    let search_rows = steps
        .column("phase")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .filter(|p| *p == Some("search"))
        .count();
    let lat_ms = steps.column("lat_ms").unwrap().f64().unwrap().clone();
    assert_eq!(lat_ms.iter().flatten().count(), search_rows);
    let genotype = json(&da.join("genotype.json"));
    assert_eq!(genotype["normal"].as_array().unwrap().len(), 15);
    assert_eq!(genotype["reduce"].as_array().unwrap().len(), 6);

    // A second results folder with the first one's cache: killed after the first search epoch, run again.
    let b = tempfile::tempdir().unwrap();
    let copy = |from: &Path, to: &Path| {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    };
    copy(
        &a.path().join("cache/latency"),
        &b.path().join("cache/latency"),
    );
    let mut child = unas(b.path()).spawn().unwrap();
    let t0 = Instant::now();
    while !search_dir(b.path())
        .join("checkpoints/epoch-2/meta.json")
        .is_file()
    {
        if let Some(st) = child.try_wait().unwrap() {
            panic!("the run ended ({st}) before it could be interrupted");
        }
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "no checkpoint after 300 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let out = unas(b.path()).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let db = search_dir(b.path());
    assert_eq!(da.file_name(), db.file_name(), "the same run id");
    let sb = json(&db.join("latency_surrogate.json"));
    assert!(
        sb["cache_file"].is_null(),
        "the second search reused the cache: {sb}"
    );
    assert_eq!(sa["surrogate"], sb["surrogate"]);
    for t in Table::ALL.into_iter().chain([Table::Latency]) {
        let (x, y) = (numbers(&da, t), numbers(&db, t));
        assert_eq!(x.shape(), y.shape(), "{t:?}");
        for c in x.get_column_names() {
            assert!(
                x.column(c).unwrap().equals_missing(y.column(c).unwrap()),
                "{t:?} column {c} differs after resume"
            );
        }
    }
    assert_eq!(
        std::fs::read_to_string(da.join("genotype.json")).unwrap(),
        std::fs::read_to_string(db.join("genotype.json")).unwrap()
    );
}
