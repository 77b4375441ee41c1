//! Every estimator the single process runs, on 2 ranks (Gloo over 127.0.0.1) against one process with
//! `sub_batches: 2`: the same losses, architecture logits (their gradients are the steps' `grad_var`
//! and the logits' change), weights and tables. `tests/ranks.rs` covers rebar, relax and reinforce in
//! the DARTS space; this file covers gsm, st_gsm, darts and random_ws there, and the ProxylessNAS space
//! with its latency term (a score-function estimator carrying latency: rebar, and reinforce with its
//! own moving-average latency baseline). Searches only (no `train` section), one warm-up and one search
//! epoch of 3 steps.
//!
//! The bound is the one of `tests/ranks.rs`: the weight gradient is g₀ + g₁ both ways (exact); a logit
//! gradient sums at most K = 3·B = 24 per-example (or per-sub-batch) contributions in another order,
//! which moves it by at most (K − 1)·ε·Σ|terms| (ε = 2⁻²⁴), ≈ 1.4·10⁻⁶ relative for a step, below
//! 1e-5·max(1, |x|) over the 6 steps. The latency term is computed whole on every rank from the same
//! second sample and counted once, so it adds no reordering. In the ProxylessNAS space the latency of
//! the sampled architectures is the surrogate's (`measure: surrogate`), and the two runs read the same
//! surrogate (the one-process run fits it, the two-rank run finds it in its cache): a timed latency
//! differs from run to run, one process or two. Within the two-rank run, rank 0 alone takes (or fits,
//! or reads back) the surrogate and broadcasts it: each rank logs the digest of the one it uses, and
//! every rank's must be the one-process run's, with no rank fitting one of its own.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use common::{checkpoint_tensors, numbers};
use unas::results::Table;

const TOLERANCE: f64 = 1e-5;

/// A search only, in the DARTS space, with `search` (estimator, objective, sampling).
fn darts(name: &str, search: &str) -> String {
    format!(
        "name: {name}
dataset: {{name: synthetic, train_portion: 0.5, synthetic: {{classes: 4, train: 48, test: 16, seed: 0}}}}
space: {{name: darts, layers: 3, channels: 4, ops: 7}}
search: {{{search}, epochs: {{warmup: 1, search: 1}}, batch: 8, sub_batches: 2}}
seeds: {{search: [0], train: [0]}}
device: cpu
"
    )
}

/// A search only, in the ProxylessNAS space at a quarter width on 32 px images, with the latency term
/// (target below any latency, so that the hinge is active) and estimator `estimator`.
fn proxyless(name: &str, estimator: &str) -> String {
    format!(
        "name: {name}
dataset: {{name: synthetic, train_portion: 0.5, synthetic: {{like: imagenet, classes: 4, train: 48, test: 16, seed: 0}}}}
space: {{name: proxyless, ops: 7, width_multiplier: 0.25, resolution: 32, zero_dropout: 0.1}}
search:
  estimator: {estimator}
  objective:
    kind: gengap
    pair_penalty: 0.0
    latency: {{target_ms: 0.001, coeff: 0.1, ramp_steps: 4, batch: 4, repeats: 1, surrogate_samples: 10, measure: surrogate}}
  soften_eps: 0.08
  sampling: per_batch
  sub_batches: 2
  epochs: {{warmup: 1, search: 1}}
  batch: 8
seeds: {{search: [0], train: [0]}}
device: cpu
"
    )
}

/// `unas -v run FILE EXTRA…` (info lines on stderr: the surrogate each rank uses).
fn command(results: &Path, file: &Path, extra: &[&str]) -> std::process::Command {
    let mut args = vec!["-v", "run", file.to_str().unwrap()];
    args.extend_from_slice(extra);
    let mut c = common::unas(results, &args);
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    c
}

fn run(results: &Path, file: &Path, extra: &[&str]) -> Output {
    let out = command(results, file, extra).output().unwrap();
    assert!(out.status.success(), "{}", common::show(&out));
    out
}

/// The latency surrogates the ranks of a run used, as they logged them: (rank, digest) in log order;
/// and how many times one was fitted.
fn surrogates_used(out: &Output) -> (Vec<(usize, String)>, usize) {
    let err = String::from_utf8_lossy(&out.stderr);
    let used = err
        .lines()
        .filter_map(|l| {
            let (_, rest) = l.split_once("rank ")?;
            let (rank, digest) = rest.split_once(" uses the latency surrogate ")?;
            Some((rank.parse().ok()?, digest.trim().to_owned()))
        })
        .collect();
    let fitted = err
        .matches("fitting the latency surrogate on timed architectures")
        .count();
    (used, fitted)
}

