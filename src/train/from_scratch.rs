//! From-scratch training of a genotype (spec §6) with its recipe: `cifar` (§6.1: SGD with momentum,
//! linear warm-up then cosine, auxiliary head, drop-path rising linearly, Cutout), `imagenet_darts`
//! (§6.2: ImageNet stem, automatic width under a MAC budget, label smoothing, auxiliary head) or
//! `imagenet_proxyless` (§6.3: the ProxylessNAS network, label smoothing, no auxiliary head). Top-1 and
//! top-5 on the test (ImageNet: val) set after every epoch; a checkpoint every epoch (and on SIGTERM /
//! SIGUSR1), resumable bit-identically on the CPU.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use tch::{nn, Kind, Reduction, Tensor};

use crate::data;
use crate::data::loader::{self, BatchSource};
use crate::results::{layout, Table};
use crate::runner::stages::StageError;
use crate::train::checkpoint::{prefixed, Checkpoints, Mark};
use crate::train::eval_net::{self, EvalNet};
use crate::train::metrics::{
    self, Clock, DeviceMean, EpochRow, ResumePoint, StepInfo, StepLog, SummaryRow, TableLog, Term,
};
use crate::train::optim::{Optimizer, ParamGroup, Sgd};
use crate::train::rng::{derive_seed, seed_step, Determinism, Stream};
use crate::train::schedule::{drop_path_prob, WarmupCosine};
use crate::train::search::{all_variables, shallow, write_steps, StageCtx};
use crate::train::signals::{Request, Signals};
use crate::train::{batches, clip_grad_norm, Phase};

#[derive(Clone, Debug, Serialize, Deserialize)]
struct TrainMeta {
    /// Epochs finished.
    epoch: u32,
    /// Steps done so far (all epochs).
    steps: u64,
    loader: loader::LoaderState,
    #[serde(with = "crate::train::checkpoint::exact_f64")]
    wall_s: f64,
}

pub fn run(ctx: &StageCtx) -> Result<(), StageError> {
    let e = &ctx.resolved.experiment;
    let t = e
        .train
        .as_ref()
        .context("the experiment has no `train` section")?;
    Ok(train(ctx, t)?)
}

/// Mean cross-entropy against labels smoothed by ε: (1 − ε)·onehot + ε/K (ImageNet recipes: 0.1).
fn ce(logits: &Tensor, y: &Tensor, smoothing: f64) -> Tensor {
    logits.cross_entropy_loss::<Tensor>(y, None, Reduction::Mean, -100, smoothing)
}

