//! One warm-up step and one search step of the real loop, recorded for `unas diagnose parity-torch`:
//! from a fresh state (the run's initial weights, zero logits), the loop's own [`iteration`] on the
//! loop's first training batch (and the validation batch its objective draws), with every uniform draw
//! of each step kept ([`noise::recorded`]), in float64: weights, logits, batches and so every draw are
//! cast to double first (in float32 single weight gradients of the supernet are ill-conditioned: a
//! reordered sum in the reference alone moves some by 10%, so only float64 compares them closely).
//! Everything the PyTorch reference needs to redo the two steps, and everything to compare, comes back
//! as named tensors (our variable names):
//!
//! - `init/w/{var}`, `init/alpha/{group}`: the state before the warm-up step;
//! - `{warm,search}/{x,y}` the training batch, `search/{xv,yv}` the validation batch,
//!   `{warm,search}/noise/{i}` the draws in order, `{warm,search}/lr_w`, `search/lr_a`;
//! - `{warm,search}/term/{column}`: the step's logged terms (loss, f(b), f(ζ), gap, pair penalty, …);
//! - `{warm,search}/grad/{var}`: the weights' clipped gradients, `search/alpha_grad/{group}` the
//!   estimator; `{warm,search}/w/{var}`, `search/alpha/{group}`: the state after the step (the
//!   warm-up leaves the logits alone);
//! - `relax`: `init/relax/{w1,b1,w2,b2}` φ before, `search/relax/{w,grad}/{…}` φ after its Adam step
//!   and that step's gradient ∇_φ‖ĝ‖², `search/relax/lr`;
//! - with a latency term (ProxylessNAS space): the surrogate it was fitted to before the search step,
//!   `search/latency/{weights,bias}`, and `search/term/latency_ms`, L(b′) of the step's second sample.

use anyhow::{ensure, Context, Result};
use tch::{Kind, Tensor};

use crate::data::loader::{Batch, BatchSource, Batching, Loader};
use crate::nas::estimator::GradVariance;
use crate::nas::noise;
use crate::stage::StageCtx;
use crate::train::rng::seed_step;
use crate::train::variables::{all_variables, copies, scalar};

use super::arch_step;
use super::iteration::iteration;
use super::plan::{begin_epoch, EpochPlan};
use super::run::{darts_builder, open_state, proxyless_builder};
use super::state::SearchState;
use crate::config::SpaceName;
use crate::nas::space::SearchSpace;

/// The state's variables and the weights' gradients under `prefix/{w,grad}`.
fn state_after<S: SearchSpace>(st: &SearchState<S>, prefix: &str) -> Vec<(String, Tensor)> {
    let mut out = copies(&format!("{prefix}/w"), &all_variables(&st.vs));
    let grads: Vec<(String, Tensor)> = st
        .weights
        .iter()
        .map(|(n, t)| (n.clone(), t.grad()))
        .filter(|(_, g)| g.defined())
        .collect();
    out.extend(copies(&format!("{prefix}/grad"), &grads));
    out
}

/// The batch in float64 (labels as they are).
fn double(b: &Batch) -> Batch {
    Batch {
        images: b.images.to_kind(Kind::Double),
        labels: b.labels.shallow_clone(),
        pending: None,
    }
}

/// A split of exactly one batch, in order: the validation loader of the recorded search step, so that
/// the step draws the (double) batch that was recorded.
struct OneBatch(Batching, Batch);

impl BatchSource for OneBatch {
    fn len(&self) -> usize {
        self.0.batch_size
    }
    fn batching(&self) -> &Batching {
        &self.0
    }
    fn batch(&self, _epoch: u64, _index: usize) -> Result<Batch> {
        Ok(Batch {
            images: self.1.images.shallow_clone(),
            labels: self.1.labels.shallow_clone(),
            pending: None,
        })
    }
}

/// One step of phase `ep` on the loop's next training batch, its noise recorded; its terms, batch,
/// noise and learning rate under `prefix/`.
fn recorded_step<S: SearchSpace>(
    ctx: &StageCtx,
    st: &mut SearchState<S>,
    s: &crate::config::Search,
    ep: &EpochPlan,
    prefix: &str,
) -> Result<Vec<(String, Tensor)>> {
    let b = double(
        &st.train_loader
            .next_batch()?
            .context("the training split yields no batch")?,
    );
    let mut out = vec![
        (format!("{prefix}/x"), b.images.copy()),
        (format!("{prefix}/y"), b.labels.copy()),
        scalar(format!("{prefix}/lr_w"), ep.lr_weights),
    ];
    out.extend(ep.lr_arch.map(|l| scalar(format!("{prefix}/lr_a"), l)));
    if let (Some(l), false) = (&mut st.latency, ep.warm()) {
        l.prepare(&st.space, &b.images)?; // the latency surrogate, fitted before the step's draws
    }
    let step = st.meta.steps_in(ep.phase);
    seed_step(ctx.seed, ep.phase, ep.epoch, step);
    let mut grad_var = GradVariance::new(0.9);
    let (res, draws) = noise::recorded(|| iteration(st, s, ep, &b, step, ctx.seed, &mut grad_var));
    let (terms, _checks, lat) = res?;
    // the latency L(b') of the step's second sample (the surrogate's prediction: `measure: surrogate`)
    out.extend(lat.map(|ms| scalar(format!("{prefix}/term/latency_ms"), ms)));
    st.meta.count_step(ep.phase);
    for (i, u) in draws.iter().enumerate() {
        out.push((format!("{prefix}/noise/{i:03}"), u.copy()));
    }
    for (term, v) in &terms {
        out.push((
            format!("{prefix}/term/{}", term.column()),
            v.detach().to_kind(Kind::Double).reshape([1]),
        ));
    }
    Ok(out)
}

