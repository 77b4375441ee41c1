//! `unas diagnose parity-torch`: one warm-up step, one search step and one training step of the real
//! loops, checked number for number against `bench/reference.py` (our PyTorch port of the official
//! code) from the same state. Ours run first and are recorded (`train::search::record_steps`,
//! `train::bench_train::record_step`: the initial weights, the batches, every uniform draw, the
//! learning rates, then the losses, estimator terms, gradients and updated weights); the state, the
//! batches and the draws go to the reference under its names ([`super::reference_names`]), which redoes
//! the steps; every number it returns is compared with ours within the bound below. Each step starts
//! from the same state on both sides: the reference loads our weights after the warm-up before its
//! search step (what its own warm-up step produced is compared first), so that a last-bit difference
//! of one step does not carry into the next (in the ProxylessNAS supernet such carried differences,
//! amplified by a gradient norm of ~10³ at initialisation, moved the search step's gradients by
//! ~10⁻¹² relative in float64).
//!
//! Two spaces: `darts` (the CIFAR supernet, L = 5, C = 8, one architecture per example, and a
//! published genotype's network) and `proxyless` (the MBConv supernet at width 0.25 and 32 px, one
//! architecture per sub-batch of 2, the latency term with L(b′) from the ridge surrogate ours fits,
//! fed to both sides; the UNAS_PROXYLESS network at 224 px trained in its 8 slices).
//!
//! ## The bound (one thread on each side, the same libtorch 2.11 kernels)
//! The warm-up and search steps run in float64 (u = 2⁻⁵³), the training step in float32
//! (u = 2⁻²⁴). Both sides compute the same formulas; they differ only in the order of some additions
//! (a node's sum over edges and ops, a block's over its candidates, the concatenations, autograd's
//! accumulation order). Reordering a sum of n terms moves it by at most n·u·Σ|xᵢ|; BatchNorm
//! renormalises after every convolution, so relative errors add up along the network's depth instead
//! of growing. Hence, with n the longest reordered sum and D the number of layers a value passes:
//! DARTS n = 35 (a node's 5 edges × 7 ops), D = 3 + 8L (the stem, 8 per cell, the classifier);
//! ProxylessNAS n = 8 (a block's 7 candidates and its shortcut: also the terms of a block input's
//! gradient), D = 68 (stem, the first MBConv's 2 convolutions, 3 per block × 21, head, classifier):
//! - forward values (losses, f, gap, pair penalty, entropy, L(b′), BN running statistics):
//!   |Δ| ≤ ε_f · max|v|, ε_f = n·u·D (plus 2·2⁻²⁴·|v| for the terms the loop logs as float32 means);
//!   a running mean is a mean of terms of size √(var + mean²): its |v| is at least √(running var);
//! - weight gradients (the backward pass is as deep again): |Δ| ≤ ε_g · max|g|, ε_g = 2·ε_f, with
//!   max|g| over the gradients of the tensor's layer (a BN bias whose output reaches the loss only
//!   through later BNs has gradient 0 in exact arithmetic: its computed value is rounding of its
//!   terms, which its layer's other gradients measure);
//! - architecture gradients: the estimator multiplies f(b) − f(ζ) by ∇ log q(b) (|·| ≤ 2 per
//!   selector): |Δ| ≤ 2·ε_f·F·2 + ε_g·max|g|, F the larger of the mean f(b), f(ζ) (doubled for the
//!   spread of f over examples);
//! - weights after Adam's first step, w′ = w − lr·g/(|g| + ε′) with g = ∇ + wd·w: a gradient known
//!   to ±δ moves each weight by at most lr·min(2, 2δ/|g|), plus 4u·(|w| + lr) of rounding;
//! - weights after SGD's first step, w′ = w − lr·(∇ + wd·w): lr·δ + 4u·(|w| + lr);
//! - RELAX's control variate φ: its gradient ∇_φ‖ĝ‖² = 2Σ ĝ·∂ĝ/∂φ is known to ĝ's relative bound
//!   (the largest architecture-gradient bound over the largest |ĝ|) plus ε_g of its own backward pass;
//!   φ after its first Adam step (today's Adam, w′ = w − lr·g/(|g| + ε), no weight decay) as above.
//!
//! Estimators: gsm, st_gsm, darts, reinforce, rebar and relax in both spaces (random_ws takes no
//! architecture step; its weight steps train per-example one-hot architectures, which no official
//! code path does). Not replayed, so off in the ProxylessNAS check: `mic_zero`'s dropout (0.1 in
//! the search; its mask is not one of the recorded uniform draws) and the timed latency (the
//! surrogate's prediction stands in for it, `latency.measure: surrogate`, at full coefficient from
//! the first step and a 1 µs target so the hinge is active).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};
use serde::Serialize;
use serde_json::json;
use tch::{Kind, Tensor};

