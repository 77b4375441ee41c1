//! `unas run --ranks 2` (two rank processes, Gloo over 127.0.0.1) against one process with
//! `sub_batches: 2`: the same numbers. A killed rank stops the run as `interrupted` naming it, and the
//! rerun resumes to the numbers of an uninterrupted two-rank run. Ranks that do not divide the
//! sub-batches are refused before anything runs.
//!
//! The bound. With R = G = 2 the weight gradient is g₀ + g₁ both ways (one addition, commutative):
//! exact. A logit gradient sums its K per-example contributions in another order (each rank its own
//! examples, then the all-reduce); reordering a float32 sum of K terms moves it by at most
//! (K − 1)·ε·Σ|terms| (ε = 2⁻²⁴ ≈ 6·10⁻⁸). Here K ≤ 3·B = 24 terms per logit (log q, f(ζ), the
//! penalty, per example), so the gradients, Adam's moments and every value downstream agree to
//! 24·6·10⁻⁸ ≈ 1.4·10⁻⁶ relative to their scale, for a step; over the run's 6 steps that is below
//! 1e-5·max(1, |x|), the tolerance used. BatchNorm running statistics are left out: each rank's see
//! only its sub-batches (as each GPU's under DDP), and the search never reads them.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use common::{checkpoint_tensors, numbers};
use unas::results::Table;

const TOLERANCE: f64 = 1e-5;

fn experiment(name: &str, search: &str) -> String {
    format!(
        "name: {name}
dataset: {{name: synthetic, train_portion: 0.5, synthetic: {{classes: 4, train: 48, test: 16, seed: 0}}}}
space: {{name: darts, layers: 3, channels: 4, ops: 7}}
search: {{{search}, epochs: {{warmup: 1, search: 1}}, batch: 8, sub_batches: 2}}
train: {{recipe: cifar, genotype: search, epochs: 1, warmup_epochs: 0, batch: 16, channels: 8, layers: 3, sub_batches: 2}}
seeds: {{search: [0], train: [0]}}
device: cpu
"
    )
}

/// A suite folder holding the one [`experiment`] `name`, and its file.
fn one_experiment(name: &str, search: &str) -> (tempfile::TempDir, PathBuf) {
    let suite = common::suite(&[(name, experiment(name, search))]);
    let file = suite.path().join(format!("{name}.yaml"));
    (suite, file)
}

fn run(results: &Path, file: &Path, extra: &[&str]) -> std::process::Command {
    let mut args = vec!["run", file.to_str().unwrap()];
    args.extend_from_slice(extra);
    let mut c = common::unas(results, &args);
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    c
}

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The search run's folder under `results`.
fn search_dir(results: &Path, name: &str) -> PathBuf {
    common::dir_of(results, name, "search").expect("a search run")
}

/// Every checkpoint tensor, and every number of the steps and epochs tables, within `tol` of the
/// other run's, relative to max(1, |x|) (`tol` 0: bit-identical).
fn assert_same_numbers(a: &Path, b: &Path, tol: f64) {
    let saved = checkpoint_tensors(a, true);
    assert!(
        saved.iter().any(|(n, _)| n.contains("alpha")),
        "logits saved"
    );
    common::assert_checkpoints_close(a, b, tol);
    common::assert_tables_close(a, b, &[Table::Steps, Table::Epochs], tol);
}

