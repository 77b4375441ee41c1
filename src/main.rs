//! `unas`: the command line. Parses arguments and dispatches; the work lives in the library.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use unas::cli;
use unas::config::{DeviceChoice, Tier};
use unas::results::ResultsRoot;

#[derive(Parser)]
#[command(
    name = "unas",
    version,
    about = "Reproduce UNAS (CVPR 2020) and run NAS ablations: one YAML file per experiment"
)]
struct Args {
    /// Where runs and reports are written.
    #[arg(long, global = true, env = "UNAS_RESULTS", default_value = "results")]
    results: PathBuf,
    /// Device for runs: cpu, cuda or cuda:N (default: the experiment's `device`, which defaults to auto).
    #[arg(long, global = true, value_parser = parse_device)]
    device: Option<DeviceChoice>,
    /// More log output (-v info, -vv debug); RUST_LOG also works.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check experiment files; print each resolved config and its id.
    Validate {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[arg(long, value_enum, default_value_t = Tier::Paper)]
        tier: Tier,
        /// Override a field: `--set search.batch=64` (repeatable; the value is read as YAML).
        #[arg(long = "set", value_name = "FIELD=VALUE")]
        sets: Vec<String>,
        /// Print only `<id>  <file>` per experiment.
        #[arg(long)]
        id_only: bool,
    },
    /// List experiments with their tier, stages, seeds, jobs and rough cost.
    List {
        #[arg(default_value = "experiments")]
        paths: Vec<PathBuf>,
        #[arg(long, value_enum, default_value_t = Tier::Paper)]
        tier: Tier,
    },
    /// Run every stage of one experiment (finished runs are skipped).
    Run {
        file: PathBuf,
        #[arg(long, value_enum, default_value_t = Tier::Paper)]
        tier: Tier,
        #[arg(long = "set", value_name = "FIELD=VALUE")]
        sets: Vec<String>,
    },
    /// Run the paper suite (default: experiments/paper at the smoke tier).
    Reproduce {
        #[arg(long, value_enum, default_value_t = Tier::Smoke)]
        tier: Tier,
        #[arg(long, default_value = "experiments/paper")]
        suite: Vec<PathBuf>,
    },
    /// Summarise every run under the results folder (status and failure reasons).
    Report,
    /// Researcher's checks: gradient estimators on enumerable problems.
    Diagnose {
        #[command(subcommand)]
        what: unas::nas::diagnose::DiagnoseCommand,
    },
    /// Datasets: fetch CIFAR, inspect a dataset folder.
    Data {
        #[command(subcommand)]
        command: unas::data::cli::DataCommand,
    },
    /// Benchmarks (`unas bench data`).
    Bench {
        #[command(subcommand)]
        target: BenchTarget,
    },
}

#[derive(Subcommand)]
enum BenchTarget {
    /// Images/s of CIFAR augmentation (CPU, CUDA) and ImageNet decode + crop per core.
    Data,
}

fn parse_device(s: &str) -> Result<DeviceChoice, String> {
    s.parse()
}

fn main() {
    let args = Args::parse();
    let filter = match args.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| filter.into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let root = ResultsRoot(args.results.clone());
    let code = match args.command {
        Command::Validate {
            files,
            tier,
            sets,
            id_only,
        } => cli::validate(&files, tier, &sets, id_only),
        Command::List { paths, tier } => cli::list(&paths, tier),
        Command::Run { file, tier, sets } => cli::run(&file, tier, &sets, &root, args.device),
        Command::Reproduce { tier, suite } => cli::reproduce(&suite, tier, &root, args.device),
        Command::Data { command } => unas::data::cli::run(command),
        Command::Bench {
            target: BenchTarget::Data,
        } => match unas::data::bench::run() {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("{e:#}");
                1
            }
        },
        Command::Report => match cli::report(&root) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("{e:#}");
                cli::EXIT_RUN_FAILED
            }
        },
        Command::Diagnose { what } => match unas::nas::diagnose::run(&what) {
            Ok(text) => {
                println!("{text}");
                cli::EXIT_OK
            }
            Err(e) => {
                eprintln!("{e:#}");
                cli::EXIT_RUN_FAILED
            }
        },
    };
    std::process::exit(code);
}
