//! `unas report` end to end: a small part of the smoke suite (the UNAS CIFAR-10 search → train, and
//! two estimator-ablation rows) is run with the real binary, then the report is built from it; every
//! table must have its rows, every figure must exist and decode, the named-artefact flags must work,
//! and every HTML page must render in a headless Chromium with all its tables and figures in the DOM
//! (skipped, loudly, only where Chromium is not installed: `make test-deps` installs it).

use std::path::{Path, PathBuf};
use std::process::Command;

use assert_cmd::cargo::CommandCargoExt;

/// The smoke tier, smaller still so the test stays quick.
const SETS: [&str; 5] = [
    "dataset.synthetic.train=96",
    "dataset.synthetic.test=32",
    "train.epochs=2",
    "train.batch=16",
    "search.batch=8",
];

const EXPERIMENTS: [&str; 3] = [
    "experiments/paper/c10-darts-unas.yaml",
    "experiments/paper/ablation-estimator-c10-gsm.yaml",
    "experiments/paper/ablation-estimator-c10-reinforce.yaml",
];

fn unas(results: &Path) -> Command {
    let mut c = Command::cargo_bin("unas").unwrap();
    // One libtorch thread: on a shared 2-core machine its spinning worker threads, fighting other
    // processes, made one smoke search 10× slower (measured: 145 s with one thread against > 20 min).
    c.current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("OMP_NUM_THREADS", "1")
        .arg("--results")
        .arg(results);
    c
}

