//! Training: the search loop and the from-scratch training loop, the run recorder they share, and the
//! toolkit they stand on.
//!
//! Where to look:
//! - the search loop: [`search`] (`search/run.rs`, one iteration in `search/iteration.rs`), its
//!   architecture step (`search/arch_step.rs`), its weight step (`search/weight_step.rs`), the end of
//!   an epoch (`search/epoch.rs`) and what a checkpoint holds (`search/state.rs`);
//! - from-scratch training: [`from_scratch`], with its recipe resolved once (`config::TrainRecipe`)
//!   and its network built by `nas::space::trained_net`; its step timed, recorded and replayed as a
//!   CUDA graph outside the loop in [`bench_train`];
//! - checkpoints, the step log, the tables, signals and the final writes of both loops: [`recorder`]
//!   over [`checkpoint`] (atomic checkpoint folders), [`metrics`] (device-side step log, running means,
//!   table logs) and [`signals`];
//! - [`optim`] (SGD with momentum, Adam, state as named tensors), [`clip`] (gradient-norm clipping
//!   without a host sync), [`schedule`] (closed-form learning rates with the official stepping),
//!   [`rng`] (per-step seeding and the determinism switch).
//!
//! How a loop resumes bit-identically on the CPU with these pieces:
//! - every step starts with [`rng::seed_step`]`(run seed, phase, epoch, step)`; data order per epoch
//!   from [`rng::derive_seed`] with [`rng::Stream::Shuffle`] (and `Validation` for the reshuffled
//!   held-out iterator), so no generator state is saved;
//! - learning rates come from [`schedule`] as closed forms of (epoch, step): nothing to save;
//! - a checkpoint holds, as tensors, `w/<var>` (all VarStore variables, BN running stats included),
//!   `alpha/<group>` (architecture logits), each optimiser's state (`opt_warm`, `opt_w`, `opt_a` in a
//!   search, `opt` in training), `est/baseline` and `relax/<φ>` (estimator state), and the running
//!   means `acc_loss`, `acc_top1` of a mid-epoch save; and as metadata the loop's position (epoch,
//!   steps, data-loader positions) and the clock's wall seconds;
//! - the step log is flushed and the tables written before every checkpoint; on resume
//!   [`metrics::TableLog::resume`] drops rows from the checkpoint's [`metrics::ResumePoint`] on;
//! - [`recorder::Recorder::signal`] between steps: SIGTERM → checkpoint at (epochs done, steps done)
//!   and stop, SIGUSR1 → checkpoint and continue.

pub(crate) mod batches;
pub mod bench_train;
pub mod checkpoint;
pub mod clip;
pub mod from_scratch;
pub(crate) mod graphed_step;
pub mod metrics;
pub mod optim;
pub mod recorder;
pub mod rng;
pub mod schedule;
pub mod search;
pub mod signals;
pub mod variables;

pub use crate::results::Phase;
pub use clip::clip_grad_norm;
