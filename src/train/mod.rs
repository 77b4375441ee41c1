//! Training: optimisers with saveable state, schedules, checkpoints, the search and training loops.
//!
//! The toolkit the loops stand on: [`optim`] (SGD with momentum, Adam, state as named tensors),
//! [`clip`] (gradient-norm clipping without a host sync), [`schedule`] (closed-form learning rates
//! with the official stepping), [`rng`] (per-step seeding and the determinism switch), [`checkpoint`]
//! (atomic checkpoint folders), [`signals`] (SIGTERM / SIGUSR1), [`metrics`] (device-side step metrics
//! and the run's Parquet tables) and [`phase`] (warm-up, search, train).
//!
//! How a loop resumes bit-identically on the CPU with these pieces:
//! - every step starts with [`rng::seed_step`]`(run seed, phase, epoch, step)`; data order per epoch
//!   from [`rng::derive_seed`] with [`rng::Stream::Shuffle`] (and `Validation` for the reshuffled
//!   held-out iterator), so no generator state is saved;
//! - learning rates come from [`schedule`] as closed forms of (epoch, step): nothing to save;
//! - a checkpoint ([`Checkpoints::save`]) holds, as tensors, `model/<var>` (all VarStore variables,
//!   BN running stats included), `arch/<logit>`, [`Optimizer::state_tensors`] of each optimiser
//!   (`opt_w`, `opt_arch`, the warm-up's own Adam), estimator state, [`DeviceMean`] sums of a
//!   mid-epoch save; and as metadata the [`Mark`], phase, epoch, global step, data-loader position,
//!   EMA baselines (`#[serde(with = "checkpoint::exact_f64")]`) and the clock's wall seconds;
//! - the [`StepLog`] is flushed and the [`TableLog`]s written before every checkpoint; on resume
//!   [`TableLog::resume`] drops rows from the checkpoint's [`ResumePoint`] on;
//! - [`Signals::poll`] between steps: SIGTERM → checkpoint at (epochs done, steps done) and exit,
//!   SIGUSR1 → checkpoint and continue.

pub mod checkpoint;
pub mod clip;
pub mod metrics;
pub mod optim;
pub mod phase;
pub mod rng;
pub mod schedule;
pub mod signals;

pub use checkpoint::{CheckpointRef, Checkpoints, Loaded, Mark};
pub use clip::clip_grad_norm;
pub use metrics::{
    ArchRow, ChoiceKey, Clock, DeviceMean, Diverged, EpochRow, ResumePoint, StepInfo, StepLog,
    StepRow, SummaryRow, TableLog, Term,
};
pub use optim::{
    var_store_params, Adam, AdamConfig, AdamEps, NamedParams, Optimizer, ParamGroup, Sgd,
};
pub use phase::Phase;
pub use rng::{derive_seed, seed_step, Determinism, Stream};
pub use schedule::{linear_ramp, search_cosine, Cosine, WarmupCosine};
pub use signals::{Request, Signals};
pub mod batches;
pub mod bench;
pub mod eval_net;
pub mod from_scratch;
pub mod search;
