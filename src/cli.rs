//! The commands behind `unas`: `main.rs` parses arguments, these do the work and return an exit code.
//! Exit codes: 0 success, 1 a run failed (or could not run), 2 a config or usage error (nothing ran,
//! nothing was written).

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::config::{self, DeviceChoice, Resolved, Tier};
use crate::report::text_table::TextTable;
use crate::results::ResultsRoot;
use crate::runner::{self, JobEnd, JobReport};

pub const EXIT_OK: i32 = 0;
pub const EXIT_RUN_FAILED: i32 = 1;
pub const EXIT_CONFIG: i32 = 2;

/// Files that live among the experiments but are not experiments.
fn special_kind(path: &Path) -> Option<&'static str> {
    match path.file_name().and_then(|n| n.to_str()) {
        Some("tiers.yaml") => Some("tiers"),
        Some("reference.yaml") => Some("reference"),
        _ => None,
    }
}

/// `unas validate FILE...`: resolves each file and prints the resolved config and its id.
pub fn validate(files: &[PathBuf], tier: Tier, sets: &[String], id_only: bool) -> i32 {
    let mut code = EXIT_OK;
    for f in files {
        match special_kind(f) {
            Some("tiers") => match config::load::read_text(f)
                .and_then(|t| config::tiers::Tiers::parse(&f.display().to_string(), &t))
            {
                Ok(_) => println!("{}: ok (tier overlays)", f.display()),
                Err(e) => {
                    eprintln!("{e}");
                    code = EXIT_CONFIG;
                }
            },
            Some(_) => match config::reference::load(f) {
                Ok(r) => println!(
                    "{}: ok ({} published numbers)",
                    f.display(),
                    r.entries.len()
                ),
                Err(e) => {
                    eprintln!("{e}");
                    code = EXIT_CONFIG;
                }
            },
            None => match config::load(f, tier, sets) {
                Ok(r) => {
                    if id_only {
                        println!("{}  {}", r.id, f.display());
                    } else {
                        println!("# {}: ok", f.display());
                        print!("{}", r.to_yaml());
                        println!();
                    }
                }
                Err(e) => {
                    eprintln!("{e}");
                    code = EXIT_CONFIG;
                }
            },
        }
    }
    code
}

/// Experiment files under `paths` (files as given; folders searched for `*.yaml`, sorted).
pub fn experiment_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = walkdir::WalkDir::new(p)
                .into_iter()
                .filter_map(|e| e.ok())
                .filter(|e| e.file_type().is_file())
                .map(|e| e.into_path())
                .filter(|p| {
                    p.extension().is_some_and(|x| x == "yaml" || x == "yml")
                        && special_kind(p).is_none()
                })
                .collect();
            found.sort();
            out.extend(found);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

fn load_all(files: &[PathBuf], tier: Tier, sets: &[String]) -> Result<Vec<Resolved>, i32> {
    let mut resolved = Vec::new();
    let mut bad = false;
    for f in files {
        match config::load(f, tier, sets) {
            Ok(r) => resolved.push(r),
            Err(e) => {
                eprintln!("{e}");
                bad = true;
            }
        }
    }
    if bad {
        eprintln!("nothing was run: fix the experiment file(s) above first");
        Err(EXIT_CONFIG)
    } else {
        Ok(resolved)
    }
}

/// `unas list`: experiments, tier, stages, seeds, jobs, rough cost.
pub fn list(paths: &[PathBuf], tier: Tier) -> i32 {
    let files = match experiment_files(paths) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{e:#}");
            return EXIT_CONFIG;
        }
    };
    let resolved = match load_all(&files, tier, &[]) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let mut t = TextTable::new(&[
        "experiment",
        "file",
        "tier",
        "stages",
        "seeds (search/train)",
        "jobs",
        "cost (M image-passes)",
    ]);
    for r in &resolved {
        let e = &r.experiment;
        let mut stages = Vec::new();
        if e.search.is_some() {
            stages.push("search");
        }
        if e.train.is_some() {
            stages.push("train");
        }
        let jobs = runner::plan(r).len();
        t.push(vec![
            e.name.clone(),
            r.source.display().to_string(),
            r.tier.to_string(),
            stages.join(" → "),
            format!("{}/{}", e.seeds.search.len(), e.seeds.train.len()),
            jobs.to_string(),
            format!("{:.1}", runner::plan::rough_cost_m_images(r)),
        ]);
    }
    print!("{}", t.render());
    EXIT_OK
}

