//! Golden tests of the report on hand-built run folders (`fixture.rs`): known means, stds and Ns
//! give exact table text in Markdown, CSV and LaTeX; a failed, diverged, missing and blocked run give
//! their marks; best-of-N picks by validation, never by test; every figure's SVG parses as XML and
//! every PNG decodes at its pixel size; every LaTeX table is structurally sound (and compiles where a
//! TeX is installed).

use std::path::Path;

use super::fixture;
use super::suite::Suite;
use super::{figures, latex, tables, write};

fn suite_in(dir: &Path) -> Suite {
    fixture::suite(dir);
    let reference = dir.join("reference.yaml");
    std::fs::write(&reference, fixture::REFERENCE).unwrap();
    Suite::load(&dir.join("runs"), &reference).unwrap()
}

fn table(s: &Suite, name: &str) -> super::table::ReportTable {
    s.tables().into_iter().find(|t| t.name == name).unwrap()
}

const CIFAR10_MD: &str = include_str!("golden/cifar10.md");
const CIFAR10_CSV: &str = include_str!("golden/cifar10.csv");
const CIFAR10_TEX: &str = include_str!("golden/cifar10.tex");

#[test]
fn cifar10_table_is_exact_in_markdown_csv_and_latex() {
    let dir = tempfile::tempdir().unwrap();
    let s = suite_in(dir.path());
    let t = table(&s, "cifar10");
    if std::env::var_os("UNAS_BLESS").is_some() {
        let g = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/report/golden");
        std::fs::write(g.join("cifar10.md"), t.markdown()).unwrap();
        std::fs::write(g.join("cifar10.csv"), t.csv()).unwrap();
        std::fs::write(g.join("cifar10.tex"), latex::render(&t)).unwrap();
    }
    assert_eq!(t.markdown(), CIFAR10_MD);
    assert_eq!(t.csv(), CIFAR10_CSV);
    assert_eq!(latex::render(&t), CIFAR10_TEX);
}

/// The numbers behind the golden file, stated independently of it.
#[test]
fn cells_carry_known_means_stds_ns_and_marks() {
    let dir = tempfile::tempdir().unwrap();
    let s = suite_in(dir.path());
    let t = table(&s, "cifar10");
    let row = |exp: &str, tier: &str| {
        t.rows
            .iter()
            .find(|r| r[1] == exp && r[2] == tier)
            .unwrap_or_else(|| panic!("no row {exp} {tier}"))
            .clone()
    };
    // Test errors 3 % and 4 %: mean 3.50, sample std 0.71; search 2's training is missing and
    // search 3 failed, so its training is blocked.
    let main = row("c10-fixture", "paper");
    assert_eq!(main[3], "3.50 ± 0.71 (N=2; 1 missing, 1 blocked)");
    // Search hours 1, 2, 3: mean 2, std 1; seed 3 failed.
    assert_eq!(main[6], "2.000 ± 1.000 (N=3; 1 failed)");
    // The smoke-tier run is its own row, marked, and never averaged in.
    let smoke = row("c10-fixture", "smoke");
    assert_eq!(smoke[3], "80.00 (N=1) [smoke]");
    assert!(t.caption.starts_with(super::table::SMOKE_CAPTION));
    // Best of 2 by validation accuracy: seed 1 (90 % val.), whose test error is 5 %, not seed 0's 1 %.
    assert_eq!(row("c10-fixture-best", "paper")[3], "5.00 (N=1)");
    // The published number sits only in the (published) column.
    let darts = t.rows.iter().find(|r| r[0] == "DARTS (2nd order)").unwrap();
    assert_eq!(darts[4], "2.76 ± 0.09 (N=10)");
    assert!(darts
        .iter()
        .enumerate()
        .all(|(i, c)| i == 0 || i == 4 || c.is_empty()));
    assert!(t
        .rows
        .iter()
        .filter(|r| r[0] != "DARTS (2nd order)")
        .all(|r| r[4].is_empty()));
    let notes = t.footnotes.join("\n");
    assert!(
        notes.contains("c10-fixture search seed 3: failed — out of memory"),
        "{notes}"
    );
    assert!(
        notes.contains("c10-fixture train seed 0: missing"),
        "{notes}"
    );
    assert!(
        notes.contains("blocked — its search (seed 3) did not finish"),
        "{notes}"
    );
    assert!(notes.contains("c10-fixture deviates from the official code: one GPU, not four"));
    assert!(notes.contains("c10-fixture: smoke tier, ran on cpu"));
    assert!(notes.contains("best of 2 searches by search-time val. acc. (seed 1)"));
}

