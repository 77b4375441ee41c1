//! The `unas` binary as a user meets it: exit codes, messages, and what lands under the results folder.

use std::path::{Path, PathBuf};

use assert_cmd::Command;

fn unas() -> Command {
    let mut c = Command::cargo_bin("unas").unwrap();
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c.env_remove("UNAS_RESULTS");
    c
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    if !dir.exists() {
        return Vec::new();
    }
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .collect()
}

/// A CIFAR-10 folder whose files are there (so the dataset's fingerprint, part of every run id, can be
/// taken and the run planned) but hold 10 bytes each instead of whole 3073-byte records.
fn truncated_cifar10(at: &Path) -> PathBuf {
    let dir = at.join("cifar-10-batches-bin");
    std::fs::create_dir_all(&dir).unwrap();
    for f in [
        "data_batch_1.bin",
        "data_batch_2.bin",
        "data_batch_3.bin",
        "data_batch_4.bin",
        "data_batch_5.bin",
        "test_batch.bin",
    ] {
        std::fs::write(dir.join(f), [0u8; 10]).unwrap();
    }
    at.to_path_buf()
}

/// The arguments of `unas run` of the CIFAR-10 UNAS search (one seed) at the paper tier on the CPU on
/// a truncated CIFAR-10 folder under `data`: its search fails at once when it reads the data (and its
/// training is blocked) — a cheap failing run for the runner's paths.
fn failing_run_args(data: &Path) -> Vec<String> {
    let root = truncated_cifar10(data);
    vec![
        "--device".into(),
        "cpu".into(),
        "run".into(),
        "experiments/paper/c10-darts-unas.yaml".into(),
        "--set".into(),
        format!("dataset.root={}", root.display()),
        "--set".into(),
        "seeds.search=[0]".into(),
    ]
}

/// `unas --results RESULTS run` of [`failing_run_args`], the data in a folder of this test process's
/// own under the temporary directory (outside RESULTS, which some tests make uncreatable).
fn run_that_fails(results: &Path) -> std::process::Output {
    let data = std::env::temp_dir().join(format!("unas-truncated-cifar-{}", std::process::id()));
    unas()
        .arg("--results")
        .arg(results)
        .args(failing_run_args(&data))
        .output()
        .unwrap()
}

/// What the failing search's record says.
const FAILED_BECAUSE: &str = "is not a whole number of 3073-byte records";

