//! The latency term of a search (spec §2.5, §4), for a space that has a discrete network to time:
//!
//! * once, before the first architecture step: the ridge surrogate, from the cache of this device and
//!   space configuration or fitted on `surrogate_samples` architectures drawn from the (still uniform)
//!   distribution, each timed on the first `batch` images of the training batch;
//! * every architecture step: a second, independent sample b', ζ'⋆; L_d = c_t·relu(Lat(b') − T) with
//!   Lat(b') timed (we score the sample we timed: the official REINFORCE branch times the accuracy
//!   sample and scores a fresh one, §2.3), L_c = c_t·relu(s(ζ'⋆) − T), and
//!   S_lat = log q(b')·sg(L_d − L_c) + L_c (REBAR/RELAX, §2.5) or, for `reinforce`,
//!   S_lat = log q(b')·sg(L_d − β_lat) + β_lat with its own moving-average baseline;
//! * every epoch: the mode architecture's latency, timed, with the surrogate's prediction, into
//!   `latency.parquet` with the device that measured it.
//!
//! Over ranks, rank 0 alone times: it fits (or reads back, or takes from the cache) the surrogate and
//! sends it to the others, and sends them each latency it times, so every rank computes with rank 0's
//! numbers bit for bit and ranks > 0 time nothing.

use std::path::PathBuf;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::config::estimator::ControlVariate;
use crate::config::{self, Estimator, Latency, LatencyMeasure, ProxylessSupernet};
use crate::dist::Alone;
use crate::nas::distribution::{Categoricals, Sampler};
use crate::nas::estimator::{score_with_surrogate, EmaBaseline};
use crate::nas::latency::cache::SurrogateKey;
use crate::nas::latency::{measure_ms, DeviceStamp, Surrogate, Timing};
use crate::nas::objective::LatencyHinge;
use crate::nas::space::SearchSpace;
use crate::results::diverged::Finite;
use crate::results::latency_rows::{latency_frame, LatencyRow};
use crate::results::{atomic, parquet, Phase, RunDir, Table};
use crate::stage::StageCtx;
use crate::train::rng::{derive_seed, Stream, INIT_STEP};

/// The surrogate of a run, beside its tables (a resumed run reads it back, never refits).
pub const SURROGATE_FILE: &str = "latency_surrogate.json";
/// The per-epoch rows, kept as JSON so that a resumed run appends to them.
const ROWS_FILE: &str = "latency_rows.json";
/// Untimed passes before each timing (allocator and kernel selection).
const WARMUP_PASSES: u32 = 1;

#[derive(Serialize, Deserialize)]
struct RunSurrogate {
    stamp: DeviceStamp,
    cache_file: Option<PathBuf>,
    surrogate: Surrogate,
}

/// Where this process is with the run's surrogate.
enum SurrogateState {
    /// Not known yet: rank 0 takes it from the cache or fits it at the first search step.
    Unknown,
    /// Rank 0 of a resumed run: the surrogate an earlier attempt fitted, read back from the run
    /// folder, not yet sent to the other ranks.
    ReadBack(Surrogate),
    /// Rank 0's, on every rank.
    Shared(Surrogate),
}

/// Sums of one epoch's per-step latencies.
#[derive(Clone, Copy, Debug, Default)]
struct EpochSums {
    measured: f64,
    predicted: f64,
    n: u64,
}

pub(super) struct LatencyTerm {
    hinge: LatencyHinge,
    timing: Timing,
    batch: i64,
    samples: u32,
    ridge: f64,
    measure: LatencyMeasure,
    temperature: f64,
    key: SurrogateKey,
    cache_dir: PathBuf,
    dir: RunDir,
    device: Device,
    surrogate: SurrogateState,
    /// β of the `reinforce` latency branch (checkpointed).
    pub baseline: EmaBaseline,
    sums: EpochSums,
    rows: Vec<LatencyRow>,
    seed: u64,
}

/// The control variate the latency term goes through: the estimator's own (spec §2.5).
fn control_variate_of(estimator: Estimator) -> Result<ControlVariate> {
    estimator.control_variate().with_context(|| {
        format!(
            "the latency term needs a score-function estimator (rebar, relax or reinforce), got {}",
            estimator.name()
        )
    })
}

/// The results root of a run folder (`<root>/runs/<experiment>/<tier>/<run>`), for the shared cache.
fn cache_dir_of(dir: &RunDir) -> PathBuf {
    dir.path()
        .ancestors()
        .nth(4)
        .map(|root| root.join("cache").join("latency"))
        .unwrap_or_else(|| dir.file("latency-cache"))
}

