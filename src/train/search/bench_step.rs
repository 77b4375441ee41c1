//! The search iteration timed on its own (`unas bench step search`): the same [`iteration`] as the
//! loop — draw, architecture step, weight step — on one resident training batch (and the validation
//! batches the objective draws), without the loop's logging and checkpoints, so that it does the work
//! `bench/reference.py` does and the two can be timed side by side.

use std::time::Instant;

use anyhow::{Context, Result};

use crate::results::Phase;
use crate::stage::StageCtx;
use crate::train::optim::Optimizer;
use crate::train::rng::seed_step;

use super::iteration::iteration;
use super::plan::EpochPlan;
use super::run::{darts_builder, open_state};

/// Milliseconds of each of `steps` search iterations after `warmup` untimed ones (first search epoch's
/// learning rates; the device is synchronised after every iteration).
pub(crate) fn time_steps(ctx: &StageCtx, warmup: usize, steps: usize) -> Result<Vec<f64>> {
    let e = &ctx.resolved.experiment;
    let s = e
        .search
        .as_ref()
        .context("the experiment has no `search` section")?;
    let mut st = open_state(ctx, s, darts_builder(e, s))?;
    let ep = EpochPlan {
        phase: Phase::Search,
        epoch: 0,
        lr_weights: st.rates.weights,
        lr_arch: Some(st.rates.arch),
    };
    st.opt_w.set_lr_all(ep.lr_weights);
    st.opt_a.set_lr_all(st.rates.arch);
    let b = st
        .train_loader
        .next_batch()?
        .context("the training split yields no batch")?;
    let mut ms = Vec::with_capacity(steps);
    for step in 0..(warmup + steps) as u64 {
        let start = Instant::now();
        seed_step(ctx.seed, ep.phase, ep.epoch, step);
        let (terms, _checks, _lat_ms) = iteration(&mut st, s, &ep, &b, step, ctx.seed)?;
        // one read of the step's last term waits for the device (and checks the step ran)
        let last = terms.last().context("the step logged no term")?;
        let _ = last.1.double_value(&[]);
        if step >= warmup as u64 {
            ms.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    Ok(ms)
}
