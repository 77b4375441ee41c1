//! The UNAS search loop (spec §1.3–1.5) over a [`SearchSpace`] (DARTS or ProxylessNAS), on resident
//! datasets (CIFAR, synthetic) or ImageNet folders.
//!
//! Per mini-batch of the search phase: one architecture step ([`arch_step`]: Adam on the logits, the
//! configured estimator on the configured objective), then one weight step ([`weight_step`]: Adam,
//! clip 5) on the same training batch with the detached relaxed sample. Warm-up epochs train the
//! weights alone with relaxed samples of the (uniform) initial distribution, with their own Adam at a
//! constant lr. With a latency objective ([`latency`], ProxylessNAS) the architecture step adds the
//! control-variate latency term of a second sample. At the end of every epoch ([`epoch`]): validation,
//! the genotype, the tables (and the mode architecture's measured latency), a
//! checkpoint ([`state`] says what it holds; [`crate::train::recorder`] writes it).
//!
//! Every step draws its randomness from a seed derived from (run seed, phase, epoch, step) and the
//! loaders are keyed by (seed, epoch, index), so a run resumed from a checkpoint continues
//! bit-identically on the CPU.

mod arch_step;
mod bench_step;
mod candidates;
mod epoch;
mod latency;
mod parity_step;
mod state;
#[cfg(test)]
mod tests;
mod weight_step;

use anyhow::{Context, Result};
use tch::{nn, Reduction, Tensor};

use crate::autocast::Amp;
use crate::config::estimator::{Selection, WeightSample};
use crate::config::{self, ImageShape, SpaceName};
use crate::data::share::Share;
use crate::data::{self, loader};
use crate::nas::arch::SampleKind;
use crate::nas::distribution::Draw;
use crate::nas::estimator::GradVariance;
use crate::nas::space::darts::{DartsSearch, DartsSearchConfig, StemKind};
use crate::nas::space::proxyless::{ProxylessSearch, ProxylessSearchConfig};
use crate::nas::space::SearchSpace;
use crate::results::diverged::{Checks, Finite};
use crate::results::rows::Term;
use crate::results::Phase;
use crate::stage::{Outcome, StageCtx};
use crate::train::batches;
use crate::train::metrics::StepInfo;
use crate::train::optim::Optimizer;
use crate::train::recorder::{stop_if_asked, Recorder};
use crate::train::rng::{derive_seed, seed_step, Determinism, StepStreams, Stream, INIT_STEP};

pub(crate) use bench_step::time_steps;
pub(crate) use parity_step::record_steps;
use state::SearchState;

/// Runs (or resumes) one search in its run folder.
pub fn run(ctx: &StageCtx) -> Outcome {
    let e = &ctx.resolved.experiment;
    let s = e
        .search
        .as_ref()
        .context("the experiment has no `search` section")?;
    match e.space.name {
        SpaceName::Darts => Ok(search(ctx, s, darts_builder(e, s))?),
        SpaceName::Proxyless => Ok(search(ctx, s, |vs, classes| {
            let side = e.dataset.shape().side() as u32;
            let cfg = ProxylessSearchConfig {
                width_multiplier: e.space.width_multiplier,
                resolution: i64::from(e.space.resolution.unwrap_or(side)),
                classes,
                op_skip_threshold: s.op_skip_threshold,
                zero_dropout: e.space.zero_dropout.unwrap_or(config::ZERO_DROPOUT),
            };
            Ok(ProxylessSearch::new(vs, &cfg, s.soften_eps)?.in_precision(Amp::new(e.precision)?))
        })?),
    }
}

/// Builds the DARTS supernet of experiment `e` (its stem from the dataset's image shape).
fn darts_builder<'a>(
    e: &'a config::Experiment,
    s: &'a config::Search,
) -> impl FnOnce(&nn::Path, i64) -> Result<DartsSearch> + 'a {
    move |vs, classes| {
        let cfg = DartsSearchConfig {
            stem: match e.dataset.shape() {
                ImageShape::Cifar => StemKind::Cifar,
                ImageShape::Imagenet => StemKind::Imagenet,
            },
            layers: i64::from(e.space.layers),
            channels: i64::from(e.space.channels),
            num_ops: e.space.ops as usize,
            classes,
            op_skip_threshold: s.op_skip_threshold,
        };
        Ok(DartsSearch::new(vs, &cfg, s.soften_eps)?.in_precision(Amp::new(e.precision)?))
    }
}

/// Which examples share an architecture sample, and how many forward passes a step makes. Each pass
/// is one sub-batch with its own BatchNorm statistics, as one GPU of the official DDP run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ArchPer {
    /// One sample per example (CIFAR, the official default), in this many sub-batches: 4 × 32 is the
    /// official 4-GPU CIFAR search; 1 is one pass over the whole batch.
    Example(i64),
    /// One sample per sub-batch (`--same_alpha_minibatch`; G GPUs).
    SubBatch(i64),
}

impl ArchPer {
    /// Samples to draw for batch `b`.
    fn samples(self, b: &loader::Batch) -> i64 {
        match self {
            ArchPer::Example(_) => b.images.size()[0],
            ArchPer::SubBatch(groups) => groups,
        }
    }

