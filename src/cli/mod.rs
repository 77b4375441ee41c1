//! The command line. `main.rs` calls [`main`]: arguments are parsed once into typed values
//! ([`args`]: every command declared in one place, value enums for every choice), [`run`] dispatches
//! and returns `anyhow::Result<ExitCode>`, and errors are printed in exactly one place ([`main`]).
//!
//! Exit codes: 0 success, 1 a run failed (or could not run), 2 bad input — a config or usage error
//! ([`BadInput`]): nothing ran, nothing was written.

pub mod args;
mod experiments;
mod latency;
mod logging;
mod status;
pub mod submit;

use std::process::ExitCode;

use clap::Parser;

use crate::results::ResultsRoot;
use args::InspectWhat;
use args::{Args, BenchSpace, BenchWhat, Command, DataCommand, DiagnoseCommand, FetchName};
pub use experiments::experiment_files;

pub const EXIT_OK: u8 = 0;
pub const EXIT_RUN_FAILED: u8 = crate::runner::EXIT_RUN_FAILED;
pub const EXIT_CONFIG: u8 = crate::runner::EXIT_CONFIG;

/// Bad input (a config file, an override, a suite folder): printed as it is, exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

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
        } => {
            let only = crate::runner::Options {
                retry_failed,
                only: job,
            };
            let launch = crate::runner::ranks::Launch {
                ranks: usize::from(ranks),
                gpus,
                timeout: std::time::Duration::from_secs_f64(rank_timeout.max(0.001)),
            };
            experiments::run(&file, tier, &sets, &root, device, only, &launch)
        }
        Command::Reproduce {
            tier,
            suite,
            retry_failed,
            workers,
            gpus,
            data,
        } => {
            let how = experiments::RunHow::new(retry_failed, workers, &gpus);
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
        Command::Data { command } => match command {
            DataCommand::Fetch { dataset, root, url } => {
                let variant = match dataset {
                    FetchName::Cifar10 => crate::data::cifar::Variant::Cifar10,
                    FetchName::Cifar100 => crate::data::cifar::Variant::Cifar100,
                };
                crate::data::cli::fetch(variant, &root, url)?;
                ok()
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
        },
        Command::Diagnose { what } => diagnose(what, device),
        Command::Inspect {
            what:
                InspectWhat::Genotype {
                    name,
                    dataset,
                    json,
                },
        } => {
            let name = name.into();
            match crate::config::GenotypeChoice::space(name) {
                Some(crate::config::SpaceName::Proxyless) => {
                    crate::nas::space::proxyless::inspect::run(name, dataset, json)?
                }
                _ => crate::nas::space::darts::inspect::run(name, dataset, json)?,
            }
            ok()
        }
        Command::Bench { what } => {
            bench(what, device)?;
            ok()
        }
    }
}

/// `unas bench …`: each prints its own table.
fn bench(what: BenchWhat, device: Option<crate::config::DeviceChoice>) -> anyhow::Result<()> {
    match what {
        BenchWhat::Data => crate::data::bench::run()?,
        BenchWhat::Search { file, tier, sets } => {
            crate::bench::run(&file, tier, &sets, device, crate::bench::Baseline::Warmup)?
        }
        BenchWhat::Train { file, tier, sets } => {
            crate::bench::run(&file, tier, &sets, device, crate::bench::Baseline::BareStep)?
        }
        BenchWhat::Step(a) => crate::bench::step::run(&step_options(a), device)?,
        BenchWhat::Space {
            space: BenchSpace::Darts,
            batch,
            steps,
            channels,
            layers,
        } => {
            let device = crate::device::resolve(device.unwrap_or_default())?;
            crate::nas::space::darts::bench::run(&crate::nas::space::darts::bench::BenchOptions {
                batch,
                steps,
                channels,
                layers,
                device,
            })?
        }
    }
    Ok(())
}

/// The step benchmark's flags as the bench module takes them.
fn step_options(a: args::StepArgs) -> crate::bench::step::StepOptions {
    use crate::bench::step::{StepOptions, StepWhat};
    StepOptions {
        what: match a.what {
            args::StepKind::Search => StepWhat::Search,
            args::StepKind::Train => StepWhat::Train,
        },
        layers: a.layers,
        channels: a.channels,
        batch: a.batch,
        estimator: a.estimator,
        objective: a.objective,
        genotype: a.genotype,
        aux_weight: a.aux_weight,
        drop_path: a.drop_path,
        warmup_steps: a.warmup_steps,
        steps: a.steps,
        threads: 0, // set once for the process from the global --threads
        seed: a.seed,
        precision: a.precision,
        batched_passes: a.batched_passes,
        cuda_graphs: a.cuda_graphs,
        json: a.json,
    }
}