/// The warm-up step and the search step of experiment `ctx` (either space, a warm-up of at least one
/// epoch), recorded.
pub(crate) fn record_steps(ctx: &StageCtx) -> Result<Vec<(String, Tensor)>> {
    let e = &ctx.resolved.experiment;
    let s = e
        .search
        .as_ref()
        .context("the experiment has no `search` section")?;
    ensure!(
        s.epochs.warmup > 0,
        "the parity check needs a warm-up epoch"
    );
    match e.space.name {
        SpaceName::Darts => record_in(ctx, s, darts_builder(e, s)),
        SpaceName::Proxyless => record_in(ctx, s, proxyless_builder(e, s)),
    }
}

fn record_in<S: SearchSpace>(
    ctx: &StageCtx,
    s: &crate::config::Search,
    build: impl FnOnce(&tch::nn::Path, i64) -> Result<S>,
) -> Result<Vec<(String, Tensor)>> {
    let mut st = open_state(ctx, s, build)?;
    st.vs.double(); // before `restore` gives every weight its (double) zero gradient
    for (_, a) in &st.alpha_params {
        let mut a = a.shallow_clone();
        tch::no_grad(|| a.set_data(&a.to_kind(Kind::Double)));
    }
    if let Some(cv) = &mut st.est.relax {
        cv.to_kind(Kind::Double);
    }
    st.restore(ctx)?;
    let mut out = copies("init/w", &all_variables(&st.vs));
    out.extend(copies("init/alpha", &st.alpha_params));
    if let Some(cv) = &st.est.relax {
        out.extend(copies("init/relax", &cv.named_parameters()));
    }

    let ep = begin_epoch(&mut st, s); // epoch 0: the warm-up
    out.extend(recorded_step(ctx, &mut st, s, &ep, "warm")?);
    out.extend(state_after(&st, "warm"));

    st.meta.epoch = s.epochs.warmup; // the first search epoch, as the loop begins it
    let ep = begin_epoch(&mut st, s);
    arch_step::restart_val(&mut st.val_loader, st.meta.search_steps, ctx.seed);
    let v = double(&arch_step::next_val(
        &mut st.val_loader,
        st.meta.search_steps,
        ctx.seed,
    )?);
    out.push(("search/xv".into(), v.images.copy()));
    out.push(("search/yv".into(), v.labels.copy()));
    let batching = Batching {
        batch_size: v.images.size()[0] as usize,
        drop_last: true,
        shuffle: false,
        seed: 0,
    };
    st.val_loader = Loader::new(OneBatch(batching, v), 0); // the step draws this batch
    out.extend(recorded_step(ctx, &mut st, s, &ep, "search")?);
    ensure!(
        st.val_loader.state().position == 1,
        "the search step drew {} validation batches, not the one recorded",
        st.val_loader.state().position
    );
    out.extend(state_after(&st, "search"));
    out.extend(copies("search/alpha", &st.alpha_params));
    let alpha_grads: Vec<(String, Tensor)> = st
        .alpha_params
        .iter()
        .map(|(n, t)| (n.clone(), t.grad()))
        .collect();
    out.extend(copies("search/alpha_grad", &alpha_grads));
    if let Some(cv) = &st.est.relax {
        out.extend(copies("search/relax/w", &cv.named_parameters()));
        let grads = cv
            .first_step_gradients()
            .context("RELAX's φ took more than the search step's one Adam step")?;
        out.extend(copies("search/relax/grad", &grads));
        out.push(scalar("search/relax/lr".into(), cv.lr));
    }
    if let Some(l) = st.latency.as_ref().and_then(|l| l.fitted()) {
        // the surrogate s(x) = w·x + b₀ both sides evaluate (an input of the reference)
        out.push((
            "search/latency/weights".into(),
            Tensor::from_slice(&l.weights).to_kind(Kind::Double),
        ));
        out.push(scalar("search/latency/bias".into(), l.bias_ms));
    }
    Ok(out)
}
