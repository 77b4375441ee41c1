//! From-scratch training of a genotype (spec §6) with its recipe: `cifar` (§6.1: SGD with momentum,
//! linear warm-up then cosine, auxiliary head, drop-path rising linearly, Cutout), `imagenet_darts`
//! (§6.2: ImageNet stem, automatic width under a MAC budget, label smoothing, auxiliary head) or
//! `imagenet_proxyless` (§6.3: the ProxylessNAS network, label smoothing, no auxiliary head). Top-1 and
//! top-5 on the test (ImageNet: val) set after every epoch; a checkpoint every epoch (and on SIGTERM /
//! SIGUSR1), resumable bit-identically on the CPU.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use tch::{nn, Kind, Reduction, Tensor};

use crate::config::TrainRecipe;
use crate::data;
use crate::data::batch::Share;
use crate::data::loader::{self, BatchSource, Loader};
use crate::nas::space::trained_net::{self, Built};
use crate::results::diverged::check_finite;
use crate::results::rows::{EpochRow, Term};
use crate::stage::{Outcome, StageCtx};
use crate::train::checkpoint::{prefixed, Mark};
use crate::train::graphed_step::{GraphedStep, StepOut};
use crate::train::metrics::{top1_correct, DeviceMean, ResumePoint, StepInfo};
use crate::train::optim::{Optimizer, ParamGroup, Sgd};
use crate::train::recorder::{stop_if_asked, summary_row, Finish, Recorder, RunMeta};
use crate::train::rng::{derive_seed, seed_step, Determinism, Stream, INIT_STEP};
use crate::train::schedule::{drop_path_prob, WarmupCosine};
use crate::train::variables::{all_variables, define_zero_grads, shallow};
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
    /// The best test top-1 so far (absent in checkpoints written before it was kept).
    #[serde(default)]
    best: Option<Best>,
}

/// The epoch with the best test top-1 and its accuracies (%): the official ImageNet scripts keep its
/// weights as `model_best` (`is_best = top1 > best_top1`, ties keep the earlier epoch).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
struct Best {
    epoch: u32,
    top1: f64,
    top5: Option<f64>,
}

impl Best {
    /// The best after an epoch with `top1` / `top5`; `true` when that epoch is the new best.
    fn update(best: &mut Option<Best>, epoch: u32, top1: f64, top5: Option<f64>) -> bool {
        let better = best.is_none_or(|b| top1 > b.top1);
        if better {
            *best = Some(Best { epoch, top1, top5 });
        }
        better
    }
}

impl RunMeta for TrainMeta {
    fn wall_s_mut(&mut self) -> &mut f64 {
        &mut self.wall_s
    }
}

pub fn run(ctx: &StageCtx) -> Outcome {
    Ok(train(ctx, &recipe(ctx)?)?)
}

/// The experiment's `train` section with the recipe's defaults filled in.
pub(super) fn recipe(ctx: &StageCtx) -> Result<TrainRecipe> {
    let t = ctx
        .resolved
        .experiment
        .train
        .as_ref()
        .context("the experiment has no `train` section")?;
    Ok(TrainRecipe::of(t))
}

/// Mean cross-entropy against labels smoothed by ε: (1 − ε)·onehot + ε/K (ImageNet recipes: 0.1).
fn smoothed_ce(logits: &Tensor, y: &Tensor, smoothing: f64) -> Tensor {
    logits.cross_entropy_loss::<Tensor>(y, None, Reduction::Mean, -100, smoothing)
}

/// A training run's live state: the network, its optimiser, the data, the epoch's running means.
pub(super) struct TrainState {
    pub(super) vs: nn::VarStore,
    pub(super) built: Built,
    pub(super) params: Vec<(String, Tensor)>,
    /// The BatchNorm running statistics (every variable that is not a parameter).
    pub(super) buffers: Vec<Tensor>,
    pub(super) opt: Sgd,
    pub(super) sched: WarmupCosine,
    pub(super) train_loader: Loader,
    pub(super) test_source: Box<dyn BatchSource>,
    pub(super) loss: DeviceMean,
    pub(super) top1: DeviceMean,
    meta: TrainMeta,
}