fn device_for(r: &Resolved, cli: Option<DeviceChoice>) -> Result<tch::Device> {
    crate::device::resolve(cli.unwrap_or(r.experiment.device))
}

fn print_reports(reports: &[JobReport]) {
    let mut t = TextTable::new(&[
        "experiment",
        "stage",
        "seed",
        "run id",
        "result",
        "wall (s)",
        "detail",
    ]);
    for rep in reports {
        let (result, detail) = match &rep.end {
            JobEnd::Done { skipped: true } => ("done (already)", String::new()),
            JobEnd::Done { skipped: false } => ("done", String::new()),
            JobEnd::Failed(why) => ("FAILED", why.clone()),
            JobEnd::Blocked(why) => ("blocked", why.clone()),
        };
        t.push(vec![
            rep.experiment.clone(),
            rep.stage.into(),
            rep.seed.to_string(),
            rep.run_id.chars().take(16).collect(),
            result.into(),
            format!("{:.1}", rep.wall_s),
            detail,
        ]);
    }
    print!("{}", t.render());
}

/// Every experiment's deliberate deviations from the official code, under its results.
fn print_deviations(all: &[Resolved]) {
    let with: Vec<&Resolved> = all
        .iter()
        .filter(|r| !r.experiment.deviations.is_empty())
        .collect();
    if with.is_empty() {
        return;
    }
    println!("\ndeliberate deviations from the official code (the experiments' `deviations`):");
    for r in with {
        println!("  {}:", r.experiment.name);
        for d in &r.experiment.deviations {
            println!("    - {d}");
        }
    }
}

fn run_resolved(all: &[Resolved], root: &ResultsRoot, device: Option<DeviceChoice>) -> i32 {
    let mut reports = Vec::new();
    for r in all {
        let dev = match device_for(r, device) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("{}: {e:#}", r.source.display());
                return EXIT_RUN_FAILED;
            }
        };
        tracing::info!(experiment = %r.experiment.name, tier = %r.tier, device = %crate::device::describe(dev), "running");
        reports.extend(runner::run_experiment(r, root, dev));
    }
    print_reports(&reports);
    print_deviations(all);
    let failed = reports
        .iter()
        .filter(|r| matches!(r.end, JobEnd::Failed(_)))
        .count();
    let blocked = reports
        .iter()
        .filter(|r| matches!(r.end, JobEnd::Blocked(_)))
        .count();
    if failed + blocked > 0 {
        eprintln!(
            "{} job(s): {failed} failed, {blocked} blocked by a failed upstream job; each failed run folder's status.json says why (`unas report` lists them)",
            reports.len()
        );
        EXIT_RUN_FAILED
    } else {
        EXIT_OK
    }
}

/// `unas run FILE`: every stage of one experiment.
pub fn run(
    file: &Path,
    tier: Tier,
    sets: &[String],
    root: &ResultsRoot,
    device: Option<DeviceChoice>,
) -> i32 {
    match load_all(&[file.to_path_buf()], tier, sets) {
        Ok(all) => run_resolved(&all, root, device),
        Err(code) => code,
    }
}

/// `unas reproduce`: the whole suite at a tier; every experiment is validated before any runs.
pub fn reproduce(
    suite: &[PathBuf],
    tier: Tier,
    root: &ResultsRoot,
    device: Option<DeviceChoice>,
) -> i32 {
    let files = match experiment_files(suite) {
        Ok(f) if !f.is_empty() => f,
        Ok(_) => {
            eprintln!(
                "no experiment files found in {}",
                suite
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            return EXIT_CONFIG;
        }
        Err(e) => {
            eprintln!("{e:#}");
            return EXIT_CONFIG;
        }
    };
    match load_all(&files, tier, &[]) {
        Ok(all) => run_resolved(&all, root, device),
        Err(code) => code,
    }
}

/// `unas report`: tables, figures and HTML pages from every run (see `crate::report::cli`).
pub fn report(args: &crate::report::cli::ReportArgs, root: &ResultsRoot) -> Result<i32> {
    crate::report::cli::run_code(args, &root.0).map(i32::from)
}