    /// Forward passes per step.
    fn groups(self) -> i64 {
        match self {
            ArchPer::Example(g) | ArchPer::SubBatch(g) => g.max(1),
        }
    }

    /// The sub-batches of `b`, each with its rows of the draw tensors `xs` ([S, N, K]): its examples'
    /// rows (one per example), or its own row (one per sub-batch). A mixture (N = 1) broadcasts.
    fn parts(self, b: &loader::Batch, xs: &[Tensor]) -> Vec<(loader::Batch, Vec<Tensor>)> {
        let n = xs.first().map(|x| x.size()[1]).unwrap_or(1);
        let mut at = 0;
        b.split(self.groups())
            .into_iter()
            .enumerate()
            .map(|(g, part)| {
                let len = part.images.size()[0];
                let rows = match self {
                    _ if n == 1 => xs.iter().map(Tensor::shallow_clone).collect(),
                    ArchPer::Example(_) => xs.iter().map(|x| x.narrow(1, at, len)).collect(),
                    ArchPer::SubBatch(_) => sample_rows(xs, g as i64),
                };
                at += len;
                (part, rows)
            })
            .collect()
    }
}

/// What the weight step (and the search-time validation) trains on: a draw's relaxed sample ζ
/// (official), for `darts` the softmax mixture q̃ itself with every op run (first-order DARTS), for
/// `random_ws` the draw's one-hot architectures (only their ops run).
fn weight_sample(
    estimator: config::Estimator,
    dist: &crate::nas::distribution::Categoricals,
    draw: &Draw,
) -> (Vec<Tensor>, SampleKind) {
    match estimator.weight_sample() {
        WeightSample::Mixture => (
            dist.probabilities(1).iter().map(Tensor::detach).collect(),
            SampleKind::Dense,
        ),
        WeightSample::Relaxed => (
            draw.relaxed.iter().map(Tensor::detach).collect(),
            SampleKind::Relaxed,
        ),
        WeightSample::Discrete => (
            draw.onehot.iter().map(Tensor::detach).collect(),
            SampleKind::OneHot,
        ),
    }
}

/// Sample g of a draw (tensors laid out [rows, N, K]), as a draw of one.
fn sample_rows(xs: &[Tensor], g: i64) -> Vec<Tensor> {
    xs.iter().map(|x| x.narrow(1, g, 1)).collect()
}

/// Per-example cross-entropy [B].
fn per_example_ce(logits: &Tensor, y: &Tensor) -> Tensor {
    logits.cross_entropy_loss::<Tensor>(y, None, Reduction::None, -100, 0.0)
}

/// The phase an epoch belongs to, its index within the phase, and its learning rates.
struct EpochPlan {
    phase: Phase,
    epoch: u32,
    lr_weights: f64,
    /// `None` in the warm-up (the architecture is frozen).
    lr_arch: Option<f64>,
}

impl EpochPlan {
    fn warm(&self) -> bool {
        self.phase == Phase::Warmup
    }
}

/// The search: build the space with `build(vs, classes)`, restore, then warm-up and search epochs,
/// each a loop of (architecture step, weight step) followed by the end of the epoch.
fn search<S: SearchSpace>(
    ctx: &StageCtx,
    s: &config::Search,
    build: impl FnOnce(&nn::Path, i64) -> Result<S>,
) -> Result<()> {
    let e = &ctx.resolved.experiment;
    let determinism = Determinism::apply(e.deterministic);
    tracing::info!(%determinism, "search");
    let mut st = open_state(ctx, s, build)?;
    st.restore(ctx)?;
    let at = st.meta.resume_point(s.epochs.warmup);
    let mut rec = Recorder::open(ctx.dir, ctx.seed, at, st.meta.wall_s, true)?;
    let mut last_val = None;
    while st.meta.epoch < s.epochs.warmup + s.epochs.search {
        let ep = begin_epoch(&mut st, s);
        crate::progress::epoch_begin(st.train_loader.batches_per_epoch() as u64);
        if !ep.warm() && st.train_loader.state().position == 0 {
            // a search epoch's `train()` begins with set_epoch(global_step + seed) and a fresh
            // validation iterator (a run resumed mid-epoch keeps the checkpointed iterator)
            arch_step::restart_val(&mut st.val_loader, st.meta.search_steps, ctx.seed);
        }
        let mut grad_var = GradVariance::new(0.9);
        loop {
            if let Some(req) = rec.signal()? {
                st.checkpoint(&mut rec, st.mark_now())?;
                stop_if_asked(req, st.meta.epoch)?;
            }
            let Some(b) = st.train_loader.next_batch()? else {
                break;
            };
            let step = st.meta.steps_in(ep.phase);
            if let (Some(l), false) = (&mut st.latency, ep.warm()) {
                l.prepare(&st.space, &b.images)?; // the latency surrogate, once
            }
            seed_step(ctx.seed, ep.phase, ep.epoch, step);
            let (terms, checks, lat_ms) =
                iteration(&mut st, s, &ep, &b, step, ctx.seed, &mut grad_var)?;
            let refs: Vec<(Term, &Tensor)> = terms.iter().map(|(t, v)| (*t, v)).collect();
            let info = StepInfo {
                phase: ep.phase,
                epoch: ep.epoch,
                step,
                images: b.images.size()[0] as u64,
                lr_weights: Some(ep.lr_weights),
                lr_arch: ep.lr_arch,
                lat_ms,
            };
            rec.record(info, &refs, checks)?;
            st.meta.count_step(ep.phase);
        }
        last_val = Some(epoch::end_of_epoch(ctx, &mut st, &mut rec, s, &ep)?);
    }
    epoch::finish(ctx, st, rec, s, last_val)
}