impl TrainState {
    pub(super) fn new(ctx: &StageCtx, t: &TrainRecipe) -> Result<TrainState> {
        let e = &ctx.resolved.experiment;
        let (device, seed) = (ctx.device, ctx.seed);
        let ds = data::open(&e.dataset, device)?;
        let batching = loader::Batching {
            batch_size: t.batch as usize,
            drop_last: false,
            shuffle: true,
            seed: derive_seed(seed, Stream::Shuffle, Phase::Train, 0, 0) as u64,
        };
        let cutout = i64::from(t.cutout);
        // this rank loads only the images of its slices
        let groups = t.sub_batches.max(1) as usize;
        let share = Share {
            own: crate::dist::ranks().own(groups),
            groups,
        };
        let (train_loader, test_source) = batches::train_loaders(
            &ds,
            &e.dataset,
            batching,
            (cutout > 0).then_some(cutout),
            device,
            &share,
        )?;
        // Initial weights come from the run's seed (a stream of their own), so two runs start alike.
        tch::manual_seed(derive_seed(seed, Stream::Step, Phase::Train, 0, INIT_STEP));
        let vs = nn::VarStore::new(device);
        let search_dir = ctx.upstream.as_ref().map(|(_, d)| d.path().to_path_buf());
        let built = trained_net::build(&vs.root(), e, t, search_dir.as_deref(), ds.classes, seed)?;
        let params = crate::train::optim::var_store_params(&vs);
        let buffers = all_variables(&vs)
            .into_iter()
            .filter(|(n, _)| !params.iter().any(|(p, _)| p == n))
            .map(|(_, t)| t)
            .collect();
        let group = ParamGroup::new("w", shallow(&params), t.lr, t.weight_decay);
        Ok(TrainState {
            buffers,
            opt: Sgd::new(vec![group], t.momentum),
            sched: WarmupCosine::for_recipe(t.recipe, t.lr, t.epochs, t.warmup_epochs),
            vs,
            built,
            params,
            train_loader,
            test_source,
            loss: DeviceMean::new(device),
            top1: DeviceMean::new(device),
            meta: TrainMeta {
                epoch: 0,
                steps: 0,
                loader: loader::LoaderState {
                    epoch: 0,
                    position: 0,
                },
                wall_s: 0.0,
                best: None,
            },
        })
    }

    /// Everything a checkpoint holds as tensors.
    fn tensors(&self) -> Vec<(String, Tensor)> {
        let mut v = prefixed("w", &all_variables(&self.vs));
        v.extend(self.opt.state_tensors("opt"));
        v.extend(self.loss.state_tensors("acc_loss"));
        v.extend(self.top1.state_tensors("acc_top1"));
        v
    }

    /// Restores the newest checkpoint of the run, if there is one.
    pub(super) fn restore(&mut self, ctx: &StageCtx) -> Result<()> {
        if let Some(loaded) = Recorder::latest::<TrainMeta>(ctx.dir)? {
            tracing::info!(
                checkpoint = loaded.mark.folder_name(),
                "resuming training from a checkpoint"
            );
            self.meta = loaded.meta.clone();
            tch::no_grad(|| loaded.restore_into("w", &all_variables(&self.vs)))?;
            self.opt.load_state_tensors("opt", &loaded.tensors)?;
            self.loss.load_state_tensors("acc_loss", &loaded.tensors)?;
            self.top1.load_state_tensors("acc_top1", &loaded.tensors)?;
            self.train_loader.resume(self.meta.loader);
        }
        // See `variables::define_zero_grads`: fresh and resumed runs must step alike.
        define_zero_grads(self.params.iter().map(|(_, t)| t));
        Ok(())
    }

    /// The CUDA graph of the training step, when `train.cuda_graphs` asks for one (`strict`: refuse
    /// rather than ignore it on the CPU). η then lives on the device, where a replay reads it.
    pub(super) fn graphed_step(
        &mut self,
        ctx: &StageCtx,
        t: &TrainRecipe,
        strict: bool,
    ) -> Result<Option<GraphedStep>> {
        if !t.cuda_graphs {
            return Ok(None);
        }
        anyhow::ensure!(
            t.sub_batches == 1,
            "train.cuda_graphs captures one whole-batch step; it does not combine with train.sub_batches: {} (set one or the other)",
            t.sub_batches
        );
        anyhow::ensure!(
            ctx.resolved.experiment.precision == crate::config::Precision::Fp32,
            "train.cuda_graphs does not combine with precision: bf16 (autocast caches its bf16 weight copies, which a capture would freeze); use one or the other"
        );
        let g = GraphedStep::open(ctx.device, strict)?;
        if g.is_some() {
            self.opt.keep_lr_on_device();
        }
        Ok(g)
    }

    /// Saves a checkpoint at `mark` (the loader's position included).
    fn checkpoint(&mut self, rec: &mut Recorder, mark: Mark) -> Result<()> {
        self.meta.loader = self.train_loader.state();
        let tensors = self.tensors();
        rec.checkpoint(mark, &mut self.meta, &tensors)
    }
}