#[test]
fn validate_prints_resolved_config_and_id_for_every_shipped_file() {
    let paths: Vec<PathBuf> = unas::cli::experiment_files(&[PathBuf::from("experiments")]).unwrap();
    let out = unas()
        .arg("validate")
        .args(&paths)
        .arg("--id-only")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    // one line per experiment: a file with a `sweep:` is one per variant
    let experiments: usize = paths
        .iter()
        .map(|p| {
            unas::config::load_variants(p, unas::config::Tier::Paper, &[])
                .unwrap()
                .len()
        })
        .sum();
    assert!(experiments > paths.len(), "the examples hold sweeps");
    assert_eq!(stdout.lines().count(), experiments);
    for p in &paths {
        assert!(stdout.contains(&p.display().to_string()), "{}", p.display());
    }
    for line in stdout.lines() {
        let (id, _) = line.split_once("  ").unwrap();
        assert_eq!(id.len(), 64, "{line}");
    }
    // The non-experiment files in experiments/ validate by their own schema.
    let out = unas()
        .args([
            "validate",
            "experiments/tiers.yaml",
            "experiments/reference.yaml",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Full output: the resolved YAML with the id in its header.
    let out = unas()
        .args([
            "validate",
            "experiments/paper/c10-darts-unas.yaml",
            "--tier",
            "smoke",
        ])
        .output()
        .unwrap();
    let s = String::from_utf8(out.stdout).unwrap();
    assert!(
        s.contains("(tier smoke)") && s.contains("name: synthetic"),
        "{s}"
    );
}

#[test]
fn a_bad_file_exits_2_with_position_and_writes_nothing() {
    let results = tempfile::tempdir().unwrap();
    let out = unas()
        .args(["--results"])
        .arg(results.path())
        .args([
            "run",
            "tests/bad/unknown-search-key.yaml",
            "--tier",
            "smoke",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("tests/bad/unknown-search-key.yaml:5:"),
        "{err}"
    );
    assert!(err.contains("did you mean `estimator`?"), "{err}");
    assert!(files_under(results.path()).is_empty());
}

#[test]
fn reproduce_refuses_to_start_when_any_file_is_bad() {
    let results = tempfile::tempdir().unwrap();
    let out = unas()
        .arg("--results")
        .arg(results.path())
        .args([
            "reproduce",
            "--suite",
            "experiments/paper",
            "--suite",
            "tests/bad/unknown-search-key.yaml",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing was run"));
    assert!(files_under(results.path()).is_empty());
}

#[test]
fn a_stage_that_fails_says_why_and_leaves_a_record() {
    let results = tempfile::tempdir().unwrap();
    let run = || run_that_fails(results.path());
    let out = run();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains("FAILED") && stdout.contains(FAILED_BECAUSE),
        "{stdout}"
    );
    // ... and the deviations are printed with the results.
    assert!(
        stdout.contains("deliberate deviations")
            && stdout.contains("discrete samples are exact one-hot argmax"),
        "{stdout}"
    );
    let dirs: Vec<PathBuf> = files_under(results.path())
        .into_iter()
        .filter(|p| p.ends_with("status.json"))
        .map(|p| p.parent().unwrap().to_path_buf())
        .collect();
    assert_eq!(
        dirs.len(),
        1,
        "the search ran (and failed); its training, blocked, did not: {dirs:?}"
    );
    let dir = &dirs[0];
    assert!(
        dir.starts_with(results.path().join("runs/c10-darts-unas/paper")),
        "{}",
        dir.display()
    );
    let status: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("status.json")).unwrap()).unwrap();
    assert_eq!(status["state"], "failed");
    assert!(status["reason"].as_str().unwrap().contains(FAILED_BECAUSE));
    let prov: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("provenance.json")).unwrap())
            .unwrap();
    assert_eq!(prov["tch_version"], "0.24.0");
    assert!(prov["libtorch_version"]
        .as_str()
        .unwrap()
        .starts_with("2.11.0"));
    assert_eq!(prov["device"], "cpu");
    // the switches the stage ran under, read back from libtorch: not deterministic, so cuDNN autotunes
    assert_eq!(prov["cudnn_benchmark"], true);
    assert_eq!(prov["deterministic_algorithms"], false);
    assert_eq!(prov["precision"], "fp32");
    assert!(prov["ended_at"].is_string());
    assert!(std::fs::read_to_string(dir.join("config.yaml"))
        .unwrap()
        .contains("name: c10-darts-unas"));
    assert!(!dir.join("lock").exists(), "the lock is released");

    // Running again reports the failed run from its record (same id, no rerun without --retry-failed);
    // it does not pile up folders.
    let again = run();
    assert_eq!(again.status.code(), Some(1));
    let n = files_under(results.path())
        .into_iter()
        .filter(|p| p.ends_with("status.json"))
        .count();
    assert_eq!(n, 1);

    // `unas report` lists it with its reason and writes status.md.
    let rep = unas()
        .arg("--results")
        .arg(results.path())
        .arg("report")
        .output()
        .unwrap();
    assert!(rep.status.success());
    let table = String::from_utf8(rep.stdout).unwrap();
    assert!(
        table.contains("c10-darts-unas") && table.contains("failed"),
        "{table}"
    );
    // The experiment's deliberate deviations are quoted in the report.
    let md = std::fs::read_to_string(results.path().join("reports/status.md")).unwrap();
    assert!(
        md.contains("Deliberate deviations")
            && md.contains("discrete samples are exact one-hot argmax"),
        "{md}"
    );
}

#[test]
fn a_finished_run_is_skipped() {
    let results = tempfile::tempdir().unwrap();
    let args = [
        "run",
        "experiments/paper/eval-unas-cifar10.yaml",
        "--tier",
        "smoke",
    ];
    unas()
        .arg("--results")
        .arg(results.path())
        .args(args)
        .output()
        .unwrap();
    let status = files_under(results.path())
        .into_iter()
        .find(|p| p.ends_with("status.json"))
        .unwrap();
    // Mark it done as a finished stage would; the next run must not touch the folder.
    std::fs::write(
        &status,
        r#"{"state": "done", "pid": 1, "updated_at": "2026-01-01T00:00:00Z"}"#,
    )
    .unwrap();
    let out = unas()
        .arg("--results")
        .arg(results.path())
        .args(args)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8(out.stdout)
        .unwrap()
        .contains("done (already)"));
}

#[test]
fn a_search_that_fails_blocks_its_trainings_without_running_them() {
    let results = tempfile::tempdir().unwrap();
    let out = run_that_fails(results.path());
    assert_eq!(out.status.code(), Some(1));
    let s = String::from_utf8(out.stdout).unwrap();
    assert!(s.contains("blocked"), "{s}");
    let n = files_under(results.path())
        .into_iter()
        .filter(|p| p.ends_with("status.json"))
        .count();
    assert_eq!(n, 1, "only the search ran");
}

