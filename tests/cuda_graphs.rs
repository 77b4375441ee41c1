//! `train.cuda_graphs`: the schedule of the graphed training step (an eager warm-up step, one capture
//! per epoch, replays on static tensors, the smaller last batch eager, a fresh warm-up after a
//! resume) run on the CPU through its emulation (`UNAS_CUDA_GRAPHS=emulate`: "replay" = the step on
//! the static tensors), against the plain loop: every number the same, bit for bit. The capture and
//! the replay of a real CUDA graph need a GPU (scripts/device-check.sh).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use assert_cmd::cargo::CommandCargoExt;
use common::{numbers, wait_for};
use unas::results::Table;

/// 88 training images in batches of 16: five full batches and one of 8 per epoch; drop-path rising
/// over 4 epochs, so every epoch captures anew.
fn experiment(name: &str, graphs: bool) -> String {
    format!(
        "name: {name}
dataset: {{name: synthetic, synthetic: {{classes: 4, train: 88, test: 16, seed: 0}}}}
space: {{name: darts}}
train: {{recipe: cifar, genotype: UNAS_CIFAR10, epochs: 4, warmup_epochs: 0, batch: 16, channels: 8, layers: 3, drop_path: 0.2, cuda_graphs: {graphs}}}
seeds: {{search: [0], train: [0]}}
device: cpu
"
    )
}