/// Waits (at most 120 s) for the end-of-warm-up checkpoint of the run `name` that `launcher` runs;
/// its folder and provenance.
fn first_checkpoint(
    results: &Path,
    name: &str,
    launcher: &mut std::process::Child,
) -> (PathBuf, serde_json::Value) {
    let t0 = Instant::now();
    let dir = loop {
        let dir = std::fs::read_dir(results.join(format!("runs/{name}/paper")))
            .ok()
            .and_then(|mut d| d.next())
            .map(|e| e.unwrap().path());
        if let Some(d) = dir.filter(|d| d.join("checkpoints/epoch-1/meta.json").is_file()) {
            break d;
        }
        assert!(
            launcher.try_wait().unwrap().is_none(),
            "the run ended first"
        );
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "no checkpoint after 120 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let prov = serde_json::from_str(&std::fs::read_to_string(dir.join("provenance.json")).unwrap())
        .unwrap();
    (dir, prov)
}

/// `file` run by one process, then by two ranks: their results folders.
fn one_process_and_two_ranks(file: &Path) -> (tempfile::TempDir, tempfile::TempDir) {
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    ok(&run(one.path(), file, &[]).output().unwrap());
    ok(
        &run(two.path(), file, &["--ranks", "2", "--rank-timeout", "60"])
            .output()
            .unwrap(),
    );
    (one, two)
}

/// One process with `sub_batches: 2`, then two ranks of one sub-batch each: the same run id, the
/// same numbers within the bound, and the ranks in provenance.
fn two_ranks_equal_one_process(name: &str, search: &str) {
    let (suite, file) = one_experiment(name, search);
    let (one, two) = one_process_and_two_ranks(&file);
    let (a, b) = (search_dir(one.path(), name), search_dir(two.path(), name));
    assert_eq!(
        a.file_name(),
        b.file_name(),
        "the run id does not hold the ranks"
    );
    assert_same_numbers(&a, &b, TOLERANCE);
    let prov: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(b.join("provenance.json")).unwrap()).unwrap();
    assert_eq!(prov["world_size"], 2);
    assert_eq!(prov["rank_backend"], "gloo");
    let ranks = prov["ranks"].as_array().unwrap();
    assert_eq!(ranks.len(), 2);
    assert_ne!(ranks[0]["pid"], ranks[1]["pid"]);
    assert_eq!(ranks[1]["device"], "cpu");
    // `unas status`: one run (one row per job), with its two ranks
    let out = common::unas(
        two.path(),
        &[
            "status",
            "--suite",
            suite.path().to_str().unwrap(),
            "--tier",
            "paper",
            "--json",
        ],
    )
    .output()
    .unwrap();
    ok(&out);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let searches: Vec<&serde_json::Value> = doc["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["stage"] == "search")
        .collect();
    assert_eq!(searches.len(), 1);
    assert_eq!(searches[0]["ranks"].as_array().unwrap().len(), 2);
}

#[test]
fn two_ranks_of_a_per_example_rebar_gengap_search_equal_one_process_with_two_sub_batches() {
    two_ranks_equal_one_process(
        "ranks-rebar",
        "estimator: rebar, objective: {kind: gengap}, sampling: per_example",
    );
}

#[test]
fn two_ranks_of_a_per_batch_relax_gengap_search_equal_one_process_with_two_sub_batches() {
    two_ranks_equal_one_process(
        "ranks-relax",
        "estimator: relax, objective: {kind: gengap}, sampling: per_batch",
    );
}

#[test]
fn two_ranks_of_a_reinforce_search_equal_one_process_with_two_sub_batches() {
    two_ranks_equal_one_process(
        "ranks-reinforce",
        "estimator: reinforce, objective: {kind: train}",
    );
}

/// The training of a fixed genotype with `train.sub_batches: 2` and drop-path (epoch 1 of 2), one
/// process against two ranks: bit-identical, BatchNorm running statistics and test accuracy included
/// (the weight gradient is g₀ + g₁ both ways, each slice draws its drop-path from its own stream, the
/// running statistics follow slice 0 on every rank, the test counts are whole numbers).
#[test]
fn two_ranks_of_a_training_with_two_sub_batches_equal_one_process_bit_for_bit() {
    let name = "ranks-train";
    let text = format!(
        "name: {name}
dataset: {{name: synthetic, train_portion: 0.5, synthetic: {{classes: 4, train: 48, test: 16, seed: 0}}}}
space: {{name: darts}}
train: {{recipe: cifar, genotype: DARTS_V2, epochs: 2, warmup_epochs: 0, batch: 16, channels: 8, layers: 3, sub_batches: 2}}
seeds: {{search: [0], train: [0]}}
device: cpu
"
    );
    let suite = common::suite(&[(name, text)]);
    let file = suite.path().join(format!("{name}.yaml"));
    let (one, two) = one_process_and_two_ranks(&file);
    let dir = |root: &Path| {
        let base = root.join(format!("runs/{name}/paper"));
        std::fs::read_dir(&base)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path()
    };
    let (a, b) = (dir(one.path()), dir(two.path()));
    assert_eq!(
        a.file_name(),
        b.file_name(),
        "the run id does not hold the ranks"
    );
    let all = |d: &Path| {
        let mut t =
            tch::Tensor::read_safetensors(d.join("checkpoints/epoch-2/tensors.safetensors"))
                .unwrap();
        t.sort_by(|x, y| x.0.cmp(&y.0));
        t
    };
    let (ta, tb) = (all(&a), all(&b));
    assert!(ta.iter().any(|(n, _)| n.contains("running_mean")));
    assert_eq!(ta.len(), tb.len());
    for ((na, xa), (nb, xb)) in ta.iter().zip(&tb) {
        assert_eq!(na, nb);
        assert!(xa.equal(xb), "{na} differs");
    }
    for t in [Table::Steps, Table::Epochs, Table::Summary] {
        assert!(
            numbers(&a, t).equals_missing(&numbers(&b, t)),
            "{t:?} differs"
        );
    }
}

#[test]
fn a_killed_rank_leaves_the_run_interrupted_naming_it_and_the_rerun_ends_as_an_uninterrupted_one() {
    let name = "ranks-kill";
    let (_suite, file) = one_experiment(name, "estimator: rebar, objective: {kind: gengap}");
    let args = ["--ranks", "2", "--rank-timeout", "120"];
    let whole = tempfile::tempdir().unwrap();
    ok(&run(whole.path(), &file, &args).output().unwrap());

    let cut = tempfile::tempdir().unwrap();
    let mut launcher = run(cut.path(), &file, &args).spawn().unwrap();
    let (dir, prov) = first_checkpoint(cut.path(), name, &mut launcher);
    let pid = prov["ranks"][1]["pid"].as_i64().unwrap();
    // SAFETY: SIGKILL to rank 1, a child of the launcher this test started.
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) }, 0);
    let killed = Instant::now();
    let out = launcher.wait_with_output().unwrap();
    // rank 0 leaves its collective at once (the peer's socket closed), well within the timeout
    assert!(
        killed.elapsed() < Duration::from_secs(60),
        "took {:?}",
        killed.elapsed()
    );
    assert!(!out.status.success());
    let status = std::fs::read_to_string(dir.join("status.json")).unwrap();
    assert!(status.contains("interrupted"), "{status}");
    assert!(status.contains(&format!("rank 1 (pid {pid}")), "{status}");
    assert!(status.contains("SIGKILL"), "{status}");
    let left = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .any(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(&format!("unas-rank1-{pid}-"))
        });
    assert!(
        !left,
        "the killed rank's private run folder was removed by the launcher"
    );

    ok(&run(cut.path(), &file, &args).output().unwrap());
    let status = std::fs::read_to_string(dir.join("status.json")).unwrap();
    assert!(status.contains("done"), "{status}");
    // resumed with the same ranks from the same checkpoint: bit-identical on the CPU
    assert_same_numbers(&search_dir(whole.path(), name), &dir, 0.0);
}

