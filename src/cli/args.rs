//! Every command, subcommand and option of `unas`, declared once (clap derive). Choices are value
//! enums; paths and overrides are parsed into typed values here, so nothing downstream re-checks them.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::{DatasetName, DeviceChoice, Estimator, GenotypeChoice, Tier};
use crate::nas::diagnose::ProblemArgs;

#[derive(Parser)]
#[command(
    name = "unas",
    version,
    about = "Reproduce UNAS (CVPR 2020) and run NAS ablations: one YAML file per experiment"
)]
pub struct Args {
    /// Where runs and reports are written.
    #[arg(long, global = true, env = "UNAS_RESULTS", default_value = "results")]
    pub results: PathBuf,
    /// Device for runs: cpu, cuda or cuda:N (default: the experiment's `device`, which defaults to auto).
    #[arg(long, global = true, value_parser = parse_device)]
    pub device: Option<DeviceChoice>,
    /// Compute threads for libtorch in this process (and OMP_NUM_THREADS for what it starts); default:
    /// libtorch's own (one per core).
    #[arg(long, global = true, value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,
    /// Seconds between plain progress lines during an epoch when stderr is not a terminal (a log
    /// file, CI, Slurm's output); also written to the run's run.log (0: a line after every step).
    /// Bars on a terminal are unaffected.
    #[arg(long, global = true, env = "UNAS_PROGRESS_EVERY", value_name = "SECONDS",
          default_value_t = crate::progress::EVERY_S)]
    pub progress_every: u64,
    /// Write no TensorBoard event files into run folders (written by default, for
    /// `tensorboard --logdir results/runs`).
    #[arg(long, global = true, env = "UNAS_NO_TENSORBOARD")]
    pub no_tensorboard: bool,
    /// More log output (-v info, -vv debug); RUST_LOG also works.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
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
        /// Run only the job whose run id starts with ID (as `unas status --json` lists them).
        #[arg(long, value_name = "ID")]
        job: Option<String>,
        /// Rerun failed and diverged runs (otherwise they are reported, not rerun).
        #[arg(long)]
        retry_failed: bool,
        /// Run each job as R local rank processes (data parallel over the experiment's
        /// `sub_batches`, which R must divide); the numbers are those of one process.
        #[arg(long, value_name = "R", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
        ranks: u16,
        /// With --ranks: one GPU per rank, `--gpus 0,1` (default: the CPU, its cores split).
        #[arg(long, value_delimiter = ',', requires = "ranks")]
        gpus: Vec<String>,
        /// With --ranks: how long a rank waits for the others in any collective before the run stops
        /// as interrupted (a rank died or hung). Also read from UNAS_RANK_TIMEOUT_S, which is how
        /// `reproduce --ranks-per-run` and the scripts of `submit --ranks-per-run` get it.
        #[arg(long, value_name = "SECONDS", env = "UNAS_RANK_TIMEOUT_S", default_value_t = crate::dist::DEFAULT_TIMEOUT.as_secs_f64(), value_parser = parse_seconds)]
        rank_timeout: f64,
        /// This process is one task of an `srun` step: its rank, the world and where the ranks meet
        /// come from Slurm's environment (SLURM_PROCID, SLURM_NTASKS, SLURM_STEP_NODELIST,
        /// SLURM_JOB_ID, SLURM_LOCALID); the scripts of `unas submit --slurm --ranks-per-run R` use it.
        #[arg(long, conflicts_with_all = ["ranks", "gpus"])]
        slurm_ranks: bool,
    },
    /// Run the paper suite (default: experiments/paper at the smoke tier).
    Reproduce {
        #[arg(long, value_enum, default_value_t = Tier::Smoke)]
        tier: Tier,
        #[arg(long, default_value = "experiments/paper")]
        suite: Vec<PathBuf>,
        /// Rerun failed and diverged runs (otherwise they are reported, not rerun).
        #[arg(long)]
        retry_failed: bool,
        /// Worker processes, each with its share of the cores, running independent jobs at once.
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..), conflicts_with = "gpus")]
        workers: Option<u16>,
        /// One worker per GPU: `--gpus 0,1,2,3`.
        #[arg(long, value_delimiter = ',', value_name = "GPU,...")]
        gpus: Vec<String>,
        /// Run every job as R rank processes (`unas run --ranks R`, data parallel over its
        /// `sub_batches` G): R must divide every job's G, except a job with G = 1, which runs as one
        /// process. With --gpus each job gets R GPUs of the list (disjoint; a multiple of R GPUs).
        #[arg(long, value_name = "R", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
        ranks_per_run: u16,
        /// The datasets' folder (CIFAR in DIR/, ImageNet in DIR/imagenet/); every experiment's
        /// `dataset.root` is set there. Missing datasets stop the command before any work.
        #[arg(long, value_name = "DIR")]
        data: Option<PathBuf>,
    },
    /// Every planned job of the suite: done, running (host, pid, alive), failed, diverged,
    /// interrupted, blocked or pending, with an ETA from earlier runs of the same shape.
    Status {
        #[arg(long, value_enum, default_value_t = Tier::Smoke)]
        tier: Tier,
        #[arg(long, default_value = "experiments/paper")]
        suite: Vec<PathBuf>,
        /// One JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Submit the suite's unfinished jobs to Slurm: one job array per dependency wave, each task
    /// `unas run FILE --job ID` on the shared results folder (scripts under results/slurm/).
    Submit(crate::cli::submit::SubmitArgs),
    /// Tables, figures and HTML pages from every run under the results folder (results/reports).
    #[cfg(feature = "report")]
    Report(crate::report::cli::ReportArgs),
    /// Not in this lean build (built without the `report` feature): says where to build the report.
    #[cfg(not(feature = "report"))]
    Report {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
        rest: Vec<String>,
    },
    /// Researcher's checks: gradient estimators on enumerable problems.
    Diagnose {
        #[command(subcommand)]
        what: DiagnoseCommand,
    },
    /// Datasets: fetch CIFAR, inspect a dataset folder.
    Data {
        #[command(subcommand)]
        command: DataCommand,
    },
    /// Describe a published architecture (parameters, MACs, width).
    Inspect {
        #[command(subcommand)]
        what: InspectWhat,
    },
    /// ProxylessNAS latency on a device: the (block, op) table, one architecture's predictions.
    Latency {
        #[command(subcommand)]
        command: super::latency::LatencyCommand,
    },
    /// Measure the throughput of a part of the system.
    Bench {
        #[command(subcommand)]
        what: BenchWhat,
    },
}

