//! Malformed experiment files: each gives a clear error naming the file (and line and column where the
//! file has one), the field, and what was expected — never a panic, and nothing written.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use unas::config::{load, ConfigError, Resolved, Tier};
use unas::config::{parse_experiment, resolve};
use unas::config::{Tiers, EMBEDDED_TIERS};

fn bad(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/bad")
        .join(name)
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A small valid experiment; the generated cases change one thing in it.
const BASE: &str = "\
name: t
dataset: {name: synthetic}
space: {name: darts, layers: 3, channels: 4}
search:
  estimator: rebar
  objective: {kind: gengap}
  epochs: {warmup: 1, search: 1}
train: {recipe: cifar}
seeds: {search: [0], train: [0]}
";

fn resolve_text(text: &str, tier: Tier, sets: &[&str]) -> Result<Resolved, ConfigError> {
    let tiers = Tiers::parse("tiers.yaml", EMBEDDED_TIERS).unwrap();
    let e = parse_experiment("x.yaml", text)?;
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    resolve("x.yaml", text, e, tier, &tiers, &sets)
}

/// Writes `text` as `dir/name` and loads it at the paper tier (the file path is what `unas` reads).
fn load_text(dir: &Path, name: &str, text: &str) -> Result<Resolved, ConfigError> {
    let f = dir.join(name);
    std::fs::write(&f, text).unwrap();
    load(&f, Tier::Paper, &[])
}

/// (file in tests/bad, text the error must contain, line it must point at if any)
const CASES: &[(&str, &str, Option<u64>)] = &[
    (
        "syntax-unclosed-flow.yaml",
        "field `dataset`: this `{` (the mapping of `dataset`) is never closed",
        Some(2),
    ),
    (
        "syntax-bad-indent.yaml",
        "did not find expected key",
        Some(4),
    ),
    ("syntax-tab-indent.yaml", "tabs disallowed", Some(3)),
    ("syntax-unclosed-quote.yaml", "unclosed quote", Some(1)),
    ("syntax-stray-colon.yaml", "expected a text value", Some(2)),
    ("unknown-top-key.yaml", "did you mean `seeds`?", Some(9)),
    (
        "unknown-search-key.yaml",
        "did you mean `estimator`?",
        Some(5),
    ),
    ("unknown-estimator.yaml", "did you mean `rebar`?", Some(5)),
    ("unknown-dataset.yaml", "did you mean `cifar10`?", Some(2)),
    ("unknown-space.yaml", "did you mean `darts`?", Some(3)),
    (
        "unknown-objective-kind.yaml",
        "did you mean `gengap`?",
        Some(6),
    ),
    ("unknown-recipe.yaml", "did you mean `cifar`?", Some(8)),
    (
        "unknown-genotype.yaml",
        "did you mean `UNAS_CIFAR10`?",
        Some(8),
    ),
    (
        "unknown-protocol.yaml",
        "expected one of mean_over_searches",
        Some(10),
    ),
    ("unknown-device.yaml", "`cuda:N`", Some(10)),
    (
        "unknown-sampling.yaml",
        "expected one of per_example, per_batch",
        Some(7),
    ),
    (
        "unknown-lr-scale.yaml",
        "expected one of none, linear64",
        Some(7),
    ),
    (
        "wrong-type-batch.yaml",
        "field `search.batch`: expected a whole number",
        Some(7),
    ),
    (
        "wrong-type-negative-epochs.yaml",
        "field `search.epochs.warmup`: expected a whole number",
        Some(7),
    ),
    (
        "wrong-type-seeds-scalar.yaml",
        "field `seeds.search`: expected a list",
        Some(9),
    ),
    (
        "wrong-type-temperature.yaml",
        "field `search.temperature`: expected a number",
        Some(7),
    ),
    (
        "wrong-type-layers-float.yaml",
        "field `space.layers`: expected a whole number",
        Some(3),
    ),
    ("wrong-type-name-list.yaml", "field `name`", Some(1)),
    (
        "wrong-type-search-scalar.yaml",
        "field `search`: expected a mapping",
        Some(4),
    ),
    (
        "top-level-list.yaml",
        "top level: must be a mapping of sections (`name: …`",
        Some(1),
    ),
    (
        "top-level-scalar.yaml",
        "top level: must be a mapping of sections",
        Some(1),
    ),
    (
        "missing-name.yaml",
        "field `name`: missing field `name`, which the experiment requires",
        Some(1),
    ),
    (
        "missing-dataset.yaml",
        "field `dataset`: missing field `dataset`",
        Some(1),
    ),
    (
        "missing-space.yaml",
        "field `space`: missing field `space`, which the experiment requires (e.g. `space: {name: darts}`)",
        Some(1),
    ),
    ("missing-seeds.yaml", "field `seeds`: missing field `seeds`", Some(1)),
    (
        "missing-estimator.yaml",
        "field `search.estimator`: missing field `estimator`, which section `search` requires",
        Some(5),
    ),
    (
        "duplicate-top-key.yaml",
        "field `name`: duplicate mapping key: `name` is written twice in the same section",
        Some(10),
    ),
    (
        "duplicate-nested-key.yaml",
        "field `search.estimator`: duplicate mapping key: `estimator`",
        Some(6),
    ),
    (
        "range-temperature-zero.yaml",
        "field `search.temperature`: must be a finite number > 0, got 0",
        Some(7),
    ),
    ("range-temperature-negative.yaml", "got -0.4", Some(7)),
    (
        "range-nan-temperature.yaml",
        "field `search.temperature`: must be a finite number",
        Some(7),
    ),
    (
        "range-train-portion-one.yaml",
        "field `dataset.train_portion`: must be strictly between 0 and 1",
        Some(2),
    ),
    (
        "range-train-portion-zero.yaml",
        "field `dataset.train_portion`",
        Some(2),
    ),
    (
        "range-lambda-negative.yaml",
        "field `search.objective.lambda`: must be a finite number ≥ 0",
        Some(6),
    ),
    (
        "range-batch-zero.yaml",
        "field `search.batch`: must be ≥ 1",
        Some(7),
    ),
    (
        "range-seeds-empty.yaml",
        "field `seeds.search`: must list at least one seed",
        Some(9),
    ),
    (
        "range-seeds-duplicate.yaml",
        "field `seeds.search[2]`: seed 0 is listed twice",
        Some(9),
    ),
    (
        "range-soften-eps-negative.yaml",
        "field `search.soften_eps`",
        Some(7),
    ),
    ("range-ops-too-many.yaml", "field `space.ops`", Some(3)),
    ("range-ops-one.yaml", "got 1", Some(3)),
    (
        "range-drop-path-one.yaml",
        "field `train.drop_path`: must be in [0, 1)",
        Some(8),
    ),
    (
        "range-warmup-over-epochs.yaml",
        "field `train.warmup_epochs`: must be ≤ train.epochs (10)",
        Some(8),
    ),
    (
        "range-bad-name.yaml",
        "field `name`: `a/b` cannot name the run folder",
        Some(1),
    ),
    (
        "range-layers-two.yaml",
        "field `space.layers`: must be ≥ 3",
        Some(3),
    ),
    (
        "range-op-skip-one.yaml",
        "field `search.op_skip_threshold`",
        Some(7),
    ),
    (
        "mismatch-genotype-space.yaml",
        "genotype `UNAS_CIFAR10` belongs to the `darts` space",
        Some(8),
    ),
    (
        "mismatch-genotype-search-without-search.yaml",
        "there is no `search` section",
        Some(4),
    ),
    (
        "mismatch-genotype-seed-without-random.yaml",
        "field `train.genotype_seed`: is read only with `genotype: random`",
        Some(5),
    ),
    (
        "mismatch-latency-in-darts.yaml",
        "only measurable in the ProxylessNAS space",
        Some(6),
    ),
    (
        "mismatch-recipe-dataset.yaml",
        "recipe `imagenet_darts` trains on imagenet-shaped images but dataset `cifar10` is cifar-shaped",
        Some(8),
    ),
    (
        "sub-batches-not-dividing.yaml",
        "must be ≥ 1 and divide search.batch (20), got 8",
        Some(10),
    ),
    (
        "sub-batches-zero.yaml",
        "must be ≥ 1 and divide search.batch (128), got 0",
        Some(8),
    ),
    (
        "synthetic-like-unknown.yaml",
        "mnist",
        Some(2),
    ),
    (
        "no-stages.yaml",
        "needs a `search` section, a `train` section, or both",
        None,
    ),
    ("empty.yaml", "is empty", None),
    ("comments-only.yaml", "is empty", None),
    ("alias-bomb.yaml", "anchors and aliases", Some(6)),
    // --- issue 15.1: a non-finite number is refused where it is written, never replaced ---
    ("finite-train-lr-inf.yaml", "field `train.lr`: must be a finite number, got `.inf`", Some(8)),
    ("finite-train-drop-path-nan.yaml", "field `train.drop_path`: must be a finite number, got `.nan`", Some(8)),
    ("finite-train-label-smoothing-neg-inf.yaml", "field `train.label_smoothing`: must be a finite number, got `-.inf`", Some(8)),
    ("finite-train-grad-clip-inf.yaml", "field `train.grad_clip`: must be a finite number", Some(8)),
    ("finite-train-weight-decay-nan.yaml", "field `train.weight_decay`: must be a finite number", Some(8)),
    ("finite-train-auxiliary-weight-inf.yaml", "field `train.auxiliary_weight`: must be a finite number", Some(8)),
    ("finite-train-max-macs-inf.yaml", "field `train.max_macs_m`: must be a finite number", Some(8)),
    ("finite-train-momentum-nan.yaml", "field `train.momentum`: must be a finite number", Some(8)),
    ("finite-search-lr-arch-inf.yaml", "field `search.lr.arch`: must be a finite number", Some(8)),
    ("finite-latency-ridge-nan.yaml", "field `search.objective.latency.ridge`: must be a finite number", Some(6)),
    ("finite-train-portion-inf.yaml", "field `dataset.train_portion`: must be a finite number, got `-.INF`", Some(2)),
    ("finite-width-multiplier-nan.yaml", "field `space.width_multiplier`: must be a finite number", Some(3)),
    // --- issue 15.2: shapes the networks cannot build are refused before anything runs ---
    ("shape-imagenet-search-odd-channels.yaml", "field `space.channels`: must be even on ImageNet-shaped data, got 3", Some(3)),
    ("shape-imagenet-train-odd-channels.yaml", "field `train.channels`: must be even (or 0 for the automatic width", Some(4)),
    ("shape-train-layers-two.yaml", "field `train.layers`: must be ≥ 3 (two reduction cells", Some(8)),
    ("shape-space-channels-zero.yaml", "field `space.channels`: must be ≥ 1, got 0", Some(3)),
    ("shape-aux-batch-one.yaml", "field `train.batch`: must be ≥ 2 while train.auxiliary_weight > 0", Some(8)),
    ("shape-aux-last-batch-one.yaml", "129 training images in batches of 128 leave a last batch of one image", Some(4)),
    ("shape-search-batch-over-split.yaml", "field `search.batch`: is 128 but the search splits the 100 training images into 90 for the weights and 10 for validation", None),
    ("shape-proxyless-width.yaml", "field `space.width_multiplier`: has no effect: it sizes the search supernet", Some(3)),
    ("shape-darts-width.yaml", "field `space.width_multiplier`: has no effect in the DARTS space", Some(3)),
    ("shape-cutout-over-side.yaml", "field `train.cutout`: is the side of the square Cutout erases; it must be at most the image side (32 px), got 40", Some(8)),
    ("range-latency-target-zero.yaml", "field `search.objective.latency.target_ms`: must be a finite number > 0 (the latency T in ms", Some(6)),
    ("range-latency-coeff-negative.yaml", "field `search.objective.latency.coeff`: must be a finite number ≥ 0 (a negative coefficient would reward slow networks", Some(6)),
    ("range-width-multiplier-zero.yaml", "field `space.width_multiplier`: must be a finite number > 0", Some(3)),
    ("shape-proxyless-resolution.yaml", "field `space.resolution`: must be a positive multiple of 32, got 100: the stem and four stride-2 stages", Some(3)),
    ("range-surrogate-samples-small.yaml", "field `search.objective.latency.surrogate_samples`: must be ≥ 10, got 5: the surrogate is fitted on 80 %", Some(6)),
    ("mismatch-latency-estimator.yaml", "field `search.estimator`: is `gsm`, but measured latency is not differentiable", Some(5)),
    ("shape-latency-batch-over-search-batch.yaml", "field `search.objective.latency.batch`: must be between 1 and search.batch (32), got 64", Some(6)),
    ("shape-train-batch-over-train-set.yaml", "field `train.batch`: is 128 but the training set has 100 images", Some(4)),
    ("root-nul.yaml", "field `dataset.root`: contains a NUL character", Some(2)),
    // --- a value that nothing reads would silently not apply ---
    ("effect-proxyless-layers.yaml", "field `space.layers`: has no effect: the ProxylessNAS space has a fixed skeleton", Some(3)),
    ("effect-max-macs-cifar.yaml", "field `train.max_macs_m`: has no effect", Some(4)),
    // --- issue 15.3: every size has an upper bound that says why ---
    ("bound-synthetic-classes.yaml", "field `dataset.synthetic.classes`: must be at most 100, got 1000: the generator draws 100 distinct classes", Some(2)),
    ("bound-space-layers.yaml", "field `space.layers`: must be at most 64, got 100000", Some(3)),
    ("bound-synthetic-train.yaml", "field `dataset.synthetic.train`: must be at most 2796202 images, got 20000000", Some(2)),
    ("bound-synthetic-imagenet-bytes.yaml", "150528 bytes each at 224×224", Some(2)),
    ("bound-train-epochs.yaml", "field `train.epochs`: must be at most 10000, got 4000000000", Some(8)),
    ("bound-search-batch.yaml", "field `search.batch`: must be at most 8192, got 1000000", Some(8)),
    ("bound-train-channels.yaml", "field `train.channels`: must be at most 512, got 100000", Some(8)),
    ("bound-seeds.yaml", "field `seeds.search`: lists 1001 seeds", Some(9)),
    // --- issue 15.4: names that cannot become folders ---
    ("name-too-long.yaml", "field `name`: is 300 characters long; it names the run folder, so keep it to at most 100", Some(1)),
    ("name-dot-dot.yaml", "field `name`: `..` cannot name the run folder: it must not start with `.`", Some(1)),
    ("name-nul.yaml", "field `name`: `a\\0b` cannot name the run folder", Some(1)),
    ("name-space.yaml", "field `name`: `my run` cannot name the run folder", Some(1)),
    ("name-empty.yaml", "field `name`: must not be empty", Some(1)),
    ("name-unicode.yaml", "field `name`: `résumé` cannot name the run folder", Some(1)),
    // --- issue 15.5: messages in the user's terms ---
    ("syntax-unclosed-flow-space.yaml", "field `space`: this `{` (the mapping of `space`) is never closed: the parser read on to line 4", Some(3)),
    ("multi-document.yaml", "top level: a second YAML document starts here (a `---` line); an experiment file holds one document", Some(11)),
    ("unknown-tag.yaml", "field `search.temperature`: unknown YAML tag `!weird`", Some(8)),
];

#[test]
fn every_malformed_file_gets_a_located_actionable_error() {
    assert!(CASES.len() >= 100);
    let mut listed: Vec<&str> = CASES.iter().map(|c| c.0).collect();
    listed.sort();
    let mut on_disk: Vec<String> = std::fs::read_dir(bad(""))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    on_disk.sort();
    assert_eq!(
        listed, on_disk,
        "every file in tests/bad has an expectation here"
    );
    for (name, want, line) in CASES {
        let path = bad(name);
        let err = match load(&path, Tier::Paper, &[]) {
            Ok(_) => panic!("{name} was accepted"),
            Err(e) => e,
        };
        let text = err.to_string();
        assert!(text.contains(want), "{name}: `{text}` lacks `{want}`");
        assert!(
            text.starts_with(&path.display().to_string()),
            "{name}: `{text}` does not start with the file"
        );
        if let Some(line) = line {
            let pos = err.issues[0]
                .pos
                .unwrap_or_else(|| panic!("{name}: no position in `{text}`"));
            assert_eq!(pos.line, *line, "{name}: `{text}`");
        }
        // Whatever has a place in the file also names the field there (or says it is the top level).
        for issue in &err.issues {
            assert!(
                issue.pos.is_none() || issue.field.is_some(),
                "{name}: `{issue}` has a position but no field"
            );
        }
    }
}

fn generated(dir: &Path) -> Vec<(PathBuf, &'static str)> {
    let garbage = dir.join("garbage.yaml");
    let bytes: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(&garbage, bytes).unwrap();
    let latin1 = dir.join("latin1.yaml");
    std::fs::write(&latin1, b"name: caf\xe9\n").unwrap();
    let huge = dir.join("huge.yaml");
    let mut big = String::from("name: t\ndescription: |\n");
    while big.len() < 10_000_000 {
        big.push_str("  a long line of description text that goes on and on and on and on\n");
    }
    std::fs::write(&huge, big).unwrap();
    let folder = dir.join("folder.yaml");
    std::fs::create_dir(&folder).unwrap();
    vec![
        (garbage, "is not UTF-8 text"),
        (latin1, "is not UTF-8 text"),
        (huge, "an experiment file is at most 1024 KiB"),
        (folder, "is a directory"),
        (dir.join("missing.yaml"), "no such file"),
    ]
}

#[test]
fn binary_garbage_huge_files_folders_and_missing_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for (path, want) in generated(dir.path()) {
        let text = load(&path, Tier::Paper, &[]).unwrap_err().to_string();
        assert!(
            text.contains(want),
            "{}: `{text}` lacks `{want}`",
            path.display()
        );
    }
}