#[test]
fn sigterm_to_the_launcher_stops_every_rank_after_a_checkpoint_and_the_rerun_finishes() {
    let name = "ranks-term";
    let (_suite, file) = one_experiment(name, "estimator: gsm, objective: {kind: train}");
    let args = ["--ranks", "2", "--rank-timeout", "120"];
    let results = tempfile::tempdir().unwrap();
    let mut launcher = run(results.path(), &file, &args).spawn().unwrap();
    let (dir, prov) = first_checkpoint(results.path(), name, &mut launcher);
    // SAFETY: SIGTERM to the launcher this test started.
    assert_eq!(
        unsafe { libc::kill(launcher.id() as libc::pid_t, libc::SIGTERM) },
        0
    );
    let out = launcher.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(143),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = std::fs::read_to_string(dir.join("status.json")).unwrap();
    assert!(
        status.contains("interrupted") && status.contains("SIGTERM"),
        "{status}"
    );
    for r in prov["ranks"].as_array().unwrap() {
        let pid = r["pid"].as_i64().unwrap() as libc::pid_t;
        // SAFETY: signal 0 only asks whether the process exists.
        assert_ne!(
            unsafe { libc::kill(pid, 0) },
            0,
            "rank {} still runs",
            r["rank"]
        );
    }
    ok(&run(results.path(), &file, &args).output().unwrap());
    let status = std::fs::read_to_string(dir.join("status.json")).unwrap();
    assert!(status.contains("done"), "{status}");
}