fn train(ctx: &StageCtx, t: &crate::config::Train) -> Result<()> {
    let e = &ctx.resolved.experiment;
    let (device, seed) = (ctx.device, ctx.seed);
    let _determinism = Determinism::apply(e.deterministic);
    let epochs = t.epochs.unwrap_or(1);

    let ds = data::open(&e.dataset, device)?;
    let cutout = t.cutout.unwrap_or(0) as i64;
    let batching = loader::Batching {
        batch_size: t.batch.unwrap_or(128) as usize,
        drop_last: false,
        shuffle: true,
        seed: derive_seed(seed, Stream::Shuffle, Phase::Train, 0, 0) as u64,
    };
    let (mut train_loader, test_source) = batches::train_loaders(
        &ds,
        &e.dataset,
        batching,
        (cutout > 0).then_some(cutout),
        device,
    )?;

    let aux_w = t.auxiliary_weight.unwrap_or(0.0);
    let smoothing = t.label_smoothing.unwrap_or(0.0);
    // Initial weights come from the run's seed (a stream of their own), so two runs start alike.
    tch::manual_seed(derive_seed(seed, Stream::Step, Phase::Train, 0, u64::MAX));
    let vs = nn::VarStore::new(device);
    let search_dir = ctx.upstream.as_ref().map(|(_, d)| d.path().to_path_buf());
    let built = eval_net::build(&vs.root(), e, t, search_dir.as_deref(), ds.classes)?;
    let mut net = built.net;
    let params = crate::train::optim::var_store_params(&vs);
    let mut opt = Sgd::new(
        vec![ParamGroup::new(
            "w",
            shallow(&params),
            t.lr.unwrap_or(0.05),
            t.weight_decay.unwrap_or(3e-4),
        )],
        t.momentum.unwrap_or(0.9),
    );
    let sched = WarmupCosine::for_recipe(
        t.recipe,
        t.lr.unwrap_or(0.05),
        epochs,
        t.warmup_epochs.unwrap_or(0),
    );

    let ckpts = Checkpoints::new(ctx.dir.file(layout::CHECKPOINTS));
    let mut meta = TrainMeta {
        epoch: 0,
        steps: 0,
        loader: loader::LoaderState {
            epoch: 0,
            position: 0,
        },
        wall_s: 0.0,
    };
    let mut acc_loss = DeviceMean::new(device);
    let mut acc_top1 = DeviceMean::new(device);
    if let Some(loaded) = ckpts.load_latest::<TrainMeta>()? {
        tracing::info!(
            epoch = loaded.meta.epoch,
            "resuming training from a checkpoint"
        );
        meta = loaded.meta.clone();
        tch::no_grad(|| loaded.restore_into("w", &all_variables(&vs)))?;
        opt.load_state_tensors("opt", &loaded.tensors)?;
        acc_loss.load_state_tensors("acc_loss", &loaded.tensors)?;
        acc_top1.load_state_tensors("acc_top1", &loaded.tensors)?;
        train_loader.resume(meta.loader);
    }
    crate::train::search::define_zero_grads(params.iter().map(|(_, t)| t));
    let state = |opt: &Sgd, acc_loss: &DeviceMean, acc_top1: &DeviceMean| {
        let mut v = prefixed("w", &all_variables(&vs));
        v.extend(opt.state_tensors("opt"));
        v.extend(acc_loss.state_tensors("acc_loss"));
        v.extend(acc_top1.state_tensors("acc_top1"));
        v
    };
    let at = ResumePoint {
        phase: Phase::Train,
        epoch: meta.epoch,
        step: meta.steps,
    };
    let mut steps_log = TableLog::resume(Table::Steps, ctx.dir.table(Table::Steps), at)?;
    let mut epochs_log = TableLog::resume(Table::Epochs, ctx.dir.table(Table::Epochs), at)?;
    let mut steps = StepLog::new(seed, 20, Clock::start(meta.wall_s));
    let signals = Signals::install()?;
    let per_epoch = train_loader.batches_per_epoch() as u64;
    let (mut top1, mut top5) = (None, None);

    while meta.epoch < epochs {
        let epoch = meta.epoch;
        net.set_drop_path(drop_path_prob(t.drop_path.unwrap_or(0.0), epoch, epochs)); // p·e/E
        loop {
            if let Some(req) = signals.poll() {
                steps.flush()?;
                write_steps(&mut steps, &mut steps_log)?;
                meta.loader = train_loader.state();
                meta.wall_s = steps.clock().wall_s();
                ckpts.save(
                    Mark {
                        epochs: epoch as u64,
                        steps: meta.steps,
                    },
                    &state(&opt, &acc_loss, &acc_top1),
                    &meta,
                )?;
                if req == Request::CheckpointAndExit {
                    bail!("stopped by SIGTERM after a checkpoint at epoch {epoch} — run again to resume");
                }
            }
            let position = train_loader.state().position;
            let Some(b) = train_loader.next_batch()? else {
                break;
            };
            seed_step(seed, Phase::Train, epoch, meta.steps);
            let lr = sched.lr(epoch, position, per_epoch);
            opt.set_lr_all(lr);
            opt.zero_grad();
            let (logits, aux) = net.forward_t(&b.images, true);
            let mut loss = ce(&logits, &b.labels, smoothing);
            if let Some(aux) = aux {
                loss += ce(&aux, &b.labels, smoothing) * aux_w; // ℓ + w_aux·ℓ_aux
            }
            loss.backward();
            let gnorm = clip_grad_norm(params.iter().map(|(_, t)| t), t.grad_clip.unwrap_or(5.0));
            opt.step();
            let bsz = b.images.size()[0] as f64;
            let acc = logits
                .detach()
                .argmax(-1, false)
                .eq_tensor(&b.labels)
                .to_kind(Kind::Float)
                .mean(Kind::Float)
                * 100.0;
            acc_loss.add(&loss.detach(), bsz);
            acc_top1.add(&acc, bsz);
            let terms = [
                (Term::LossTrain, &loss.detach()),
                (Term::AccTrainPct, &acc),
                (Term::GradNormWeights, &gnorm),
            ];
            let info = StepInfo {
                phase: Phase::Train,
                epoch,
                step: meta.steps,
                images: bsz as u64,
                lr_weights: Some(lr),
                lr_arch: None,
                lat_ms: None,
            };
            steps.record(info, &terms)?;
            meta.steps += 1;
        }
        steps.flush()?;
        write_steps(&mut steps, &mut steps_log)?;
        let (t1, t5) = test_accuracy(&net, test_source.as_ref(), device)?;
        metrics::check_finite(
            Phase::Train,
            epoch,
            meta.steps,
            &[("acc_test_top1_pct", Some(t1))],
        )?;
        (top1, top5) = (Some(t1), t5);
        let row = EpochRow {
            phase: Phase::Train,
            seed,
            epoch,
            loss_train: acc_loss.mean(),
            acc_train_pct: acc_top1.mean(),
            loss_val: None,
            acc_val_pct: None,
            acc_test_top1_pct: Some(t1),
            acc_test_top5_pct: t5,
            genotype: None,
            wall_s: steps.clock().wall_s(),
        };
        acc_loss.reset();
        acc_top1.reset();
        epochs_log.append(&metrics::epochs_frame(&[row])?)?;
        epochs_log.write()?;
        meta.epoch += 1;
        meta.loader = train_loader.state();
        meta.wall_s = steps.clock().wall_s();
        ckpts.save(
            Mark::epoch_end(meta.epoch as u64),
            &state(&opt, &acc_loss, &acc_top1),
            &meta,
        )?;
    }

    let json = &built.genotype_json;
    crate::results::atomic::write_atomic(
        &ctx.dir.file(layout::GENOTYPE),
        format!("{json}\n").as_bytes(),
    )?;
    let summary = SummaryRow {
        experiment: e.name.clone(),
        tier: ctx.resolved.tier.as_str().into(),
        phase: Phase::Train,
        seed,
        run_id: ctx.run_id.into(),
        upstream_run_id: ctx.upstream.as_ref().map(|(id, _)| id.to_string()),
        acc_val_pct: None,
        acc_test_top1_pct: top1,
        acc_test_top5_pct: top5,
        params_m: Some(built.params_m),
        macs_m: built.macs_m,
        lat_ms: None,
        wall_s: steps.clock().wall_s(),
        deterministic: e.deterministic,
    };
    let unreadable = train_loader.source().unreadable() + test_source.unreadable();
    if unreadable > 0 {
        tracing::warn!(unreadable, "unreadable images were skipped");
    }
    let record = serde_json::json!({
        "channels": built.channels,
        "unreadable_images": {
            "train": train_loader.source().unreadable(),
            "test": test_source.unreadable(),
        },
    });
    crate::results::atomic::write_atomic(
        &ctx.dir.file(layout::DATA_RECORD),
        format!("{}\n", serde_json::to_string_pretty(&record)?).as_bytes(),
    )?;
    crate::results::parquet::write(
        &ctx.dir.table(Table::Summary),
        Table::Summary,
        &mut metrics::summary_frame(&summary)?,
    )?;
    Ok(())
}

