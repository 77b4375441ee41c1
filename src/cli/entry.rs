//! The entry point: parse the arguments once, dispatch the command, print its error in one place.

use std::process::ExitCode;

use clap::Parser;

use crate::results::ResultsRoot;

use super::args::{Args, Command, DataCommand, FetchName, InspectWhat};
use super::exit::{BadInput, EXIT_CONFIG, EXIT_OK, EXIT_RUN_FAILED};
use super::{bench, diagnose, experiments, latency, logging, status, submit};

/// Parses the arguments, runs the command, prints its error if it has one.
pub fn main() -> ExitCode {
    // `unas validate … | head`: a closed stdout ends the process quietly, as it does `cat` (Rust
    // ignores SIGPIPE, so every print would otherwise panic with "Broken pipe").
    // SAFETY: restoring a signal's default disposition before any thread starts.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    crate::runner::heap::keep_tensor_blocks();
    let args = Args::parse();
    logging::init(args.verbose);
    match run(args) {
        Ok(code) => code,
        Err(e) => match e.downcast_ref::<BadInput>() {
            Some(bad) => {
                eprintln!("{bad}");
                ExitCode::from(EXIT_CONFIG)
            }
            None => {
                eprintln!("error: {e:#}");
                ExitCode::from(EXIT_RUN_FAILED)
            }
        },
    }
}

/// The progress interval and the TensorBoard switch, for this process and (through the environment)
/// the worker processes it starts.
fn watch_options(progress_every: u64, no_tensorboard: bool) {
    crate::progress::set_every(std::time::Duration::from_secs(progress_every));
    crate::train::metrics::set_tensorboard(!no_tensorboard);
    std::env::set_var("UNAS_PROGRESS_EVERY", progress_every.to_string());
    if no_tensorboard {
        std::env::set_var("UNAS_NO_TENSORBOARD", "true");
    }
}

/// Runs one command.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let root = ResultsRoot(args.results.clone());
    let device = args.device;
    if let Some(n) = args.threads {
        crate::runner::threads::apply(usize::from(n));
    }
    watch_options(args.progress_every, args.no_tensorboard);
    let ok = || Ok(ExitCode::from(EXIT_OK));
    match args.command {
        Command::Validate {
            files,
            tier,
            sets,
            id_only,
        } => experiments::validate(&files, tier, &sets, id_only),
        Command::List { paths, tier } => experiments::list(&paths, tier),
        Command::Run {
            file,
            tier,
            sets,
            job,
            retry_failed,
            ranks,
            gpus,
            rank_timeout,
            slurm_ranks,
        } => {
            let only = crate::runner::Options {
                retry_failed,
                only: job,
            };
            let timeout = std::time::Duration::from_secs_f64(rank_timeout);
            if slurm_ranks {
                crate::runner::slurm_env::adopt(timeout).map_err(|e| BadInput(format!("{e:#}")))?;
            }
            let launch = crate::runner::ranks::Launch {
                ranks: usize::from(ranks),
                gpus,
                timeout,
            };
            experiments::run(&file, tier, &sets, &root, device, only, &launch)
        }
        Command::Reproduce {
            tier,
            suite,
            retry_failed,
            workers,
            gpus,
            ranks_per_run,
            data,
        } => {
            let how =
                experiments::RunHow::new(retry_failed, workers, &gpus, usize::from(ranks_per_run))?;
            experiments::reproduce(&suite, tier, data.as_deref(), &root, device, &how)
        }
        Command::Status { tier, suite, json } => status::run(&suite, tier, &root, json),
        Command::Submit(a) => submit::run(&a, &root),
        #[cfg(feature = "report")]
        Command::Report(a) => crate::report::cli::run(&a, &root.0),
        Command::Latency { command } => latency::run(&command, &root, device),
        #[cfg(not(feature = "report"))]
        Command::Report { .. } => Err(anyhow::anyhow!(
            "this is a lean build of unas without the report layer (built with --no-default-features): \
             copy the results folder ({}) to a machine with a full build and run `unas report --results DIR` there",
            root.0.display()
        )),
        Command::Data { command } => data(command),
        Command::Diagnose { what } => diagnose::diagnose(what, device),
        Command::Inspect { what } => inspect(what),
        Command::Bench { what } => {
            bench::bench(what, device)?;
            ok()
        }
    }
}

/// `unas data …`: fetch CIFAR; inspect a dataset folder (exit 1 when it has problems).
fn data(command: DataCommand) -> anyhow::Result<ExitCode> {
    match command {
        DataCommand::Fetch { dataset, root, url } => {
            let variant = match dataset {
                FetchName::Cifar10 => crate::data::cifar::Variant::Cifar10,
                FetchName::Cifar100 => crate::data::cifar::Variant::Cifar100,
            };
            crate::data::cli::fetch(variant, &root, url)?;
            Ok(ExitCode::from(EXIT_OK))
        }
        DataCommand::Inspect {
            dataset,
            root,
            json,
        } => {
            let clean = crate::data::cli::inspect(dataset, &root, json)?;
            Ok(ExitCode::from(if clean {
                EXIT_OK
            } else {
                EXIT_RUN_FAILED
            }))
        }
    }
}

/// `unas inspect genotype NAME`: in the space the genotype belongs to.
fn inspect(what: InspectWhat) -> anyhow::Result<ExitCode> {
    let InspectWhat::Genotype {
        name,
        dataset,
        json,
    } = what;
    let name = name.into();
    match crate::config::GenotypeChoice::space(name) {
        Some(crate::config::SpaceName::Proxyless) => {
            crate::nas::space::proxyless::inspect::run(name, dataset, json)?
        }
        Some(crate::config::SpaceName::Darts) | None => {
            crate::nas::space::darts::inspect::run(name, dataset, json)?
        }
    }
    Ok(ExitCode::from(EXIT_OK))
}