/// `--set` overrides a hostile user would try on the shipped experiments: (file, tier, overrides).
const SET_CASES: &[(&str, &str, &[&str])] = &[
    ("c10-darts-unas.yaml", "paper", &["train.lr=.inf"]),
    ("c10-darts-unas.yaml", "paper", &["train.drop_path=.nan"]),
    ("c10-darts-unas.yaml", "paper", &["train.momentum=-.inf"]),
    ("c10-darts-unas.yaml", "paper", &["search.temperature=.nan"]),
    ("c10-darts-unas.yaml", "paper", &["search.lr.weights=-.inf"]),
    (
        "c10-darts-unas.yaml",
        "paper",
        &["search.lr={weights: .inf}"],
    ),
    (
        "c10-darts-unas.yaml",
        "paper",
        &["dataset.train_portion=.nan"],
    ),
    ("c10-darts-unas.yaml", "paper", &["train.lr=1e999"]),
    ("c10-darts-unas.yaml", "paper", &["train.lr="]),
    ("c10-darts-unas.yaml", "paper", &["search.temperature=null"]),
    (
        "c10-darts-unas.yaml",
        "paper",
        &["search.temperature=!weird 0.4"],
    ),
    ("c10-darts-unas.yaml", "paper", &["name=a/b"]),
    ("c10-darts-unas.yaml", "paper", &["name=.."]),
    ("c10-darts-unas.yaml", "paper", &["name=my run"]),
    ("c10-darts-unas.yaml", "paper", &["name=\"a\\0b\""]),
    (
        "c10-darts-unas.yaml",
        "smoke",
        &["dataset.synthetic.classes=1000"],
    ),
    (
        "c10-darts-unas.yaml",
        "smoke",
        &["dataset.synthetic.train=20000000"],
    ),
    (
        "c10-darts-unas.yaml",
        "smoke",
        &["dataset.synthetic.train=5"],
    ),
    ("c10-darts-unas.yaml", "paper", &["space.layers=100000"]),
    ("c10-darts-unas.yaml", "paper", &["space.layers=2"]),
    ("c10-darts-unas.yaml", "paper", &["space.channels=0"]),
    ("c10-darts-unas.yaml", "paper", &["space.ops=8"]),
    ("c10-darts-unas.yaml", "paper", &["search.batch=0"]),
    ("c10-darts-unas.yaml", "paper", &["search.batch=100000"]),
    ("c10-darts-unas.yaml", "paper", &["search.sub_batches=3"]),
    (
        "c10-darts-unas.yaml",
        "paper",
        &["search.epochs.search=4000000000"],
    ),
    ("c10-darts-unas.yaml", "paper", &["train.batch=1"]),
    ("c10-darts-unas.yaml", "paper", &["train.epochs=0"]),
    ("c10-darts-unas.yaml", "paper", &["train.channels=100000"]),
    ("c10-darts-unas.yaml", "paper", &["train.cutout=33"]),
    ("c10-darts-unas.yaml", "paper", &["seeds.search=[]"]),
    ("c10-darts-unas.yaml", "paper", &["seeds.search=[-1]"]),
    ("c10-darts-unas.yaml", "paper", &["search.estimatr=gsm"]),
    ("c10-darts-unas.yaml", "paper", &["search.batch=lots"]),
    ("c10-darts-unas.yaml", "paper", &["nonsense"]),
    ("imagenet-darts-unas.yaml", "paper", &["space.channels=3"]),
    ("imagenet-darts-unas.yaml", "smoke", &["space.channels=5"]),
    ("eval-unas-imagenet.yaml", "paper", &["train.channels=5"]),
    ("eval-unas-imagenet.yaml", "smoke", &["train.channels=7"]),
    ("eval-unas-imagenet.yaml", "paper", &["train.layers=2"]),
    (
        "eval-unas-proxyless.yaml",
        "paper",
        &["space.width_multiplier=1.4"],
    ),
    ("eval-unas-proxyless.yaml", "paper", &["train.layers=5"]),
    (
        "eval-unas-proxyless.yaml",
        "smoke",
        &["train.auxiliary_weight=0.4"],
    ),
    ("c10-darts-unas.yaml", "paper", &["train.max_macs_m=500"]),
    ("c10-darts-unas.yaml", "paper", &["train.batch=50001"]),
];