use super::reference_names;
use super::step::{with_ctx, with_experiment, StepOptions, StepWhat};
use crate::config::estimator::Selection;
use crate::config::{DeviceChoice, Estimator, GenotypeChoice, Precision, SpaceName, TrainRecipe};
use crate::nas::space::darts::Genotype;
use crate::nas::space::proxyless::genotype::BLOCKS;
use crate::nas::space::proxyless::ProxylessGenotype;
use crate::stage::StageCtx;

/// u = 2⁻²⁴, float32's unit roundoff (the training step).
const U32: f64 = 5.960_464_477_539_063e-8;
/// u = 2⁻⁵³, float64's (the warm-up and search steps: `train::search::record_steps` runs them in
/// float64).
const U64: f64 = 1.110_223_024_625_156_5e-16;
/// The longest reordered sum, n of the bound, per space: DARTS, a node's 5 edges × 7 ops; ProxylessNAS,
/// a block's 7 candidates and its shortcut (the gradient of a block's input has as many terms).
fn sum_terms(space: SpaceName) -> f64 {
    match space {
        SpaceName::Darts => 35.0,
        SpaceName::Proxyless => 8.0,
    }
}
/// Terms ours logs that the reference does not compute (the top-1 of the step, our running estimate
/// of the architecture gradient's variance).
const NOT_IN_REFERENCE: [&str; 2] = ["acc_train_pct", "grad_var_arch"];

fn parse_space(s: &str) -> Result<SpaceName, String> {
    serde_json::from_value(serde_json::Value::String(s.to_owned()))
        .map_err(|_| format!("`{s}`: the spaces are darts and proxyless"))
}

/// The shapes of the three steps and where the reference is (`unas diagnose parity-torch`'s flags).
#[derive(Clone, Debug, clap::Args)]
pub struct TorchParityOptions {
    /// darts (CIFAR supernet and evaluation network) or proxyless (the MBConv supernet at
    /// --width/--resolution with its latency term, and the published UNAS_PROXYLESS network at 224 px).
    #[arg(long, value_parser = parse_space, default_value = "darts")]
    pub space: SpaceName,
    /// Supernet cells (darts).
    #[arg(long, default_value_t = 5)]
    pub layers: u32,
    /// Supernet initial channels (darts).
    #[arg(long, default_value_t = 8)]
    pub channels: u32,
    /// Supernet width multiplier (proxyless).
    #[arg(long, default_value_t = 0.25)]
    pub width: f64,
    /// Side the supernet runs at (proxyless; the 224-px images are area-averaged down to it).
    #[arg(long, default_value_t = 32)]
    pub resolution: u32,
    /// Sub-batches of the search batch, one architecture each (proxyless: the official one sample
    /// per GPU).
    #[arg(long, default_value_t = 2)]
    pub sub_batches: u32,
    /// Search batch.
    #[arg(long, default_value_t = 16)]
    pub batch: u32,
    /// gsm, st_gsm, darts, reinforce, rebar or relax (random_ws takes no architecture step).
    #[arg(long, value_enum, default_value_t = Estimator::Rebar)]
    pub estimator: Estimator,
    /// Evaluation-network cells (darts).
    #[arg(long, default_value_t = 5)]
    pub train_layers: u32,
    /// Evaluation-network channels (darts).
    #[arg(long, default_value_t = 8)]
    pub train_channels: u32,
    /// Training batch.
    #[arg(long, default_value_t = 16)]
    pub train_batch: u32,
    /// The Python with the full torch wheel (`make bench-venv`).
    #[arg(long, default_value = ".deps/bench-venv/bin/python")]
    pub python: PathBuf,
    /// Keep the exchanged files (our state, the reference's numbers) in this folder (else a temporary
    /// one, removed after).
    #[arg(long)]
    pub keep: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

/// What a compared tensor is, which decides its bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Quantity {
    Forward,
    WeightGrad,
    ArchGrad,
    AdamUpdate,
    SgdUpdate,
}

/// One compared tensor: the largest difference, and the bound it must stay within (elementwise
/// bounds are reported as the smallest margin: diff − bound at the worst element).
#[derive(Debug, Serialize)]
pub struct Compared {
    pub key: String,
    pub quantity: Quantity,
    pub max_abs_diff: f64,
    pub max_abs: f64,
    /// max over elements of |Δ| / bound (≤ 1 passes).
    pub ratio_to_bound: f64,
    pub pass: bool,
}

/// Our initial loss among those of networks the reference initialised itself (PyTorch's defaults, its
/// own seeds) on the same batch and draws: within sampling error when |ours − mean| ≤ 3·sd·√(1 + 1/n)
/// (a new draw from the reference's spread).
#[derive(Debug, Serialize)]
pub struct InitialLoss {
    pub network: &'static str,
    pub ours: f64,
    pub reference_mean: f64,
    pub reference_sd: f64,
    pub reference_n: usize,
    pub pass: bool,
}

