//! The end of a search epoch — validation with relaxed samples (BN in train mode, as the official
//! `infer`), the genotype of the distribution's mode, the architecture probabilities, the tables, a
//! checkpoint — and the end of the search.

use anyhow::Result;
use tch::Kind;

use crate::config::{self, estimator::Selection, Estimator};
use crate::data::loader::{self, Loader};
use crate::nas::space::SearchSpace;
use crate::results::candidate_rows::candidates_frame;
use crate::results::diverged::check_finite;
use crate::results::rows::{ArchRow, EpochRow};
use crate::results::Phase;
use crate::results::{parquet, Table};
use crate::stage::StageCtx;
use crate::train::checkpoint::Mark;
use crate::train::metrics::{top1_correct, DeviceMean};
use crate::train::recorder::{summary_row, Finish, Recorder};
use crate::train::rng::{derive_seed, Pass, StepStreams, Stream};

use super::arch_per::ArchPer;
use super::candidates;
use super::loss::per_example_ce;
use super::plan::EpochPlan;
use super::state::SearchState;
use super::weight_step::weight_sample;

use super::candidates::VALIDATION_PASS;

/// Validation, the epoch's rows, a checkpoint. Returns the validation top-1 (%).
pub(super) fn end_of_epoch<S: SearchSpace>(
    ctx: &StageCtx,
    st: &mut SearchState<S>,
    rec: &mut Recorder,
    s: &config::Search,
    ep: &EpochPlan,
) -> Result<f64> {
    rec.flush_steps()?;
    let at = StepStreams {
        run_seed: ctx.seed,
        phase: ep.phase,
        epoch: ep.epoch,
        step: 0,
    };
    let (loss_val, acc_val) = validate(&st.space, &st.val_loader, s, st.arch, at)?;
    if let Some(l) = &mut st.latency {
        // the mode architecture, timed on the held-out split's first images
        let b = loader::settled(&*st.val_loader.source(), VALIDATION_PASS, 0)?;
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

/// The derived genotype (random search: the best candidate, with the candidates' table), the data
/// record and the summary (with the last validation top-1).
pub(super) fn finish<S: SearchSpace>(
    ctx: &StageCtx,
    st: SearchState<S>,
    rec: Recorder,
    s: &config::Search,
    last_val: Option<f64>,
) -> Result<()> {
    let genotype_json = match s.estimator.selection() {
        Selection::Mode => st.space.genotype_json(true)?,
        Selection::BestCandidate => {
            let k = s.candidates.unwrap_or(Estimator::RANDOM_WS_CANDIDATES);
            let (rows, chosen) = candidates::search(
                &st.space,
                &st.val_loader,
                st.arch,
                k,
                ctx.seed,
                s.temperature,
            )?;
            // every rank scores every candidate (the same numbers); the first writes the table
            if crate::dist::ranks().is_first() {
                let mut df = candidates_frame(&rows)?;
                parquet::write(
                    &ctx.dir.table(Table::Candidates),
                    Table::Candidates,
                    &mut df,
                )?;
            }
            let g: serde_json::Value = serde_json::from_str(&rows[chosen].genotype)?;
            serde_json::to_string_pretty(&g)?
        }
    };
    let mut summary = summary_row(ctx, Phase::Search, rec.wall_s());
    summary.acc_val_pct = last_val;
    let data_record = serde_json::json!({
        "unreadable_images": {
            "train": st.train_loader.source().unreadable(),
            "validation": st.val_loader.source().unreadable(),
        },
    });
    rec.finish(Finish {
        genotype_json,
        data_record,
        summary,
    })
}

/// Loss and top-1 (%) on the whole validation split with relaxed samples (no gradient), one sample per
/// example or per sub-batch and one forward per sub-batch as in training (`darts`: its mixture). Over
/// ranks each runs its own sub-batches of every batch (the draw is the whole batch's, on every rank)
/// and the sums are added up. Batch i draws its samples from the validation stream at step i of the
/// epoch `at` names, and its sub-batch g runs on the stream ([`Pass::Validation`], g) of step i.
fn validate<S: SearchSpace>(
    space: &S,
    val: &Loader,
    s: &config::Search,
    arch: ArchPer,
    at: StepStreams,
) -> Result<(f64, f64)> {
    let src = val.source();
    let nb = src.batches_per_epoch();
    // the means accumulate on the device: one read at the end, not one per batch
    let device = space.distribution().groups[0].logits.device();
    let (mut loss, mut acc) = (DeviceMean::new(device), DeviceMean::new(device));
    let ranks = crate::dist::ranks();
    let own = ranks.own(arch.groups() as usize);
    tch::no_grad(|| -> Result<()> {
        for i in 0..nb {
            let b = loader::settled(&*src, VALIDATION_PASS, i)?;
            let batch = StepStreams {
                step: i as u64,
                ..at
            };
            tch::manual_seed(derive_seed(
                at.run_seed,
                Stream::Validation,
                at.phase,
                at.epoch,
                batch.step,
            ));
            let draw =
                space
                    .distribution()
                    .sample(arch.samples(&b), s.temperature, s.estimator.sampler());
            let dist = space.distribution();
            let (xs, kind) = weight_sample(s.estimator, dist, &draw);
            let parts = arch.parts(&b, &xs);
            for (g, (part, xs)) in parts
                .into_iter()
                .enumerate()
                .filter(|(g, _)| own.contains(g))
            {
                batch.seed(Pass::Validation, g);
                let sample = space.sample(&xs);
                let logits = space.forward(&part.images, &sample, kind, true);
                let n = part.images.size()[0] as f64;
                loss.add(&per_example_ce(&logits, &part.labels).mean(Kind::Double), n);
                acc.add(&(top1_correct(&logits, &part.labels) / n), n);
            }
        }
        Ok(())
    })?;
    loss.sum_over(ranks, "the validation loss")?;
    acc.sum_over(ranks, "the validation top-1")?;
    let (loss, acc) = (loss.mean().unwrap_or(f64::NAN), acc.mean().unwrap_or(0.0));
    Ok((loss, 100.0 * acc))
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