/// RI = 100 × (acc − acc_random) / acc_random against the random architectures of the same tier and
/// recipe only: random-fixture-c10 (90 %, 92 %: mean 91 %); random-fixture-c10-dp3 (another recipe,
/// 10 %) is never pooled in, and no random run of the smoke tier exists, so the smoke row is blank.
#[test]
fn relative_improvement_is_exact_and_never_crosses_a_tier_or_a_recipe() {
    let dir = tempfile::tempdir().unwrap();
    let s = suite_in(dir.path());
    let t = table(&s, "cifar10");
    let ri = ri_column(&t);
    let row = |exp: &str, tier: &str| {
        t.rows
            .iter()
            .find(|r| r[1] == exp && r[2] == tier)
            .unwrap_or_else(|| panic!("no row {exp} {tier}"))[ri]
            .clone()
    };
    let want = |acc: f64| format!("{:+.2}", 100.0 * (acc - 91.0) / 91.0);
    assert_eq!(row("c10-fixture", "paper"), want((97.0 + 96.0) / 2.0));
    assert_eq!(row("c10-fixture", "paper"), "+6.04");
    assert_eq!(row("c10-fixture-best", "paper"), want(95.0));
    assert_eq!(
        row("eval-fixture-cifar10", "paper"),
        want((97.5 + 97.0) / 2.0)
    );
    assert_eq!(
        row("c10-fixture", "smoke"),
        "",
        "no random run at the smoke tier"
    );
    assert_eq!(
        row("random-fixture-c10", "paper"),
        "",
        "a random row has no RI"
    );
    let darts = t.rows.iter().find(|r| r[0] == "DARTS (2nd order)").unwrap();
    assert_eq!(darts[ri], "", "published numbers are another recipe");
    // The random rows are in the table with their own numbers: test error 100 − 91 = 9.
    assert!(row_text(&t, "random-fixture-c10").contains("9.00 ± 1.41 (N=2)"));
    let notes = t.footnotes.join("\n");
    assert!(
        notes.contains("paper tier: 91.00 % over 2 random architectures (random-fixture-c10)"),
        "{notes}"
    );
    // The estimator table has the random row and the same RI for the REBAR search.
    let e = table(&s, "estimators");
    let ri = ri_column(&e);
    let rebar = e
        .rows
        .iter()
        .find(|r| r[0] == "rebar" && r[1] == "c10-fixture" && r[2] == "paper")
        .unwrap();
    assert_eq!(rebar[ri], "+6.04");
    assert!(e
        .rows
        .iter()
        .any(|r| r[0] == "random (no search)" && r[1] == "random-fixture-c10"));
    // The random architectures appear in the genotype table and as a cloud in the figure of their
    // table and tier (each training seed its own cells figure needs a DARTS genotype: drawn too).
    let g = table(&s, "genotypes");
    assert!(g
        .rows
        .iter()
        .any(|r| r[0] == "random" && r[2] == "random-fixture-c10"));
    let figs = figures::all(&s).unwrap();
    let f = figs
        .iter()
        .find(|f| f.name == "architectures-cifar10-paper")
        .expect("a figure per table and tier");
    match &f.plot {
        figures::Plot::Scatter { sets, x_label, .. } => {
            assert_eq!(x_label, "parameters (M)");
            let cloud = sets
                .iter()
                .find(|p| p.label == "random (random-fixture-c10)")
                .unwrap();
            assert!(cloud.cloud);
            let mut pts: Vec<(f64, f64)> = cloud.points.iter().map(|p| (p.x, p.y)).collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            assert_eq!(pts, vec![(2.0, 10.0), (3.0, 8.0)]);
            assert!(sets.iter().any(|p| p.label == "c10-fixture" && !p.cloud));
        }
        other => panic!("not a scatter: {other:?}"),
    }
    assert!(!figs
        .iter()
        .any(|f| f.name == "architectures-cifar10-paper" && f.smoke));
    for seed in [0, 1] {
        let name = format!("cells-random-fixture-c10-paper-seed{seed}");
        assert!(figs.iter().any(|f| f.name == name), "{name}");
    }
}

