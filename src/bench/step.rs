//! `unas bench step search|train`: one search iteration or one training step of the real code, timed on
//! resident synthetic CIFAR-shaped data at the shapes given by flags — the same flags and the same JSON
//! line as `bench/reference.py`, our PyTorch eager implementation of the same steps, so that
//! `bench/compare.py` (`make bench`) can time the two alternately and quote ours as a ratio.

use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::config::{self, DeviceChoice, Estimator, Precision, Tier};
use crate::results::{ResultsRoot, RunDir};
use crate::stage::StageCtx;

/// Which step is timed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepWhat {
    /// Architecture step + weight step of the DARTS-space search (per-example architectures).
    Search,
    /// One SGD step of a genotype's network trained from scratch (auxiliary head, drop-path).
    Train,
}

/// The shapes and settings of a step benchmark (`None`: the CPU search shapes L=8, C=16,
/// batch 32; the published cell at L=20, C=36, batch 128 for training). The CLI's flags map onto it.
#[derive(Clone, Debug)]
pub struct StepOptions {
    pub what: StepWhat,
    pub layers: Option<u32>,
    pub channels: Option<u32>,
    pub batch: Option<u32>,
    pub estimator: Estimator,
    /// train | val | gengap.
    pub objective: String,
    pub genotype: String,
    pub aux_weight: f64,
    pub drop_path: f64,
    pub warmup_steps: usize,
    pub steps: usize,
    /// libtorch intra-op threads (0: libtorch's default).
    pub threads: usize,
    pub seed: u64,
    /// The forwards' precision.
    pub precision: Precision,
    /// `search.batched_passes`.
    pub batched_passes: bool,
    /// `train.cuda_graphs`.
    pub cuda_graphs: bool,
    /// One JSON line (for bench/compare.py) instead of a sentence.
    pub json: bool,
}

/// The JSON line (keys shared with bench/reference.py).
#[derive(Debug, Serialize)]
struct StepReport {
    #[serde(rename = "impl")]
    implementation: &'static str,
    what: StepWhat,
    ms_per_step: Vec<f64>,
    images_per_s: f64,
    batch: u32,
    threads: usize,
    device: String,
    libtorch: &'static str,
    profile: &'static str,
    peak_rss_mib: Option<f64>,
    peak_gpu_mib: Option<f64>,
    precision: Precision,
    batched_passes: bool,
    cuda_graphs: bool,
}

/// The `--set` overrides that give the experiment the benchmark's shapes on synthetic data.
fn overrides(a: &StepOptions, device: DeviceChoice) -> Vec<String> {
    let search = a.what == StepWhat::Search;
    let layers = a.layers.unwrap_or(if search { 8 } else { 20 });
    let channels = a.channels.unwrap_or(if search { 16 } else { 36 });
    let batch = a.batch.unwrap_or(if search { 32 } else { 128 });
    let mut sets = vec![
        "dataset.name=synthetic".to_owned(),
        "dataset.synthetic.classes=10".to_owned(),
        // the search keeps 10% of the training images for validation (train_portion 0.9), and every
        // step draws a full batch from both splits; the experiments' train sections need ≥ 128
        format!("dataset.synthetic.train={}", (20 * batch).max(256)),
        "dataset.synthetic.test=16".to_owned(),
        format!("device={device}"),
        format!("precision={}", a.precision.as_str()),
    ];
    if search {
        sets.extend([
            format!("space.layers={layers}"),
            format!("space.channels={channels}"),
            format!("search.batch={batch}"),
            format!("search.estimator={}", a.estimator.name()),
            format!("search.objective.kind={}", a.objective),
            format!("search.batched_passes={}", a.batched_passes),
        ]);
    } else {
        sets.extend([
            format!("train.layers={layers}"),
            format!("train.channels={channels}"),
            format!("train.batch={batch}"),
            format!("train.genotype={}", a.genotype),
            format!("train.auxiliary_weight={}", a.aux_weight),
            format!("train.drop_path={}", a.drop_path),
            format!("train.cuda_graphs={}", a.cuda_graphs),
        ]);
    }
    sets
}

/// Runs `f` with the benchmark's experiment (the step's shapes on synthetic data, then the `--set`
/// overrides `extra`) in a temporary run folder, removed after; the resolved device with it.
pub(crate) fn with_ctx<T>(
    a: &StepOptions,
    device: Option<DeviceChoice>,
    extra: &[String],
    f: impl FnOnce(&StageCtx) -> Result<T>,
) -> Result<T> {
    let device_choice = device.unwrap_or(DeviceChoice::Cpu);
    let file = match a.what {
        StepWhat::Search => "experiments/paper/c10-darts-unas.yaml",
        StepWhat::Train => "experiments/paper/eval-unas-cifar10.yaml",
    };
    let mut sets = overrides(a, device_choice);
    sets.extend(extra.iter().cloned());
    with_experiment(Path::new(file), &sets, a.threads, a.seed, device_choice, f)
}