/// How one `unas run` of a bad input ended.
#[derive(Debug, PartialEq)]
enum Ending {
    /// exit 2, the message names where the problem is (the file, or the `--set`), no panic
    Clean,
    Panicked(String),
    /// exit 0: a bad input was taken (a value silently replaced or ignored)
    Accepted,
    Other(String),
}

fn run_bad(results: &Path, args: &[String], sources: &[String]) -> Ending {
    let out = Command::cargo_bin("unas")
        .unwrap()
        .arg("--results")
        .arg(results)
        .arg("run")
        .args(args)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    match out.status.code() {
        _ if err.contains("panicked") => Ending::Panicked(err),
        Some(0) => Ending::Accepted,
        Some(2) if sources.iter().any(|s| err.starts_with(s.as_str())) => Ending::Clean,
        code => Ending::Other(format!("exit {code:?}: {err}")),
    }
}

/// The census the README quotes: every bad file, every generated file and every hostile `--set`,
/// through the real CLI. Run `cargo test --test bad_input census -- --nocapture` to see the counts.
#[test]
fn census_the_cli_exits_2_without_panicking_and_writes_nothing_for_every_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let results = tempfile::tempdir().unwrap();
    let mut cases: Vec<(Vec<String>, Vec<String>)> = CASES
        .iter()
        .map(|c| bad(c.0))
        .chain(generated(dir.path()).into_iter().map(|(p, _)| p))
        .map(|p| (vec![p.display().to_string()], vec![p.display().to_string()]))
        .collect();
    for (file, tier, sets) in SET_CASES {
        let file = root()
            .join("experiments/paper")
            .join(file)
            .display()
            .to_string();
        // blamed on the --set, or (a clash with another value) on the file's or the tier's line
        let tiers = root().join("experiments/tiers.yaml").display().to_string();
        let sources = vec![format!("--set {}", sets[0]), file.clone(), tiers];
        let mut args = vec![file, "--tier".into(), tier.to_string()];
        for s in *sets {
            args.push("--set".into());
            args.push(s.to_string());
        }
        cases.push((args, sources));
    }
    let total = cases.len();
    let endings: Vec<Ending> = std::thread::scope(|scope| {
        let chunks: Vec<_> = cases.chunks(total.div_ceil(3)).collect();
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                let results = results.path();
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|(args, sources)| run_bad(results, args, sources))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let count = |f: fn(&Ending) -> bool| endings.iter().filter(|e| f(e)).count();
    let clean = count(|e| *e == Ending::Clean);
    let panics = count(|e| matches!(e, Ending::Panicked(_)));
    let accepted = count(|e| *e == Ending::Accepted);
    println!(
        "bad-input census: {total} cases ({} files, {} generated, {} --set), {clean} clean errors (exit 2, located), {panics} panics, {accepted} accepted",
        CASES.len(),
        total - CASES.len() - SET_CASES.len(),
        SET_CASES.len()
    );
    for ((args, _), ending) in cases.iter().zip(&endings) {
        assert_eq!(*ending, Ending::Clean, "{args:?}");
    }
    assert_eq!(std::fs::read_dir(results.path()).unwrap().count(), 0);
}