fn ri_column(t: &super::table::ReportTable) -> usize {
    t.columns
        .iter()
        .position(|c| c.label == super::baseline::RI_COLUMN)
        .unwrap()
}

fn row_text(t: &super::table::ReportTable, exp: &str) -> String {
    t.rows
        .iter()
        .find(|r| r[1] == exp)
        .map(|r| r.join(" | "))
        .unwrap_or_default()
}

#[test]
fn a_diverged_search_is_marked_with_its_step_and_term_and_every_estimator_has_a_row() {
    let dir = tempfile::tempdir().unwrap();
    let s = suite_in(dir.path());
    let t = table(&s, "estimators");
    let names: Vec<&str> = t.rows.iter().map(|r| r[0].as_str()).collect();
    for e in ["gsm", "st_gsm", "darts", "reinforce", "rebar", "relax"] {
        assert!(names.contains(&e), "{e} missing from {names:?}");
    }
    let rein = t.rows.iter().find(|r| r[0] == "reinforce").unwrap();
    assert_eq!(rein[3], "— (N=0; 1 diverged)");
    let notes = t.footnotes.join("\n");
    assert!(
        notes.contains(
            "c10-fixture-reinforce search seed 0: diverged — non-finite `f_relaxed` at step 17"
        ),
        "{notes}"
    );
    // Architecture-gradient variance: per run the mean of 0.5/(1+s) over s = 0..5, identical for
    // the three finished paper-tier searches.
    let rebar = t
        .rows
        .iter()
        .find(|r| r[0] == "rebar" && r[2] == "paper" && r[1] == "c10-fixture")
        .unwrap();
    let per_run: f64 = (0..6).map(|s| 0.5 / (1.0 + s as f64)).sum::<f64>() / 6.0;
    assert_eq!(rebar[4], format!("{per_run:.4} ± 0.0000 (N=3; 1 failed)"));
}

#[test]
fn the_status_table_lists_failed_diverged_missing_and_blocked_runs() {
    let dir = tempfile::tempdir().unwrap();
    let s = suite_in(dir.path());
    let t = table(&s, "status");
    let states: Vec<&str> = t.rows.iter().map(|r| r[5].as_str()).collect();
    for st in ["done", "failed", "diverged", "missing", "blocked"] {
        assert!(states.contains(&st), "{st} not in {states:?}");
    }
    assert_eq!(
        t.footnotes[0],
        format!(
        "{} runs: {} done, 1 failed, 1 diverged, 0 damaged, 0 running or interrupted; 1 missing, 2 blocked.",
        t.rows.len(),
        states.iter().filter(|s| **s == "done").count()
    )
    );
}