/// The fresh-network comparisons: (ours, the reference's losses of its own fresh networks).
const FRESH: [(&str, &str, &str); 2] = [
    ("supernet", "warm/term/loss_train", "fresh/search_loss"),
    (
        "evaluation network",
        "train/term/loss_train",
        "fresh/train_loss",
    ),
];

fn initial_losses(ours: &Bounds, theirs: &[(String, Tensor)]) -> Result<Vec<InitialLoss>> {
    FRESH
        .iter()
        .map(|&(network, mine, fresh)| {
            let r = theirs
                .iter()
                .find(|(k, _)| k == fresh)
                .map(|(_, t)| Vec::<f64>::try_from(&t.to_kind(Kind::Double)))
                .with_context(|| format!("the reference returned no `{fresh}`"))??;
            let n = r.len();
            ensure!(n >= 2, "`{fresh}` holds {n} losses");
            let mean = r.iter().sum::<f64>() / n as f64;
            let sd = (r.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt();
            let ours = ours.scalar(mine)?;
            Ok(InitialLoss {
                network,
                ours,
                reference_mean: mean,
                reference_sd: sd,
                reference_n: n,
                pass: (ours - mean).abs() <= 3.0 * sd * (1.0 + 1.0 / n as f64).sqrt(),
            })
        })
        .collect()
}

#[derive(Debug, Serialize)]
pub struct TorchParity {
    pub search_depth: u32,
    pub train_depth: u32,
    pub eps_forward_search: f64,
    pub eps_forward_train: f64,
    pub compared: Vec<Compared>,
    pub initial_loss: Vec<InitialLoss>,
    /// Ours only (the reference does not compute them): named, not compared.
    pub only_ours: Vec<String>,
    pub pass: bool,
}

/// Layers a value passes on its longest path. DARTS: the stem, 8 per cell (a sep_conv's dw-pw-BN
/// twice and the preprocessing's conv-BN), the classifier. ProxylessNAS (both networks): the stem,
/// the first MBConv's 2 convolutions, 3 per block (expand, depthwise, project), the head, the
/// classifier.
fn depth(space: SpaceName, layers: u32) -> u32 {
    match space {
        SpaceName::Darts => 2 + 8 * layers + 1,
        SpaceName::Proxyless => 1 + 2 + 3 * BLOCKS as u32 + 1 + 1,
    }
}

/// The reference's names of a space's variables: (network, logit group).
type Names = (fn(&str) -> Result<String>, fn(&str) -> Result<String>);

/// Our key (our variable names) → the reference's.
fn rename(key: &str, (net, alpha): Names) -> Result<String> {
    for p in ["init/relax/", "search/relax/w/", "search/relax/grad/"] {
        if let Some(var) = key.strip_prefix(p) {
            return Ok(format!("{p}{}", reference_names::relax(var)?));
        }
    }
    for p in [
        "init/w/",
        "warm/w/",
        "warm/grad/",
        "search/w/",
        "search/grad/",
        "w/",
        "grad/",
    ] {
        if let Some(var) = key.strip_prefix(p) {
            return Ok(format!("{p}{}", net(var)?));
        }
    }
    for p in ["init/alpha/", "search/alpha_grad/", "search/alpha/"] {
        if let Some(g) = key.strip_prefix(p) {
            return Ok(format!("{p}{}", alpha(g)?));
        }
    }
    Ok(key.to_owned())
}

/// Inputs of the reference (state, batches, draws, learning rates), not compared.
fn is_input(key: &str) -> bool {
    let k = key.strip_prefix("train/").unwrap_or(key);
    let step = k
        .strip_prefix("warm/")
        .or_else(|| k.strip_prefix("search/"));
    k.starts_with("init/")
        || k.starts_with("noise/")
        || k == "search/relax/lr"
        || k.starts_with("search/latency/")
        || step.is_some_and(|s| s.starts_with("noise/"))
        || matches!(
            step.unwrap_or(k),
            "x" | "y" | "xv" | "yv" | "lr" | "lr_w" | "lr_a"
        )
}

fn step_options(o: &TorchParityOptions, what: StepWhat) -> StepOptions {
    let search = what == StepWhat::Search;
    StepOptions {
        what,
        layers: Some(if search { o.layers } else { o.train_layers }),
        channels: Some(if search { o.channels } else { o.train_channels }),
        batch: Some(if search { o.batch } else { o.train_batch }),
        estimator: o.estimator,
        objective: "gengap".into(),
        genotype: "UNAS_CIFAR10".into(),
        aux_weight: 0.4,
        drop_path: 0.2,
        warmup_steps: 0,
        steps: 1,
        threads: 1,
        seed: 0,
        precision: Precision::Fp32,
        batched_passes: false,
        cuda_graphs: false,
        json: false,
    }
}

fn search_meta(ctx: &StageCtx) -> Result<serde_json::Value> {
    let e = &ctx.resolved.experiment;
    let s = e.search.as_ref().context("no search section")?;
    let latency = s.objective.latency.as_ref().map(|l| {
        json!({"target_ms": l.target_ms, "coeff": l.coeff, "ramp_steps": l.ramp_steps,
               "measure": l.measure})
    });
    Ok(json!({
        "space": e.space.name, "layers": e.space.layers, "channels": e.space.channels,
        "num_ops": e.space.ops, "width_multiplier": e.space.width_multiplier,
        "resolution": e.space.resolution, "zero_dropout": e.space.zero_dropout,
        "classes": e.dataset.synthetic.classes, "estimator": s.estimator,
        "objective": s.objective.kind, "lambda": s.objective.lambda,
        "pair_penalty": s.objective.pair_penalty, "tau": s.temperature,
        "soften_eps": s.soften_eps, "sampling": s.sampling, "sub_batches": s.sub_batches,
        "op_skip": s.op_skip_threshold, "wd_w": s.weight_decay.weights,
        "wd_a": s.weight_decay.arch, "clip": s.grad_clip, "latency": latency, "dtype": "f64",
    }))
}

fn train_meta(ctx: &StageCtx) -> Result<serde_json::Value> {
    let e = &ctx.resolved.experiment;
    let t = TrainRecipe::of(e.train.as_ref().context("no train section")?);
    let genotype = match (e.space.name, t.genotype) {
        (_, GenotypeChoice::Search) => bail!("the parity check trains a published genotype"),
        (SpaceName::Darts, other) => {
            json!(Genotype::from_choice(other).context("not a DARTS-space genotype")?)
        }
        (SpaceName::Proxyless, other) => {
            let g = ProxylessGenotype::from_choice(other)
                .context("not a ProxylessNAS-space genotype")?;
            json!(g.blocks().iter().map(|b| b.name()).collect::<Vec<_>>())
        }
    };
    Ok(json!({
        "space": e.space.name, "layers": t.layers, "channels": t.channels,
        "classes": e.dataset.synthetic.classes, "genotype": genotype,
        "aux_weight": t.auxiliary_weight, "drop_path": t.drop_path, "momentum": t.momentum,
        "wd_sgd": t.weight_decay, "clip": t.grad_clip, "label_smoothing": t.label_smoothing,
        "sub_batches": t.sub_batches,
    }))
}

/// The two experiments of the ProxylessNAS space's check, at small shapes on synthetic 224-px
/// images: the search without `mic_zero`'s dropout (its mask is not a replayable uniform draw) and,
/// for the score-function estimators, with the latency term measured by the surrogate (so both sides
/// see the same L(b′)) at full strength from the first step (no ramp, target 1 µs); the published
/// network trained in its recipe's slices (8).
fn proxyless_sets(o: &TorchParityOptions) -> (Vec<String>, Vec<String>) {
    let data = |batch: u32| {
        vec![
            "dataset.name=synthetic".to_owned(),
            "dataset.synthetic.classes=10".to_owned(),
            format!("dataset.synthetic.train={}", (12 * batch).max(64)),
            "dataset.synthetic.test=16".to_owned(),
            "device=cpu".to_owned(),
            "precision=fp32".to_owned(),
        ]
    };
    let mut search = data(o.batch);
    search.extend([
        format!("space.width_multiplier={}", o.width),
        format!("space.resolution={}", o.resolution),
        "space.zero_dropout=0".to_owned(),
        format!("search.batch={}", o.batch),
        format!("search.sub_batches={}", o.sub_batches),
        format!("search.estimator={}", o.estimator.name()),
        "search.epochs.warmup=1".to_owned(),
        "train=null".to_owned(),
    ]);
    if o.estimator.is_score_function() {
        search.extend([
            "search.objective.latency.measure=surrogate".to_owned(),
            "search.objective.latency.ramp_steps=0".to_owned(),
            "search.objective.latency.target_ms=0.001".to_owned(),
            format!(
                "search.objective.latency.batch={}",
                o.batch / o.sub_batches.max(1)
            ),
            "search.objective.latency.repeats=1".to_owned(),
            format!(
                "search.objective.latency.surrogate_samples={}",
                crate::config::limits::MIN_SAMPLES
            ),
        ]);
    } else {
        search.push("search.objective.latency=null".to_owned());
    }
    let mut train = data(o.train_batch);
    train.push(format!("train.batch={}", o.train_batch));
    (search, train)
}

fn max_abs(t: &Tensor) -> f64 {
    if t.numel() == 0 {
        0.0
    } else {
        t.abs().max().double_value(&[])
    }
}

/// The elementwise bound of `key` (same shape as the tensors), from the recorded state `ours`.
struct Bounds<'a> {
    ours: &'a [(String, Tensor)],
    eps_search: f64,
    eps_train: f64,
    /// The unit roundoff of the search steps' and the training step's numbers.
    u_search: f64,
    u_train: f64,
    wd_w: f64,
    wd_a: f64,
    wd_sgd: f64,
}

