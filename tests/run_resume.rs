//! `unas run` end to end on the embedded dataset (search → derive → train → test on the CPU), and the
//! promise that a run killed with SIGKILL and run again ends with the same numbers as one that was never
//! interrupted.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command as Proc, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;
use common::numbers;
use polars::prelude::*;
use unas::results::Table;

/// The smoke tier, smaller still so the test stays quick.
const SETS: [&str; 4] = [
    "dataset.synthetic.train=96",
    "dataset.synthetic.test=32",
    "train.epochs=2",
    "train.batch=16",
];

fn unas(results: &Path) -> Proc {
    let mut c = Proc::cargo_bin("unas").unwrap();
    c.current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("--results")
        .arg(results)
        .args([
            "run",
            "experiments/paper/c10-darts-unas.yaml",
            "--tier",
            "smoke",
        ]);
    for s in SETS {
        c.args(["--set", s]);
    }
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    c
}

fn run_dirs(results: &Path) -> Vec<PathBuf> {
    let base = results.join("runs/c10-darts-unas/smoke");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&base)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn values(df: &DataFrame, col: &str) -> Vec<f64> {
    let ca = df.column(col).unwrap().f64().unwrap().clone();
    (0..ca.len()).filter_map(|i| ca.get(i)).collect()
}

#[test]
fn smoke_search_then_train_writes_every_table_and_resumes_after_sigkill_to_the_same_numbers() {
    // Uninterrupted.
    let a = tempfile::tempdir().unwrap();
    let out = unas(a.path()).output().unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let dirs_a = run_dirs(a.path());
    assert_eq!(dirs_a.len(), 2, "a search and a training run: {dirs_a:?}");
    let search = dirs_a
        .iter()
        .find(|d| {
            d.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("search")
        })
        .unwrap();
    let train = dirs_a
        .iter()
        .find(|d| {
            d.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("train")
        })
        .unwrap();
    for t in Table::ALL {
        assert!(
            search.join(t.file_name()).is_file(),
            "search lacks {}",
            t.file_name()
        );
    }
    for t in [Table::Steps, Table::Epochs, Table::Summary] {
        assert!(
            train.join(t.file_name()).is_file(),
            "train lacks {}",
            t.file_name()
        );
    }
    // The search logged both phases, derived a genotype, and its architecture moved off uniform.
    let steps = numbers(search, Table::Steps);
    let phases = steps
        .column("phase")
        .unwrap()
        .str()
        .unwrap()
        .unique()
        .unwrap();
    assert_eq!(phases.len(), 2);
    assert!(!values(&steps, "f_discrete").is_empty());
    let arch = numbers(search, Table::Arch);
    let probs = values(&arch, "prob");
    assert!(probs.iter().any(|p| (p - 1.0 / 7.0).abs() > 1e-4
        && (p - 0.5).abs() > 1e-4
        && (p - 1.0 / 3.0).abs() > 1e-4));
    let genotype: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(search.join("genotype.json")).unwrap())
            .unwrap();
    assert_eq!(genotype["normal"].as_array().unwrap().len(), 4);
    // Training trained that genotype and tested it every epoch.
    assert_eq!(
        std::fs::read_to_string(train.join("genotype.json")).unwrap(),
        std::fs::read_to_string(search.join("genotype.json")).unwrap()
    );
    let epochs = numbers(train, Table::Epochs);
    assert_eq!(epochs.height(), 2);
    let summary = numbers(train, Table::Summary);
    let top1 = summary
        .column("acc_test_top1_pct")
        .unwrap()
        .f64()
        .unwrap()
        .get(0)
        .unwrap();
    assert!((0.0..=100.0).contains(&top1));
    let params = summary
        .column("params_m")
        .unwrap()
        .f64()
        .unwrap()
        .get(0)
        .unwrap();
    assert!(
        params > 0.0 && params < 1.0,
        "a tiny smoke network: {params} M"
    );

    // Killed with SIGKILL once the warm-up epoch's checkpoint exists, then run again.
    let b = tempfile::tempdir().unwrap();
    let mut child = unas(b.path()).spawn().unwrap();
    let t0 = Instant::now();
    loop {
        let ready = run_dirs(b.path())
            .iter()
            .any(|d| d.join("checkpoints/epoch-1/meta.json").is_file());
        if ready {
            break;
        }
        if let Some(st) = child.try_wait().unwrap() {
            panic!("the run ended ({st}) before it could be interrupted");
        }
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "no checkpoint after 300 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let status = std::fs::read_to_string(run_dirs(b.path())[0].join("status.json")).unwrap();
    assert!(status.contains("running"), "killed mid-run: {status}");
    let out = unas(b.path()).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dirs_b = run_dirs(b.path());
    assert_eq!(
        dirs_a
            .iter()
            .map(|d| d.file_name().unwrap().to_owned())
            .collect::<Vec<_>>(),
        dirs_b
            .iter()
            .map(|d| d.file_name().unwrap().to_owned())
            .collect::<Vec<_>>(),
        "the same run ids"
    );
    for (da, db) in dirs_a.iter().zip(&dirs_b) {
        let tables: &[Table] = if da.join("arch.parquet").exists() {
            &Table::ALL
        } else {
            &[Table::Steps, Table::Epochs, Table::Summary]
        };
        for &t in tables {
            let (x, y) = (numbers(da, t), numbers(db, t));
            assert_eq!(x.shape(), y.shape(), "{} {:?}", da.display(), t);
            for c in x.get_column_names() {
                let (cx, cy) = (x.column(c).unwrap(), y.column(c).unwrap());
                if !cx.equals_missing(cy) {
                    let show = |df: &DataFrame| {
                        format!(
                            "{:?}",
                            df.select(["phase", "epoch", c.as_str()])
                                .map(|d| d.to_string())
                        )
                    };
                    panic!(
                        "{} {:?} column {c} differs after resume:\n{}\n{}",
                        da.display(),
                        t,
                        show(&x),
                        show(&y)
                    );
                }
            }
        }
        assert_eq!(
            std::fs::read(da.join("genotype.json")).unwrap(),
            std::fs::read(db.join("genotype.json")).unwrap()
        );
    }
}

