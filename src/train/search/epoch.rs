//! The end of a search epoch — validation with relaxed samples (BN in train mode, as the official
//! `infer`), the genotype of the distribution's mode, the architecture probabilities, the tables, a
//! checkpoint — and the end of the search.

use anyhow::Result;
use tch::{Kind, Tensor};

use crate::config;
use crate::data::loader::Loader;
use crate::nas::space::SearchSpace;
use crate::results::diverged::check_finite;
use crate::results::rows::{ArchRow, EpochRow};
use crate::results::Phase;
use crate::stage::StageCtx;
use crate::train::checkpoint::Mark;
use crate::train::metrics::DeviceMean;
use crate::train::recorder::{summary_row, Finish, Recorder};
use crate::train::rng::{derive_seed, Stream};

use super::state::SearchState;
use super::{per_example_ce, weight_sample, ArchPer, EpochPlan};

/// The end-of-epoch pass reads the held-out split in one fixed order: the order of an epoch index
/// that no iterator reaches.
const VALIDATION_PASS: u64 = u64::MAX;

/// Validation, the epoch's rows, a checkpoint. Returns the validation top-1 (%).
pub(super) fn end_of_epoch<S: SearchSpace>(
    ctx: &StageCtx,
    st: &mut SearchState<S>,
    rec: &mut Recorder,
    s: &config::Search,
    ep: &EpochPlan,
) -> Result<f64> {
    rec.flush_steps()?;
    tch::manual_seed(derive_seed(
        ctx.seed,
        Stream::Validation,
        ep.phase,
        ep.epoch,
        0,
    ));
    let (loss_val, acc_val) = validate(&st.space, &st.val_loader, s, st.arch)?;
    if let Some(l) = &mut st.latency {
        // the mode architecture, timed on the held-out split's first images
        let b = st.val_loader.source().batch(VALIDATION_PASS, 0)?;
        let step = st.meta.search_steps;
        let row = l.end_of_epoch(
            &st.space,
            &b.images,
            (ep.phase, ep.epoch, st.meta.epoch, step),
        )?;
        rec.latency(row)?;
    }
    let row = EpochRow {
        phase: ep.phase,
        seed: ctx.seed,
        epoch: ep.epoch,
        loss_train: st.loss.mean(),
        acc_train_pct: st.top1.mean(),
        loss_val: Some(loss_val),
        acc_val_pct: Some(acc_val),
        acc_test_top1_pct: None,
        acc_test_top5_pct: None,
        genotype: Some(st.space.genotype_json(false)?),
        wall_s: rec.wall_s(),
    };
    check_finite(
        ep.phase,
        ep.epoch,
        st.meta.warmup_steps + st.meta.search_steps,
        &[("loss_val", Some(loss_val))],
    )?;
    st.loss.reset();
    st.top1.reset();
    let arch = (!ep.warm()).then(|| arch_rows(&st.space, ctx.seed, ep.epoch));
    rec.end_epoch(row, arch)?;
    st.meta.epoch += 1;
    st.checkpoint(rec, Mark::epoch_end(u64::from(st.meta.epoch)))?;
    Ok(acc_val)
}

/// The derived genotype, the data record and the summary (with the last validation top-1).
pub(super) fn finish<S: SearchSpace>(
    ctx: &StageCtx,
    st: SearchState<S>,
    rec: Recorder,
    last_val: Option<f64>,
) -> Result<()> {
    let mut summary = summary_row(ctx, Phase::Search, rec.wall_s());
    summary.acc_val_pct = last_val;
    let data_record = serde_json::json!({
        "unreadable_images": {
            "train": st.train_loader.source().unreadable(),
            "validation": st.val_loader.source().unreadable(),
        },
    });
    rec.finish(Finish {
        genotype_json: st.space.genotype_json(true)?,
        data_record,
        summary,
    })
}

/// Loss and top-1 (%) on the whole validation split with relaxed samples (no gradient), one sample per
/// example or per sub-batch and one forward per sub-batch as in training (`darts`: its mixture).
fn validate<S: SearchSpace>(
    space: &S,
    val: &Loader,
    s: &config::Search,
    arch: ArchPer,
) -> Result<(f64, f64)> {
    let src = val.source();
    let nb = src.batches_per_epoch();
    // the means accumulate on the device: one read at the end, not one per batch
    let device = space.distribution().groups[0].logits.device();
    let (mut loss, mut acc) = (DeviceMean::new(device), DeviceMean::new(device));
    tch::no_grad(|| -> Result<()> {
        for i in 0..nb {
            let b = src.batch(VALIDATION_PASS, i)?;
            let draw =
                space
                    .distribution()
                    .sample(arch.samples(&b), s.temperature, s.estimator.sampler());
            let dist = space.distribution();
            let (xs, kind) = weight_sample(s.estimator, dist, &draw.relaxed);
            let parts = arch.parts(&b, &xs);
            for (part, xs) in parts {
                let sample = space.sample(&xs);
                let logits = space.forward(&part.images, &sample, kind, true);
                let n = part.images.size()[0] as f64;
                loss.add(&per_example_ce(&logits, &part.labels).mean(Kind::Double), n);
                acc.add(&(top1_correct(&logits, &part.labels) / n), n);
            }
        }
        Ok(())
    })?;
    let (loss, acc) = (loss.mean().unwrap_or(f64::NAN), acc.mean().unwrap_or(0.0));
    Ok((loss, 100.0 * acc))
}

/// The number of rows whose arg-max logit is the label.
pub(super) fn top1_correct(logits: &Tensor, y: &Tensor) -> Tensor {
    logits
        .argmax(-1, false)
        .eq_tensor(y)
        .to_kind(Kind::Float)
        .sum(Kind::Float)
}

/// One row per (cell type, node, selector, key, choice): logit and probability after softening.
fn arch_rows<S: SearchSpace>(space: &S, seed: u64, epoch: u32) -> Vec<ArchRow> {
    let dist = space.distribution();
    let mut rows = Vec::new();
    for (g, theta) in dist.groups.iter().zip(dist.log_q()) {
        let logits =
            Vec::<Vec<f64>>::try_from(g.logits.detach().to_kind(Kind::Double)).unwrap_or_default();
        let probs = Vec::<Vec<f64>>::try_from(
            theta
                .detach()
                .exp()
                .to_kind(Kind::Double)
                .reshape([logits.len() as i64, -1]),
        )
        .unwrap_or_default();
        for (sel, (lrow, prow)) in logits.iter().zip(&probs).enumerate() {
            for (k, (l, p)) in lrow.iter().zip(prow).enumerate() {
                let label = space.choice_label(&g.name, sel, k);
                rows.push(ArchRow {
                    seed,
                    epoch,
                    cell_type: label.cell_type,
                    node: label.node,
                    selector: sel as i64,
                    key: label.key,
                    choice: k as i64,
                    choice_name: label.name,
                    logit: *l,
                    prob: *p,
                });
            }
        }
    }
    rows
}