impl Bounds<'_> {
    fn get(&self, key: &str) -> Result<&Tensor> {
        self.ours
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, t)| t)
            .with_context(|| format!("ours lacks `{key}`"))
    }

    fn scalar(&self, key: &str) -> Result<f64> {
        Ok(self.get(key)?.double_value(&[0]))
    }

    /// The size whose rounding a weight gradient carries: the largest gradient of its layer (the
    /// variables sharing its name but the last two parts: a ConvBn's conv and BN, a sep_conv's
    /// layers). A gradient that cancels to 0 in exact arithmetic (the bias of a BN whose output
    /// reaches the loss only through later BNs, which remove every shift) is the rounding of its
    /// sum's terms, which that layer's other gradients measure; it alone would bound it by 0.
    fn grad_scale(&self, key: &str, value: &Tensor) -> f64 {
        let own = max_abs(value);
        let Some((step, var)) = key.split_once("/grad/") else {
            return own;
        };
        let parts: Vec<&str> = var.split('.').collect();
        if parts.len() < 3 {
            return own;
        }
        let layer = format!("{step}/grad/{}.", parts[..parts.len() - 2].join("."));
        self.ours
            .iter()
            .filter(|(k, _)| k.starts_with(&layer))
            .fold(own, |m, (_, g)| m.max(max_abs(g)))
    }

    /// The size whose rounding a BN running statistic carries: for the mean, the size of the terms
    /// it averages, √(var + mean²), of which the running variance holds at least its momentum's
    /// share (a mean that cancels to about 0 is rounding of those terms).
    fn stat_scale(&self, key: &str, value: &Tensor) -> f64 {
        let own = max_abs(value).max(1e-12);
        match key.strip_suffix("running_mean") {
            Some(base) => self
                .get(&format!("{base}running_var"))
                .map_or(own, |v| own.max(max_abs(v).sqrt())),
            None => own,
        }
    }

    /// The architecture gradient's bound relative to its size: max over groups of the bound over
    /// max over groups of |ĝ| (what RELAX's φ is trained on).
    fn arch_relative(&self) -> Result<f64> {
        let (mut bound, mut size) = (0.0f64, 0.0f64);
        for (k, g) in self.ours {
            if k.starts_with("search/alpha_grad/") {
                bound = bound.max(max_abs(&self.of(k, g)?.1));
                size = size.max(max_abs(g));
            }
        }
        ensure!(size > 0.0, "no architecture gradient recorded");
        Ok(bound / size)
    }

    /// (quantity, elementwise bound) of output `key`.
    fn of(&self, key: &str, value: &Tensor) -> Result<(Quantity, Tensor)> {
        let d = |t: &Tensor| t.to_kind(Kind::Double);
        let (train, eps_f, u) = match key.strip_prefix("train/") {
            Some(_) => (true, self.eps_train, self.u_train),
            None => (false, self.eps_search, self.u_search),
        };
        let eps_g = 2.0 * eps_f;
        let flat = |b: f64| value.to_kind(Kind::Double).zeros_like() + b;
        if key.starts_with("search/relax/grad/") {
            // ∇_φ‖ĝ‖² = 2Σ ĝ·∂ĝ/∂φ: ĝ's relative bound, plus a backward pass of its own
            return Ok((
                Quantity::WeightGrad,
                flat((self.arch_relative()? + eps_g) * max_abs(value)),
            ));
        }
        if let Some(v) = key.strip_prefix("search/relax/w/") {
            // φ after its first Adam step (today's Adam: w′ = w − lr·g/(|g| + ε), no weight decay)
            let grad_key = format!("search/relax/grad/{v}");
            let grad = self.get(&grad_key)?;
            let (_, delta) = self.of(&grad_key, grad)?;
            let before = d(self.get(&format!("init/relax/{v}"))?);
            let lr = self.scalar("search/relax/lr")?;
            let rounding = (before.abs() + lr) * (4.0 * u);
            let adam = (delta * 2.0 / (d(grad).abs() + 1e-30)).clamp_max(2.0) * lr;
            return Ok((Quantity::AdamUpdate, adam + rounding));
        }
        let var = key.split_once("/w/").or_else(|| key.split_once("/grad/"));
        let is_stat = key.ends_with("running_mean") || key.ends_with("running_var");
        if key.contains("/term/") {
            // the loop logs its terms as float32 means: one more rounding of 2⁻²⁴
            let b = (eps_f + 2.0 * U32) * max_abs(value).max(1e-12);
            return Ok((Quantity::Forward, flat(b)));
        }
        if key.contains("/w/") && is_stat {
            return Ok((Quantity::Forward, flat(eps_f * self.stat_scale(key, value))));
        }
        if key.contains("/grad/") {
            return Ok((
                Quantity::WeightGrad,
                flat(eps_g * self.grad_scale(key, value)),
            ));
        }
        if key.starts_with("search/alpha_grad/") {
            // the estimators that evaluate one of them (gsm: f(ζ) only, reinforce: f(b) only)
            let f = ["search/term/f_discrete", "search/term/f_relaxed"]
                .iter()
                .filter_map(|k| self.scalar(k).ok())
                .fold(0.0, |m: f64, v| m.max(v.abs()));
            let b = 2.0 * eps_f * (2.0 * f) * 2.0 + eps_g * max_abs(value);
            return Ok((Quantity::ArchGrad, flat(b)));
        }
        // updated weights / logits: from the state before the step (the same on both sides: the
        // reference starts its search step from our warm-up's weights) and the step's gradient
        let (before, grad, lr, wd, delta) = if let Some(g) = key.strip_prefix("search/alpha/") {
            let grad = self.get(&format!("search/alpha_grad/{g}"))?;
            let (_, arch) = self.of(&format!("search/alpha_grad/{g}"), grad)?;
            let before = self.get(&format!("init/alpha/{g}"))?;
            let lr = self.scalar("search/lr_a")?;
            (d(before), d(grad), lr, self.wd_a, arch)
        } else if let Some((step, v)) = var {
            let prior = match step {
                "warm" => "init",
                "search" => "warm",
                _ => "train/init",
            };
            let before = self.get(&format!("{prior}/w/{v}"))?;
            let grad = self.get(&format!("{step}/grad/{v}"))?;
            let lr = self.scalar(&format!("{step}/{}", if train { "lr" } else { "lr_w" }))?;
            let wd = if train { self.wd_sgd } else { self.wd_w };
            let (_, delta) = self.of(&format!("{step}/grad/{v}"), grad)?;
            (d(before), d(grad), lr, wd, delta)
        } else {
            bail!("no bound for `{key}`");
        };
        let rounding = (before.abs() + lr) * (4.0 * u); // 4u·(|w| + lr): w′ and the step rounded
        if train {
            return Ok((Quantity::SgdUpdate, delta * lr + rounding)); // lr·δ + 4u(|w| + lr)
        }
        let g = (grad + &before * wd).abs(); // |∇ + wd·w|
        let adam = (delta * 2.0 / (g + 1e-30)).clamp_max(2.0) * lr; // lr·min(2, 2δ/|g|)
        Ok((Quantity::AdamUpdate, adam + rounding))
    }
}

