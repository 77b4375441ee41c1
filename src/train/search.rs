//! The UNAS search loop (spec §1.3–1.5), DARTS space, resident datasets (CIFAR, synthetic).
//!
//! Per mini-batch of the search phase: one architecture step (Adam on the logits, the configured
//! estimator on the configured objective), then one weight step (Adam, clip 5) on the same training
//! batch with the detached relaxed sample. Warm-up epochs train the weights alone with relaxed samples
//! of the (uniform) initial distribution, with their own Adam at a constant lr. Every step draws its
//! randomness from a seed derived from (run seed, phase, epoch, step) and the loaders are keyed by
//! (seed, epoch, index), so a run resumed from a checkpoint continues bit-identically on the CPU.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use tch::{nn, Device, Kind, Reduction, Tensor};

use crate::config::{self, ImageShape, LrScale, ObjectiveKind, Resolved, Sampling, SpaceName};
use crate::data::{self, loader};
use crate::nas::arch::{DartsSample, SampleKind};
use crate::nas::distribution::DartsAlphas;
use crate::nas::estimator::{EstimatorState, GradVariance};
use crate::nas::objective::pair_penalty;
use crate::nas::space::darts::{DartsSearchConfig, DartsSearchNet, Genotype, Primitive, StemKind};
use crate::results::{layout, RunDir, Table};
use crate::runner::stages::StageError;
use crate::train::checkpoint::{prefixed, Checkpoints, Mark};
use crate::train::metrics::{
    self, ArchRow, ChoiceKey, Clock, DeviceMean, EpochRow, ResumePoint, StepInfo, StepLog,
    SummaryRow, TableLog, Term,
};
use crate::train::optim::{Adam, AdamConfig, AdamEps, Optimizer, ParamGroup};
use crate::train::rng::{derive_seed, seed_step, Determinism, Stream};
use crate::train::schedule::search_cosine;
use crate::train::signals::{Request, Signals};
use crate::train::{batches, clip_grad_norm, Phase};

/// Where a run is; saved as the checkpoint's metadata (written last: the commit marker).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct SearchMeta {
    /// Epoch over both phases (warm-up epochs first).
    epoch: u32,
    /// Steps done in the warm-up / search phase so far.
    warmup_steps: u64,
    search_steps: u64,
    train_loader: loader::LoaderState,
    val_loader: loader::LoaderState,
    #[serde(with = "crate::train::checkpoint::exact_f64")]
    wall_s: f64,
}

/// Everything a stage run needs to know about itself.
pub struct StageCtx<'a> {
    pub resolved: &'a Resolved,
    pub seed: u64,
    pub run_id: &'a str,
    pub dir: &'a RunDir,
    pub device: Device,
    pub upstream: Option<(&'a str, RunDir)>,
}

fn not_built(stage: &'static str, capability: &'static str) -> StageError {
    StageError::NotBuilt { stage, capability }
}

/// Per-example cross-entropy [B].
fn ce(logits: &Tensor, y: &Tensor) -> Tensor {
    logits.cross_entropy_loss::<Tensor>(y, None, Reduction::None, -100, 0.0)
}

fn top1_correct(logits: &Tensor, y: &Tensor) -> Tensor {
    logits
        .argmax(-1, false)
        .eq_tensor(y)
        .to_kind(Kind::Float)
        .sum(Kind::Float)
}

/// Runs (or resumes) one search. Returns the derived genotype's JSON.
pub fn run(ctx: &StageCtx) -> Result<String, StageError> {
    let e = &ctx.resolved.experiment;
    let s = e
        .search
        .as_ref()
        .context("the experiment has no `search` section")?;
    match e.space.name {
        SpaceName::Darts => {}
        SpaceName::Proxyless => {
            return Err(not_built(
                "search",
                "the ProxylessNAS space (supernet and latency measurement)",
            ))
        }
    }
    if s.objective.latency.is_some() {
        return Err(not_built("search", "the latency objective"));
    }
    Ok(search(ctx, s)?)
}