// ---- the same kinds of case, generated: every float field, every spelling, every way in ----

/// One line per field, so that a field's line is found by its key path.
const FULL: &str = "\
name: t
dataset:
  name: synthetic
  train_portion: 0.9
space:
  name: darts
  layers: 3
  channels: 4
  width_multiplier: 1.0
search:
  estimator: rebar
  objective:
    kind: gengap
    lambda: 0.5
    pair_penalty: 0.2
    latency:
      target_ms: 10.0
      coeff: 0.1
      ridge: 1.0
  temperature: 0.4
  soften_eps: 0.0
  epochs: {warmup: 1, search: 1}
  lr:
    weights: 3.0e-4
    arch: 1.0e-3
    weights_min: 1.0e-4
    arch_min: 3.0e-4
  weight_decay:
    weights: 3.0e-4
    arch: 1.0e-6
  grad_clip: 5.0
  op_skip_threshold: 0.05
train:
  recipe: cifar
  lr: 0.05
  momentum: 0.9
  weight_decay: 3.0e-4
  drop_path: 0.2
  auxiliary_weight: 0.4
  label_smoothing: 0.0
  grad_clip: 5.0
  max_macs_m: 0.0
seeds: {search: [0], train: [0]}
";

/// Every floating-point field of the schema.
const FLOAT_FIELDS: &[&str] = &[
    "dataset.train_portion",
    "space.width_multiplier",
    "search.objective.lambda",
    "search.objective.pair_penalty",
    "search.objective.latency.target_ms",
    "search.objective.latency.coeff",
    "search.objective.latency.ridge",
    "search.temperature",
    "search.soften_eps",
    "search.lr.weights",
    "search.lr.arch",
    "search.lr.weights_min",
    "search.lr.arch_min",
    "search.weight_decay.weights",
    "search.weight_decay.arch",
    "search.grad_clip",
    "search.op_skip_threshold",
    "train.lr",
    "train.momentum",
    "train.weight_decay",
    "train.drop_path",
    "train.auxiliary_weight",
    "train.label_smoothing",
    "train.grad_clip",
    "train.max_macs_m",
];