/// Top-1 and (with ≥ 5 classes) top-5 accuracy, %, on the whole test split, in eval mode.
fn test_accuracy(
    net: &EvalNet,
    src: &dyn BatchSource,
    device: tch::Device,
) -> Result<(f64, Option<f64>)> {
    // the hit rates accumulate on the device: one read at the end, not one per batch
    let (mut top1, mut top5, mut k) = (DeviceMean::new(device), DeviceMean::new(device), 0);
    tch::no_grad(|| -> Result<()> {
        for i in 0..src.batches_per_epoch() {
            let b = src.batch(0, i)?;
            let (logits, _) = net.forward_t(&b.images, false);
            let y = b.labels.unsqueeze(1);
            k = logits.size()[1].min(5);
            let (_, top) = logits.topk(k, -1, true, true);
            let hit = top.eq_tensor(&y).to_kind(Kind::Double);
            let n = b.images.size()[0] as f64;
            top1.add(&hit.narrow(1, 0, 1).mean(Kind::Double), n);
            top5.add(
                &hit.sum_dim_intlist(1, false, Kind::Double)
                    .mean(Kind::Double),
                n,
            );
        }
        Ok(())
    })?;
    let pct = |m: &DeviceMean| 100.0 * m.mean().unwrap_or(0.0);
    Ok((pct(&top1), (k == 5).then(|| pct(&top5))))
}