/// `unas diagnose parity`: exit 0 when every CPU-vs-device check passes, 1 otherwise.
fn parity(choice: crate::config::DeviceChoice, json: bool) -> anyhow::Result<ExitCode> {
    let dev = crate::device::resolve(choice)?;
    let r = crate::nas::space::darts::parity::run(dev)?;
    if json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        let mut t = crate::text_table::TextTable::new(&["check", "max rel. diff", "tolerance", ""]);
        for c in &r.checks {
            t.push(vec![
                c.what.clone(),
                format!("{:.2e}", c.rel_diff),
                format!("{:.0e}", c.tolerance),
                if c.pass { "ok" } else { "FAIL" }.into(),
            ]);
        }
        print!("{}", t.render());
    }
    Ok(ExitCode::from(if r.all_pass() { EXIT_OK } else { 1 }))
}

/// `unas diagnose parity-torch`: one table row per compared tensor (or JSON); exit 1 when one is
/// beyond its bound.
fn torch_parity(o: &crate::bench::torch_parity::TorchParityOptions) -> anyhow::Result<ExitCode> {
    let r = crate::bench::torch_parity::run(o)?;
    if o.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        let mut t = crate::text_table::TextTable::new(&[
            "tensor",
            "quantity",
            "max |Δ|",
            "max |ours|",
            "|Δ|/bound",
            "",
        ]);
        for c in &r.compared {
            t.push(vec![
                c.key.clone(),
                format!("{:?}", c.quantity),
                format!("{:.2e}", c.max_abs_diff),
                format!("{:.2e}", c.max_abs),
                format!("{:.3}", c.ratio_to_bound),
                if c.pass { "ok" } else { "FAIL" }.into(),
            ]);
        }
        print!("{}", t.render());
        for l in &r.initial_loss {
            println!(
                "initial loss of a fresh {}: ours {:.4}, the reference's own fresh networks {:.4} ± {:.4} (n = {}): {}",
                l.network,
                l.ours,
                l.reference_mean,
                l.reference_sd,
                l.reference_n,
                if l.pass { "within sampling error" } else { "FAIL" }
            );
        }
        let failed = r.compared.iter().filter(|c| !c.pass).count();
        let worst = r
            .compared
            .iter()
            .map(|c| c.ratio_to_bound)
            .fold(0.0, f64::max);
        println!(
            "{} tensors compared, {failed} beyond their bound (worst |Δ|/bound {worst:.3}); forward ε = {:.1e} (search, depth {}), {:.1e} (training, depth {}); not in the reference: {}",
            r.compared.len(),
            r.eps_forward_search,
            r.search_depth,
            r.eps_forward_train,
            r.train_depth,
            r.only_ours.join(", ")
        );
    }
    Ok(ExitCode::from(if r.pass { EXIT_OK } else { 1 }))
}

/// `unas diagnose …`: the estimators on enumerable problems, the devices, the CPU-vs-device parity.
fn diagnose(
    what: DiagnoseCommand,
    device: Option<crate::config::DeviceChoice>,
) -> anyhow::Result<ExitCode> {
    let text = match what {
        DiagnoseCommand::Estimator { estimator, problem } => {
            crate::nas::diagnose::estimator(estimator, &problem)?
        }
        DiagnoseCommand::Estimators { all, only, problem } => {
            let chosen: Vec<_> = if all {
                crate::config::Estimator::ALL.to_vec()
            } else {
                only
            };
            crate::nas::diagnose::estimators(&chosen, &problem)?
        }
        DiagnoseCommand::Device => serde_json::to_string_pretty(&crate::device::facts())?,
        DiagnoseCommand::Parity { json } => {
            return parity(device.unwrap_or(crate::config::DeviceChoice::Auto), json);
        }
        DiagnoseCommand::ParityTorch(o) => return torch_parity(&o),
        DiagnoseCommand::CudaGraphs {
            layers,
            channels,
            batch,
            steps,
            json,
        } => {
            let a = crate::bench::step::StepOptions {
                what: crate::bench::step::StepWhat::Train,
                layers,
                channels,
                batch,
                estimator: crate::config::Estimator::Rebar,
                objective: "gengap".into(),
                genotype: "UNAS_CIFAR10".into(),
                aux_weight: 0.4,
                drop_path: 0.2,
                warmup_steps: 0,
                steps,
                threads: 0,
                seed: 0,
                precision: crate::config::Precision::Fp32,
                batched_passes: false,
                cuda_graphs: true,
                json,
            };
            let pass = crate::bench::step::graph_parity(&a, device)?;
            return Ok(ExitCode::from(if pass { EXIT_OK } else { 1 }));
        }
    };
    println!("{text}");
    Ok(ExitCode::from(EXIT_OK))
}
