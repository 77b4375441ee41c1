//! The from-scratch training step outside its loop, beside the search's `search/bench_step.rs`:
//! timed (`unas bench step train`), recorded with its noise for the PyTorch reference (`unas diagnose
//! parity-torch`), and replayed as a CUDA graph against eager steps (`unas diagnose cuda-graphs`).

use anyhow::{Context, Result};
use serde::Serialize;
use tch::{Kind, Tensor};

use crate::config::TrainRecipe;
use crate::nas::noise;
use crate::stage::StageCtx;
use crate::train::from_scratch::{recipe, train_step, TrainState};
use crate::train::graphed_step::{Counts, GraphedStep};
use crate::train::metrics::ResumePoint;
use crate::train::recorder::Recorder;
use crate::train::variables::{all_variables, copies, scalar};
use crate::train::Phase;

/// `unas bench step train`: milliseconds of each of `steps` training steps after `warmup` untimed
/// ones, the loop's own [`train_step`] on one resident batch, drop-path at its final rate p (so the
/// step does the drop-path work); the device is synchronised after every step. With
/// `train.cuda_graphs` the timed steps are replays (at least two untimed: warm-up, capture).
pub(crate) fn time_steps(ctx: &StageCtx, warmup: usize, steps: usize) -> Result<Vec<f64>> {
    let t = recipe(ctx)?;
    let (mut st, mut rec, mut graph) = fresh_steps(ctx, &t, true)?;
    // with a graph: the eager warm-up step and the capture stay out of the timed steps
    let warmup = if graph.is_some() {
        warmup.max(2)
    } else {
        warmup
    };
    let b = st
        .train_loader
        .next_batch()?
        .context("the training split yields no batch")?;
    let mut ms = Vec::with_capacity(steps);
    for i in 0..warmup + steps {
        let start = std::time::Instant::now();
        let at = (0, i as u64, t.drop_path);
        let _ = train_step(ctx, &t, &mut st, graph.as_mut(), &mut rec, &b, at)?;
        let _ = st.loss.mean(); // one read waits for the device
        if i >= warmup {
            ms.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    Ok(ms)
}

/// `unas diagnose parity-torch`: the loop's first training step from a fresh state, recorded with
/// every uniform draw it makes (drop-path at its final rate p): `init/w/{var}`, `x`, `y`, `lr`,
/// `noise/{i}`, `term/loss_train`, `grad/{var}` (clipped), `w/{var}` after the step.
pub(crate) fn record_step(ctx: &StageCtx) -> Result<Vec<(String, Tensor)>> {
    let t = recipe(ctx)?;
    let (mut st, mut rec, _) = fresh_steps(ctx, &t, false)?;
    let b = st
        .train_loader
        .next_batch()?
        .context("the training split yields no batch")?;
    let per_epoch = st.train_loader.batches_per_epoch() as u64;
    let mut out = copies("init/w", &all_variables(&st.vs));
    out.push(("x".into(), b.images.copy()));
    out.push(("y".into(), b.labels.copy()));
    out.push(scalar("lr".into(), st.sched.lr(0, 0, per_epoch)));
    let (res, draws) =
        noise::recorded(|| train_step(ctx, &t, &mut st, None, &mut rec, &b, (0, 0, t.drop_path)));
    let step = res?;
    out.extend(
        draws
            .iter()
            .enumerate()
            .map(|(i, u)| (format!("noise/{i:03}"), u.copy())),
    );
    out.push((
        "term/loss_train".into(),
        step.loss.to_kind(Kind::Double).reshape([1]),
    ));
    out.push((
        "term/grad_norm_weights".into(),
        step.gnorm.to_kind(Kind::Double).reshape([1]),
    ));
    let grads: Vec<(String, Tensor)> = st
        .params
        .iter()
        .map(|(n, p)| (n.clone(), p.grad()))
        .collect();
    out.extend(copies("grad", &grads));
    out.extend(copies("w", &all_variables(&st.vs)));
    Ok(out)
}

/// A fresh training state in `ctx.dir` for steps outside the loop (benchmark, diagnostic): its
/// recorder from step 0, drop-path at its final rate p (so the steps do the drop-path work), and the
/// CUDA graph of the step when `graphed` and `train.cuda_graphs` (refused on the CPU).
fn fresh_steps(
    ctx: &StageCtx,
    t: &TrainRecipe,
    graphed: bool,
) -> Result<(TrainState, Recorder, Option<GraphedStep>)> {
    let mut st = TrainState::new(ctx, t)?;
    st.restore(ctx)?;
    let at = ResumePoint {
        phase: Phase::Train,
        epoch: 0,
        step: 0,
    };
    let rec = Recorder::open(ctx.dir, ctx.seed, at, 0.0, false)?;
    let graph = if graphed {
        st.graphed_step(ctx, t, true)?
    } else {
        None
    };
    st.built.net.set_drop_path(t.drop_path);
    Ok((st, rec, graph))
}

/// `unas diagnose cuda-graphs`: the same `steps` training steps (the loop's own, over its loader, the
/// smaller last batch of an epoch included) run eagerly twice and once with `train.cuda_graphs`, from
/// the same initial weights and seeds; the weights after them compared.
#[derive(Debug, Serialize)]
pub struct GraphParity {
    pub device: String,
    pub steps: usize,
    pub batch: u32,
    pub captures: u64,
    pub replays: u64,
    pub eager: u64,
    /// Every variable (BatchNorm statistics included) and every step's loss equal bit for bit.
    pub bit_identical: bool,
    /// max |w_graphed − w_eager| over every variable.
    pub max_abs_diff: f64,
    /// max |w_eager′ − w_eager| of the second eager run: the device's own run-to-run noise.
    pub eager_repeat_max_abs_diff: f64,
    pub loss_max_abs_diff: f64,
    /// The pass bound on max_abs_diff: max(2 × the eager repeat's, 1e-5 × max |w|).
    pub tolerance: f64,
    pub pass: bool,
}

pub(crate) fn graph_parity(ctx: &StageCtx, steps: usize) -> Result<GraphParity> {
    let t = recipe(ctx)?;
    anyhow::ensure!(steps > 0, "no steps to compare (--steps 0)");
    let run = |name: &str, graphed: bool| -> Result<(Vec<f64>, Vec<Tensor>, Counts)> {
        let dir = crate::results::RunDir(ctx.dir.path().join(name));
        std::fs::create_dir_all(dir.path())?;
        let sub = StageCtx {
            dir: &dir,
            upstream: ctx.upstream.clone(),
            ..*ctx
        };
        let (mut st, mut rec, mut graph) = fresh_steps(&sub, &t, graphed)?;
        anyhow::ensure!(
            st.train_loader.batches_per_epoch() > 0,
            "the training split yields no batch"
        );
        let mut losses = Vec::with_capacity(steps);
        for _ in 0..steps {
            let (state, b) = loop {
                let state = st.train_loader.state();
                if let Some(b) = st.train_loader.next_batch()? {
                    break (state, b);
                }
            };
            let at = (state.epoch as u32, state.position, t.drop_path);
            let out = train_step(&sub, &t, &mut st, graph.as_mut(), &mut rec, &b, at)?;
            losses.push(out.loss.double_value(&[]));
        }
        let weights = all_variables(&st.vs)
            .into_iter()
            .map(|(_, v)| v.detach().to_device(tch::Device::Cpu).to_kind(Kind::Double))
            .collect();
        Ok((losses, weights, graph.map(|g| g.counts).unwrap_or_default()))
    };
    let (loss_a, w_a, _) = run("eager", false)?;
    let (_, w_a2, _) = run("eager-again", false)?;
    let (loss_b, w_b, counts) = run("graphed", true)?;
    let max_diff = |x: &[Tensor], y: &[Tensor]| {
        x.iter()
            .zip(y)
            .map(|(a, b)| (a - b).abs().max().double_value(&[]))
            .fold(0.0, f64::max)
    };
    let max_abs_diff = max_diff(&w_a, &w_b);
    let eager_repeat_max_abs_diff = max_diff(&w_a, &w_a2);
    let scale = w_a
        .iter()
        .map(|w| w.abs().max().double_value(&[]))
        .fold(0.0, f64::max);
    let loss_max_abs_diff = loss_a
        .iter()
        .zip(&loss_b)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    let bit_identical = w_a.iter().zip(&w_b).all(|(a, b)| a.equal(b))
        && loss_a
            .iter()
            .zip(&loss_b)
            .all(|(a, b)| a.to_bits() == b.to_bits());
    let tolerance = (2.0 * eager_repeat_max_abs_diff).max(1e-5 * scale);
    Ok(GraphParity {
        device: crate::device::describe(ctx.device),
        steps,
        batch: t.batch,
        captures: counts.captures,
        replays: counts.replays,
        eager: counts.eager,
        bit_identical,
        max_abs_diff,
        eager_repeat_max_abs_diff,
        loss_max_abs_diff,
        tolerance,
        pass: bit_identical || max_abs_diff <= tolerance,
    })
}