/// Compares the reference's outputs with ours.
fn compare(theirs: &[(String, Tensor)], b: &Bounds) -> Result<Vec<Compared>> {
    let mut out = Vec::new();
    for (key, r) in theirs {
        let mine = b
            .get(key)
            .with_context(|| format!("the reference returned `{key}`, ours has none"))?;
        ensure!(
            mine.size() == r.size(),
            "`{key}`: shape {:?} vs the reference's {:?}",
            mine.size(),
            r.size()
        );
        let (quantity, bound) = b.of(key, mine)?;
        let diff = (mine.to_kind(Kind::Double) - r.to_kind(Kind::Double)).abs();
        let ratio = if diff.numel() == 0 {
            0.0
        } else {
            (&diff / (bound + 1e-300)).max().double_value(&[])
        };
        out.push(Compared {
            key: key.clone(),
            quantity,
            max_abs_diff: max_abs(&diff),
            max_abs: max_abs(mine),
            ratio_to_bound: ratio,
            pass: ratio.is_finite() && ratio <= 1.0,
        });
    }
    Ok(out)
}

/// Runs both, compares; `Ok(pass)`.
pub fn run(o: &TorchParityOptions) -> Result<TorchParity> {
    let reference = Path::new("bench/reference.py");
    ensure!(
        reference.is_file(),
        "{} not found: run this from the repository's root",
        reference.display()
    );
    ensure!(
        o.python.is_file(),
        "{} not found: `make bench-venv` installs the full torch wheel the reference needs",
        o.python.display()
    );
    ensure!(
        o.estimator.selection() == Selection::Mode,
        "--estimator {}: random search takes no architecture step, and its weight steps train \
         per-example one-hot architectures, which the official code never does; pick one of the \
         other six",
        o.estimator.name()
    );
    let (ours, smeta, tmeta) = record_ours(o)?;
    let dir = match &o.keep {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            d.clone()
        }
        None => super::step::tempdir()?,
    };
    let out = exchange(o, &dir, &ours, &smeta, &tmeta);
    if o.keep.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let theirs = out?;
    let (sd, td) = (depth(o.space, o.layers), depth(o.space, o.train_layers));
    let n = sum_terms(o.space);
    let bounds = Bounds {
        ours: &ours,
        eps_search: n * U64 * f64::from(sd),
        eps_train: n * U32 * f64::from(td),
        u_search: U64,
        u_train: U32,
        wd_w: smeta["wd_w"].as_f64().unwrap_or(0.0),
        wd_a: smeta["wd_a"].as_f64().unwrap_or(0.0),
        wd_sgd: tmeta["wd_sgd"].as_f64().unwrap_or(0.0),
    };
    let (fresh, theirs): (Vec<_>, Vec<_>) = theirs
        .into_iter()
        .partition(|(k, _)| k.starts_with("fresh/"));
    let initial_loss = initial_losses(&bounds, &fresh)?;
    let compared = compare(&theirs, &bounds)?;
    let only_ours = only_ours(&ours, &theirs)?;
    let pass = !compared.is_empty()
        && compared.iter().all(|c| c.pass)
        && initial_loss.iter().all(|l| l.pass);
    Ok(TorchParity {
        search_depth: sd,
        train_depth: td,
        eps_forward_search: bounds.eps_search,
        eps_forward_train: bounds.eps_train,
        compared,
        initial_loss,
        only_ours,
        pass,
    })
}