/// A search stopped by SIGTERM in the middle of its search epoch (a checkpoint between two steps,
/// not at an epoch's end) and run again logs every step as the uninterrupted search does, bit for bit:
/// the epoch's running estimate of the architecture gradient's variance (`grad_var_arch`) is in the
/// checkpoint with the rest, not restarted at the resume.
#[test]
fn a_search_stopped_mid_epoch_by_sigterm_resumes_to_the_uninterrupted_steps_bit_for_bit() {
    let name = "mid-epoch";
    // rebar: an estimator with an architecture step, so grad_var_arch moves every search step
    let yaml = common::tiny(name).replace("estimator: gsm", "estimator: rebar");
    let suite = common::suite(&[(name, yaml)]);
    let file = suite.path().join(format!("{name}.yaml"));
    let file = file.to_str().unwrap();
    let search = |results: &Path| common::dir_of(results, name, "search").expect("a search run");

    let whole = tempfile::tempdir().unwrap();
    let o = common::output(common::unas(whole.path(), &["run", file]));
    assert!(o.status.success(), "{}", common::show(&o));

    let cut = tempfile::tempdir().unwrap();
    let mut c = common::unas(cut.path(), &["--progress-every", "0", "run", file]);
    c.env("UNAS_TEST_SLOW_STEP_MS", "300");
    let mut child = common::spawn(c);
    let log_says = |what: &str| {
        common::dir_of(cut.path(), name, "search")
            .and_then(|d| std::fs::read_to_string(d.join("run.log")).ok())
            .is_some_and(|l| l.contains(what))
    };
    // the search epoch's first step is done: the signal lands in its second (of 3)
    common::wait_for(
        &mut child,
        Duration::from_secs(300),
        "a search step",
        || log_says("search epoch 0, step 1/3"),
    );
    common::signal(child.id(), libc::SIGTERM);
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success(), "stopped by the signal");
    let dir = search(cut.path());
    let mid: Vec<String> = std::fs::read_dir(dir.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("-step-"))
        .collect();
    assert!(!mid.is_empty(), "a checkpoint between two steps");

    let o = common::output(common::unas(cut.path(), &["run", file]));
    assert!(o.status.success(), "{}", common::show(&o));
    let log = std::fs::read_to_string(dir.join("run.log")).unwrap();
    assert!(log.contains("resuming from a checkpoint"), "{log}");
    common::assert_tables_close(&search(whole.path()), &dir, &[Table::Steps], 0.0);
}
