//! `unas report`: the arguments and what they do. With no selector it rebuilds all of
//! `results/reports/` and prints where the index page is; `--list` names every artefact;
//! `--table NAME` prints one table (`--format md|tex|csv`); `--figure NAME` and `--experiment NAME`
//! write just that figure or page and print its path.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;

use crate::results::ResultsRoot;

use super::suite::Suite;
use super::{latex, tables, write};

/// Exit codes: 0 written, 2 a name that does not exist (nothing written).
const EXIT_OK: u8 = 0;
const EXIT_USAGE: u8 = 2;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    #[default]
    Md,
    Tex,
    Csv,
}

#[derive(Clone, Debug, Default, clap::Args)]
pub struct ReportArgs {
    /// List every table, figure and experiment page by name (nothing is written).
    #[arg(long)]
    pub list: bool,
    /// Print just this table on stdout (see --list; --format picks md, tex or csv).
    #[arg(long, value_name = "NAME", conflicts_with_all = ["figure", "experiment", "list"])]
    pub table: Option<String>,
    /// Write just this figure (SVG and PNGs) under results/reports/figures and print its paths.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["experiment", "list"])]
    pub figure: Option<String>,
    /// Write just this experiment's HTML page and print its path.
    #[arg(long, value_name = "NAME", conflicts_with = "list")]
    pub experiment: Option<String>,
    /// Format of a table printed with --table.
    #[arg(long, value_enum, default_value_t = Format::Md)]
    pub format: Format,
    /// The published numbers shown in the `(published)` columns.
    #[arg(
        long,
        value_name = "FILE",
        default_value = "experiments/reference.yaml"
    )]
    pub reference: PathBuf,
}

/// Runs `unas report` over `results_root` (the folder holding `runs/` and `reports/`).
pub fn run(args: &ReportArgs, results_root: &Path) -> Result<ExitCode> {
    run_code(args, results_root).map(ExitCode::from)
}

/// [`run`] with the exit code as a number (for a caller that exits with an `i32`).
pub fn run_code(args: &ReportArgs, results_root: &Path) -> Result<u8> {
    let root = ResultsRoot(results_root.to_path_buf());
    let suite = Suite::load(&root.runs(), &args.reference)?;
    let out = root.reports();
    if args.list {
        print_list(&suite)?;
        return Ok(EXIT_OK);
    }
    if let Some(name) = &args.table {
        let Some(t) = tables::by_name(&suite.ctx(), name) else {
            eprintln!(
                "no table `{name}`; the tables are: {} (`unas report --list` names everything)",
                tables::NAMES.join(", ")
            );
            return Ok(EXIT_USAGE);
        };
        let t = suite
            .tables()
            .into_iter()
            .find(|x| x.name == t.name)
            .unwrap_or(t);
        let text = match args.format {
            Format::Md => t.markdown(),
            Format::Tex => latex::render(&t),
            Format::Csv => t.csv(),
        };
        std::io::stdout().write_all(text.as_bytes())?;
        return Ok(EXIT_OK);
    }
    if let Some(name) = &args.figure {
        return match write::one_figure(&suite, &out, name)? {
            Some(files) => {
                for f in files {
                    println!("{}", f.display());
                }
                Ok(EXIT_OK)
            }
            None => {
                eprintln!("no figure `{name}`; `unas report --list` names every figure");
                Ok(EXIT_USAGE)
            }
        };
    }
    if let Some(name) = &args.experiment {
        return match write::one_experiment(&suite, &out, name)? {
            Some(files) => {
                for f in files
                    .iter()
                    .filter(|f| f.extension().is_some_and(|e| e == "html"))
                {
                    println!("{}", f.display());
                }
                Ok(EXIT_OK)
            }
            None => {
                eprintln!(
                    "no experiment `{name}` under {}; `unas report --list` names them",
                    root.runs().display()
                );
                Ok(EXIT_USAGE)
            }
        };
    }
    let t0 = std::time::Instant::now();
    let written = write::everything(&suite, &out)?;
    let status = suite.tables().into_iter().find(|t| t.name == "status");
    if let Some(s) = &status {
        // The terminal listing of every run (as the older `unas report` printed it).
        let mut text = super::text_table::TextTable::new(
            &s.columns
                .iter()
                .map(|c| c.label.as_str())
                .collect::<Vec<_>>(),
        );
        for r in &s.rows {
            text.push(r.clone());
        }
        print!("{}", text.render());
        if let Some(summary) = s.footnotes.first() {
            eprintln!("{summary}");
        }
    }
    if let Some(p) = &suite.reference_problem {
        eprintln!("warning: {p}");
    }
    eprintln!(
        "wrote {} files under {} in {:.1} s; the report's index page:",
        written.files.len(),
        out.display(),
        t0.elapsed().as_secs_f64()
    );
    println!("{}", written.index.display());
    Ok(EXIT_OK)
}

fn print_list(suite: &Suite) -> Result<()> {
    println!("tables (unas report --table NAME [--format md|tex|csv]):");
    for t in write::table_names() {
        println!("  {t}");
    }
    for sw in tables::sweep::sweeps(&suite.ctx()) {
        println!("  {}", sw.name());
    }
    println!("figures (unas report --figure NAME):");
    for f in write::figure_names(suite)? {
        println!("  {f}");
    }
    println!("experiments (unas report --experiment NAME):");
    let mut seen = Vec::new();
    for g in &suite.groups {
        if !seen.contains(&g.experiment) {
            seen.push(g.experiment.clone());
            let tiers: Vec<&str> = suite
                .groups
                .iter()
                .filter(|x| x.experiment == g.experiment)
                .map(|x| x.tier.as_str())
                .collect();
            println!("  {}  ({} tier)", g.experiment, tiers.join(", "));
        }
    }
    Ok(())
}
