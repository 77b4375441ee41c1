//! Training: optimisers with saveable state, schedules, checkpoints, the search and training loops.
//!
//! The toolkit the loops stand on: [`optim`] (SGD with momentum, Adam, state as named tensors),
//! [`clip`] (gradient-norm clipping without a host sync), [`schedule`] (closed-form learning rates
//! with the official stepping), [`rng`] (per-step seeding and the determinism switch), [`checkpoint`]
//! (atomic checkpoint folders), [`signals`] (SIGTERM / SIGUSR1), [`metrics`] (device-side step metrics
//! and the run's Parquet tables) and [`phase`] (warm-up, search, train).

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