/// [`with_ctx`] for experiment `file` at the paper tier with `sets` (every override, the device's
/// included), on `threads` intra-op threads (0: as they are).
pub(crate) fn with_experiment<T>(
    file: &Path,
    sets: &[String],
    threads: usize,
    seed: u64,
    device_choice: DeviceChoice,
    f: impl FnOnce(&StageCtx) -> Result<T>,
) -> Result<T> {
    if threads > 0 {
        tch::set_num_threads(threads as i32);
    }
    let r = config::load(file, Tier::Paper, sets).map_err(|e| anyhow::anyhow!("{e}"))?;
    let dev = crate::device::resolve(device_choice)?;
    let tmp = tempdir()?;
    let dir = RunDir(ResultsRoot(tmp.clone()).runs().join("bench-step"));
    std::fs::create_dir_all(dir.path()).with_context(|| format!("creating {}", dir.0.display()))?;
    let ctx = StageCtx {
        resolved: &r,
        seed,
        run_id: "bench-step",
        dir: &dir,
        device: dev,
        upstream: None,
    };
    let out = f(&ctx);
    let _ = std::fs::remove_dir_all(&tmp);
    out
}

/// `unas diagnose cuda-graphs`: the training step eager and as CUDA-graph replays from the same
/// state ([`crate::train::bench_train::GraphParity`]); exit status 1 when it does not pass.
pub fn graph_parity(a: &StepOptions, device: Option<DeviceChoice>) -> Result<bool> {
    let a = StepOptions {
        what: StepWhat::Train,
        cuda_graphs: true,
        ..a.clone()
    };
    let r = with_ctx(&a, device, &[], |ctx| {
        crate::train::bench_train::graph_parity(ctx, a.steps)
    })?;
    if a.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!(
            "{} training steps (batch {}) on {}: {} captures, {} replays, {} eager; weights {} (max |Δw| {:.3e}, eager vs eager {:.3e}, tolerance {:.3e}, losses max |Δ| {:.3e}): {}",
            r.steps,
            r.batch,
            r.device,
            r.captures,
            r.replays,
            r.eager,
            if r.bit_identical { "bit-identical" } else { "differ" },
            r.max_abs_diff,
            r.eager_repeat_max_abs_diff,
            r.tolerance,
            r.loss_max_abs_diff,
            if r.pass { "pass" } else { "FAIL" }
        );
    }
    Ok(r.pass)
}

/// Runs the benchmark and prints its report.
pub fn run(a: &StepOptions, device: Option<DeviceChoice>) -> Result<()> {
    let (ms, batch, dev) = with_ctx(a, device, &[], |ctx| {
        let ms = match a.what {
            StepWhat::Search => crate::train::search::time_steps(ctx, a.warmup_steps, a.steps),
            StepWhat::Train => crate::train::bench_train::time_steps(ctx, a.warmup_steps, a.steps),
        }?;
        let e = &ctx.resolved.experiment;
        let batch = match a.what {
            StepWhat::Search => e.search.as_ref().map(|s| s.batch),
            StepWhat::Train => e.train.as_ref().and_then(|t| t.batch),
        }
        .context("the experiment has no batch size")?;
        Ok((ms, batch, ctx.device))
    })?;
    let med = super::median(ms.clone()).context("no step was timed (--steps 0)")?;
    let report = StepReport {
        implementation: "unas",
        what: a.what,
        images_per_s: f64::from(batch) / (med / 1e3),
        ms_per_step: ms,
        batch,
        threads: tch::get_num_threads() as usize,
        device: crate::device::describe(dev),
        libtorch: env!("UNAS_LIBTORCH_VERSION"),
        profile: if cfg!(debug_assertions) {
            "dev"
        } else {
            "release"
        },
        peak_rss_mib: super::peak_rss_mib(),
        peak_gpu_mib: None,
        precision: a.precision,
        batched_passes: a.batched_passes,
        cuda_graphs: a.cuda_graphs,
    };
    if a.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "{:?} step, batch {}, {} thread(s) on {} ({} build, {}): median {:.0} ms/step, {:.2} images/s, \
             peak resident memory {:.0} MiB",
            report.what,
            report.batch,
            report.threads,
            report.device,
            report.profile,
            report.precision.as_str(),
            med,
            report.images_per_s,
            report.peak_rss_mib.unwrap_or(f64::NAN)
        );
    }
    Ok(())
}

/// A fresh folder under the system's temporary folder (the caller removes it).
pub(crate) fn tempdir() -> Result<std::path::PathBuf> {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let p = std::env::temp_dir().join(format!("unas-bench-step-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&p).with_context(|| format!("creating {}", p.display()))?;
    Ok(p)
}