/// `\begin`/`\end` balanced and in order, one of each booktabs rule, as many `&` per row as columns.
fn check_latex_structure(tex: &str, columns: usize) {
    let mut stack = Vec::new();
    let mut i = 0;
    while let Some(pos) = tex[i..].find(['\\']) {
        let rest = &tex[i + pos..];
        if let Some(r) = rest.strip_prefix("\\begin{") {
            let env = &r[..r.find('}').unwrap()];
            stack.push(env.to_owned());
        } else if let Some(r) = rest.strip_prefix("\\end{") {
            let env = &r[..r.find('}').unwrap()];
            assert_eq!(
                stack.pop().as_deref(),
                Some(env),
                "unbalanced \\end{{{env}}}"
            );
        }
        i += pos + 1;
    }
    assert!(stack.is_empty(), "unclosed environments {stack:?}");
    for rule in ["\\toprule", "\\midrule", "\\bottomrule"] {
        assert_eq!(tex.matches(rule).count(), 1, "{rule}");
    }
    let body = &tex[tex.find("\\toprule").unwrap()..tex.find("\\bottomrule").unwrap()];
    for line in body.lines().filter(|l| l.ends_with("\\\\")) {
        if !line.contains("\\multicolumn") {
            // Escaped ampersands (\&) are text, not column separators.
            let seps = line.matches('&').count() - line.matches("\\&").count();
            assert_eq!(seps + 1, columns, "{line}");
        }
    }
}

#[test]
fn every_latex_table_is_structurally_sound_and_compiles_where_tex_is_installed() {
    let dir = tempfile::tempdir().unwrap();
    let s = suite_in(dir.path());
    let mut doc =
        String::from("\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n");
    for t in s.tables() {
        let tex = latex::render(&t);
        check_latex_structure(&tex, t.columns.len());
        let p = dir.path().join(format!("{}.tex", t.name));
        std::fs::write(&p, &tex).unwrap();
        doc.push_str(&format!("\\input{{{}}}\n\\clearpage\n", t.name));
    }
    doc.push_str("\\end{document}\n");
    std::fs::write(dir.path().join("all.tex"), doc).unwrap();
    match std::process::Command::new("pdflatex")
        .args(["-interaction=nonstopmode", "-halt-on-error", "all.tex"])
        .current_dir(dir.path())
        .output()
    {
        Ok(out) => assert!(
            out.status.success(),
            "pdflatex failed:\n{}",
            String::from_utf8_lossy(&out.stdout)
        ),
        Err(_) => eprintln!("pdflatex not found: the LaTeX tables were checked structurally only"),
    }
}

#[test]
fn every_figure_svg_parses_every_png_decodes_at_300_dpi_sizes_and_pages_hold_them() {
    let dir = tempfile::tempdir().unwrap();
    let s = suite_in(dir.path());
    // UNAS_REPORT_KEEP=DIR keeps the fixture's report for a look at the figures.
    let out = std::env::var_os("UNAS_REPORT_KEEP")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| dir.path().join("reports"));
    let written = write::everything(&s, &out).unwrap();
    let figs = figures::all(&s).unwrap();
    assert!(figs.len() >= 10, "{} figures", figs.len());
    for f in &figs {
        let [svg, col, page] = figures::paths(&out, &f.name);
        let text = std::fs::read_to_string(&svg).unwrap();
        let doc =
            roxmltree::Document::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", svg.display()));
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        for (p, width_in) in [(col, 3.5), (page, 7.0)] {
            let decoder = png::Decoder::new(std::fs::File::open(&p).unwrap());
            let reader = decoder.read_info().unwrap();
            let info = reader.info();
            let (w, h) = figures::style::pixels(width_in, f.aspect, 300.0);
            assert_eq!((info.width, info.height), (w, h), "{}", p.display());
            let dims = info.pixel_dims.unwrap();
            assert_eq!(dims.xppu, 11811, "300 dpi");
        }
        if f.smoke {
            assert!(f.full_caption().starts_with(super::table::SMOKE_CAPTION));
            assert!(text.contains(super::table::SMOKE_CAPTION), "{}", f.name);
        }
    }
    assert!(written.index.exists());
    for name in tables::NAMES {
        for ext in ["md", "tex", "csv"] {
            assert!(
                out.join("tables").join(format!("{name}.{ext}")).exists(),
                "{name}.{ext}"
            );
        }
    }
    // Every page of the manifest holds its tables and figures (the browser test checks the DOM).
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    let pages = m["pages"].as_array().unwrap();
    assert_eq!(pages.len(), s.groups.len() + 1);
    for p in pages {
        let html = std::fs::read_to_string(out.join(p["page"].as_str().unwrap())).unwrap();
        for t in p["tables"].as_array().unwrap() {
            assert!(html.contains(&format!("data-table=\"{}\"", t.as_str().unwrap())));
        }
        for f in p["figures"].as_array().unwrap() {
            assert!(html.contains(&format!("data-figure=\"{}\"", f.as_str().unwrap())));
        }
        assert!(!html.contains("<script"), "no script in a page");
    }
    let page = std::fs::read_to_string(out.join("experiments/c10-fixture-paper.html")).unwrap();
    // The description's Markdown is rendered, the config is a code cell.
    assert!(page.contains("<em>fixture</em>"), "description rendered");
    assert!(page.contains("protocol: mean_over_searches"));
}

