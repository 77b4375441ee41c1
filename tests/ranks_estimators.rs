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
//! differs from run to run, one process or two.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

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

fn run(results: &Path, file: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["run", file.to_str().unwrap()];
    args.extend_from_slice(extra);
    let mut c = common::unas(results, &args);
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let out = c.output().unwrap();
    assert!(out.status.success(), "{}", common::show(&out));
    out
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

/// `text` run by one process, then by two ranks (with the one-process run's cache of latency
/// surrogates): the two search folders, with the same run id.
fn one_process_and_two_ranks(name: &str, text: String) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let suite = common::suite(&[(name, text)]);
    let file = suite.path().join(format!("{name}.yaml"));
    let root = tempfile::tempdir().unwrap();
    let (one, two) = (root.path().join("one"), root.path().join("two"));
    run(&one, &file, &[]);
    let cache = one.join("cache");
    if cache.is_dir() {
        copy_dir(&cache, &two.join("cache"));
    }
    run(&two, &file, &["--ranks", "2", "--rank-timeout", "60"]);
    let (a, b) = (search_dir(&one, name), search_dir(&two, name));
    assert_eq!(
        a.file_name(),
        b.file_name(),
        "the run id does not hold the ranks"
    );
    let prov: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(b.join("provenance.json")).unwrap()).unwrap();
    assert_eq!(prov["world_size"], 2, "the second run ran on two ranks");
    (root, a, b)
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
    let (_root, a, b) = one_process_and_two_ranks(name, darts(name, search));
    let frozen = search.contains("random_ws");
    let mut tables = vec![Table::Steps, Table::Epochs];
    if frozen {
        tables.push(Table::Candidates);
    }
    assert_same_numbers(&a, &b, &tables, frozen);
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

fn proxyless_search_with_latency_on_two_ranks_equals_one_process(name: &str, estimator: &str) {
    let (_root, a, b) = one_process_and_two_ranks(name, proxyless(name, estimator));
    assert_same_numbers(&a, &b, &[Table::Steps, Table::Epochs], false);
    // the latency term ran: every search step logged the sampled architecture's latency
    let steps = numbers(&a, Table::Steps);
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