fn search(ctx: &StageCtx, s: &config::Search) -> Result<String> {
    let e = &ctx.resolved.experiment;
    let device = ctx.device;
    let seed = ctx.seed;
    let determinism = Determinism::apply(e.deterministic);
    tracing::info!(%determinism, "search");

    // Data: the official split of the training set (train_portion, fixed permutation seed 0).
    let ds = data::open(&e.dataset, device)?;
    let batch = s.batch as usize;
    let batching = |stream: Stream| loader::Batching {
        batch_size: batch,
        drop_last: true,
        shuffle: true,
        seed: derive_seed(seed, stream, Phase::Search, 0, 0) as u64,
    };
    let (mut train_loader, mut val_loader) = batches::search_loaders(
        &ds,
        &e.dataset,
        batching(Stream::Shuffle),
        batching(Stream::Validation),
        device,
    )?;

    // Initial weights come from the run's seed (a stream of their own), so two runs start alike.
    tch::manual_seed(derive_seed(seed, Stream::Step, Phase::Warmup, 0, u64::MAX));
    // Supernet and distribution.
    let vs = nn::VarStore::new(device);
    let net_cfg = DartsSearchConfig {
        stem: match e.dataset.shape() {
            ImageShape::Cifar => StemKind::Cifar,
            ImageShape::Imagenet => StemKind::Imagenet,
        },
        layers: e.space.layers as i64,
        channels: e.space.channels as i64,
        num_ops: e.space.ops as usize,
        classes: ds.classes,
        op_skip_threshold: s.op_skip_threshold,
    };
    let net = DartsSearchNet::new(&vs.root(), &net_cfg);
    let alphas = DartsAlphas::new(4, e.space.ops as i64, s.soften_eps, device);
    let mut est = EstimatorState::new(s.estimator, &alphas.dist);

    // Optimisers (spec §1.5): lr scaled by batch/64 under `linear64`; the minima are not scaled.
    let scale = match s.lr.scale {
        LrScale::None => 1.0,
        LrScale::Linear64 => s.batch as f64 / 64.0,
    };
    let adam = AdamConfig {
        eps_placement: AdamEps::BeforeBiasCorrection,
        ..AdamConfig::default()
    };
    let weights = crate::train::optim::var_store_params(&vs);
    let lr_w = s.lr.weights * scale;
    let lr_a = s.lr.arch * scale;
    // The warm-up has its own Adam (constant lr), the search phase another (cosine), as officially.
    let weight_adam = || {
        Adam::new(
            vec![ParamGroup::new(
                "w",
                shallow(&weights),
                lr_w,
                s.weight_decay.weights,
            )],
            adam,
        )
    };
    let mut opt_warm = weight_adam();
    let mut opt_w = weight_adam();
    let alpha_params: Vec<(String, Tensor)> = alphas
        .dist
        .groups
        .iter()
        .map(|g| (g.name.clone(), g.logits.shallow_clone()))
        .collect();
    let mut opt_a = Adam::new(
        vec![ParamGroup::new(
            "alpha",
            shallow(&alpha_params),
            lr_a,
            s.weight_decay.arch,
        )],
        adam,
    );
    let cos_w = search_cosine(lr_w, s.lr.weights_min, s.epochs.search);
    let cos_a = search_cosine(lr_a, s.lr.arch_min, s.epochs.search);

    // Tables and checkpoints; resume from the newest complete checkpoint.
    let ckpts = Checkpoints::new(ctx.dir.file(layout::CHECKPOINTS));
    let mut meta = SearchMeta {
        epoch: 0,
        warmup_steps: 0,
        search_steps: 0,
        train_loader: loader::LoaderState {
            epoch: 0,
            position: 0,
        },
        val_loader: loader::LoaderState {
            epoch: 0,
            position: 0,
        },
        wall_s: 0.0,
    };
    let mut acc_loss = DeviceMean::new(device);
    let mut acc_top1 = DeviceMean::new(device);
    let state_tensors = |opt_warm: &Adam,
                         opt_w: &Adam,
                         opt_a: &Adam,
                         est: &EstimatorState,
                         acc_loss: &DeviceMean,
                         acc_top1: &DeviceMean| {
        let mut t = prefixed("w", &all_variables(&vs));
        t.extend(prefixed("alpha", &alpha_params));
        t.extend(opt_warm.state_tensors("opt_warm"));
        t.extend(opt_w.state_tensors("opt_w"));
        t.extend(opt_a.state_tensors("opt_a"));
        t.push((
            "est/baseline".into(),
            Tensor::from_slice(&[est.baseline.value]),
        ));
        if let Some(cv) = &est.relax {
            t.extend(prefixed("relax", &cv.state()));
        }
        t.extend(acc_loss.state_tensors("acc_loss"));
        t.extend(acc_top1.state_tensors("acc_top1"));
        t
    };
    let resumed = ckpts.load_latest::<SearchMeta>()?;
    if let Some(loaded) = &resumed {
        tracing::info!(
            epoch = loaded.meta.epoch,
            "resuming the search from a checkpoint"
        );
        meta = loaded.meta.clone();
        tch::no_grad(|| -> Result<()> {
            loaded.restore_into("w", &all_variables(&vs))?;
            loaded.restore_into("alpha", &alpha_params)?;
            Ok(())
        })?;
        opt_warm.load_state_tensors("opt_warm", &loaded.tensors)?;
        opt_w.load_state_tensors("opt_w", &loaded.tensors)?;
        opt_a.load_state_tensors("opt_a", &loaded.tensors)?;
        est.baseline.value = loaded
            .tensors
            .get("est/baseline")
            .context("checkpoint lacks est/baseline")?
            .double_value(&[0]);
        if let Some(cv) = &mut est.relax {
            restore_relax(cv, &loaded.tensors, ctx.dir)?;
        }
        acc_loss.load_state_tensors("acc_loss", &loaded.tensors)?;
        acc_top1.load_state_tensors("acc_top1", &loaded.tensors)?;
        train_loader.resume(meta.train_loader);
        val_loader.resume(meta.val_loader);
    }
    // Every parameter gets a defined (zero) gradient before the first step, fresh or resumed: the
    // optimisers skip a parameter whose gradient is undefined and update one whose gradient is zero
    // (weight decay, moments), so without this a resumed run would treat the ops that a step skipped
    // differently from the run that was never interrupted.
    define_zero_grads(weights.iter().chain(alpha_params.iter()).map(|(_, t)| t));
    let (phase_now, ep_now, step_now) = phase_of(meta.epoch, s.epochs.warmup, &meta);
    let at = ResumePoint {
        phase: phase_now,
        epoch: ep_now,
        step: step_now,
    };
    let mut steps_log = TableLog::resume(Table::Steps, ctx.dir.table(Table::Steps), at)?;
    let mut epochs_log = TableLog::resume(Table::Epochs, ctx.dir.table(Table::Epochs), at)?;
    let mut arch_log = TableLog::resume(Table::Arch, ctx.dir.table(Table::Arch), at)?;
    let mut steps = StepLog::new(seed, 20, Clock::start(meta.wall_s));
    let signals = Signals::install()?;

    let total = s.epochs.warmup + s.epochs.search;
    let arch = match s.sampling {
        Sampling::PerExample => ArchPer::Example,
        Sampling::PerBatch => ArchPer::SubBatch(s.sub_batches.max(1) as i64),
    };
    let mut last_val = None;
    while meta.epoch < total {
        let warm = meta.epoch < s.epochs.warmup;
        let phase = if warm { Phase::Warmup } else { Phase::Search };
        let phase_epoch = if warm {
            meta.epoch
        } else {
            meta.epoch - s.epochs.warmup
        };
        let (lr_w_now, lr_a_now) = if warm {
            (lr_w, None)
        } else {
            (
                cos_w.for_epoch(phase_epoch),
                Some(cos_a.for_epoch(phase_epoch)),
            )
        };
        opt_w.set_lr_all(lr_w_now);
        if let Some(l) = lr_a_now {
            opt_a.set_lr_all(l);
        }
        let mut grad_var = GradVariance::new(0.9);
        loop {
            if let Some(req) = signals.poll() {
                steps.flush()?;
                write_steps(&mut steps, &mut steps_log)?;
                meta.train_loader = train_loader.state();
                meta.val_loader = val_loader.state();
                meta.wall_s = steps.clock().wall_s();
                let mark = Mark {
                    epochs: meta.epoch as u64,
                    steps: meta.warmup_steps + meta.search_steps,
                };
                ckpts.save(
                    mark,
                    &state_tensors(&opt_warm, &opt_w, &opt_a, &est, &acc_loss, &acc_top1),
                    &meta,
                )?;
                if req == Request::CheckpointAndExit {
                    bail!(
                        "stopped by SIGTERM after a checkpoint at epoch {} — run again to resume",
                        meta.epoch
                    );
                }
            }
            let Some(b) = train_loader.next_batch()? else {
                break;
            };
            let step = if warm {
                meta.warmup_steps
            } else {
                meta.search_steps
            };
            seed_step(seed, phase, phase_epoch, step);
            let n = arch.samples(&b);
            // One architecture sample per step (per example, or per sub-batch): the architecture step
            // differentiates through it, the weight step uses its relaxed value, detached (spec §1.3).
            let draw = if warm {
                tch::no_grad(|| alphas.dist.sample(n, s.temperature, est.sampler()))
            } else {
                alphas.dist.sample(n, s.temperature, est.sampler())
            };
            let mut terms: Vec<(Term, Tensor)> = Vec::new();

            if !warm {
                // Architecture step.
                let val = match s.objective.kind {
                    ObjectiveKind::Train => None,
                    ObjectiveKind::Val | ObjectiveKind::Gengap => Some(next_val(&mut val_loader)?),
                };
                let mut gap = None;
                let mut pair = None;
                let mut f = |xs: &[Tensor], kind: SampleKind| -> Tensor {
                    let sample = alphas.to_sample(xs);
                    let (per, g) = match arch {
                        // With one architecture per example, the discrete fast path would normalise
                        // each group of examples with its own BN statistics; the official code
                        // evaluates f(b) through the relaxed supernet (BN over the whole batch).
                        // Exactness first: the one-hot b goes through the relaxed path then (op-skip
                        // still drops unchosen ops).
                        ArchPer::Example => {
                            let path = if n > 1 { SampleKind::Relaxed } else { kind };
                            objective(&net, &sample, path, &b, val.as_ref(), s)
                        }
                        // One forward pass per sub-batch with its own sample, as one GPU of the
                        // official DDP run: f_g is that sub-batch's mean.
                        ArchPer::SubBatch(groups) => {
                            let tr = b.split(groups);
                            let va = val.as_ref().map(|v| v.split(groups));
                            let (mut per, mut gaps) = (Vec::new(), Vec::new());
                            for (g, part) in tr.iter().enumerate() {
                                let sg = alphas.to_sample(&sample_rows(xs, g as i64));
                                let v = va.as_ref().map(|v| &v[g]);
                                let (p, gap) = objective(&net, &sg, kind, part, v, s);
                                per.push(p.mean(Kind::Float));
                                gaps.extend(gap.map(|x| x.mean(Kind::Float)));
                            }
                            let gaps = (!gaps.is_empty()).then(|| Tensor::stack(&gaps, 0));
                            (Tensor::stack(&per, 0), gaps)
                        }
                    };
                    if kind == SampleKind::Relaxed {
                        gap = g.map(|g| g.detach().mean(Kind::Float));
                    }
                    let p = pair_penalty(&sample, s.objective.pair_penalty); // 0.2·P_n
                    if kind == SampleKind::Relaxed {
                        pair = Some(p.detach().mean(Kind::Float));
                    }
                    per + p
                };
                opt_a.zero_grad();
                let estimate = est
                    .estimate(&alphas.dist, &draw, &mut f, step)
                    .map_err(|nf| {
                        anyhow::anyhow!(metrics::Diverged {
                            phase,
                            epoch: phase_epoch,
                            step: nf.step,
                            term: nf.term.clone(),
                            value: f64::NAN
                        })
                    })?;
                estimate.surrogate.backward(); // ∇_logits S is the estimator
                let grads: Vec<Tensor> = alphas
                    .dist
                    .parameters()
                    .iter()
                    .map(|p| p.grad().detach().copy())
                    .collect();
                let var = grad_var.observe(&grads);
                opt_a.step();
                if let Some(v) = estimate.f_discrete {
                    terms.push((Term::FDiscrete, v));
                }
                if let Some(v) = estimate.f_relaxed {
                    terms.push((Term::FRelaxed, v));
                }
                if let Some(g) = gap {
                    terms.push((Term::GenGap, g));
                }
                if let Some(p) = pair {
                    terms.push((Term::PairPenalty, p));
                }
                terms.push((Term::GradVarArch, var));
                terms.push((Term::EntropyNats, alphas.dist.entropy().detach()));
            }

            // Weight step on the same batch with the detached relaxed sample.
            let opt = if warm { &mut opt_warm } else { &mut opt_w };
            opt.zero_grad();
            let (loss, logits) = match arch {
                ArchPer::SubBatch(groups) if groups > 1 => {
                    let (mut losses, mut all) = (Vec::new(), Vec::new());
                    for (g, part) in b.split(groups).iter().enumerate() {
                        let sg: DartsSample = alphas
                            .to_sample(&sample_rows(&draw.relaxed, g as i64))
                            .detach();
                        let logits = net.forward(&part.images, &sg, SampleKind::Relaxed, true);
                        let l = ce(&logits, &part.labels).mean(Kind::Float);
                        // ∇ (1/G)·Σ_g ℓ_g: DDP averages the GPUs' mean gradients
                        (&l / groups as f64).backward();
                        losses.push(l.detach());
                        all.push(logits.detach());
                    }
                    (
                        Tensor::stack(&losses, 0).mean(Kind::Float),
                        Tensor::cat(&all, 0),
                    )
                }
                _ => {
                    let sample_w: DartsSample = alphas.to_sample(&draw.relaxed).detach();
                    let logits = net.forward(&b.images, &sample_w, SampleKind::Relaxed, true);
                    let loss = ce(&logits, &b.labels).mean(Kind::Float);
                    loss.backward();
                    (loss.detach(), logits.detach())
                }
            };
            let gnorm = clip_grad_norm(weights.iter().map(|(_, t)| t), s.grad_clip);
            opt.step();
            let bsz = b.images.size()[0] as f64;
            let correct = top1_correct(&logits, &b.labels);
            acc_loss.add(&loss, bsz);
            acc_top1.add(&(&correct * (100.0 / bsz)), bsz);
            terms.push((Term::LossTrain, loss));
            terms.push((Term::AccTrainPct, correct * (100.0 / bsz)));
            terms.push((Term::GradNormWeights, gnorm));
            let refs: Vec<(Term, &Tensor)> = terms.iter().map(|(t, v)| (*t, v)).collect();
            let info = StepInfo {
                phase,
                epoch: phase_epoch,
                step,
                images: bsz as u64,
                lr_weights: Some(lr_w_now),
                lr_arch: lr_a_now,
                lat_ms: None,
            };
            steps.record(info, &refs)?;
            if warm {
                meta.warmup_steps += 1;
            } else {
                meta.search_steps += 1;
            }
        }

        // End of epoch: validation with relaxed samples (BN in train mode, as the official `infer`),
        // the genotype, the architecture probabilities, the tables, a checkpoint.
        steps.flush()?;
        write_steps(&mut steps, &mut steps_log)?;
        tch::manual_seed(derive_seed(seed, Stream::Validation, phase, phase_epoch, 0));
        let (loss_val, acc_val) = validate(&net, &alphas, &val_loader, s, arch)?;
        last_val = Some(acc_val);
        let genotype = Genotype::from_mode(&alphas.mode(), e.space.ops as usize)?;
        let genotype_json = serde_json::to_string(&genotype)?;
        let row = EpochRow {
            phase,
            seed,
            epoch: phase_epoch,
            loss_train: acc_loss.mean(),
            acc_train_pct: acc_top1.mean(),
            loss_val: Some(loss_val),
            acc_val_pct: Some(acc_val),
            acc_test_top1_pct: None,
            acc_test_top5_pct: None,
            genotype: Some(genotype_json.clone()),
            wall_s: steps.clock().wall_s(),
        };
        metrics::check_finite(
            phase,
            phase_epoch,
            meta.warmup_steps + meta.search_steps,
            &[("loss_val", Some(loss_val))],
        )?;
        acc_loss.reset();
        acc_top1.reset();
        epochs_log.append(&metrics::epochs_frame(&[row])?)?;
        epochs_log.write()?;
        if !warm {
            arch_log.append(&metrics::arch_frame(&arch_rows(
                &alphas,
                seed,
                phase_epoch,
            ))?)?;
            arch_log.write()?;
        }
        meta.epoch += 1;
        meta.train_loader = train_loader.state();
        meta.val_loader = val_loader.state();
        meta.wall_s = steps.clock().wall_s();
        ckpts.save(
            Mark::epoch_end(meta.epoch as u64),
            &state_tensors(&opt_warm, &opt_w, &opt_a, &est, &acc_loss, &acc_top1),
            &meta,
        )?;
    }
    if !arch_log.path().exists() {
        arch_log.write()?;
    }

    let record = serde_json::json!({
        "unreadable_images": {
            "train": train_loader.source().unreadable(),
            "validation": val_loader.source().unreadable(),
        },
    });
    crate::results::atomic::write_atomic(
        &ctx.dir.file(layout::DATA_RECORD),
        format!("{}\n", serde_json::to_string_pretty(&record)?).as_bytes(),
    )?;
    let genotype = Genotype::from_mode(&alphas.mode(), e.space.ops as usize)?;
    let json = serde_json::to_string_pretty(&genotype)?;
    crate::results::atomic::write_atomic(
        &ctx.dir.file(layout::GENOTYPE),
        format!("{json}\n").as_bytes(),
    )?;
    let summary = SummaryRow {
        experiment: e.name.clone(),
        tier: ctx.resolved.tier.as_str().into(),
        phase: Phase::Search,
        seed,
        run_id: ctx.run_id.into(),
        upstream_run_id: None,
        acc_val_pct: last_val,
        acc_test_top1_pct: None,
        acc_test_top5_pct: None,
        params_m: None,
        macs_m: None,
        lat_ms: None,
        wall_s: steps.clock().wall_s(),
        deterministic: e.deterministic,
    };
    crate::results::parquet::write(
        &ctx.dir.table(Table::Summary),
        Table::Summary,
        &mut metrics::summary_frame(&summary)?,
    )?;
    Ok(json)
}