#[derive(Subcommand, Clone, Debug)]
pub enum DiagnoseCommand {
    /// One estimator on f(b) = (Σ_k b_k v_k − t)²: Monte-Carlo mean and standard error of the gradient
    /// against the exact gradient (enumeration).
    Estimator {
        #[arg(long, value_enum)]
        estimator: Estimator,
        #[command(flatten)]
        problem: ProblemArgs,
    },
    /// Compare the bias and variance of every estimator on the same problem.
    Estimators {
        /// All six estimators (otherwise list them with --only).
        #[arg(long)]
        all: bool,
        #[arg(long, value_enum, value_delimiter = ',')]
        only: Vec<Estimator>,
        #[command(flatten)]
        problem: ProblemArgs,
    },
    /// What this process sees of its devices: CUDA backend, GPUs, cuDNN, libtorch, threads (JSON).
    Device,
    /// The DARTS supernet and the REBAR gradient on the CPU and on --device from the same weights and
    /// draw: relaxed vs discrete path, device vs CPU, within stated tolerances (TF32 on CUDA).
    Parity {
        #[arg(long)]
        json: bool,
    },
    /// One warm-up step, one search step (gen-gap; DARTS: per-example, + pair penalty; ProxylessNAS:
    /// per sub-batch, + the latency term through the surrogate) and one training step of ours, redone
    /// by the PyTorch reference (bench/reference.py, needs `make bench-venv`) from the same weights,
    /// batches and noise, for --space darts|proxyless and any --estimator but random_ws: losses,
    /// estimator terms (RELAX's φ too), gradients and updated weights compared within the bound derived
    /// in src/bench/torch_parity.rs (CPU; the search steps in float64, the training step in float32),
    /// and the initial losses among those of fresh reference networks.
    ParityTorch(crate::bench::torch_parity::TorchParityOptions),
    /// The from-scratch training step eagerly (twice) and as CUDA-graph replays (`train.cuda_graphs`)
    /// from the same weights and seeds: the weights after --steps steps, compared (CUDA only).
    CudaGraphs {
        /// Cells (default 20, the published network).
        #[arg(long)]
        layers: Option<u32>,
        /// Initial channels (default 36).
        #[arg(long)]
        channels: Option<u32>,
        /// Images per step (default 128).
        #[arg(long)]
        batch: Option<u32>,
        #[arg(long, default_value_t = 6)]
        steps: usize,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Download, verify (size + MD5) and extract an official CIFAR archive into ROOT.
    Fetch {
        #[arg(value_enum)]
        dataset: FetchName,
        #[arg(long)]
        root: PathBuf,
        /// A mirror of the official archive (same bytes).
        #[arg(long)]
        url: Option<String>,
    },
    /// Counts per split and class, image shape, fingerprint, and problems.
    Inspect {
        #[arg(value_enum)]
        dataset: DatasetName,
        #[arg(long, default_value = "data")]
        root: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum FetchName {
    Cifar10,
    Cifar100,
}

#[derive(Subcommand)]
pub enum InspectWhat {
    /// A published genotype on a dataset: `unas inspect genotype UNAS_IMAGENET --dataset imagenet`.
    Genotype {
        #[arg(value_enum)]
        name: PublishedGenotype,
        /// cifar10, cifar100 or imagenet (the ProxylessNAS-space networks: imagenet).
        #[arg(long, value_enum)]
        dataset: DatasetName,
        #[arg(long)]
        json: bool,
    },
}

/// A published genotype by its name in the paper's code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PublishedGenotype {
    #[value(name = "UNAS_CIFAR10")]
    UnasCifar10,
    #[value(name = "UNAS_CIFAR100")]
    UnasCifar100,
    #[value(name = "UNAS_IMAGENET")]
    UnasImagenet,
    #[value(name = "DARTS_V2")]
    DartsV2,
    #[value(name = "UNAS_PROXYLESS")]
    UnasProxyless,
    #[value(name = "PROXYLESS_GPU")]
    ProxylessGpu,
}

impl From<PublishedGenotype> for GenotypeChoice {
    fn from(g: PublishedGenotype) -> GenotypeChoice {
        match g {
            PublishedGenotype::UnasCifar10 => GenotypeChoice::UnasCifar10,
            PublishedGenotype::UnasCifar100 => GenotypeChoice::UnasCifar100,
            PublishedGenotype::UnasImagenet => GenotypeChoice::UnasImagenet,
            PublishedGenotype::DartsV2 => GenotypeChoice::DartsV2,
            PublishedGenotype::UnasProxyless => GenotypeChoice::UnasProxyless,
            PublishedGenotype::ProxylessGpu => GenotypeChoice::ProxylessGpu,
        }
    }
}

#[derive(Subcommand)]
pub enum BenchWhat {
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
    /// One search iteration or one training step of the real code on resident synthetic data, at the
    /// shapes bench/reference.py takes (the same flags, the same JSON line): `make bench` times both.
    Step(StepArgs),
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

/// `unas bench step`: the step and its shapes (defaults: search L=8, C=16, batch 32; train L=20, C=36,
/// batch 128).
#[derive(Clone, Debug, clap::Args)]
pub struct StepArgs {
    #[arg(value_enum)]
    pub what: StepKind,
    /// Cells (search default 8, train default 20).
    #[arg(long)]
    pub layers: Option<u32>,
    /// Initial channels (search default 16, train default 36).
    #[arg(long)]
    pub channels: Option<u32>,
    /// Images per step (search default 32, train default 128).
    #[arg(long)]
    pub batch: Option<u32>,
    #[arg(long, value_enum, default_value_t = Estimator::Rebar)]
    pub estimator: Estimator,
    /// train | val | gengap.
    #[arg(long, default_value = "gengap")]
    pub objective: String,
    #[arg(long, default_value = "UNAS_CIFAR10")]
    pub genotype: String,
    #[arg(long, default_value_t = 0.4)]
    pub aux_weight: f64,
    #[arg(long, default_value_t = 0.2)]
    pub drop_path: f64,
    #[arg(long, default_value_t = 1)]
    pub warmup_steps: usize,
    #[arg(long, default_value_t = 3)]
    pub steps: usize,
    // the threads are the global `--threads` (bench/compare.py passes `--threads 1` to both sides)
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Search: the gen-gap objective's training and validation passes as one forward
    /// (`search.batched_passes`; BatchNorm statistics per pass).
    #[arg(long)]
    pub batched_passes: bool,
    /// Train: each step a replay of its CUDA graph (`train.cuda_graphs`; CUDA only).
    #[arg(long)]
    pub cuda_graphs: bool,
    /// The forwards' precision (`precision` of an experiment): bf16 runs them under autocast.
    #[arg(long, value_enum, default_value_t = crate::config::Precision::Fp32)]
    pub precision: crate::config::Precision,
    /// Print one JSON line (for bench/compare.py).
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum StepKind {
    /// Architecture step + weight step of the DARTS-space search.
    Search,
    /// One SGD step of a genotype trained from scratch.
    Train,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum BenchSpace {
    Darts,
}

fn parse_device(s: &str) -> Result<DeviceChoice, String> {
    s.parse()
}

/// A timeout: a finite number of seconds above 0, at most a year.
fn parse_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 365.0 * 86400.0 => Ok(v),
        _ => Err(format!(
            "`{s}` is not a timeout: give seconds above 0 (e.g. 300)"
        )),
    }
}