const NON_FINITE: &[&str] = &[".nan", ".NaN", ".inf", "+.inf", "-.inf", ".Inf", "-.INF"];

/// The 1-based line of `path` in [`FULL`] (each key on its own line, nested by indentation).
fn line_of(text: &str, path: &str) -> usize {
    let lines: Vec<&str> = text.lines().collect();
    let mut from = 0;
    let mut indent = 0;
    for key in path.split('.') {
        let at = (from..lines.len())
            .find(|&i| {
                let l = lines[i];
                let t = l.trim_start();
                l.len() - t.len() >= indent && t.starts_with(&format!("{key}:"))
            })
            .unwrap_or_else(|| panic!("{path}: no `{key}` in FULL"));
        indent = lines[at].len() - lines[at].trim_start().len() + 2;
        from = at + 1;
    }
    from
}

fn with_value(text: &str, line: usize, value: &str) -> String {
    text.lines()
        .enumerate()
        .map(|(i, l)| {
            if i + 1 == line {
                let (k, _) = l.split_once(':').unwrap();
                format!("{k}: {value}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect()
}

#[test]
fn a_non_finite_number_in_any_float_field_of_a_file_is_refused_where_it_is_written() {
    let dir = tempfile::tempdir().unwrap();
    for (n, field) in FLOAT_FIELDS.iter().enumerate() {
        let spelling = NON_FINITE[n % NON_FINITE.len()];
        let line = line_of(FULL, field);
        let text = with_value(FULL, line, spelling);
        let err = load_text(dir.path(), &format!("nf{n}.yaml"), &text).unwrap_err();
        let msg = err.to_string();
        assert_eq!(err.issues.len(), 1, "{field}: {msg}");
        let issue = &err.issues[0];
        assert_eq!(
            issue.field.as_ref().map(|f| f.to_string()).as_deref(),
            Some(*field),
            "{msg}"
        );
        assert_eq!(issue.pos.map(|p| p.line), Some(line as u64), "{msg}");
        assert!(msg.contains("must be a finite number"), "{msg}");
        assert!(
            msg.contains(spelling),
            "the message quotes what was written: {msg}"
        );
    }
}

#[test]
fn a_non_finite_number_is_refused_in_set_overrides_flow_mappings_lists_and_tiers() {
    for (n, field) in FLOAT_FIELDS.iter().enumerate() {
        let spelling = NON_FINITE[(n + 3) % NON_FINITE.len()];
        let set = format!("{field}={spelling}");
        let msg = resolve_text(BASE, Tier::Paper, &[&set])
            .unwrap_err()
            .to_string();
        assert!(
            msg.starts_with(&format!(
                "--set {set}: field `{field}`: must be a finite number"
            )),
            "{msg}"
        );
    }
    // A section given whole by --set, with the number inside it.
    let msg = resolve_text(BASE, Tier::Paper, &["search.lr={weights: .inf}"])
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("field `search.lr.weights`: must be a finite number"),
        "{msg}"
    );
    // In a flow mapping of the file, and in a list.
    let text = BASE.replace("train: {recipe: cifar}", "train: {recipe: cifar, lr: .inf}");
    let msg = resolve_text(&text, Tier::Paper, &[])
        .unwrap_err()
        .to_string();
    assert!(msg.contains("x.yaml:8:"), "{msg}");
    let text = BASE.replace("search: [0]", "search: [.nan]");
    let msg = resolve_text(&text, Tier::Paper, &[])
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("field `seeds.search[0]`: must be a finite number"),
        "{msg}"
    );
    // In a tier overlay: blamed on the tiers file, with the field inside it.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("tiers.yaml"),
        "smoke:\n  overlay:\n    train: {lr: -.inf}\n",
    )
    .unwrap();
    let f = dir.path().join("e.yaml");
    std::fs::write(&f, BASE).unwrap();
    let msg = load(&f, Tier::Smoke, &[]).unwrap_err().to_string();
    assert!(msg.contains("tiers.yaml:3:"), "{msg}");
    assert!(
        msg.contains("field `smoke.overlay.train.lr`: must be a finite number"),
        "{msg}"
    );
}

#[test]
fn a_key_without_a_value_is_refused_instead_of_taking_the_default() {
    let dir = tempfile::tempdir().unwrap();
    for (line, text) in [
        (
            8,
            BASE.replace("train: {recipe: cifar}", "train: {recipe: cifar, lr: }"),
        ),
        (
            8,
            BASE.replace(
                "train: {recipe: cifar}",
                "train: {recipe: cifar, drop_path: null}",
            ),
        ),
        (7, BASE.replace("  epochs:", "  temperature: ~\n  epochs:")),
    ] {
        let err = load_text(dir.path(), "null.yaml", &text).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("has no value"), "{msg}");
        assert_eq!(err.issues[0].pos.map(|p| p.line), Some(line), "{msg}");
    }
    let msg = resolve_text(BASE, Tier::Paper, &["train.lr="])
        .unwrap_err()
        .to_string();
    assert!(msg.contains("no value after `=`"), "{msg}");
    let msg = resolve_text(BASE, Tier::Paper, &["search.temperature=null"])
        .unwrap_err()
        .to_string();
    assert!(msg.contains("field `search.temperature`"), "{msg}");
}