#[test]
fn ranks_that_do_not_divide_the_sub_batches_are_refused_before_anything_runs() {
    let name = "ranks-bad";
    let (_suite, file) = one_experiment(name, "estimator: gsm, objective: {kind: train}");
    let results = tempfile::tempdir().unwrap();
    let out = run(results.path(), &file, &["--ranks", "3"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("sub_batches is 2") && err.contains("--ranks 3"),
        "{err}"
    );
    assert!(!results.path().join("runs").exists(), "nothing ran");
    // a timeout that is no timeout, from the flag or from the variable, is refused as well
    for value in ["-1", "0", "nan", "1e99"] {
        let flag = format!("--rank-timeout={value}");
        let out = run(results.path(), &file, &["--ranks", "2", &flag])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{flag}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("is not a timeout"), "{err}");
    }
    let out = run(results.path(), &file, &["--ranks", "2"])
        .env("UNAS_RANK_TIMEOUT_S", "soon")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    // GPUs this machine does not have (the test machines have none), for a run and for a suite
    let suite_dir = file.parent().unwrap().to_str().unwrap().to_owned();
    for args in [
        vec![
            "run",
            file.to_str().unwrap(),
            "--ranks",
            "2",
            "--gpus",
            "0,7",
        ],
        vec![
            "reproduce",
            "--suite",
            &suite_dir,
            "--tier",
            "paper",
            "--gpus",
            "0,7",
        ],
    ] {
        let out = common::unas(results.path(), &args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("--gpus 0,7: "), "{err}");
    }
    assert!(!results.path().join("runs").exists(), "nothing ran");
}

/// `unas reproduce --ranks-per-run 2`: the search (G = 2) runs as two ranks, the training of its
/// genotype (G = 1, nothing to split) as one process; `--ranks-per-run 3`, which does not divide the
/// search's G, is refused before anything runs, naming the experiment.
#[test]
fn reproduce_with_two_ranks_per_run_runs_each_job_as_its_g_allows_and_refuses_what_r_does_not_divide(
) {
    let name = "ranks-suite";
    let text = experiment(name, "estimator: gsm, objective: {kind: train}")
        .replace(", sub_batches: 2}\nseeds", "}\nseeds");
    assert!(!text.contains("layers: 3, sub_batches"), "{text}");
    let suite = common::suite(&[(name, text)]);
    let results = tempfile::tempdir().unwrap();
    let reproduce = |r: &str| {
        common::unas(
            results.path(),
            &[
                "reproduce",
                "--suite",
                suite.path().to_str().unwrap(),
                "--tier",
                "paper",
                "--ranks-per-run",
                r,
            ],
        )
        .output()
        .unwrap()
    };
    let bad = reproduce("3");
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains(name)
            && err.contains("search.sub_batches is 2")
            && err.contains("--ranks-per-run 3"),
        "{err}"
    );
    assert!(!results.path().join("runs").exists(), "nothing ran");

    ok(&reproduce("2"));
    let base = results.path().join(format!("runs/{name}/paper"));
    let mut worlds: Vec<(String, u64, String)> = std::fs::read_dir(&base)
        .unwrap()
        .map(|e| {
            let d = e.unwrap().path();
            let prov: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(d.join("provenance.json")).unwrap())
                    .unwrap();
            let stage = d
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .split('-')
                .next()
                .unwrap()
                .to_owned();
            let state = std::fs::read_to_string(d.join("status.json")).unwrap();
            (stage, prov["world_size"].as_u64().unwrap(), state)
        })
        .collect();
    worlds.sort();
    assert_eq!(worlds.len(), 2, "{worlds:?}");
    assert_eq!(
        (worlds[0].0.as_str(), worlds[0].1),
        ("search", 2),
        "{worlds:?}"
    );
    assert_eq!(
        (worlds[1].0.as_str(), worlds[1].1),
        ("train", 1),
        "{worlds:?}"
    );
    assert!(worlds.iter().all(|w| w.2.contains("done")), "{worlds:?}");
}