/// The search run's folder under `results`.
fn search_dir(results: &Path, name: &str) -> PathBuf {
    common::dir_of(results, name, "search").expect("a search run")
}

/// Every checkpoint tensor and every number of `tables` within the bound of the other run's; the
/// logits must have moved from their initial value in the search epoch (unless `frozen`: random
/// search never trains them).
fn assert_same_numbers(a: &Path, b: &Path, tables: &[Table], frozen: bool) {
    let ta = checkpoint_tensors(a, true);
    // the logits after the warm-up (their initial values) against after the search epoch
    let logits = |t: &[(String, tch::Tensor)]| -> Vec<tch::Tensor> {
        t.iter()
            .filter(|(n, _)| n.starts_with("alpha"))
            .map(|(_, x)| x.shallow_clone())
            .collect()
    };
    let (before, after) = (logits(&checkpoint_tensors(a, false)), logits(&ta));
    assert!(!after.is_empty(), "logits saved");
    let moved = before.iter().zip(&after).any(|(x, y)| !x.equal(y));
    assert_eq!(
        moved, !frozen,
        "the logits moved (or stayed) as the estimator says"
    );
    common::assert_checkpoints_close(a, b, TOLERANCE);
    common::assert_tables_close(a, b, tables, TOLERANCE);
}

/// Two runs of one experiment: by one process, then by two ranks.
struct OneAndTwo {
    _root: tempfile::TempDir,
    /// The search folders, with the same run id.
    one: PathBuf,
    two: PathBuf,
    /// What each run printed.
    out_one: Output,
    out_two: Output,
}

/// `text` run by one process, then by two ranks (with the one-process run's cache of latency
/// surrogates).
fn one_process_and_two_ranks(name: &str, text: String) -> OneAndTwo {
    let suite = common::suite(&[(name, text)]);
    let file = suite.path().join(format!("{name}.yaml"));
    let root = tempfile::tempdir().unwrap();
    let (one, two) = (root.path().join("one"), root.path().join("two"));
    let out_one = run(&one, &file, &[]);
    let cache = one.join("cache");
    if cache.is_dir() {
        copy_dir(&cache, &two.join("cache"));
    }
    let out_two = run(&two, &file, &["--ranks", "2", "--rank-timeout", "60"]);
    let (a, b) = (search_dir(&one, name), search_dir(&two, name));
    assert_eq!(
        a.file_name(),
        b.file_name(),
        "the run id does not hold the ranks"
    );
    let prov: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(b.join("provenance.json")).unwrap()).unwrap();
    assert_eq!(prov["world_size"], 2, "the second run ran on two ranks");
    OneAndTwo {
        _root: root,
        one: a,
        two: b,
        out_one,
        out_two,
    }
}