// ---- issue 15.2: what validation accepts, the real constructors build and run ----

/// The issue's own cases, through the CLI, on the shipped experiments: refused with the field of the
/// `--set`, exit 2, and no run folder.
#[test]
fn odd_widths_on_imagenet_shaped_experiments_are_refused_before_any_run() {
    let results = tempfile::tempdir().unwrap();
    for (file, set, want) in [
        (
            "experiments/paper/imagenet-darts-unas.yaml",
            "space.channels=3",
            "--set space.channels=3: field `space.channels`: must be even on ImageNet-shaped data",
        ),
        (
            "experiments/paper/eval-unas-imagenet.yaml",
            "train.channels=5",
            "--set train.channels=5: field `train.channels`: must be even",
        ),
        (
            "experiments/paper/eval-unas-imagenet.yaml",
            "train.layers=2",
            "--set train.layers=2: field `train.layers`: must be ≥ 3",
        ),
        (
            "experiments/paper/c10-darts-unas.yaml",
            "train.batch=1",
            "--set train.batch=1: field `train.batch`: must be ≥ 2 while train.auxiliary_weight > 0",
        ),
        (
            "experiments/paper/c10-darts-unas.yaml",
            "search.sub_batches=3",
            "--set search.sub_batches=3: field `search.sub_batches`: must be ≥ 1 and divide search.batch",
        ),
        (
            "experiments/paper/eval-unas-proxyless.yaml",
            "space.width_multiplier=1.4",
            "field `space.width_multiplier`: has no effect: it sizes the search supernet",
        ),
    ] {
        for tier in ["smoke", "paper"] {
            let out = Command::cargo_bin("unas")
                .unwrap()
                .arg("--results")
                .arg(results.path())
                .args(["run", file, "--tier", tier, "--set", set])
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{file} {set}: {err}");
            assert!(err.contains(want), "{file} {set} at {tier}: `{err}` lacks `{want}`");
        }
    }
    assert_eq!(std::fs::read_dir(results.path()).unwrap().count(), 0);
}