fn train(ctx: &StageCtx, t: &TrainRecipe) -> Result<()> {
    let _determinism = Determinism::apply(ctx.resolved.experiment.deterministic);
    let mut st = TrainState::new(ctx, t)?;
    st.restore(ctx)?;
    let mut graph = st.graphed_step(ctx, t, false)?;
    let at = ResumePoint {
        phase: Phase::Train,
        epoch: st.meta.epoch,
        step: st.meta.steps,
    };
    let mut rec = Recorder::open(ctx.dir, ctx.seed, at, st.meta.wall_s, false)?;
    let (mut top1, mut top5) = (None, None);
    while st.meta.epoch < t.epochs {
        let epoch = st.meta.epoch;
        let drop_path = drop_path_prob(t.drop_path, epoch, t.epochs); // p·e/E
        st.built.net.set_drop_path(drop_path);
        crate::progress::epoch_begin(st.train_loader.batches_per_epoch() as u64);
        loop {
            if let Some(req) = rec.signal()? {
                let mark = Mark {
                    epochs: u64::from(epoch),
                    steps: st.meta.steps,
                };
                st.checkpoint(&mut rec, mark)?;
                stop_if_asked(req, epoch)?;
            }
            let position = st.train_loader.state().position;
            let Some(b) = st.train_loader.next_batch()? else {
                break;
            };
            let at = (epoch, position, drop_path);
            let _ = train_step(ctx, t, &mut st, graph.as_mut(), &mut rec, &b, at)?;
        }
        if let Some(g) = &graph {
            let c = g.counts;
            tracing::info!(
                epoch,
                captures = c.captures,
                replays = c.replays,
                eager = c.eager,
                "cuda graphs of the training step so far"
            );
        }
        rec.flush_steps()?;
        (top1, top5) = end_of_epoch(ctx, &mut st, &mut rec, epoch)?;
    }
    let mut summary = summary_row(ctx, Phase::Train, rec.wall_s());
    summary.acc_test_top1_pct = top1;
    summary.acc_test_top5_pct = top5;
    summary.acc_test_best_top1_pct = st.meta.best.map(|b| b.top1);
    summary.acc_test_best_top5_pct = st.meta.best.and_then(|b| b.top5);
    summary.params_m = Some(st.built.params_m);
    summary.macs_m = st.built.macs_m;
    let data_record = serde_json::json!({
        "channels": st.built.channels,
        "unreadable_images": {
            "train": st.train_loader.source().unreadable(),
            "test": st.test_source.unreadable(),
        },
    });
    rec.finish(Finish {
        genotype_json: st.built.genotype_json.clone(),
        data_record,
        summary,
    })
}

/// One SGD step on batch `b` at (epoch, position in the epoch, drop-path rate): lr from the
/// schedule, the step (eager, or a replay of its CUDA graph), and the step's terms into the log.
pub(super) fn train_step(
    ctx: &StageCtx,
    t: &TrainRecipe,
    st: &mut TrainState,
    graph: Option<&mut GraphedStep>,
    rec: &mut Recorder,
    b: &loader::Batch,
    (epoch, position, drop_path): (u32, u64, f64),
) -> Result<StepOut> {
    seed_step(ctx.seed, Phase::Train, epoch, st.meta.steps);
    let per_epoch = st.train_loader.batches_per_epoch() as u64;
    let lr = st.sched.lr(epoch, position, per_epoch);
    st.opt.set_lr_all(lr);
    let slices = Slices {
        seed: ctx.seed,
        epoch,
        step: st.meta.steps,
    };
    let TrainState {
        built,
        params,
        buffers,
        opt,
        train_loader,
        ..
    } = st;
    let mut body = |x: &Tensor, y: &Tensor| step_body(t, built, params, opt, x, y);
    let out = match graph {
        Some(g) => g.step(drop_path, &b.images, &b.labels, train_loader, &mut body)?,
        // An epoch's last batch with fewer images than G slices (DDP would pad it) runs whole, as
        // one slice: every rank computes the same step from the step's own seed, so no all-reduce.
        None if t.sub_batches > 1 && b.images.size()[0] >= i64::from(t.sub_batches) => {
            let ranks = crate::dist::ranks();
            sub_batch_step(t, built, params, buffers, opt, b, slices, ranks)?
        }
        None => body(&b.images, &b.labels),
    };
    let bsz = b.images.size()[0] as f64;
    st.loss.add(&out.loss, bsz);
    st.top1.add(&out.acc, bsz);
    let terms = [
        (Term::LossTrain, &out.loss),
        (Term::AccTrainPct, &out.acc),
        (Term::GradNormWeights, &out.gnorm),
    ];
    let info = StepInfo {
        phase: Phase::Train,
        epoch,
        step: st.meta.steps,
        images: bsz as u64,
        lr_weights: Some(lr),
        lr_arch: None,
        lat_ms: None,
    };
    rec.record(info, &terms, Vec::new())?;
    st.meta.steps += 1;
    Ok(out)
}