fn copy_dir(from: &Path, to: &Path) {
    for e in walkdir::WalkDir::new(from) {
        let e = e.unwrap();
        let dest = to.join(e.path().strip_prefix(from).unwrap());
        if e.file_type().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
        } else {
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
}

fn darts_space_search_on_two_ranks_equals_one_process(name: &str, search: &str) {
    let runs = one_process_and_two_ranks(name, darts(name, search));
    let (a, b) = (&runs.one, &runs.two);
    let frozen = search.contains("random_ws");
    let mut tables = vec![Table::Steps, Table::Epochs];
    if frozen {
        tables.push(Table::Candidates);
    }
    assert_same_numbers(a, b, &tables, frozen);
}

#[test]
fn two_ranks_of_a_per_example_gsm_search_equal_one_process_with_two_sub_batches() {
    darts_space_search_on_two_ranks_equals_one_process(
        "ranks-gsm",
        "estimator: gsm, objective: {kind: gengap}, sampling: per_example",
    );
}

#[test]
fn two_ranks_of_a_per_batch_st_gsm_search_equal_one_process_with_two_sub_batches() {
    darts_space_search_on_two_ranks_equals_one_process(
        "ranks-st-gsm",
        "estimator: st_gsm, objective: {kind: val}, sampling: per_batch",
    );
}

#[test]
fn two_ranks_of_a_darts_search_equal_one_process_with_two_sub_batches() {
    darts_space_search_on_two_ranks_equals_one_process(
        "ranks-darts",
        "estimator: darts, objective: {kind: gengap}",
    );
}

#[test]
fn two_ranks_of_a_random_ws_search_equal_one_process_with_two_sub_batches() {
    darts_space_search_on_two_ranks_equals_one_process(
        "ranks-random-ws",
        "estimator: random_ws, objective: {kind: train}, candidates: 4",
    );
}

/// The one surrogate the one-process run fitted and used, and that every rank of the two-rank run
/// used, none of them fitting one (rank 0 took it from the cache, rank 1 from rank 0).
fn assert_every_rank_uses_the_one_process_surrogate(runs: &OneAndTwo) {
    let (used, fitted) = surrogates_used(&runs.out_one);
    assert_eq!(fitted, 1, "the one-process run fitted its surrogate");
    assert_eq!(used.len(), 1, "{used:?}");
    let digest = &used[0].1;
    assert_two_ranks_use(&runs.out_two, digest);
}

/// Each of the two ranks used the surrogate `digest`, and neither fitted one.
fn assert_two_ranks_use(out: &Output, digest: &str) {
    let (mut used, fitted) = surrogates_used(out);
    assert_eq!(
        fitted,
        0,
        "no rank fitted a surrogate of its own\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    used.sort();
    assert_eq!(
        used,
        vec![(0, digest.to_owned()), (1, digest.to_owned())],
        "every rank uses rank 0's surrogate"
    );
}

fn proxyless_search_with_latency_on_two_ranks_equals_one_process(name: &str, estimator: &str) {
    let runs = one_process_and_two_ranks(name, proxyless(name, estimator));
    let (a, b) = (&runs.one, &runs.two);
    assert_same_numbers(a, b, &[Table::Steps, Table::Epochs], false);
    assert_every_rank_uses_the_one_process_surrogate(&runs);
    // the latency term ran: every search step logged the sampled architecture's latency
    let steps = numbers(a, Table::Steps);
    let lat = steps.column("lat_ms").unwrap().f64().unwrap();
    assert!(
        (0..lat.len()).any(|i| lat.get(i).is_some_and(|v| v > 0.0)),
        "latencies logged"
    );
}

#[test]
fn two_ranks_of_a_proxyless_rebar_search_with_latency_equal_one_process() {
    proxyless_search_with_latency_on_two_ranks_equals_one_process("ranks-proxyless-rebar", "rebar");
}

#[test]
fn two_ranks_of_a_proxyless_reinforce_search_with_latency_equal_one_process() {
    proxyless_search_with_latency_on_two_ranks_equals_one_process(
        "ranks-proxyless-reinforce",
        "reinforce",
    );
}

/// A two-rank ProxylessNAS search stopped (SIGTERM) after its surrogate was taken, and resumed with
/// no cache to take it from: rank 0 reads it back from the run folder and rank 1 gets it from rank 0
/// by the same broadcast (matched, or the ranks would hang past the timeout); the run ends with the
/// one-process run's numbers.
#[test]
fn a_two_rank_proxyless_search_resumed_uses_rank_0s_read_back_surrogate_on_every_rank() {
    let name = "ranks-proxyless-resume";
    let suite = common::suite(&[(name, proxyless(name, "rebar"))]);
    let file = suite.path().join(format!("{name}.yaml"));
    let root = tempfile::tempdir().unwrap();
    let (one, two) = (root.path().join("one"), root.path().join("two"));
    let out_one = run(&one, &file, &[]);
    let (used, _) = surrogates_used(&out_one);
    let digest = &used[0].1;
    copy_dir(&one.join("cache"), &two.join("cache"));

    let ranks = ["--ranks", "2", "--rank-timeout", "60"];
    // slow steps: the SIGTERM lands within the search epoch, whatever the machine's load
    let mut launcher = command(&two, &file, &ranks)
        .env("UNAS_TEST_SLOW_STEP_MS", "300")
        .spawn()
        .unwrap();
    let taken = || {
        common::dir_of(&two, name, "search").filter(|d| d.join("latency_surrogate.json").is_file())
    };
    common::wait_for(
        &mut launcher,
        Duration::from_secs(120),
        "the surrogate",
        || taken().is_some(),
    );
    let dir = taken().unwrap();
    common::signal(launcher.id(), libc::SIGTERM);
    let cut = launcher.wait_with_output().unwrap();
    assert_two_ranks_use(&cut, digest);
    assert_eq!(common::status_json(&dir)["state"], "interrupted");

    std::fs::remove_dir_all(two.join("cache")).unwrap();
    let resumed = run(&two, &file, &ranks);
    assert_two_ranks_use(&resumed, digest);
    assert_eq!(common::status_json(&dir)["state"], "done");
    let log = std::fs::read_to_string(dir.join("run.log")).unwrap();
    assert!(
        log.contains("resuming the search from a checkpoint"),
        "{log}"
    );
    assert_same_numbers(
        &search_dir(&one, name),
        &dir,
        &[Table::Steps, Table::Epochs],
        false,
    );
}