/// Rank 1's stage fails with an error (injected at its first search step): rank 0 leaves
/// its collective and records the run `failed` with rank 1's error, not `interrupted`.
#[test]
fn a_rank_that_fails_with_an_error_records_the_run_failed_with_that_error() {
    let name = "ranks-fail";
    let (_suite, file) = one_experiment(name, "estimator: gsm, objective: {kind: train}");
    let results = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let out = run(
        results.path(),
        &file,
        &["--ranks", "2", "--rank-timeout", "120"],
    )
    .env("UNAS_TEST_FAIL_RANK", "1")
    .output()
    .unwrap();
    assert!(
        t0.elapsed() < Duration::from_secs(100),
        "took {:?}",
        t0.elapsed()
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = search_dir(results.path(), name);
    let status = common::status_json(&dir);
    assert_eq!(status["state"], "failed", "{status}");
    let reason = status["reason"].as_str().unwrap();
    assert!(
        reason.contains("rank 1 of 2 (pid")
            && reason.contains("a failure injected for tests (UNAS_TEST_FAIL_RANK) at search step"),
        "{reason}"
    );
    assert!(
        !dir.join("rank-1.failed").exists(),
        "the note became the run's reason"
    );
}

/// Rank 0 (which records the run) is killed: its launcher records the run `interrupted`, naming
/// rank 0, its host and the signal, and the rerun finishes it.
#[test]
fn a_killed_rank_0_leaves_the_run_interrupted_naming_it_not_running_and_the_rerun_finishes() {
    let name = "ranks-kill0";
    let (_suite, file) = one_experiment(name, "estimator: gsm, objective: {kind: train}");
    let args = ["--ranks", "2", "--rank-timeout", "120"];
    let results = tempfile::tempdir().unwrap();
    let mut launcher = run(results.path(), &file, &args).spawn().unwrap();
    let (dir, prov) = first_checkpoint(results.path(), name, &mut launcher);
    let pid = prov["ranks"][0]["pid"].as_i64().unwrap();
    // SAFETY: SIGKILL to rank 0, a child of the launcher this test started.
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) }, 0);
    let out = launcher.wait_with_output().unwrap();
    assert!(!out.status.success());
    let status = common::status_json(&dir);
    assert_eq!(status["state"], "interrupted", "{status}");
    let reason = status["reason"].as_str().unwrap();
    let host = prov["ranks"][0]["host"].as_str().unwrap();
    assert!(
        reason.contains(&format!("rank 0 (pid {pid} on {host})")) && reason.contains("SIGKILL"),
        "{reason}"
    );
    ok(&run(results.path(), &file, &args).output().unwrap());
    let status = std::fs::read_to_string(dir.join("status.json")).unwrap();
    assert!(status.contains("done"), "{status}");
}

/// Ranks are how a run executes, not what it computes: a two-rank search cut after its first
/// checkpoint (rank 1 killed) resumes as one process, and a one-process search cut there (killed)
/// resumes as two ranks; both end equal to the uninterrupted one-process run within the bound above
/// (the reduction order is all that differs). The cut is a kill after the end-of-warm-up checkpoint
/// (a SIGTERM's mid-epoch checkpoint is `tests/run_resume.rs`'s).
#[test]
fn a_run_cut_with_two_ranks_resumes_with_one_and_the_reverse_ending_as_the_uninterrupted_run() {
    let name = "ranks-switch";
    let (_suite, file) = one_experiment(name, "estimator: rebar, objective: {kind: gengap}");
    let two = ["--ranks", "2", "--rank-timeout", "120"];
    let whole = tempfile::tempdir().unwrap();
    ok(&run(whole.path(), &file, &[]).output().unwrap());
    let whole = search_dir(whole.path(), name);
    for (first, then) in [(&two[..], &[][..]), (&[][..], &two[..])] {
        let results = tempfile::tempdir().unwrap();
        // slow steps: the kill lands before the search epoch's end, whatever the machine's load
        let mut launcher = run(results.path(), &file, first)
            .env("UNAS_TEST_SLOW_STEP_MS", "300")
            .spawn()
            .unwrap();
        let (dir, prov) = first_checkpoint(results.path(), name, &mut launcher);
        let victim = match prov["ranks"][1]["pid"].as_i64() {
            Some(rank1) => rank1 as libc::pid_t,
            None => launcher.id() as libc::pid_t,
        };
        // SAFETY: SIGKILL to the process this test started, or to its rank 1.
        assert_eq!(unsafe { libc::kill(victim, libc::SIGKILL) }, 0);
        let out = launcher.wait_with_output().unwrap();
        assert!(!out.status.success());
        ok(&run(results.path(), &file, then).output().unwrap());
        assert_eq!(common::status_json(&dir)["state"], "done");
        let log = std::fs::read_to_string(dir.join("run.log")).unwrap();
        assert!(log.contains("resuming from a checkpoint"), "{log}");
        let world = if then.is_empty() { 1 } else { 2 };
        let prov: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("provenance.json")).unwrap())
                .unwrap();
        assert_eq!(prov["world_size"], world, "the resumed run's ranks");
        assert_same_numbers(&whole, &dir, TOLERANCE);
    }
}