/// The step itself, on the tensors it is given (a batch, or a CUDA graph's static inputs): the loss
/// with the auxiliary head, backward, clipping, the SGD update. Nothing here reads the device.
fn step_body(
    t: &TrainRecipe,
    built: &Built,
    params: &[(String, Tensor)],
    opt: &mut Sgd,
    images: &Tensor,
    labels: &Tensor,
) -> StepOut {
    opt.zero_grad();
    let (logits, aux) = built.forward_t(images, true);
    let mut loss = smoothed_ce(&logits, labels, t.label_smoothing);
    if let Some(aux) = aux {
        loss += smoothed_ce(&aux, labels, t.label_smoothing) * t.auxiliary_weight;
        // ℓ + w_aux·ℓ_aux
    }
    loss.backward();
    let gnorm = clip_grad_norm(params.iter().map(|(_, t)| t), t.grad_clip);
    opt.step();
    let acc = logits
        .detach()
        .argmax(-1, false)
        .eq_tensor(labels)
        .to_kind(Kind::Float)
        .mean(Kind::Float)
        * 100.0;
    StepOut {
        loss: loss.detach(),
        acc,
        gnorm,
    }
}

/// Where a step stands, for the slices' random streams.
#[derive(Clone, Copy)]
struct Slices {
    seed: u64,
    epoch: u32,
    step: u64,
}

/// The step with `train.sub_batches` G: slice g of `b` is its own forward pass (its own BatchNorm
/// statistics; its drop-path drawn from `Stream::SubBatch` at step·G + g, slice 0 from the step's
/// stream), `∇ (1/G)·Σ_g ℓ_g` (ℓ_g the slice's loss, with its auxiliary head), then the clip and the
/// SGD update — G GPUs under DDP. Over ranks each runs its own slices and the gradients are summed,
/// so every rank takes the one-process step. BN running statistics follow slice 0 (DDP broadcasts
/// rank 0's buffers), whatever the number of ranks.
#[allow(clippy::too_many_arguments)]
fn sub_batch_step(
    t: &TrainRecipe,
    built: &Built,
    params: &[(String, Tensor)],
    buffers: &[Tensor],
    opt: &mut Sgd,
    b: &loader::Batch,
    at: Slices,
    ranks: &crate::dist::Ranks,
) -> Result<StepOut> {
    let groups = i64::from(t.sub_batches);
    let own = ranks.own(groups as usize);
    let n = b.images.size()[0]; // ≥ G: a smaller last batch runs whole (train_step)
    opt.zero_grad();
    let (mut losses, mut correct, mut after_first) = (Vec::new(), Vec::new(), None);
    for (g, part) in b.split(groups).into_iter().enumerate() {
        if !own.contains(&g) {
            continue;
        }
        if g > 0 {
            let step = at.step * groups as u64 + g as u64;
            tch::manual_seed(derive_seed(
                at.seed,
                Stream::SubBatch,
                Phase::Train,
                at.epoch,
                step,
            ));
        }
        let (logits, aux) = built.forward_t(&part.images, true);
        let mut loss = smoothed_ce(&logits, &part.labels, t.label_smoothing);
        if let Some(aux) = aux {
            loss += smoothed_ce(&aux, &part.labels, t.label_smoothing) * t.auxiliary_weight;
        }
        (&loss / groups as f64).backward(); // ∇ (1/G)·Σ_g ℓ_g
        losses.push(loss.detach().reshape([1]));
        correct.push(top1_correct(&logits.detach(), &part.labels));
        if g == 0 {
            after_first = Some(tch::no_grad(|| {
                buffers.iter().map(Tensor::copy).collect::<Vec<_>>()
            }));
        }
    }
    tch::no_grad(|| {
        if let Some(saved) = &after_first {
            for (b, s) in buffers.iter().zip(saved) {
                b.shallow_clone().copy_(s); // running statistics as of slice 0
            }
        }
    });
    let refs: Vec<&Tensor> = buffers.iter().collect();
    ranks.broadcast("the BatchNorm running statistics", &refs)?;
    let (loss, correct) = ranks.slice_totals(&losses, &correct, own.start, groups)?;
    crate::train::variables::sum_gradients(params, ranks)?;
    let gnorm = clip_grad_norm(params.iter().map(|(_, t)| t), t.grad_clip);
    opt.step();
    Ok(StepOut {
        loss,
        acc: correct * (100.0 / n as f64),
        gnorm,
    })
}

