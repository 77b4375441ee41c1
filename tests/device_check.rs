//! scripts/device-check.sh, the one prepared check a GPU machine runs, run here on the CPU
//! (`--device cpu --quick`): it must produce its whole folder — the machine, the device facts, the
//! CPU-vs-device parity, the smoke search and training, the step benchmarks — and fail loudly on a
//! missing binary.

use std::path::Path;
use std::process::Command;

fn script() -> Command {
    let mut c = Command::new("bash");
    c.current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("scripts/device-check.sh")
        .env("OMP_NUM_THREADS", "1")
        .env_remove("UNAS_RESULTS");
    c
}

fn json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}: {text}", path.display()))
}

#[test]
fn the_device_check_runs_on_the_cpu_and_fills_its_folder() {
    let out = tempfile::tempdir().unwrap();
    let run = script()
        .args([
            "--device",
            "cpu",
            "--quick",
            "--bin",
            env!("CARGO_BIN_EXE_unas"),
            "--out",
        ])
        .arg(out.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "device-check failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let summary = std::fs::read_to_string(out.path().join("summary.tsv")).unwrap();
    for check in [
        "device cpu",
        "parity cpu vs cpu",
        "smoke search + train on cpu",
        "bench step search",
        "bench step train",
        "bench step search bf16",
        "bench step train bf16",
    ] {
        let row = summary
            .lines()
            .find(|l| l.starts_with(check))
            .unwrap_or_else(|| panic!("no `{check}` row in\n{summary}"));
        assert_eq!(row.split('\t').nth(1), Some("ok"), "{row}");
    }
    // no Python with torch was given: the comparison is skipped, and says so
    assert!(summary.contains("ours vs reference\tskipped"), "{summary}");
    assert!(
        summary.contains("ours vs reference bf16\tskipped"),
        "{summary}"
    );
    // CUDA graphs: skipped on the CPU, saying why
    for check in ["cuda graphs vs eager", "bench step train cuda-graphs"] {
        assert!(
            summary.contains(&format!("{check}\tskipped\tCUDA graphs need a CUDA device")),
            "{summary}"
        );
    }
    let device = json(&out.path().join("device.json"));
    assert_eq!(device["cuda_available"], false, "{device}");
    assert!(
        device["libtorch"].as_str().unwrap().starts_with("2.11.0"),
        "{device}"
    );
    let parity = json(&out.path().join("parity.json"));
    let checks = parity["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 7, "{parity}");
    assert!(checks.iter().all(|c| c["pass"] == true), "{parity}");
    for (what, file, precision) in [
        ("search", "bench-search", "fp32"),
        ("train", "bench-train", "fp32"),
        ("search", "bench-search-bf16", "bf16"),
        ("train", "bench-train-bf16", "bf16"),
    ] {
        let b = json(&out.path().join(format!("{file}.json")));
        assert_eq!(b["impl"], "unas");
        assert_eq!(b["what"], what);
        assert_eq!(b["precision"], precision, "{b}");
        assert_eq!(b["ms_per_step"].as_array().unwrap().len(), 1, "{b}");
        assert!(b["images_per_s"].as_f64().unwrap() > 0.0, "{b}");
    }
    let summaries = walkdir::WalkDir::new(out.path().join("results"))
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name() == "summary.parquet")
        .count();
    assert_eq!(summaries, 2, "a search and a training summary");
    assert!(out.path().join("machine.txt").exists());
}

#[test]
fn a_missing_binary_is_a_clear_error() {
    let run = script()
        .args(["--device", "cpu", "--bin", "/nonexistent/unas"])
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(2));
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(
        err.contains("no unas binary at '/nonexistent/unas'"),
        "{err}"
    );
}