/// `UNAS_DIST_BACKEND` asks for the backend of CUDA tensors: a value that names none is refused before
/// anything runs; `nccl` for a run on the CPU fails the run (recorded, with the reason), rather than
/// falling back to Gloo (what `auto`, the default, does and records as `gloo`).
#[test]
fn a_backend_request_nccl_cannot_meet_fails_the_run_saying_why_and_a_bad_one_is_refused() {
    let (_suite, file) = one_experiment("ranks-nccl", "estimator: gsm, objective: {kind: train}");
    let results = tempfile::tempdir().unwrap();
    let bad = run(results.path(), &file, &["--ranks", "2"])
        .env("UNAS_DIST_BACKEND", "mpi")
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("UNAS_DIST_BACKEND=mpi"), "{err}");
    assert!(!results.path().join("runs").exists(), "nothing ran");

    let nccl = run(results.path(), &file, &["--ranks", "2"])
        .env("UNAS_DIST_BACKEND", "nccl")
        .output()
        .unwrap();
    assert!(!nccl.status.success());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&nccl.stdout),
        String::from_utf8_lossy(&nccl.stderr)
    );
    assert!(
        text.contains("NCCL cannot carry this run: the run is on the CPU"),
        "{text}"
    );
    // and the run says so: recorded failed with the reason, not left without a record
    let status = common::status_json(&search_dir(results.path(), "ranks-nccl"));
    assert_eq!(status["state"], "failed", "{status}");
    assert!(
        status["reason"]
            .as_str()
            .unwrap_or("")
            .contains("NCCL cannot carry this run"),
        "{status}"
    );
}

/// Rank 0's stage fails with an error while rank 1 is still in that step's collectives, in a run of two
/// independent searches (seeds 0 and 1): rank 0 records the first `failed` with its error and leaves
/// (it must not start the next job, whose first collective would meet rank 1's unfinished one); rank 1
/// then leaves its collective, and the command ends well within the timeout. The second search (and
/// the training) are left for the rerun, which (without the fault) finishes them all.
#[test]
fn a_rank_0_that_fails_with_an_error_leaves_rather_than_start_the_next_job_under_its_peers() {
    let name = "ranks-fail0";
    let text = experiment(name, "estimator: gsm, objective: {kind: train}").replace(
        "seeds: {search: [0], train: [0]}",
        "seeds: {search: [0, 1], train: [0]}",
    );
    assert!(text.contains("search: [0, 1]"), "{text}");
    let suite = common::suite(&[(name, text)]);
    let file = suite.path().join(format!("{name}.yaml"));
    let results = tempfile::tempdir().unwrap();
    let args = ["--ranks", "2", "--rank-timeout", "120"];
    let t0 = Instant::now();
    let out = run(results.path(), &file, &args)
        .env("UNAS_TEST_FAIL_RANK", "0")
        .output()
        .unwrap();
    let log = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        t0.elapsed() < Duration::from_secs(100),
        "took {:?}",
        t0.elapsed()
    );
    assert!(!out.status.success(), "{log}");
    let states: Vec<(String, String)> = common::run_dirs(results.path())
        .iter()
        .filter(|d| d.join("status.json").exists())
        .map(|d| {
            let s = common::status_json(d);
            (
                s["state"].as_str().unwrap_or("").to_owned(),
                s["reason"].to_string(),
            )
        })
        .collect();
    assert_eq!(
        states.len(),
        1,
        "one search ran and was recorded: {states:?}\n{log}"
    );
    assert_eq!(states[0].0, "failed", "{states:?}");
    assert!(states[0].1.contains("UNAS_TEST_FAIL_RANK"), "{states:?}");

    let rerun = run(
        results.path(),
        &file,
        &[&args[..], &["--retry-failed"]].concat(),
    )
    .output()
    .unwrap();
    ok(&rerun);
    let dirs = common::run_dirs(results.path());
    let done = dirs
        .iter()
        .filter(|d| common::status_json(d)["state"] == "done")
        .count();
    assert!(dirs.len() >= 3, "two searches and their training: {dirs:?}");
    assert_eq!(done, dirs.len(), "every job finishes on the rerun");
}