mod builds {
    use super::*;
    use proptest::prelude::*;
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use tch::{nn, Device, Kind, Tensor};
    use unas::config::{Experiment, ImageShape};
    use unas::nas::arch::{CellSample, DartsSample, SampleKind};
    use unas::nas::space::darts::{DartsSearchConfig, DartsSearchNet, StemKind};

    /// The supernet the search stage builds (as `train::search` fills its config).
    fn search_config(e: &Experiment, classes: i64) -> DartsSearchConfig {
        DartsSearchConfig {
            stem: match e.dataset.shape() {
                ImageShape::Cifar => StemKind::Cifar,
                ImageShape::Imagenet => StemKind::Imagenet,
            },
            layers: e.space.layers as i64,
            channels: e.space.channels as i64,
            num_ops: e.space.ops as usize,
            classes,
            op_skip_threshold: e.search.as_ref().unwrap().op_skip_threshold,
        }
    }

    fn images(n: i64, e: &Experiment) -> Tensor {
        let side = e.dataset.shape().side();
        Tensor::randn([n, 3, side, side], (Kind::Float, Device::Cpu))
    }

    /// Builds and runs (training mode) the search supernet and the trained network of `e`, with the
    /// real constructors, on the batch sizes the loops would give them.
    fn build_and_run(e: &Experiment) -> anyhow::Result<()> {
        let classes = e.dataset.name.classes(&e.dataset.synthetic) as i64;
        if let Some(s) = &e.search {
            let vs = nn::VarStore::new(Device::Cpu);
            let net = DartsSearchNet::new(&vs.root(), &search_config(e, classes))?;
            let per_forward = (s.batch / s.sub_batches).min(2) as i64;
            let n = match s.sampling {
                unas::config::Sampling::PerExample => per_forward,
                unas::config::Sampling::PerBatch => 1,
            };
            let k = e.space.ops as i64;
            let sample = DartsSample {
                normal: CellSample::random(n, k, SampleKind::OneHot, Device::Cpu),
                reduce: CellSample::random(n, k, SampleKind::OneHot, Device::Cpu),
            };
            let out = net.forward(&images(per_forward, e), &sample, SampleKind::OneHot, true);
            assert_eq!(out.size(), [per_forward, classes]);
        }
        if let Some(t) = &e.train {
            let vs = nn::VarStore::new(Device::Cpu);
            let recipe = unas::config::TrainRecipe::of(t);
            let built =
                unas::nas::space::trained_net::build(&vs.root(), e, &recipe, None, classes, 0)?;
            let batch = t.batch.unwrap() as u64;
            let (n_train, _) = e.dataset.name.sizes(&e.dataset.synthetic);
            // a full batch (at most 2 images, to stay fast) and the last partial batch if it has one image
            let mut sizes = vec![batch.min(2)];
            if n_train % batch == 1 {
                sizes.push(1);
            }
            for n in sizes {
                let (logits, _) = built.net.forward_t(&images(n as i64, e), true);
                assert_eq!(logits.size(), [n as i64, classes]);
            }
        }
        Ok(())
    }