fn phase_of(epoch: u32, warmup: u32, meta: &SearchMeta) -> (Phase, u32, u64) {
    if epoch < warmup {
        (Phase::Warmup, epoch, meta.warmup_steps)
    } else {
        (Phase::Search, epoch - warmup, meta.search_steps)
    }
}

/// Moves the logged step rows into the steps table and rewrites it atomically.
pub fn write_steps(steps: &mut StepLog, log: &mut TableLog) -> Result<()> {
    let rows = steps.take_rows();
    if !rows.is_empty() {
        log.append(&metrics::steps_frame(&rows)?)?;
    }
    log.write()
}

/// The next validation batch; the iterator restarts (reshuffled) when exhausted, as the official one.
fn next_val(val: &mut loader::Loader) -> Result<loader::Batch> {
    match val.next_batch()? {
        Some(b) => Ok(b),
        None => val
            .next_batch()?
            .context("the validation split yields no batch"),
    }
}

/// Loss and top-1 (%) on the whole validation split with relaxed samples (no gradient), one sample per
/// example or per sub-batch as in training.
fn validate(
    net: &DartsSearchNet,
    alphas: &DartsAlphas,
    val: &loader::Loader,
    s: &config::Search,
    arch: ArchPer,
) -> Result<(f64, f64)> {
    let src = val.source();
    let nb = src.batches_per_epoch();
    // the means accumulate on the device: one read at the end, not one per batch
    let device = alphas.dist.groups[0].logits.device();
    let (mut loss, mut acc) = (DeviceMean::new(device), DeviceMean::new(device));
    tch::no_grad(|| -> Result<()> {
        for i in 0..nb {
            let b = src.batch(u64::MAX, i)?;
            let draw = alphas.dist.sample(
                arch.samples(&b),
                s.temperature,
                crate::nas::estimator::sampler_for(s.estimator),
            );
            let parts = match arch {
                ArchPer::Example => vec![(b.narrow(0, b.images.size()[0]), draw.relaxed)],
                ArchPer::SubBatch(groups) => b
                    .split(groups)
                    .into_iter()
                    .enumerate()
                    .map(|(g, part)| (part, sample_rows(&draw.relaxed, g as i64)))
                    .collect(),
            };
            for (part, xs) in parts {
                let sample = alphas.to_sample(&xs);
                let logits = net.forward(&part.images, &sample, SampleKind::Relaxed, true);
                let n = part.images.size()[0] as f64;
                loss.add(&ce(&logits, &part.labels).mean(Kind::Double), n);
                acc.add(&(top1_correct(&logits, &part.labels) / n), n);
            }
        }
        Ok(())
    })?;
    let (loss, acc) = (loss.mean().unwrap_or(f64::NAN), acc.mean().unwrap_or(0.0));
    Ok((loss, 100.0 * acc))
}

