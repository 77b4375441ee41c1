//! The live state of a search: the space (supernet + distribution), the weights, the three
//! optimisers (warm-up Adam, search Adam on the weights, Adam on the logits), the estimator's state,
//! the data iterators, the epoch's running means and the position. One [`SearchState::tensors`] /
//! [`SearchState::restore`] pair is everything a checkpoint holds.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use tch::{nn, Tensor};

use crate::config::{self, LrScale, Sampling};
use crate::data::loader::{self, Loader};
use crate::nas::estimator::{EmaBaseline, EstimatorState, GradVariance};
use crate::nas::relax_cv::RelaxControlVariate;
use crate::nas::space::SearchSpace;
use crate::results::{Phase, RunDir};
use crate::stage::StageCtx;
use crate::train::checkpoint::{prefixed, Mark};
use crate::train::metrics::{DeviceMean, ResumePoint};
use crate::train::optim::{Adam, AdamConfig, AdamEps, Optimizer, ParamGroup};
use crate::train::recorder::{Recorder, RunMeta};
use crate::train::schedule::{search_cosine, Cosine};
use crate::train::variables::{all_variables, define_zero_grads, shallow};

use super::arch_per::ArchPer;

/// Where a run is; saved as the checkpoint's metadata (written last: the commit marker).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct SearchMeta {
    /// Epoch over both phases (warm-up epochs first).
    pub epoch: u32,
    /// Steps done in the warm-up / search phase so far.
    pub warmup_steps: u64,
    pub search_steps: u64,
    pub train_loader: loader::LoaderState,
    pub val_loader: loader::LoaderState,
    #[serde(with = "crate::train::checkpoint::exact_f64")]
    pub wall_s: f64,
}

impl RunMeta for SearchMeta {
    fn wall_s_mut(&mut self) -> &mut f64 {
        &mut self.wall_s
    }
}

impl SearchMeta {
    /// The step counter of `phase` (steps restart in every phase).
    pub fn steps_in(&self, phase: Phase) -> u64 {
        match phase {
            Phase::Warmup => self.warmup_steps,
            _ => self.search_steps,
        }
    }

    pub fn count_step(&mut self, phase: Phase) {
        match phase {
            Phase::Warmup => self.warmup_steps += 1,
            _ => self.search_steps += 1,
        }
    }

    /// Where the tables resume: the phase, its epoch and its step of the checkpoint.
    pub fn resume_point(&self, warmup_epochs: u32) -> ResumePoint {
        if self.epoch < warmup_epochs {
            ResumePoint {
                phase: Phase::Warmup,
                epoch: self.epoch,
                step: self.warmup_steps,
            }
        } else {
            ResumePoint {
                phase: Phase::Search,
                epoch: self.epoch - warmup_epochs,
                step: self.search_steps,
            }
        }
    }
}

/// The learning rates of the search (spec §1.5): scaled by batch/64 under `linear64` (the minima are
/// not scaled); the warm-up runs at the constant weight lr, the search phase on cosines.
pub(super) struct Rates {
    pub weights: f64,
    pub arch: f64,
    pub cos_weights: Cosine,
    pub cos_arch: Cosine,
}

impl Rates {
    fn new(s: &config::Search) -> Rates {
        let scale = match s.lr.scale {
            LrScale::None => 1.0,
            LrScale::Linear64 => f64::from(s.batch) / 64.0,
        };
        let (weights, arch) = (s.lr.weights * scale, s.lr.arch * scale);
        Rates {
            weights,
            arch,
            cos_weights: search_cosine(weights, s.lr.weights_min, s.epochs.search),
            cos_arch: search_cosine(arch, s.lr.arch_min, s.epochs.search),
        }
    }
}

/// The decay of the gradient-variance moving averages.
const GRAD_VAR_DECAY: f64 = 0.9;

pub(super) struct SearchState<S: SearchSpace> {
    pub space: S,
    pub vs: nn::VarStore,
    /// The supernet's trainable weights (shallow handles).
    pub weights: Vec<(String, Tensor)>,
    /// The architecture logits (shallow handles).
    pub alpha_params: Vec<(String, Tensor)>,
    pub est: EstimatorState,
    /// The warm-up has its own Adam (constant lr), the search phase another (cosine), as officially.
    pub opt_warm: Adam,
    pub opt_w: Adam,
    pub opt_a: Adam,
    pub rates: Rates,
    pub train_loader: Loader,
    pub val_loader: Loader,
    /// The epoch's training loss and top-1 (device-side running means).
    pub loss: DeviceMean,
    pub top1: DeviceMean,
    pub meta: SearchMeta,
    pub arch: ArchPer,
    /// The latency term of a search with a latency objective.
    pub latency: Option<super::latency::LatencyTerm>,
    /// The epoch's running estimate of the architecture gradient's variance (a logged diagnostic;
    /// checkpointed, so that a run resumed mid-epoch logs what the uninterrupted one does).
    pub grad_var: GradVariance,
}