impl LatencyTerm {
    /// The term of a search with `l`, and the surrogate a previous attempt of this run fitted.
    pub fn open(ctx: &StageCtx, s: &config::Search, l: &Latency, classes: i64) -> Result<Self> {
        let e = &ctx.resolved.experiment;
        control_variate_of(s.estimator)?;
        let stamp = DeviceStamp::of(ctx.device);
        let p = ProxylessSupernet::of(&e.space, &e.dataset);
        let key = SurrogateKey {
            stamp,
            space: serde_json::json!({
                "space": "proxyless",
                "width_multiplier": p.width_multiplier,
                "resolution": p.resolution,
                "zero_dropout": p.zero_dropout,
                "classes": classes,
            }),
            batch: l.batch,
            repeats: l.repeats,
            samples: l.surrogate_samples,
            ridge: l.ridge,
        };
        let mut term = LatencyTerm {
            hinge: LatencyHinge::from(l),
            timing: Timing {
                warmup: WARMUP_PASSES,
                repeats: l.repeats,
            },
            batch: i64::from(l.batch),
            samples: l.surrogate_samples,
            ridge: l.ridge,
            measure: l.measure,
            temperature: s.temperature,
            key,
            cache_dir: cache_dir_of(ctx.dir),
            dir: ctx.dir.clone(),
            device: ctx.device,
            surrogate: SurrogateState::Unknown,
            baseline: EmaBaseline::default(),
            sums: EpochSums::default(),
            rows: Vec::new(),
            seed: ctx.seed,
        };
        let run_file = ctx.dir.file(SURROGATE_FILE);
        // ranks > 0 get rank 0's by the broadcast every rank joins (their copy of the run folder is
        // not read: one surrogate, one source)
        if crate::dist::ranks().is_first() && run_file.is_file() {
            let text = std::fs::read_to_string(&run_file)
                .with_context(|| format!("reading {}", run_file.display()))?;
            let saved: RunSurrogate = serde_json::from_str(&text)
                .with_context(|| format!("parsing {}", run_file.display()))?;
            term.surrogate = SurrogateState::ReadBack(saved.surrogate);
        }
        let rows_file = ctx.dir.file(ROWS_FILE);
        if rows_file.is_file() {
            let text = std::fs::read_to_string(&rows_file)?;
            term.rows = serde_json::from_str(&text)
                .with_context(|| format!("parsing {}", rows_file.display()))?;
        }
        Ok(term)
    }

    /// Rows of epochs at or after `global_epoch` were written by an attempt that did not reach its
    /// checkpoint: they are redone.
    pub fn resume_at(&mut self, global_epoch: u32) {
        self.rows.retain(|r| r.global_epoch < global_epoch);
    }

    /// The timed latency (ms) of the discrete network of one-hot `b` on `x`.
    fn time<S: SearchSpace>(&self, space: &S, b: &[Tensor], x: &Tensor) -> Result<f64> {
        let net = space
            .discrete_network(b)
            .context("this search space has no discrete network to time")?;
        Ok(measure_ms(self.device, self.timing, || drop(net(x))))
    }

    fn features<S: SearchSpace>(space: &S, xs: &[Tensor]) -> Result<Tensor> {
        space
            .arch_features(xs)
            .context("this search space has no architecture features for a latency surrogate")
    }

    /// The surrogate every rank uses: rank 0's, sent to the others the first time this process needs
    /// it, the same point on every rank (the first search step of this process, resumed or not).
    fn surrogate<S: SearchSpace>(&mut self, space: &S, x: &Tensor) -> Result<&Surrogate> {
        if !matches!(self.surrogate, SurrogateState::Shared(_)) {
            let ranks = crate::dist::ranks();
            let what = "the wait for rank 0's latency surrogate";
            let mut packed = if ranks.is_first() {
                let mut alone = ranks.alone(what);
                let s = self.first_rank_surrogate(space, x, &mut alone)?;
                alone.done()?;
                s.to_f64s()
            } else {
                ranks.await_first(what)?;
                Vec::new()
            };
            let mut len = [packed.len() as f64];
            ranks.broadcast_f64s("the latency surrogate's size", &mut len)?;
            packed.resize(len[0] as usize, 0.0);
            ranks.broadcast_f64s("the latency surrogate", &mut packed)?;
            let s = Surrogate::from_f64s(&packed)?;
            tracing::info!(
                "rank {} uses the latency surrogate {}",
                ranks.rank(),
                s.digest()
            );
            self.surrogate = SurrogateState::Shared(s);
        }
        match &self.surrogate {
            SurrogateState::Shared(s) => Ok(s),
            SurrogateState::Unknown | SurrogateState::ReadBack(_) => {
                unreachable!("the surrogate was shared above")
            }
        }
    }