/// Test accuracy, the epoch's row, a checkpoint. Returns top-1 and top-5 (%).
fn end_of_epoch(
    ctx: &StageCtx,
    st: &mut TrainState,
    rec: &mut Recorder,
    epoch: u32,
) -> Result<(Option<f64>, Option<f64>)> {
    let (t1, t5) = test_accuracy(&st.built, st.test_source.as_ref(), ctx.device)?;
    check_finite(
        Phase::Train,
        epoch,
        st.meta.steps,
        &[("acc_test_top1_pct", Some(t1))],
    )?;
    let row = EpochRow {
        phase: Phase::Train,
        seed: ctx.seed,
        epoch,
        loss_train: st.loss.mean(),
        acc_train_pct: st.top1.mean(),
        loss_val: None,
        acc_val_pct: None,
        acc_test_top1_pct: Some(t1),
        acc_test_top5_pct: t5,
        genotype: None,
        wall_s: rec.wall_s(),
    };
    st.loss.reset();
    st.top1.reset();
    rec.end_epoch(row, None)?;
    if Best::update(&mut st.meta.best, epoch, t1, t5) && keeps_model_best(ctx) {
        save_model_best(st, ctx.dir)?;
    }
    st.meta.epoch += 1;
    st.checkpoint(rec, Mark::epoch_end(u64::from(st.meta.epoch)))?;
    Ok((Some(t1), t5))
}

/// The ImageNet recipes keep the best epoch's weights, as the official `train_eval_imagenet.py` and
/// `proxylessnas/train_eval.py` (`model_best.pth.tar`); the CIFAR script reports the last epoch only.
fn keeps_model_best(ctx: &StageCtx) -> bool {
    ctx.resolved
        .experiment
        .train
        .as_ref()
        .is_some_and(|t| t.recipe != crate::config::Recipe::Cifar)
}

/// `model_best.pt`: the network's weights now, written atomically (written before the epoch's
/// checkpoint, so a run killed in between redoes the epoch and writes it again).
fn save_model_best(st: &TrainState, dir: &crate::results::RunDir) -> Result<()> {
    let weights = all_variables(&st.vs);
    crate::results::atomic::write_with(&dir.file(crate::results::layout::MODEL_BEST), |f| {
        Ok(Tensor::save_multi_to_stream(&weights, f)?)
    })
}

/// Top-1 and (with ≥ 5 classes) top-5 accuracy, %, on the whole test split, in eval mode.
fn test_accuracy(
    net: &trained_net::Built,
    src: &dyn BatchSource,
    device: tch::Device,
) -> Result<(f64, Option<f64>)> {
    // the hit rates accumulate on the device: one read at the end, not one per batch
    let (mut top1, mut top5, mut k) = (DeviceMean::new(device), DeviceMean::new(device), 0);
    // over ranks, rank r tests batches r, r + R, …, and the sums are added up
    let ranks = crate::dist::ranks();
    tch::no_grad(|| -> Result<()> {
        for i in (ranks.rank()..src.batches_per_epoch()).step_by(ranks.world()) {
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
    top1.sum_over(ranks, "the test top-1")?;
    top5.sum_over(ranks, "the test top-5")?;
    let k = ranks.gather("the number of classes ranked", &Tensor::from_slice(&[k]))?;
    let k = k.max().int64_value(&[]); // a rank with no test batch ranked none
    let pct = |m: &DeviceMean| 100.0 * m.mean().unwrap_or(0.0);
    Ok((pct(&top1), (k == 5).then(|| pct(&top5))))
}

#[cfg(test)]
mod tests {
    use super::Best;

    #[test]
    fn the_best_epoch_is_the_first_with_the_highest_top1_and_keeps_its_top5() {
        let mut best = None;
        assert!(Best::update(&mut best, 0, 10.0, Some(30.0)));
        assert!(Best::update(&mut best, 1, 12.0, Some(29.0)));
        assert!(!Best::update(&mut best, 2, 12.0, Some(40.0))); // a tie keeps the earlier epoch
        assert!(!Best::update(&mut best, 3, 11.0, Some(50.0)));
        assert_eq!(
            best,
            Some(Best {
                epoch: 1,
                top1: 12.0,
                top5: Some(29.0)
            })
        );
    }
}