    prop_compose! {
        fn drawn()(
            imagenet in prop::bool::weighted(0.35),
            layers in 2u32..7, channels in 1u32..9, ops in 2u32..9,
            classes in 2u32..12, n_train in 24u64..60, portion in prop::sample::select(vec![0.5, 0.8]),
            batch in 1u32..7, subs in 1u32..4, per_batch in any::<bool>(),
            with_search in prop::bool::weighted(0.8), with_train in prop::bool::weighted(0.8),
            train_channels in 0u32..11, train_layers in 2u32..7, train_batch in 1u32..9,
            aux in any::<bool>(), genotype in 0usize..2,
        ) -> String {
            let like = if imagenet { "imagenet" } else { "cifar" };
            let mut text = format!(
                "name: p\ndataset: {{name: synthetic, train_portion: {portion}, synthetic: {{classes: {classes}, train: {n_train}, test: 4, like: {like}}}}}\nspace: {{name: darts, layers: {layers}, channels: {channels}, ops: {ops}}}\nseeds: {{search: [0], train: [0]}}\n"
            );
            if with_search {
                let sampling = if per_batch { "per_batch" } else { "per_example" };
                let subs = if per_batch { subs } else { 1 };
                text += &format!(
                    "search: {{estimator: gsm, objective: {{kind: train}}, epochs: {{warmup: 1, search: 1}}, batch: {batch}, sampling: {sampling}, sub_batches: {subs}}}\n"
                );
            }
            if with_train || !with_search {
                let (recipe, genotype) = match (imagenet, genotype) {
                    (false, 0) => ("cifar", "UNAS_CIFAR10"),
                    (false, _) => ("cifar", "DARTS_V2"),
                    (true, _) => ("imagenet_darts", "UNAS_IMAGENET"),
                };
                let aux = if aux { 0.4 } else { 0.0 };
                text += &format!(
                    "train: {{recipe: {recipe}, genotype: {genotype}, epochs: 1, warmup_epochs: 0, channels: {train_channels}, layers: {train_layers}, batch: {train_batch}, auxiliary_weight: {aux}}}\n"
                );
            }
            text
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Validation and the network constructors agree: nothing validation accepts panics or fails
        /// when it is built and run (the other way round, what it refuses, is the CASES table above).
        #[test]
        fn every_config_that_validates_builds_and_runs_without_a_panic(text in drawn()) {
            tch::set_num_threads(1);
            if let Ok(r) = resolve_text(&text, Tier::Paper, &[]) {
                let e = r.experiment;
                let outcome = catch_unwind(AssertUnwindSafe(|| build_and_run(&e)));
                match outcome {
                    Ok(Ok(())) => {}
                    Ok(Err(err)) => prop_assert!(false, "validated, then failed to build: {err:#}\n{text}"),
                    Err(_) => prop_assert!(false, "validated, then panicked:\n{text}"),
                }
            }
        }
    }

    /// The proptest draws sizes validation mostly accepts: check that it is not vacuous.
    #[test]
    fn the_drawn_configs_are_mostly_valid() {
        use proptest::strategy::ValueTree;
        use proptest::test_runner::TestRunner;
        let mut runner = TestRunner::deterministic();
        let drawn_texts: Vec<String> = (0..200)
            .map(|_| drawn().new_tree(&mut runner).unwrap().current())
            .collect();
        let valid = drawn_texts
            .iter()
            .filter(|t| resolve_text(t, Tier::Paper, &[]).is_ok())
            .count();
        assert!(valid >= 20, "only {valid} of 200 drawn configs validate");
        assert!(
            valid <= 190,
            "{valid} of 200 drawn configs validate: the draw never tests the rules"
        );
    }

    /// The ProxylessNAS network (fixed skeleton) at the smoke tier of the shipped experiment.
    #[test]
    fn the_shipped_proxyless_network_builds_and_runs_at_the_smoke_tier() {
        let r = load(
            &root().join("experiments/paper/eval-unas-proxyless.yaml"),
            Tier::Smoke,
            &[],
        )
        .unwrap();
        build_and_run(&r.experiment).unwrap();
    }
}

// ---- issue 15.7: a dataset whose labels are (almost) all one class is not "ok" ----

#[test]
fn a_cifar_folder_with_wildly_unbalanced_labels_is_reported_with_a_warning() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("cifar-10-batches-bin");
    std::fs::create_dir(&dir).unwrap();
    // The official layout and sizes; every label 0 except one image of each other class per file.
    let record = 1 + 3 * 32 * 32;
    let mut bytes = vec![0u8; 10_000 * record];
    for class in 1..10u8 {
        bytes[class as usize * record] = class;
    }
    for f in [
        "data_batch_1.bin",
        "data_batch_2.bin",
        "data_batch_3.bin",
        "data_batch_4.bin",
        "data_batch_5.bin",
        "test_batch.bin",
    ] {
        std::fs::write(dir.join(f), &bytes).unwrap();
    }
    let out = Command::cargo_bin("unas")
        .unwrap()
        .args(["data", "inspect", "cifar10", "--root"])
        .arg(root.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(
            "warning      train split: classes are wildly unbalanced — class 0 has 49955 images"
        ),
        "{text}"
    );
    assert!(text.contains("warning      test split:"), "{text}");
    assert!(!text.contains("status       ok"), "{text}");
    assert!(
        text.contains("status       usable, but see the warnings above"),
        "{text}"
    );
}

/// A ProxylessNAS genotype given to `unas latency predict` that cannot be built is bad input (exit 2)
/// naming the block and why, before anything is timed.
#[test]
fn a_proxyless_genotype_that_cannot_be_built_is_refused_naming_its_block() {
    for (file, want) in [
        (
            "genotype-proxyless-14-normal.json",
            "a ProxylessNAS genotype has 6 `reduce` and 15 `normal` blocks, got 6 and 14",
        ),
        (
            "genotype-proxyless-zero-first-of-stage.json",
            "block 9 (`reduce[2]`) starts a stage and cannot be mic_zero",
        ),
    ] {
        let path = root().join("tests/bad-genotypes").join(file);
        let results = tempfile::tempdir().unwrap();
        let out = Command::cargo_bin("unas")
            .unwrap()
            .arg("--results")
            .arg(results.path())
            .args(["--device", "cpu", "latency", "predict"])
            .arg(&path)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{file}: {err}");
        assert!(err.contains(want), "{file}: `{err}` lacks `{want}`");
        assert_eq!(
            std::fs::read_dir(results.path()).unwrap().count(),
            0,
            "nothing written"
        );
    }
}