#[test]
fn list_shows_stages_seeds_and_cost() {
    let out = unas().args(["list", "experiments/paper"]).output().unwrap();
    assert!(out.status.success());
    let s = String::from_utf8(out.stdout).unwrap();
    let line = s
        .lines()
        .find(|l| l.starts_with("c10-darts-unas "))
        .expect("c10 row");
    assert!(
        line.contains("search → train") && line.contains("4/1"),
        "{line}"
    );
}

#[test]
fn results_folder_comes_from_the_environment_too() {
    let results = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let out = unas()
        .env("UNAS_RESULTS", results.path())
        .args(failing_run_args(data.path()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(results.path().join("runs/c10-darts-unas").is_dir());
}

#[test]
fn device_flag_is_validated() {
    let out = unas().args(["--device", "tpu", "list"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cuda:N"));
}

#[test]
fn a_results_folder_that_cannot_be_created_says_so_and_points_at_no_missing_record() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a folder").unwrap();
    let out = run_that_fails(&file.join("results"));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("could not start, and nothing was recorded"),
        "{err}"
    );
    assert!(err.contains("--results"), "says what to do: {err}");
    assert!(
        !err.contains("status.json in its run folder says why"),
        "no record exists to point at: {err}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("NOT STARTED"), "{stdout}");
}

#[test]
fn a_run_another_live_process_holds_is_reported_as_taken_not_failed() {
    let results = tempfile::tempdir().unwrap();
    let run = || run_that_fails(results.path());
    assert_eq!(run().status.code(), Some(1)); // the search's data is missing: failed, recorded
    let search_dir = files_under(results.path())
        .into_iter()
        .find(|p| p.ends_with("status.json"))
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    // Another process (alive for the whole test) holds the run's lock: an flock on the lock file,
    // as a running `unas` holds it, with its pid written into the file.
    let lock = search_dir.join("lock");
    let mut holder = std::process::Command::new("flock")
        .arg(&lock)
        .args(["sleep", "60"])
        .spawn()
        .expect("flock(1) from util-linux");
    let held = || {
        !std::process::Command::new("flock")
            .args(["-n"])
            .arg(&lock)
            .arg("true")
            .status()
            .unwrap()
            .success()
    };
    let t0 = std::time::Instant::now();
    while !held() {
        assert!(t0.elapsed().as_secs() < 30, "flock(1) never took the lock");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::fs::write(&lock, format!("{}\n", holder.id())).unwrap();
    let out = run();
    let _ = holder.kill();
    let _ = holder.wait();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!stdout.contains("FAILED"), "{stdout}");
    assert!(stdout.contains("taken"), "{stdout}");
    assert!(
        err.contains("being run by another process (not failed)"),
        "{err}"
    );
    assert_eq!(out.status.code(), Some(1), "its training is blocked: {err}");
    let status = std::fs::read_to_string(search_dir.join("status.json")).unwrap();
    assert!(
        status.contains("failed"),
        "the holder's record is left alone: {status}"
    );
}

#[test]
fn reproduce_without_the_datasets_stops_before_any_work_saying_what_to_fetch() {
    let (data, results) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let out = unas()
        .args(["--results"])
        .arg(results.path())
        .args(["reproduce", "--tier", "quick", "--data"])
        .arg(data.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    let d = data.path().display();
    for needed in [
        format!("unas data fetch cifar10 --root {d}"),
        format!("unas data fetch cifar100 --root {d}"),
        format!("{d}/imagenet/train/<wnid>/*.JPEG"),
        "nothing was run".to_string(),
    ] {
        assert!(err.contains(&needed), "missing `{needed}` in: {err}");
    }
    assert_eq!(std::fs::read_dir(results.path()).unwrap().count(), 0);
}

/// `unas validate … | head -1`: the reader closes the pipe after one line; `unas` ends by SIGPIPE,
/// as `cat` does, instead of panicking with "failed printing to stdout: Broken pipe".
#[test]
fn a_closed_stdout_ends_the_process_quietly() {
    use std::io::Read;
    use std::os::unix::process::ExitStatusExt;
    use std::process::Stdio;
    let files: Vec<PathBuf> =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/paper"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
            .collect();
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("unas"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("validate")
        .args(&files)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    let mut out = child.stdout.take().unwrap();
    out.read_exact(&mut first).unwrap();
    drop(out); // the reader goes away while most of ~40 kB is still to print (file by file)
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(status.signal(), Some(libc::SIGPIPE), "{status:?}\n{err}");
}