fn unas(results: &Path, file: &Path, emulate: bool) -> Command {
    let mut c = Command::cargo_bin("unas").unwrap();
    c.arg("--threads")
        .arg("1")
        .arg("--results")
        .arg(results)
        .arg("run")
        .arg(file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if emulate {
        c.env("UNAS_CUDA_GRAPHS", "emulate");
    } else {
        c.env_remove("UNAS_CUDA_GRAPHS");
    }
    c
}

fn run_ok(mut c: Command) {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn train_dir(results: &Path, name: &str) -> PathBuf {
    let base = results.join("runs").join(name).join("paper");
    let dirs: Vec<PathBuf> = std::fs::read_dir(&base)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    assert!(dirs.len() <= 1, "one training run: {dirs:?}");
    dirs.into_iter().next().unwrap_or(base)
}

fn assert_same_numbers(plain: &Path, graphed: &Path) {
    for t in [Table::Steps, Table::Epochs] {
        let (x, y) = (numbers(plain, t), numbers(graphed, t));
        assert_eq!(x.shape(), y.shape(), "{t:?}");
        for c in x.get_column_names() {
            assert!(
                x.column(c).unwrap().equals_missing(y.column(c).unwrap()),
                "{t:?} column {c} differs with cuda_graphs:\n{:?}\n{:?}",
                x.column(c).unwrap(),
                y.column(c).unwrap()
            );
        }
    }
    let (x, y) = (
        numbers(plain, Table::Summary),
        numbers(graphed, Table::Summary),
    );
    for c in ["acc_test_top1_pct", "acc_test_top5_pct", "params_m"] {
        assert!(
            x.column(c).unwrap().equals_missing(y.column(c).unwrap()),
            "summary {c} differs"
        );
    }
}

/// The last `cuda graphs of the training step so far` line of a run's log: (captures, replays, eager).
fn counts(dir: &Path) -> (u64, u64, u64) {
    let log = std::fs::read_to_string(dir.join("run.log")).unwrap();
    let line = log
        .lines()
        .rfind(|l| l.contains("cuda graphs of the training step"))
        .unwrap_or_else(|| panic!("no cuda-graph line in {}:\n{log}", dir.display()));
    let field = |k: &str| -> u64 {
        let at = line.find(&format!("{k}=")).unwrap() + k.len() + 1;
        line[at..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    (field("captures"), field("replays"), field("eager"))
}

#[test]
fn graphed_training_steps_give_the_plain_loops_numbers_and_resume_alike() {
    let dir = tempfile::tempdir().unwrap();
    let plain_file = dir.path().join("plain.yaml");
    let graphed_file = dir.path().join("graphed.yaml");
    std::fs::write(&plain_file, experiment("plain", false)).unwrap();
    std::fs::write(&graphed_file, experiment("graphed", true)).unwrap();

    let results = dir.path().join("results");
    run_ok(unas(&results, &plain_file, false));
    run_ok(unas(&results, &graphed_file, true));
    let plain = train_dir(&results, "plain");
    let graphed = train_dir(&results, "graphed");
    assert_same_numbers(&plain, &graphed);
    // per epoch: 6 batches; epoch 0 = eager warm-up, capture + 4 replays, the batch of 8 eager;
    // epochs 1-3 = capture + 5 replays, the batch of 8 eager
    assert_eq!(counts(&graphed), (4, 4 + 3 * 5, 2 + 3));

    // Killed after its second epoch's checkpoint and run again: a fresh warm-up, the same numbers.
    let resumed = dir.path().join("resumed");
    let mut child = unas(&resumed, &graphed_file, true).spawn().unwrap();
    let ckpt = || {
        train_dir(&resumed, "graphed")
            .join("checkpoints/epoch-2/meta.json")
            .is_file()
    };
    wait_for(
        &mut child,
        Duration::from_secs(300),
        "the second checkpoint",
        ckpt,
    );
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    run_ok(unas(&resumed, &graphed_file, true));
    let again = train_dir(&resumed, "graphed");
    assert_same_numbers(&plain, &again);
    let (captures, _, eager) = counts(&again);
    assert!(
        captures >= 1 && eager >= 2,
        "the resumed attempt warmed up and captured again: {captures} captures, {eager} eager"
    );

    // Without the emulation the CPU ignores the option, says so, and computes the same.
    let ignored = dir.path().join("ignored");
    run_ok(unas(&ignored, &graphed_file, false));
    let d = train_dir(&ignored, "graphed");
    let log = std::fs::read_to_string(d.join("run.log")).unwrap();
    assert!(
        log.contains("train.cuda_graphs is ignored on Cpu"),
        "no warning in {log}"
    );
    assert_same_numbers(&plain, &d);
}

/// `unas --threads 1 ARGS` from the repository root, emulating CUDA graphs or not.
fn bare(args: &[&str], emulate: bool) -> Output {
    let mut c = Command::cargo_bin("unas").unwrap();
    c.current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["--threads", "1"])
        .args(args);
    if emulate {
        c.env("UNAS_CUDA_GRAPHS", "emulate");
    } else {
        c.env_remove("UNAS_CUDA_GRAPHS");
    }
    c.output().unwrap()
}

#[test]
fn a_cuda_graph_benchmark_on_the_cpu_is_refused_with_the_fix() {
    let args =
        "bench step train --device cpu --layers 3 --channels 4 --batch 8 --steps 1 --cuda-graphs";
    let out = bare(&args.split(' ').collect::<Vec<_>>(), false);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("needs a CUDA device") && err.contains("--device cuda"),
        "{err}"
    );
}

#[test]
fn cuda_graphs_with_bf16_are_refused_before_training() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bf16.yaml");
    std::fs::write(
        &file,
        experiment("bf16", true).replace("device: cpu", "device: cpu\nprecision: bf16"),
    )
    .unwrap();
    let out = unas(&dir.path().join("r"), &file, true).output().unwrap();
    assert!(!out.status.success());
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        all.contains("does not combine with precision: bf16"),
        "{all}"
    );
}

#[test]
fn the_cuda_graph_diagnostic_compares_the_weights_after_eager_and_graphed_steps() {
    let args = "diagnose cuda-graphs --layers 3 --channels 4 --batch 8 --steps 4 --json";
    let out = bare(&args.split(' ').collect::<Vec<_>>(), true);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // the first step warms up, the second captures; the eager CPU is deterministic
    assert_eq!(
        (&r["captures"], &r["replays"], &r["eager"]),
        (&1.into(), &3.into(), &1.into()),
        "{r}"
    );
    assert_eq!(r["bit_identical"], true, "{r}");
    assert_eq!(r["eager_repeat_max_abs_diff"], 0.0, "{r}");
    assert_eq!(r["pass"], true, "{r}");
}
