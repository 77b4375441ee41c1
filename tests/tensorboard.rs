//! Watching a run: TensorBoard's own reader (the `tensorboard` package in the test-only environment
//! `make test-deps` installs) reads every run folder of a search → train that was SIGKILLed in the
//! middle and resumed, and finds each step once, under the expected tags, with the values of the
//! Parquet rows; and a run whose stderr is a file prints a progress line within the interval.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::{dir_of, output, show, suite, tiny, unas, wait_for};
use polars::prelude::*;
use unas::results::event_file::{records, Event, What};
use unas::results::{parquet, Phase, Table};

/// The reader's Python: `UNAS_TB_PYTHON`, or the environment `make test-deps` installs.
fn reader_python() -> Option<PathBuf> {
    let p = std::env::var_os("UNAS_TB_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".deps/tb-venv/bin/python"));
    p.exists().then_some(p)
}

/// The reader, or `None` after a loud message; under CI (`CI=true`) a missing reader fails the test.
fn reader_or_skip() -> Option<PathBuf> {
    let found = reader_python();
    if found.is_none() {
        let msg = "the TensorBoard check needs the `tensorboard` package in .deps/tb-venv (or UNAS_TB_PYTHON).\n\
                   Install it with `make test-deps` and run the tests again.";
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "CI=true and {msg}"
        );
        eprintln!("\n!!!!!!!! SKIPPED: {msg}\n");
    }
    found
}

type Points = Vec<(i64, f64)>;

/// What TensorBoard's reader shows of a run: scalars and texts per tag, as (step, value).
struct Shown {
    scalars: BTreeMap<String, Points>,
    texts: BTreeMap<String, Vec<(i64, String)>>,
}

/// tag → [(step, value)] of the reader's JSON.
fn per_tag<T>(
    doc: &serde_json::Value,
    value: impl Fn(&serde_json::Value) -> T,
) -> BTreeMap<String, Vec<(i64, T)>> {
    let points = |pts: &serde_json::Value| {
        let pts = pts.as_array().unwrap().iter();
        pts.map(|p| (p[0].as_i64().unwrap(), value(&p[1])))
            .collect()
    };
    let tags = doc.as_object().unwrap().iter();
    tags.map(|(tag, pts)| (tag.clone(), points(pts))).collect()
}