impl<S: SearchSpace> SearchState<S> {
    /// Optimisers and state around a freshly built space (`vs` holds its weights).
    pub fn new(
        s: &config::Search,
        space: S,
        vs: nn::VarStore,
        loaders: (Loader, Loader),
    ) -> SearchState<S> {
        let device = vs.device();
        let est = EstimatorState::new(s.estimator, space.distribution());
        let adam = AdamConfig {
            eps_placement: AdamEps::BeforeBiasCorrection,
            ..AdamConfig::default()
        };
        let rates = Rates::new(s);
        let weights = crate::train::optim::var_store_params(&vs);
        let weight_adam = || {
            let group = ParamGroup::new(
                "w",
                shallow(&weights),
                rates.weights,
                s.weight_decay.weights,
            );
            Adam::new(vec![group], adam)
        };
        let (opt_warm, opt_w) = (weight_adam(), weight_adam());
        let alpha_params: Vec<(String, Tensor)> = space
            .distribution()
            .groups
            .iter()
            .map(|g| (g.name.clone(), g.logits.shallow_clone()))
            .collect();
        let group = ParamGroup::new(
            "alpha",
            shallow(&alpha_params),
            rates.arch,
            s.weight_decay.arch,
        );
        let opt_a = Adam::new(vec![group], adam);
        let arch = match s.sampling {
            Sampling::PerExample => ArchPer::Example(i64::from(s.sub_batches.max(1))),
            Sampling::PerBatch => ArchPer::SubBatch(i64::from(s.sub_batches.max(1))),
        };
        let start = loader::LoaderState {
            epoch: 0,
            position: 0,
        };
        SearchState {
            space,
            vs,
            weights,
            alpha_params,
            est,
            opt_warm,
            opt_w,
            opt_a,
            rates,
            train_loader: loaders.0,
            val_loader: loaders.1,
            loss: DeviceMean::new(device),
            top1: DeviceMean::new(device),
            meta: SearchMeta {
                epoch: 0,
                warmup_steps: 0,
                search_steps: 0,
                train_loader: start,
                val_loader: start,
                wall_s: 0.0,
            },
            arch,
            latency: None,
            grad_var: GradVariance::new(GRAD_VAR_DECAY),
        }
    }

    /// At an epoch's first step: the gradient-variance estimate starts afresh.
    pub fn restart_grad_var(&mut self) {
        self.grad_var = GradVariance::new(GRAD_VAR_DECAY);
    }

    /// Everything a checkpoint holds as tensors.
    pub fn tensors(&self) -> Vec<(String, Tensor)> {
        let mut t = prefixed("w", &all_variables(&self.vs));
        t.extend(prefixed("alpha", &self.alpha_params));
        t.extend(self.opt_warm.state_tensors("opt_warm"));
        t.extend(self.opt_w.state_tensors("opt_w"));
        t.extend(self.opt_a.state_tensors("opt_a"));
        t.push((
            "est/baseline".into(),
            Tensor::from_slice(&[self.est.baseline.value()]),
        ));
        if let Some(cv) = &self.est.relax {
            t.extend(prefixed("relax", &cv.state()));
        }
        if let Some(l) = &self.latency {
            t.push((
                "lat/baseline".into(),
                Tensor::from_slice(&[l.baseline.value()]),
            ));
        }
        t.extend(self.loss.state_tensors("acc_loss"));
        t.extend(self.top1.state_tensors("acc_top1"));
        t.extend(self.grad_var.state_tensors("grad_var"));
        t
    }

    /// Restores the newest checkpoint of the run, if there is one; then gives every parameter a
    /// defined gradient, so fresh and resumed runs step alike (`variables::define_zero_grads`).
    pub fn restore(&mut self, ctx: &StageCtx) -> Result<()> {
        if let Some(loaded) = Recorder::latest::<SearchMeta>(ctx.dir)? {
            tracing::info!(
                checkpoint = loaded.mark.folder_name(),
                "resuming the search from a checkpoint"
            );
            self.meta = loaded.meta.clone();
            tch::no_grad(|| -> Result<()> {
                loaded.restore_into("w", &all_variables(&self.vs))?;
                loaded.restore_into("alpha", &self.alpha_params)
            })?;
            self.opt_warm
                .load_state_tensors("opt_warm", &loaded.tensors)?;
            self.opt_w.load_state_tensors("opt_w", &loaded.tensors)?;
            self.opt_a.load_state_tensors("opt_a", &loaded.tensors)?;
            self.est.baseline = EmaBaseline::at(
                loaded
                    .tensors
                    .get("est/baseline")
                    .context("checkpoint lacks est/baseline")?
                    .double_value(&[0]),
            );
            if let Some(cv) = &mut self.est.relax {
                restore_relax(cv, &loaded.tensors, ctx.dir)?;
            }
            if let Some(l) = &mut self.latency {
                l.baseline = EmaBaseline::at(
                    loaded
                        .tensors
                        .get("lat/baseline")
                        .context("checkpoint lacks lat/baseline")?
                        .double_value(&[0]),
                );
            }
            self.loss.load_state_tensors("acc_loss", &loaded.tensors)?;
            self.top1.load_state_tensors("acc_top1", &loaded.tensors)?;
            self.grad_var
                .load_state_tensors("grad_var", &loaded.tensors);
            self.train_loader.resume(self.meta.train_loader);
            self.val_loader.resume(self.meta.val_loader);
        }
        if let Some(l) = &mut self.latency {
            l.resume_at(self.meta.epoch);
        }
        define_zero_grads(
            self.weights
                .iter()
                .chain(self.alpha_params.iter())
                .map(|(_, t)| t),
        );
        Ok(())
    }

    /// Saves a checkpoint at `mark`, the loaders' positions included.
    pub fn checkpoint(&mut self, rec: &mut Recorder, mark: Mark) -> Result<()> {
        self.meta.train_loader = self.train_loader.state();
        self.meta.val_loader = self.val_loader.state();
        let tensors = self.tensors();
        rec.checkpoint(mark, &mut self.meta, &tensors)
    }

    /// The mark of a checkpoint taken now, mid-epoch.
    pub fn mark_now(&self) -> Mark {
        Mark {
            epochs: u64::from(self.meta.epoch),
            steps: self.meta.warmup_steps + self.meta.search_steps,
        }
    }
}

/// RELAX's φ network comes back through its own loader (a temporary file next to the run).
fn restore_relax(
    cv: &mut RelaxControlVariate,
    tensors: &std::collections::BTreeMap<String, Tensor>,
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
