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
    /// Tables, figures and HTML pages from every run under the results folder (results/reports).
    Report(unas::report::cli::ReportArgs),
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
    /// Describe a published architecture (parameters, MACs, width).
    Inspect {
        #[command(subcommand)]
        what: InspectWhat,
    },
    /// Measure the throughput of a part of the system.
    Bench {
        #[command(subcommand)]
        what: BenchWhat,
    },
}

#[derive(Subcommand)]
enum InspectWhat {
    /// A published genotype on a dataset: `unas inspect genotype UNAS_IMAGENET --dataset imagenet`.
    Genotype {
        /// UNAS_CIFAR10, UNAS_CIFAR100, UNAS_IMAGENET, DARTS_V2 (DARTS space) or UNAS_PROXYLESS,
        /// PROXYLESS_GPU (ProxylessNAS space, ImageNet only).
        name: String,
        /// cifar10, cifar100 or imagenet.
        #[arg(long)]
        dataset: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum BenchWhat {
    /// Images/s of CIFAR augmentation (CPU, CUDA) and ImageNet decode + crop per core.
    Data,
    /// Images/s of the search and training loops on an experiment, against its warm-up phase.
    Search {
        #[arg(default_value = "experiments/paper/c10-darts-unas.yaml")]
        file: PathBuf,
        #[arg(long, value_enum, default_value_t = Tier::Smoke)]
        tier: Tier,
        /// e.g. `--set search.estimator=gsm --set search.batch=16`.
        #[arg(long = "set", value_name = "FIELD=VALUE")]
        sets: Vec<String>,
    },
    /// Images/s of the from-scratch training loop on an experiment, against a bare training step.
    Train {
        #[arg(default_value = "experiments/paper/eval-unas-cifar10.yaml")]
        file: PathBuf,
        #[arg(long, value_enum, default_value_t = Tier::Smoke)]
        tier: Tier,
        /// e.g. `--set train.batch=64 --set train.channels=16`.
        #[arg(long = "set", value_name = "FIELD=VALUE")]
        sets: Vec<String>,
    },
    /// Forward+backward of the search supernet: relaxed vs discrete, per-example vs per-batch weights.
    Space {
        #[arg(long, value_enum, default_value_t = BenchSpace::Darts)]
        space: BenchSpace,
        #[arg(long, default_value_t = 32)]
        batch: i64,
        #[arg(long, default_value_t = 5)]
        steps: usize,
        #[arg(long, default_value_t = 16)]
        channels: i64,
        #[arg(long, default_value_t = 8)]
        layers: i64,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum BenchSpace {
    Darts,
}

/// Exit code of a command whose error is printed for the user.
fn report_error(r: anyhow::Result<()>) -> i32 {
    match r {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{e:#}");
            cli::EXIT_RUN_FAILED
        }
    }
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
            what: BenchWhat::Data,
        } => report_error(unas::data::bench::run()),
        Command::Bench {
            what: BenchWhat::Search { file, tier, sets },
        } => report_error(unas::train::bench::run(
            &file,
            tier,
            &sets,
            args.device,
            unas::train::bench::Baseline::Warmup,
        )),
        Command::Bench {
            what: BenchWhat::Train { file, tier, sets },
        } => report_error(unas::train::bench::run(
            &file,
            tier,
            &sets,
            args.device,
            unas::train::bench::Baseline::BareStep,
        )),
        Command::Report(a) => match cli::report(&a, &root) {
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
        Command::Inspect {
            what:
                InspectWhat::Genotype {
                    name,
                    dataset,
                    json,
                },
        } => report_error(
            if unas::nas::space::proxyless::inspect::is_proxyless(&name) {
                unas::nas::space::proxyless::inspect::run(&name, &dataset, json)
            } else {
                unas::nas::space::darts::inspect::run(&name, &dataset, json)
            },
        ),
        Command::Bench {
            what:
                BenchWhat::Space {
                    space: BenchSpace::Darts,
                    batch,
                    steps,
                    channels,
                    layers,
                },
        } => report_error(
            unas::device::resolve(args.device.unwrap_or_default()).and_then(|device| {
                unas::nas::space::darts::bench::run(&unas::nas::space::darts::bench::BenchOptions {
                    batch,
                    steps,
                    channels,
                    layers,
                    device,
                })
            }),
        ),
    };
    std::process::exit(code);
}