    /// Rank 0's surrogate: this run's (read back), else the cache's, else fitted now on timed samples
    /// of the distribution; a new one is written into the run folder.
    fn first_rank_surrogate<S: SearchSpace>(
        &mut self,
        space: &S,
        x: &Tensor,
        alone: &mut Alone,
    ) -> Result<Surrogate> {
        if let SurrogateState::ReadBack(s) = &self.surrogate {
            return Ok(s.clone());
        }
        let (s, cache_file) = match self.key.load(&self.cache_dir)? {
            Some(s) => {
                tracing::info!(cache = %self.key.path(&self.cache_dir).display(), "latency surrogate from the cache");
                (s, None)
            }
            None => {
                // its own random stream: a run that fits and one that reads the cache then
                // draw the same architectures at every step (the loop re-seeds each step)
                tch::manual_seed(derive_seed(
                    self.seed,
                    Stream::Step,
                    Phase::Search,
                    0,
                    INIT_STEP,
                ));
                tracing::info!(
                    samples = self.samples,
                    "fitting the latency surrogate on timed architectures"
                );
                let s = self.fit(space, x, alone)?;
                (s.clone(), Some(self.key.store(&self.cache_dir, &s)?))
            }
        };
        let f = &s.fit;
        tracing::info!(
            device = %self.key.stamp.label(),
            mae_train_ms = f.mae_train_ms,
            mae_test_ms = f.mae_test_ms,
            r2_test = f.r2_test,
            "latency surrogate"
        );
        let saved = RunSurrogate {
            stamp: self.key.stamp.clone(),
            cache_file,
            surrogate: s.clone(),
        };
        atomic::write_json(&self.dir.file(SURROGATE_FILE), &saved)?;
        Ok(s)
    }

    /// `surrogate_samples` architectures of the current distribution, each timed; the ridge fit.
    /// Rank 0 fits alone: the other ranks hear it still works after each timing.
    fn fit<S: SearchSpace>(&self, space: &S, x: &Tensor, alone: &mut Alone) -> Result<Surrogate> {
        let n = u64::from(self.samples);
        let bar = ProgressBar::new(n).with_message(format!(
            "timing architectures for the latency surrogate on {}",
            self.key.stamp.device
        ));
        bar.set_style(
            ProgressStyle::with_template(
                "{msg} {bar:30} {pos}/{len} [{elapsed} elapsed, ETA {eta}]",
            )
            .expect("a valid template"),
        );
        let (mut xs, mut ys) = (Vec::new(), Vec::new());
        for _ in 0..n {
            let d = tch::no_grad(|| {
                space
                    .distribution()
                    .sample(1, self.temperature, Sampler::Original)
            });
            let feat = Self::features(space, &d.onehot)?
                .to_kind(Kind::Double)
                .reshape([-1]);
            xs.push(Vec::<f64>::try_from(&feat)?);
            ys.push(self.time(space, &d.onehot, x)?);
            bar.inc(1);
            alone.tick()?;
        }
        bar.finish_and_clear();
        Surrogate::fit(&xs, &ys, self.ridge, self.seed)
    }

    /// The surrogate every rank uses, once [`LatencyTerm::prepare`] ran.
    pub fn fitted(&self) -> Option<&Surrogate> {
        match &self.surrogate {
            SurrogateState::Shared(s) => Some(s),
            SurrogateState::Unknown | SurrogateState::ReadBack(_) => None,
        }
    }

    /// Rank 0's `measure()` on every rank (ranks > 0 run nothing): `N` numbers rank 0 measured.
    fn from_first<const N: usize>(
        what: &str,
        measure: impl FnOnce() -> Result<[f64; N]>,
    ) -> Result<[f64; N]> {
        let ranks = crate::dist::ranks();
        let mut v = if ranks.is_first() {
            measure()?
        } else {
            [0.0; N]
        };
        ranks.broadcast_f64s(what, &mut v)?;
        Ok(v)
    }

    /// Before the first architecture step, ahead of the step's seeding: the surrogate is ready.
    pub fn prepare<S: SearchSpace>(&mut self, space: &S, images: &Tensor) -> Result<()> {
        let x = images.narrow(0, 0, self.batch.min(images.size()[0]));
        self.surrogate(space, &x).map(|_| ())
    }

