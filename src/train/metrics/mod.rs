//! Metrics from the loops to the run's Parquet tables (schema: `results::schema`).
//!
//! Reading a GPU scalar is a sync, so a step's metrics stay on the device: [`StepLog::record`] stacks
//! the step's terms into one small tensor and keeps it; every N steps [`StepLog::flush`] concatenates
//! the block and copies it to the host once, turning it into N rows (one per step, as the `steps`
//! table wants). The same read checks every value for NaN/Inf and reports the first one as
//! [`Diverged`], naming its step and term; the loop marks the run `diverged` (detection lags by at
//! most N steps). Per-epoch means accumulate on the device in [`DeviceMean`].
//!
//! [`TableLog`] keeps a table's rows in memory and rewrites its Parquet file atomically (a few MB at
//! our sizes); on resume it reloads the file and drops rows from at or after the checkpoint, so a
//! killed-and-resumed run ends with exactly the rows of an uninterrupted one. [`Board`] writes the
//! same rows as TensorBoard events.

mod board;
mod device_mean;
mod step_log;
mod table_log;
mod top1;

pub use board::{set_enabled as set_tensorboard, Board};
pub use device_mean::DeviceMean;
pub use step_log::{Clock, StepInfo, StepLog};
pub use table_log::{ResumePoint, TableLog};
pub use top1::top1_correct;