/// The terms one step logs.
type StepTerms = Vec<(Term, Tensor)>;

/// One search iteration on batch `b`: one architecture sample per step (per example, or per
/// sub-batch); the architecture step differentiates through it (outside the warm-up), the weight step
/// uses its relaxed value, detached (spec §1.3). Returns the step's terms and finite checks for the
/// log and, with a latency term, the latency measured of the step's sample (ms).
fn iteration<S: SearchSpace>(
    st: &mut SearchState<S>,
    s: &config::Search,
    ep: &EpochPlan,
    b: &loader::Batch,
    step: u64,
    seed: u64,
    grad_var: &mut GradVariance,
) -> Result<(StepTerms, Checks, Option<f64>)> {
    let n = st.arch.samples(b);
    let sampler = st.est.sampler();
    let dist = st.space.distribution();
    let draw = if ep.warm() {
        tch::no_grad(|| dist.sample(n, s.temperature, sampler))
    } else {
        dist.sample(n, s.temperature, sampler)
    };
    let mut terms: Vec<(Term, Tensor)> = Vec::new();
    let mut lat_ms = None;
    let mut chk = Finite::deferred(step);
    let at = StepStreams {
        run_seed: seed,
        phase: ep.phase,
        epoch: ep.epoch,
        step,
    };
    // random search has no architecture step: its logits stay at the uniform initialisation
    if !ep.warm() && s.estimator.selection() == Selection::Mode {
        lat_ms = arch_step::arch_step(st, s, ep, b, &draw, &mut chk, &at, grad_var, &mut terms)?;
    }
    weight_step::weight_step(st, s, ep.warm(), b, &draw, &at, &mut terms)?;
    Ok((terms, chk.take(), lat_ms))
}

/// The data (the official split of the training set: train_portion, fixed permutation seed 0), the
/// space with its initial weights from the run's seed, the optimisers.
fn open_state<S: SearchSpace>(
    ctx: &StageCtx,
    s: &config::Search,
    build: impl FnOnce(&nn::Path, i64) -> Result<S>,
) -> Result<SearchState<S>> {
    let e = &ctx.resolved.experiment;
    let ds = data::open(&e.dataset, ctx.device)?;
    let batching = |stream: Stream| loader::Batching {
        batch_size: s.batch as usize,
        drop_last: true,
        shuffle: true,
        seed: derive_seed(ctx.seed, stream, Phase::Search, 0, 0) as u64,
    };
    // this rank loads only the images of its sub-batches
    let groups = s.sub_batches.max(1) as usize;
    let share = Share {
        own: crate::dist::ranks().own(groups),
        groups,
    };
    let loaders = batches::search_loaders(
        &ds,
        &e.dataset,
        batching(Stream::Shuffle),
        batching(Stream::Validation),
        ctx.device,
        &share,
    )?;
    // Initial weights come from the run's seed (a stream of their own), so two runs start alike.
    tch::manual_seed(derive_seed(
        ctx.seed,
        Stream::Step,
        Phase::Warmup,
        0,
        INIT_STEP,
    ));
    let vs = nn::VarStore::new(ctx.device);
    let space = build(&vs.root(), ds.classes)?;
    let mut st = SearchState::new(s, space, vs, loaders);
    if let Some(l) = &s.objective.latency {
        st.latency = Some(latency::LatencyTerm::open(ctx, s, l, ds.classes)?);
    }
    Ok(st)
}

/// The epoch's phase and learning rates, set on the optimisers.
fn begin_epoch<S: SearchSpace>(st: &mut SearchState<S>, s: &config::Search) -> EpochPlan {
    let warmup = s.epochs.warmup;
    let plan = if st.meta.epoch < warmup {
        EpochPlan {
            phase: Phase::Warmup,
            epoch: st.meta.epoch,
            lr_weights: st.rates.weights,
            lr_arch: None,
        }
    } else {
        let epoch = st.meta.epoch - warmup;
        EpochPlan {
            phase: Phase::Search,
            epoch,
            lr_weights: st.rates.cos_weights.for_epoch(epoch),
            lr_arch: Some(st.rates.cos_arch.for_epoch(epoch)),
        }
    };
    st.opt_w.set_lr_all(plan.lr_weights);
    if let Some(l) = plan.lr_arch {
        st.opt_a.set_lr_all(l);
    }
    plan
}