fn run_smoke(results: &Path) {
    for e in EXPERIMENTS {
        let mut c = unas(results);
        c.args(["run", e, "--tier", "smoke"]);
        for s in SETS {
            c.args(["--set", s]);
        }
        let out = c.output().unwrap();
        assert!(
            out.status.success(),
            "{e}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn report(results: &Path, args: &[&str]) -> (i32, String, String) {
    let out = unas(results).arg("report").args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn csv_rows(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .split("\r\n")
        .skip(1)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

fn check_figure_files(reports: &Path, name: &str) {
    let svg = reports.join("figures").join(format!("{name}.svg"));
    let text = std::fs::read_to_string(&svg).unwrap_or_else(|e| panic!("{}: {e}", svg.display()));
    roxmltree::Document::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", svg.display()));
    for (suffix, width) in [("column", 1050), ("page", 2100)] {
        let p = reports.join("figures").join(format!("{name}-{suffix}.png"));
        let reader = png::Decoder::new(std::fs::File::open(&p).unwrap())
            .read_info()
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert_eq!(reader.info().width, width, "{}", p.display());
    }
}

fn chromium() -> Option<PathBuf> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// Appended to a copy of a page: after layout, lists every table wider than the box it sits in
/// (`name:table px>box px`) in the body's `data-too-wide`.
const MEASURE_TABLES: &str = "<script>window.addEventListener('load', () => { const wide = []; \
for (const t of document.querySelectorAll('table')) { const box = t.parentElement; \
if (t.offsetWidth > box.clientWidth + 1) { wide.push((t.closest('[data-table]')?.dataset.table || '?') \
+ ':' + t.offsetWidth + '>' + box.clientWidth); } } \
document.body.setAttribute('data-too-wide', wide.join(' ')); });</script>";

/// The tables of `page` wider than their container in a 1400-px window (the text column is 68rem).
fn tables_too_wide(browser: &Path, page: &Path) -> String {
    let html = std::fs::read_to_string(page).unwrap();
    let probe = page.with_file_name(".measure-tables.html");
    std::fs::write(
        &probe,
        html.replace("</body>", &format!("{MEASURE_TABLES}</body>")),
    )
    .unwrap();
    let url = format!("file://{}", probe.canonicalize().unwrap().display());
    let dom = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--window-size=1400,2000",
        ])
        .arg("--dump-dom")
        .arg(&url)
        .output()
        .unwrap();
    std::fs::remove_file(&probe).unwrap();
    let dom = String::from_utf8_lossy(&dom.stdout);
    let at = dom
        .find("data-too-wide=\"")
        .unwrap_or_else(|| panic!("{url}: the measuring script did not run"))
        + "data-too-wide=\"".len();
    dom[at..].split('"').next().unwrap().replace("&gt;", ">")
}

fn check_pages_in_chromium(reports: &Path, manifest: &serde_json::Value) {
    let Some(browser) = chromium() else {
        eprintln!(
            "\n!!!!!!!! SKIPPED: the browser check of the HTML report needs Chromium (/usr/bin/chromium).\n!!!!!!!! Install it with `make test-deps` (apt-get install -y chromium) and run the tests again.\n"
        );
        return;
    };
    let flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
    ];
    let shots = tempfile::tempdir().unwrap();
    for (i, p) in manifest["pages"].as_array().unwrap().iter().enumerate() {
        let page = reports.join(p["page"].as_str().unwrap());
        let url = format!("file://{}", page.canonicalize().unwrap().display());
        let shot = shots.path().join(format!("page{i}.png"));
        let out = Command::new(&browser)
            .args(flags)
            .arg(format!("--screenshot={}", shot.display()))
            .arg("--window-size=1280,2000")
            .arg(&url)
            .output()
            .unwrap();
        assert!(
            shot.exists(),
            "no screenshot of {url}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let shot_png = png::Decoder::new(std::fs::File::open(&shot).unwrap())
            .read_info()
            .unwrap();
        assert_eq!(shot_png.info().width, 1280);
        let dom = Command::new(&browser)
            .args(flags)
            .arg("--dump-dom")
            .arg(&url)
            .output()
            .unwrap();
        let dom = String::from_utf8_lossy(&dom.stdout);
        for t in p["tables"].as_array().unwrap() {
            let t = t.as_str().unwrap();
            assert!(
                dom.contains(&format!("data-table=\"{t}\"")),
                "{url}: table {t} not in the DOM"
            );
        }
        let figures = p["figures"].as_array().unwrap();
        for f in figures {
            let f = f.as_str().unwrap();
            let at = dom
                .find(&format!("data-figure=\"{f}\""))
                .unwrap_or_else(|| panic!("{url}: figure {f} not in the DOM"));
            assert!(
                dom[at..].contains("<svg"),
                "{url}: figure {f} has no inline SVG"
            );
        }
        assert!(
            dom.matches("<svg").count() >= figures.len(),
            "{url}: fewer SVGs than figures"
        );
        let wide = tables_too_wide(&browser, &page);
        assert!(
            wide.is_empty(),
            "{url}: tables wider than their container at 1400 px: {wide}"
        );
    }
}

#[test]
fn a_smoke_slice_becomes_tables_figures_and_pages_that_render_in_a_browser() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    run_smoke(&results);

    let (code, stdout, stderr) = report(&results, &[]);
    assert_eq!(code, 0, "{stderr}");
    let index = PathBuf::from(stdout.trim().lines().last().unwrap());
    assert!(index.ends_with("index.html") && index.exists(), "{stdout}");
    let reports = results.join("reports");

    // Every table has its rows.
    let tables = reports.join("tables");
    let cifar10 = csv_rows(&tables.join("cifar10.csv"));
    let ours = cifar10
        .iter()
        .find(|r| r.contains("c10-darts-unas"))
        .expect("a cifar10 row of ours");
    assert!(ours.contains("(N=1") && ours.contains("[smoke]"), "{ours}");
    let est = csv_rows(&tables.join("estimators.csv"));
    for e in ["gsm", "reinforce", "rebar"] {
        let row = est
            .iter()
            .find(|r| r.starts_with(&format!("{e},ablation")) || r.starts_with(&format!("{e},c10")))
            .unwrap_or_else(|| panic!("no estimators row for {e}: {est:?}"));
        assert!(row.contains("(N=1) [smoke]"), "{row}");
    }
    // one row per estimator (random_ws included: its row stays empty, no RS-WS experiment in this
    // slice), and no "random (no search)" row: no random-sampling experiment ran either
    assert_eq!(
        est.len(),
        unas::config::Estimator::ALL.len(),
        "one row per estimator: {est:?}"
    );
    assert!(est.iter().any(|r| r.starts_with("random_ws,,")), "{est:?}");
    let status = csv_rows(&tables.join("status.csv"));
    assert_eq!(
        status.iter().filter(|r| r.contains(",done,")).count(),
        6,
        "{status:?}"
    );
    let md = std::fs::read_to_string(tables.join("cifar10.md")).unwrap();
    assert!(md.contains("smoke tier: pipeline check, not a result"));
    let tex = std::fs::read_to_string(tables.join("cifar10.tex")).unwrap();
    assert!(tex.contains("\\toprule") && tex.contains("\\bottomrule"));

    // Every figure exists and decodes.
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(reports.join("manifest.json")).unwrap())
            .unwrap();
    let figures: Vec<&str> = manifest["figures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    for want in [
        "search-curves-c10-darts-unas-smoke",
        "arch-distribution-c10-darts-unas-smoke",
        "cells-c10-darts-unas-smoke",
        "test-accuracy-c10-darts-unas-smoke",
        "grad-variance",
        "accuracy-latency",
        "seed-spread-cifar10",
    ] {
        assert!(figures.contains(&want), "{want} not in {figures:?}");
    }
    for f in &figures {
        check_figure_files(&reports, f);
    }

    // Named artefacts.
    let (code, list, _) = report(&results, &["--list"]);
    assert_eq!(code, 0);
    assert!(
        list.contains("estimators")
            && list.contains("grad-variance")
            && list.contains("c10-darts-unas")
    );
    let (code, tex, _) = report(&results, &["--table", "estimators", "--format", "tex"]);
    assert_eq!(code, 0);
    assert!(tex.starts_with("% estimators") && tex.contains("\\begin{tabular}"));
    let (code, csv, _) = report(&results, &["--table", "cifar10", "--format", "csv"]);
    assert_eq!(code, 0);
    assert_eq!(
        csv,
        std::fs::read_to_string(tables.join("cifar10.csv")).unwrap()
    );
    let (code, out, _) = report(&results, &["--figure", "grad-variance"]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 3, "{out}");
    let (code, out, _) = report(&results, &["--experiment", "c10-darts-unas"]);
    assert_eq!(code, 0);
    assert!(out.trim().ends_with("c10-darts-unas-smoke.html"), "{out}");
    let (code, _, err) = report(&results, &["--table", "nope"]);
    assert_eq!(code, 2);
    assert!(err.contains("cifar10"), "{err}");

    check_pages_in_chromium(&reports, &manifest);
}