/// Our recorded tensors under the reference's names, the search's settings, the training's.
type Recorded = (Vec<(String, Tensor)>, serde_json::Value, serde_json::Value);

/// Our warm-up, search and training steps recorded, under the reference's names (training ones under
/// `train/`), with the search's and the training's settings for the reference.
fn record_ours(o: &TorchParityOptions) -> Result<Recorded> {
    let cpu = Some(DeviceChoice::Cpu);
    let record_search =
        |ctx: &StageCtx| Ok((crate::train::search::record_steps(ctx)?, search_meta(ctx)?));
    let record_train = |ctx: &StageCtx| {
        Ok((
            crate::train::bench_train::record_step(ctx)?,
            train_meta(ctx)?,
        ))
    };
    let ((search, smeta), (train, tmeta)) = match o.space {
        SpaceName::Darts => {
            let search_sets = [
                "search.sub_batches=1".to_owned(),
                "search.epochs.warmup=1".to_owned(),
                "search.soften_eps=0".to_owned(),
            ];
            (
                with_ctx(
                    &step_options(o, StepWhat::Search),
                    cpu,
                    &search_sets,
                    record_search,
                )?,
                with_ctx(&step_options(o, StepWhat::Train), cpu, &[], record_train)?,
            )
        }
        SpaceName::Proxyless => {
            let (search_sets, train_sets) = proxyless_sets(o);
            let file = |name: &str| Path::new("experiments/paper").join(name);
            let cpu = DeviceChoice::Cpu;
            (
                with_experiment(
                    &file("proxyless-unas.yaml"),
                    &search_sets,
                    1,
                    0,
                    cpu,
                    record_search,
                )?,
                with_experiment(
                    &file("eval-unas-proxyless.yaml"),
                    &train_sets,
                    1,
                    0,
                    cpu,
                    record_train,
                )?,
            )
        }
    };
    let (search_names, train_names): (Names, Names) = match o.space {
        SpaceName::Darts => (
            (reference_names::search_net, reference_names::alpha),
            (reference_names::eval_net, reference_names::alpha),
        ),
        SpaceName::Proxyless => (
            (
                reference_names::proxyless_net,
                reference_names::proxyless_alpha,
            ),
            (
                reference_names::proxyless_net,
                reference_names::proxyless_alpha,
            ),
        ),
    };
    let mut ours = Vec::new();
    for (k, v) in search {
        ours.push((rename(&k, search_names)?, v));
    }
    for (k, v) in train {
        ours.push((format!("train/{}", rename(&k, train_names)?), v));
    }
    Ok((ours, smeta, tmeta))
}

