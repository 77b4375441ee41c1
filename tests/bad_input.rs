//! Malformed experiment files: each gives a clear error naming the file (and line and column where the
//! file has one), the field, and what was expected — never a panic, and nothing written.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use unas::config::{load, Tier};

fn bad(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/bad")
        .join(name)
}

/// (file in tests/bad, text the error must contain, line it must point at if any)
const CASES: &[(&str, &str, Option<u64>)] = &[
    ("syntax-unclosed-flow.yaml", "dataset.name", Some(2)),
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
        "field `seeds.search`: expected sequence",
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
        "field `search`: expected mapping",
        Some(4),
    ),
    ("top-level-list.yaml", "expected mapping", Some(1)),
    ("top-level-scalar.yaml", "expected mapping", Some(1)),
    ("missing-name.yaml", "missing field `name`", None),
    ("missing-dataset.yaml", "missing field `dataset`", None),
    ("missing-seeds.yaml", "missing field `seeds`", None),
    ("missing-estimator.yaml", "missing field `estimator`", None),
    (
        "duplicate-top-key.yaml",
        "duplicate mapping key: name",
        Some(10),
    ),
    (
        "duplicate-nested-key.yaml",
        "duplicate mapping key: estimator",
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
    ("range-bad-name.yaml", "names the run folder", Some(1)),
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
        "sub-batches-per-example.yaml",
        "sub-batches need one architecture per batch",
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
    ("alias-bomb.yaml", "unknown field `a`", Some(1)),
];

#[test]
fn every_malformed_file_gets_a_located_actionable_error() {
    assert!(CASES.len() >= 40);
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

#[test]
fn the_cli_exits_2_without_panicking_and_writes_nothing_for_every_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let results = tempfile::tempdir().unwrap();
    let mut paths: Vec<PathBuf> = CASES.iter().map(|c| bad(c.0)).collect();
    paths.extend(generated(dir.path()).into_iter().map(|(p, _)| p));
    for p in paths {
        let out = Command::cargo_bin("unas")
            .unwrap()
            .arg("--results")
            .arg(results.path())
            .arg("run")
            .arg(&p)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{}: {err}", p.display());
        assert!(!err.contains("panicked"), "{}: {err}", p.display());
        assert!(
            err.contains(&*p.display().to_string()),
            "{}: {err}",
            p.display()
        );
    }
    assert_eq!(std::fs::read_dir(results.path()).unwrap().count(), 0);
}
