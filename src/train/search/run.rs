//! A search run: the space built from the experiment, its state opened (or restored), then warm-up
//! and search epochs, each a loop of [`iteration`]s followed by the end of the epoch.

use anyhow::{Context, Result};
use tch::nn;

use crate::autocast::Amp;
use crate::config::{self, ImageShape, ProxylessSupernet, SpaceName};
use crate::data::batch::Share;
use crate::data::{self, loader};
use crate::nas::space::darts::{DartsSearch, DartsSearchConfig, StemKind};
use crate::nas::space::proxyless::{ProxylessSearch, ProxylessSearchConfig};
use crate::nas::space::SearchSpace;
use crate::results::rows::Term;
use crate::results::Phase;
use crate::stage::{Outcome, StageCtx};
use crate::train::batches;
use crate::train::metrics::StepInfo;
use crate::train::recorder::{stop_if_asked, Recorder};
use crate::train::rng::{derive_seed, seed_step, Determinism, Stream, INIT_STEP};
use tch::Tensor;

use super::iteration::iteration;
use super::plan::begin_epoch;
use super::state::SearchState;
use super::{arch_step, epoch, latency};

/// Runs (or resumes) one search in its run folder.
pub fn run(ctx: &StageCtx) -> Outcome {
    let e = &ctx.resolved.experiment;
    let s = e
        .search
        .as_ref()
        .context("the experiment has no `search` section")?;
    match e.space.name {
        SpaceName::Darts => Ok(search(ctx, s, darts_builder(e, s))?),
        SpaceName::Proxyless => Ok(search(ctx, s, proxyless_builder(e, s))?),
    }
}

/// Builds the ProxylessNAS supernet of experiment `e` (at the dataset's image side unless
/// `space.resolution` says otherwise).
pub(super) fn proxyless_builder<'a>(
    e: &'a config::Experiment,
    s: &'a config::Search,
) -> impl FnOnce(&nn::Path, i64) -> Result<ProxylessSearch> + 'a {
    move |vs, classes| {
        let p = ProxylessSupernet::of(&e.space, &e.dataset);
        let cfg = ProxylessSearchConfig {
            width_multiplier: p.width_multiplier,
            resolution: i64::from(p.resolution),
            classes,
            op_skip_threshold: s.op_skip_threshold,
            zero_dropout: p.zero_dropout,
        };
        Ok(ProxylessSearch::new(vs, &cfg, s.soften_eps)?.in_precision(Amp::new(e.precision)?))
    }
}

/// Builds the DARTS supernet of experiment `e` (its stem from the dataset's image shape).
pub(super) fn darts_builder<'a>(
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
        if st.train_loader.state().position == 0 {
            st.restart_grad_var(); // a run resumed mid-epoch keeps the checkpointed estimate
        }
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
            let (terms, checks, lat_ms) = iteration(&mut st, s, &ep, &b, step, ctx.seed)?;
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

/// The data (the official split of the training set: train_portion, fixed permutation seed 0), the
/// space with its initial weights from the run's seed, the optimisers.
pub(super) fn open_state<S: SearchSpace>(
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