    /// S_lat of one architecture step (spec §2.5) on a second, independent sample, and the latency of
    /// that sample (ms, measured or predicted as configured).
    pub fn step<S: SearchSpace>(
        &mut self,
        space: &S,
        images: &Tensor,
        estimator: Estimator,
        chk: &mut Finite,
    ) -> Result<(Tensor, f64)> {
        let step = chk.step();
        let x = images.narrow(0, 0, self.batch.min(images.size()[0]));
        let surrogate = self.surrogate(space, &x)?.clone();
        let dist = space.distribution();
        let control = control_variate_of(estimator)?;
        let second = dist.sample(1, self.temperature, estimator.sampler()); // S' = alpha(1)
        let kind_dev = (second.log_prob.kind(), second.log_prob.device());
        let onehot_feat = Self::features(space, &second.onehot)?;
        let predicted_b = tch::no_grad(|| surrogate.predict(&onehot_feat)).double_value(&[0]);
        let lat = match self.measure {
            LatencyMeasure::Timed => {
                Self::from_first("the timed latency of the step's sample", || {
                    Ok([self.time(space, &second.onehot, &x)?])
                })?[0]
            }
            LatencyMeasure::Surrogate => predicted_b,
        };
        let l_d = self.hinge.penalty(
            &Tensor::from_slice(&[lat])
                .to_kind(kind_dev.0)
                .to_device(kind_dev.1),
            step,
        ); // c_t·relu(Lat(b') − T)
        let s_lat = match control {
            ControlVariate::MovingAverage => self.baseline.surrogate(&second.log_prob, &l_d), // log q(b')·sg(L_d − β) + β
            ControlVariate::ConditionalRelaxation => {
                let pred = surrogate.predict(&Self::features(space, &second.relaxed)?); // s(ζ'⋆)
                let l_c = self.hinge.penalty(&pred, step); // c_t·relu(s(ζ'⋆) − T)
                score_with_surrogate(&second, &l_d, &l_c, chk)?
            }
        };
        self.sums.measured += lat;
        self.sums.predicted += predicted_b;
        self.sums.n += 1;
        Ok((s_lat, lat))
    }

    /// The end of an epoch: the mode architecture timed (and predicted), a row of `latency.parquet`
    /// (returned, for the TensorBoard log).
    pub fn end_of_epoch<S: SearchSpace>(
        &mut self,
        space: &S,
        images: &Tensor,
        at: (Phase, u32, u32, u64),
    ) -> Result<&LatencyRow> {
        let (phase, epoch, global_epoch, step) = at;
        let x = images.narrow(0, 0, self.batch.min(images.size()[0]));
        let mode = mode_onehot(space.distribution());
        // rank 0's row on every rank: [latency, 1 if predicted, prediction]
        let [lat, predicted, pred] = Self::from_first("the mode architecture's latency", || {
            let lat = self.time(space, &mode, &x)?;
            Ok(match &self.surrogate {
                SurrogateState::Shared(s) | SurrogateState::ReadBack(s) => {
                    let f = Self::features(space, &mode)?;
                    [lat, 1.0, tch::no_grad(|| s.predict(&f)).double_value(&[0])]
                }
                SurrogateState::Unknown => [lat, 0.0, 0.0],
            })
        })?;
        let pred = (predicted == 1.0).then_some(pred);
        let stamp = &self.key.stamp;
        let n = self.sums.n as f64;
        self.rows.push(LatencyRow {
            seed: self.seed,
            phase,
            epoch,
            global_epoch,
            genotype: space.genotype_json(false)?,
            mode_lat_ms: lat,
            mode_pred_ms: pred,
            sample_lat_ms: (self.sums.n > 0).then(|| self.sums.measured / n),
            sample_pred_ms: (self.sums.n > 0).then(|| self.sums.predicted / n),
            latency_coeff: self.hinge.coeff_at(step),
            target_ms: self.hinge.target_ms,
            device: stamp.device.clone(),
            device_name: stamp.device_name.clone(),
            driver: stamp.driver.clone(),
            libtorch: stamp.libtorch.clone(),
            threads: stamp.threads,
        });
        self.sums = EpochSums::default();
        atomic::write_json(&self.dir.file(ROWS_FILE), &self.rows)?;
        let mut df = latency_frame(&self.rows)?;
        parquet::write(&self.dir.table(Table::Latency), Table::Latency, &mut df)?;
        tracing::info!(epoch, device = %stamp.label(), mode_lat_ms = lat, "latency of the mode architecture");
        Ok(&self.rows[self.rows.len() - 1])
    }
}

/// The one-hot of the distribution's mode, [S, 1, K] per group.
pub(super) fn mode_onehot(dist: &Categoricals) -> Vec<Tensor> {
    dist.log_q()
        .iter()
        .map(|theta| {
            let theta = theta.detach().narrow(1, 0, 1);
            let k = theta.argmax(-1, true);
            theta.zeros_like().scatter_value(-1, &k, 1.0)
        })
        .collect()
}