/// Two variants of a sweep over `train.drop_path` (test accuracy 97.5 % at 0.3, 96.0 % at 0.1).
fn sweep_suite(dir: &Path) -> Suite {
    use crate::results::State;
    let runs = dir.join("runs");
    for (name, value, id, acc) in [
        ("fix-sweep.drop_path-0.3", "0.3", "s3", 97.5),
        ("fix-sweep.drop_path-0.1", "0.1", "s1", 96.0),
    ] {
        let config =
            fixture::config(name, "rebar", "mean_over_searches", "UNAS_CIFAR10", false).replace(
                "genotype: UNAS_CIFAR10}",
                &format!("genotype: UNAS_CIFAR10, drop_path: {value}}}"),
            ) + "sweep:\n  train.drop_path: [0.1, 0.3]\nsweep_of: fix-sweep\n";
        let d = fixture::run(
            dir,
            &fixture::RunSpec {
                experiment: name,
                tier: "paper",
                stage: "train",
                seed: 0,
                run_id: id,
                config_id: id,
                config: &config,
                state: State::Done,
            },
        );
        fixture::train_tables(&d, name, "paper", 0, id, None, acc, 3.3308);
    }
    let reference = dir.join("reference.yaml");
    std::fs::write(&reference, fixture::REFERENCE).unwrap();
    Suite::load(&runs, &reference).unwrap()
}

#[test]
fn a_sweep_is_one_table_and_one_line_over_the_swept_value_and_no_paper_row() {
    let dir = tempfile::tempdir().unwrap();
    let s = sweep_suite(dir.path());
    let t = table(&s, "sweep-fix-sweep-paper");
    let firsts: Vec<(&str, &str)> = t
        .rows
        .iter()
        .map(|r| (r[0].as_str(), r[1].as_str()))
        .collect();
    assert_eq!(
        firsts,
        [
            ("0.1", "fix-sweep.drop_path-0.1"),
            ("0.3", "fix-sweep.drop_path-0.3")
        ]
    );
    assert!(t.rows[0][3].starts_with("4.00"), "{:?}", t.rows[0]);
    assert!(t.rows[1][3].starts_with("2.50"), "{:?}", t.rows[1]);
    // the variants are not rows of the paper's tables
    assert!(table(&s, "genotypes")
        .rows
        .iter()
        .all(|r| !r.concat().contains("fix-sweep")));
    let fig = figures::all(&s)
        .unwrap()
        .into_iter()
        .find(|f| f.name == "sweep-fix-sweep-paper")
        .expect("the sweep's figure");
    let figures::Plot::Lines(panels) = &fig.plot else {
        panic!("a line plot")
    };
    let xy: Vec<(f64, f64)> = panels[0].lines[0]
        .points
        .iter()
        .map(|p| (p.x, (p.mean * 100.0).round() / 100.0))
        .collect();
    assert_eq!(xy, [(0.1, 4.0), (0.3, 2.5)]);
    assert_eq!(panels[0].x_label, "train.drop_path");
    fig.render().unwrap();
}