/// What TensorBoard's reader shows of `dir`.
fn read_board(python: &Path, dir: &Path) -> Shown {
    let out = std::process::Command::new(python)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tensorboard_read.py"))
        .arg(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let run = &doc[dir.to_str().unwrap()];
    Shown {
        scalars: per_tag(&run["scalars"], |v| v.as_f64().unwrap()),
        texts: per_tag(&run["texts"], |v| v.as_str().unwrap().to_owned()),
    }
}

/// Column of the `steps` table → tag, and column of the `epochs` table → tag (what a user of the
/// official code looks for, spec §8, and ours).
const STEP_TAGS: [(&str, &str); 13] = [
    ("loss_train", "train/loss"),
    ("acc_train_pct", "train/acc1"),
    ("lr_weights", "train/lr"),
    ("lr_arch", "train/arc_lr"),
    ("lr_arch", "meta/lr"),
    ("entropy_nats", "meta/entropy"),
    ("gen_gap", "meta/loss_cov"),
    ("lat_ms", "meta/latency_time"),
    ("f_discrete", "meta/f_discrete"),
    ("f_relaxed", "meta/f_relaxed"),
    ("pair_penalty", "meta/pair_penalty"),
    ("grad_var_arch", "meta/grad_var"),
    ("grad_norm_weights", "train/grad_norm"),
];
const EPOCH_TAGS: [(&str, &str); 6] = [
    ("loss_train", "train/epoch_loss"),
    ("acc_train_pct", "train/acc"),
    ("loss_val", "val/loss"),
    ("acc_val_pct", "val/acc"),
    ("acc_test_top1_pct", "test/acc1"),
    ("acc_test_top5_pct", "test/acc5"),
];

fn phases(df: &DataFrame) -> Vec<Phase> {
    df.column("phase")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .map(|p| Phase::parse(p.unwrap()).unwrap())
        .collect()
}

fn ints(df: &DataFrame, c: &str) -> Vec<i64> {
    let s = df.column(c).unwrap().cast(&DataType::Int64).unwrap();
    s.i64().unwrap().iter().map(|v| v.unwrap()).collect()
}

fn floats(df: &DataFrame, c: &str) -> Vec<Option<f64>> {
    df.column(c).unwrap().f64().unwrap().iter().collect()
}

/// The run-wide step of each `steps` row (a phase's steps follow the steps of the phases before it),
/// and the last run-wide step of each (phase, epoch).
fn run_wide_steps(steps: &DataFrame) -> (Vec<i64>, BTreeMap<(Phase, i64), i64>) {
    let (ph, st, ep) = (phases(steps), ints(steps, "step"), ints(steps, "epoch"));
    let mut g = Vec::new();
    let mut last = BTreeMap::new();
    for i in 0..ph.len() {
        let before = ph.iter().filter(|p| **p < ph[i]).count() as i64;
        g.push(before + st[i]);
        let e = last.entry((ph[i], ep[i])).or_insert(0);
        *e = (*e).max(before + st[i]);
    }
    (g, last)
}

/// Every tag the reader shows: steps strictly increasing (so none twice), and each point one of the
/// run's Parquet rows, value for value (as the f32 TensorBoard stores).
fn check_run(python: &Path, dir: &Path, must: &[&str]) {
    let Shown { scalars, texts } = read_board(python, dir);
    for tag in must {
        assert!(
            scalars.contains_key(*tag),
            "{}: no `{tag}` in {:?}",
            dir.display(),
            scalars.keys()
        );
    }
    for (tag, pts) in &scalars {
        assert!(
            pts.windows(2).all(|w| w[0].0 < w[1].0),
            "{}: `{tag}` steps not strictly increasing: {pts:?}",
            dir.display()
        );
    }
    let steps = parquet::read(&dir.join(Table::Steps.file_name()), Table::Steps).unwrap();
    let epochs = parquet::read(&dir.join(Table::Epochs.file_name()), Table::Epochs).unwrap();
    let (g, last) = run_wide_steps(&steps);
    let expect = |values: Vec<Option<f64>>, at: &[i64]| -> Points {
        values
            .iter()
            .zip(at)
            .filter_map(|(v, s)| v.map(|v| (*s, f64::from(v as f32))))
            .collect()
    };
    let mut checked = 0;
    for (col, tag) in STEP_TAGS {
        let want = expect(floats(&steps, col), &g);
        assert_eq!(
            scalars.get(tag).cloned().unwrap_or_default(),
            want,
            "{}: `{tag}` against steps.{col}",
            dir.display()
        );
        checked += want.len();
    }
    let epoch_at: Vec<i64> = phases(&epochs)
        .into_iter()
        .zip(ints(&epochs, "epoch"))
        .map(|k| last[&k])
        .collect();
    for (col, tag) in EPOCH_TAGS {
        let want = expect(floats(&epochs, col), &epoch_at);
        assert_eq!(
            scalars.get(tag).cloned().unwrap_or_default(),
            want,
            "{}: `{tag}` against epochs.{col}",
            dir.display()
        );
        checked += want.len();
    }
    assert!(checked > 0);
    // The texts: the resolved config once at step 0, each search epoch's genotype at its last step.
    let config = std::fs::read_to_string(dir.join("config.yaml")).unwrap();
    let unindent = |t: &(i64, String)| {
        let lines: Vec<&str> =
            t.1.lines()
                .map(|l| l.strip_prefix("    ").unwrap_or(l))
                .collect();
        (t.0, lines.join("\n"))
    };
    let shown: Vec<(i64, String)> = texts["config"].iter().map(unindent).collect();
    assert_eq!(shown, vec![(0, config.trim_end().to_owned())]);
    let genotypes: Vec<(i64, String)> = epochs
        .column("genotype")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .zip(&epoch_at)
        .filter_map(|(gt, s)| gt.map(|gt| (*s, gt.trim_end().to_owned())))
        .collect();
    let shown: Vec<(i64, String)> = texts
        .get("arch/genotype")
        .map(|v| v.iter().map(unindent).collect())
        .unwrap_or_default();
    assert_eq!(shown, genotypes, "{}: each epoch's genotype", dir.display());
    // The architecture entropies of the search epochs, from the `arch` rows.
    if dir.join(Table::Arch.file_name()).exists() {
        let arch = parquet::read(&dir.join(Table::Arch.file_name()), Table::Arch).unwrap();
        let (ep, prob) = (ints(&arch, "epoch"), floats(&arch, "prob"));
        let cell = arch.column("cell_type").unwrap().str().unwrap().clone();
        let mut h: BTreeMap<(String, i64), f64> = BTreeMap::new();
        for i in 0..ep.len() {
            let p = prob[i].unwrap();
            let term = if p > 0.0 { -p * p.ln() } else { 0.0 };
            *h.entry((cell.get(i).unwrap().to_owned(), ep[i]))
                .or_default() += term;
        }
        assert!(!h.is_empty(), "a search has architecture rows");
        for ((cell, e), want) in h {
            let at = last[&(Phase::Search, e)];
            let tag = format!("arch/entropy/{cell}");
            let pts = &scalars[&tag];
            let got = pts
                .iter()
                .find(|p| p.0 == at)
                .unwrap_or_else(|| panic!("`{tag}` at {at}: {pts:?}"));
            assert!(
                (got.1 - want).abs() <= 1e-5 * want.abs().max(1.0),
                "`{tag}`: {got:?} vs {want}"
            );
        }
    }
}

/// Scalars of `train/loss` in the event files of `dir` as written (no purge).
fn written_loss_steps(dir: &Path) -> Vec<i64> {
    use prost::Message;
    let mut v = Vec::new();
    for f in unas::results::event_file::list(dir).unwrap() {
        for r in records(&std::fs::read(f).unwrap()).unwrap() {
            let ev = Event::decode(r).unwrap();
            if let Some(What::Summary(s)) = ev.what {
                if s.value.iter().any(|x| x.tag == "train/loss") {
                    v.push(ev.step);
                }
            }
        }
    }
    v
}

#[test]
fn after_a_sigkill_and_resume_tensorboard_shows_each_step_once_with_the_parquet_values() {
    let Some(python) = reader_or_skip() else {
        return;
    };
    let results = tempfile::tempdir().unwrap();
    let s = suite(&[("tb", tiny("tb"))]);
    let sp = s.path().display().to_string();
    let args = [
        "--progress-every",
        "0",
        "reproduce",
        "--suite",
        &sp,
        "--tier",
        "paper",
    ];
    // A progress line after every step: the step log is read (and its block written to the event
    // file) at every step, so the kill leaves points after the last checkpoint.
    let mut c = unas(results.path(), &args);
    c.env("UNAS_TEST_SLOW_STEP_MS", "300");
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let log = || {
        dir_of(results.path(), "tb", "search")
            .and_then(|d| std::fs::read_to_string(d.join("run.log")).ok())
            .unwrap_or_default()
    };
    wait_for(
        &mut child,
        Duration::from_secs(120),
        "a search step after the warm-up",
        || log().contains("search epoch 0, step 2/3"),
    );
    child.kill().unwrap(); // SIGKILL, between the warm-up's checkpoint and the search epoch's
    child.wait().unwrap();
    let search = dir_of(results.path(), "tb", "search").unwrap();
    let before = written_loss_steps(&search);
    assert!(
        before.contains(&3) && before.contains(&4),
        "the killed run wrote search steps (run-wide 3, 4) after its last checkpoint: {before:?}"
    );

    let mut c = unas(results.path(), &args);
    c.env("UNAS_TEST_SLOW_STEP_MS", "0");
    let o = output(c);
    assert!(o.status.success(), "{}", show(&o));
    let after = written_loss_steps(&search);
    assert!(
        after.iter().filter(|s| **s == 3).count() == 2,
        "step 3 was written by both processes (the reader must show it once): {after:?}"
    );
    check_run(
        &python,
        &search,
        &[
            "train/loss",
            "train/acc1",
            "train/lr",
            "train/arc_lr",
            "meta/lr",
            "meta/entropy",
            "train/acc",
            "val/acc",
            "val/loss",
            "arch/entropy/normal",
            "arch/entropy/reduce",
            "meta/grad_var",
            "perf/images_per_s",
        ],
    );
    let train = dir_of(results.path(), "tb", "train").unwrap();
    check_run(
        &python,
        &train,
        &[
            "train/loss",
            "train/acc1",
            "train/lr",
            "train/acc",
            "test/acc1",
        ],
    );
}

#[test]
fn off_a_terminal_a_progress_line_comes_within_the_interval_and_goes_into_run_log() {
    let results = tempfile::tempdir().unwrap();
    let s = suite(&[("pl", tiny("pl"))]);
    let sp = s.path().display().to_string();
    let err_path = results.path().join("stderr.txt");
    let mut c = unas(
        results.path(),
        &[
            "--progress-every",
            "1",
            "--no-tensorboard",
            "reproduce",
            "--suite",
            &sp,
            "--tier",
            "paper",
        ],
    );
    // Every step sleeps 500 ms: with a line due 1 s after the last, at most 2 steps pass between
    // lines, whatever the machine's speed (a slower step only makes fewer steps fit in the interval).
    c.env("UNAS_TEST_SLOW_STEP_MS", "500")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err_path).unwrap());
    assert!(c.status().unwrap().success());
    let err = std::fs::read_to_string(&err_path).unwrap();
    for (stage, steps_in_stage) in [("search", 6), ("train", 3)] {
        let label = format!("pl {stage} seed 0: ");
        let lines: Vec<&str> = err.lines().filter(|l| l.starts_with(&label)).collect();
        // the position in the stage of each progress line: epochs ended before it × 3 + its step
        let (mut ended, mut at) = (0, Vec::new());
        for l in &lines {
            if l.contains(" step ") {
                let pos: u32 = l
                    .split(" step ")
                    .nth(1)
                    .unwrap()
                    .split('/')
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap();
                at.push(ended * 3 + pos);
                for field in ["images/s", "  loss ", "  ETA "] {
                    assert!(l.contains(field), "no `{field}` in {l:?}");
                }
            } else if l.contains(": epoch ") {
                ended += 1;
            }
        }
        assert!(
            !at.is_empty(),
            "no progress line for the {stage} stage:\n{err}"
        );
        let mut prev = 0;
        for a in &at {
            assert!(
                *a - prev <= 2,
                "{stage}: more than 2 steps between progress lines {at:?}:\n{err}"
            );
            prev = *a;
        }
        assert!(steps_in_stage - prev <= 2, "{stage}: {at:?}");
        // The same lines in the run's log.
        let dir = dir_of(results.path(), "pl", stage).unwrap();
        let log = std::fs::read_to_string(dir.join("run.log")).unwrap();
        for l in lines.iter().filter(|l| l.contains(" step ")) {
            assert!(
                log.contains(*l),
                "{l:?} is not in {}/run.log",
                dir.display()
            );
        }
        assert!(
            unas::results::event_file::list(&dir).unwrap().is_empty(),
            "--no-tensorboard writes no event file"
        );
    }
}