/// Which examples share an architecture sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ArchPer {
    /// One sample per example (CIFAR, the official default).
    Example,
    /// One sample per sub-batch, each with its own forward pass (`--same_alpha_minibatch`; G GPUs).
    SubBatch(i64),
}

impl ArchPer {
    /// Samples to draw for batch `b`.
    fn samples(self, b: &loader::Batch) -> i64 {
        match self {
            ArchPer::Example => b.images.size()[0],
            ArchPer::SubBatch(groups) => groups,
        }
    }
}

/// Sample g of a draw (tensors laid out [rows, N, K]), as a draw of one.
fn sample_rows(xs: &[Tensor], g: i64) -> Vec<Tensor> {
    xs.iter().map(|x| x.narrow(1, g, 1)).collect()
}

/// The search objective of one architecture sample (or one per example) on a training batch and, for
/// `val`/`gengap`, a validation batch: f per example [B], and |ℓ_va − ℓ_tr| per example when computed.
fn objective(
    net: &DartsSearchNet,
    sample: &DartsSample,
    path: SampleKind,
    b: &loader::Batch,
    val: Option<&loader::Batch>,
    s: &config::Search,
) -> (Tensor, Option<Tensor>) {
    let l_tr = ce(&net.forward(&b.images, sample, path, true), &b.labels);
    match (&s.objective.kind, val) {
        (ObjectiveKind::Train, _) | (_, None) => (l_tr, None),
        (ObjectiveKind::Val, Some(v)) => (
            ce(&net.forward(&v.images, sample, path, true), &v.labels),
            None,
        ),
        (ObjectiveKind::Gengap, Some(v)) => {
            let l_va = ce(&net.forward(&v.images, sample, path, true), &v.labels);
            let g = (&l_va - &l_tr).abs();
            let f = &l_tr + &g * s.objective.lambda; // f = ℓ_tr + λ·|ℓ_va − ℓ_tr|
            (f, Some(g))
        }
    }
}