/// What we recorded that the reference did not return (inputs aside); an error unless each is a
/// term the reference does not compute ([`NOT_IN_REFERENCE`]).
fn only_ours(ours: &[(String, Tensor)], theirs: &[(String, Tensor)]) -> Result<Vec<String>> {
    let only_ours: Vec<String> = ours
        .iter()
        .map(|(k, _)| k.clone())
        .filter(|k| !is_input(k) && !theirs.iter().any(|(t, _)| t == k))
        .collect();
    let unexplained: Vec<&String> = only_ours
        .iter()
        .filter(|k| {
            !NOT_IN_REFERENCE
                .iter()
                .any(|t| k.ends_with(&format!("/term/{t}")))
        })
        .collect();
    ensure!(
        unexplained.is_empty(),
        "the reference did not return {unexplained:?}: bench/reference.py parity must compute them"
    );
    Ok(only_ours)
}

/// Writes our state and the settings into `dir`, runs the reference on them, reads its numbers.
fn exchange(
    o: &TorchParityOptions,
    dir: &Path,
    ours: &[(String, Tensor)],
    smeta: &serde_json::Value,
    tmeta: &serde_json::Value,
) -> Result<Vec<(String, Tensor)>> {
    let (input, meta, output) = (
        dir.join("ours.safetensors"),
        dir.join("meta.json"),
        dir.join("reference.safetensors"),
    );
    Tensor::write_safetensors(ours, &input).context("writing our state for the reference")?;
    let text = serde_json::to_string_pretty(&json!({"search": smeta, "train": tmeta}))?;
    std::fs::write(&meta, text).with_context(|| format!("writing {}", meta.display()))?;
    let status = Command::new(&o.python)
        .arg("bench/reference.py")
        .args(["parity", "--input"])
        .arg(&input)
        .arg("--meta")
        .arg(&meta)
        .arg("--output")
        .arg(&output)
        .status()
        .with_context(|| format!("running {}", o.python.display()))?;
    ensure!(
        status.success(),
        "bench/reference.py parity failed ({status})"
    );
    Tensor::read_safetensors(&output).context("reading the reference's numbers")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(v: &[f64]) -> Tensor {
        Tensor::from_slice(v)
    }

    fn one(key: &str, v: &[f64]) -> Vec<(String, Tensor)> {
        vec![(key.to_owned(), t(v))]
    }

    /// Bounds with ε_f = `eps_search` for the search steps, 1e-6 for training, no weight decay.
    fn bounds(ours: &[(String, Tensor)], eps_search: f64) -> Bounds<'_> {
        Bounds {
            ours,
            eps_search,
            eps_train: 1e-6,
            u_search: U64,
            u_train: U32,
            wd_w: 0.0,
            wd_a: 0.0,
            wd_sgd: 0.0,
        }
    }

    #[test]
    fn a_difference_beyond_its_bound_fails_and_one_within_passes() {
        // a weight step of Adam: w = (0.5, −0.2), ∇ = (0.3, −1e-3), lr 0.01 → w′ = (0.49, −0.19)
        let ours = vec![
            ("warm/lr_w".to_owned(), t(&[0.01])),
            ("init/w/a".to_owned(), t(&[0.5, -0.2])),
            ("warm/grad/a".to_owned(), t(&[0.3, -1e-3])),
            ("warm/w/a".to_owned(), t(&[0.49, -0.19])),
            ("warm/term/loss_train".to_owned(), t(&[2.3])),
        ];
        let b = bounds(&ours, 1e-6);
        let pass = |theirs: Vec<(String, Tensor)>| compare(&theirs, &b).unwrap()[0].pass;
        // the loss: bound (ε_f + 2·2⁻²⁴)·2.3 ≈ 2.6e-6
        assert!(pass(one("warm/term/loss_train", &[2.3 + 1e-7])));
        assert!(!pass(one("warm/term/loss_train", &[2.3 + 1e-4])));
        // gradients: bound 2ε_f·max|∇| = 6e-7
        assert!(pass(one("warm/grad/a", &[0.3 + 1e-7, -1e-3])));
        assert!(!pass(one("warm/grad/a", &[0.3, -1e-3 + 1e-5])));
        // Adam: a gradient known to ±6e-7 moves the first weight by ≤ lr·2δ/0.3 = 4e-8, the second
        // (|∇| = 1e-3) by ≤ 1.2e-5: a step of the other sign is far beyond either
        assert!(pass(one("warm/w/a", &[0.49, -0.19 + 1e-5])));
        assert!(!pass(one("warm/w/a", &[0.51, -0.19])));
        assert!(!pass(one("warm/w/a", &[0.49 + 1e-6, -0.19])));
        // a number ours does not have is an error, not a pass
        assert!(compare(&one("warm/w/b", &[0.0]), &b).is_err());
    }

    #[test]
    fn a_gradient_that_cancels_is_bounded_by_its_layers_scale() {
        // a BN bias gradient of rounding noise (1e-18) beside its layer's conv gradient (1e-2)
        let ours = vec![
            (
                "warm/grad/blocks.3.project.conv.weight".to_owned(),
                t(&[1e-2, -3e-3]),
            ),
            ("warm/grad/blocks.3.project.bn.bias".to_owned(), t(&[1e-18])),
            ("warm/grad/blocks.4.project.bn.bias".to_owned(), t(&[1e-18])),
            (
                "warm/grad/blocks.5.project.conv.weight".to_owned(),
                t(&[5.0]),
            ),
        ];
        let b = bounds(&ours, 1e-14);
        let ratio = |key: &str, v: f64| compare(&one(key, &[v]), &b).unwrap()[0].ratio_to_bound;
        // bound 2·1e-14·1e-2 = 2e-16: noise of 1e-17 passes, 1e-15 does not
        assert!(ratio("warm/grad/blocks.3.project.bn.bias", 1e-18 + 1e-17) <= 1.0);
        assert!(ratio("warm/grad/blocks.3.project.bn.bias", 1e-15) > 1.0);
        // a layer without other gradients keeps its own scale; another layer's does not count
        assert!(ratio("warm/grad/blocks.4.project.bn.bias", 1e-18 + 1e-17) > 1.0);
    }

    #[test]
    fn inputs_are_told_from_outputs() {
        for k in [
            "init/w/x",
            "train/init/w/x",
            "warm/noise/000",
            "train/noise/003",
            "search/xv",
            "train/lr",
        ] {
            assert!(is_input(k), "{k}");
        }
        for k in [
            "warm/w/x",
            "search/alpha/00",
            "search/term/f_relaxed",
            "train/grad/x",
        ] {
            assert!(!is_input(k), "{k}");
        }
    }
}