/// Gives every parameter a zero gradient (a no-op for those that have one already at zero).
pub fn define_zero_grads<'a>(params: impl Iterator<Item = &'a Tensor>) {
    let params: Vec<&Tensor> = params.collect();
    if params.is_empty() {
        return;
    }
    let zero = params
        .iter()
        .map(|p| (*p * 0.0).sum(Kind::Float))
        .reduce(|a, b| a + b)
        .expect("non-empty");
    zero.backward(); // ∂(Σ 0·p)/∂p = 0, defined
}

/// Handles onto the same tensors (optimisers hold their own list of the parameters they update).
pub fn shallow(v: &[(String, Tensor)]) -> Vec<(String, Tensor)> {
    v.iter()
        .map(|(n, t)| (n.clone(), t.shallow_clone()))
        .collect()
}

/// Every variable of the store (weights and BN running statistics), sorted by name.
pub fn all_variables(vs: &nn::VarStore) -> Vec<(String, Tensor)> {
    let mut v: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn restore_relax(
    cv: &mut crate::nas::relax_cv::RelaxControlVariate,
    tensors: &BTreeMap<String, Tensor>,
    dir: &RunDir,
) -> Result<()> {
    let state: Vec<(String, Tensor)> = cv
        .state()
        .into_iter()
        .map(|(name, _)| {
            let t = tensors
                .get(&format!("relax/{name}"))
                .with_context(|| format!("checkpoint lacks relax/{name}"))?;
            Ok((name, t.shallow_clone()))
        })
        .collect::<Result<_>>()?;
    let tmp = dir.file(".relax-restore.pt");
    Tensor::save_multi(&state, &tmp)?;
    let r = cv.load(&tmp);
    let _ = std::fs::remove_file(&tmp);
    r
}

/// One row per (cell type, node, selector, key, choice): logit and probability after softening.
fn arch_rows(alphas: &DartsAlphas, seed: u64, epoch: u32) -> Vec<ArchRow> {
    let mut rows = Vec::new();
    for (g, theta) in alphas.dist.groups.iter().zip(alphas.dist.log_q()) {
        let parts: Vec<&str> = g.name.split('/').collect();
        let (cell, node, key) = (
            parts[0],
            parts[1]
                .trim_start_matches("node")
                .parse::<i64>()
                .unwrap_or(0),
            parts[2],
        );
        let key = if key == "inputs" {
            ChoiceKey::Input
        } else {
            ChoiceKey::Op
        };
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
                let name = match key {
                    ChoiceKey::Op => Primitive::from_index(k)
                        .map(|p| p.name().to_owned())
                        .unwrap_or_default(),
                    ChoiceKey::Input => match k {
                        0 => "c_{k-2}".into(),
                        1 => "c_{k-1}".into(),
                        j => format!("node{}", j - 2),
                    },
                };
                rows.push(ArchRow {
                    seed,
                    epoch,
                    cell_type: cell.into(),
                    node,
                    selector: sel as i64,
                    key,
                    choice: k as i64,
                    choice_name: name,
                    logit: *l,
                    prob: *p,
                });
            }
        }
    }
    rows
}
