//! From resolved experiments to finished runs: the plan (experiments × seeds × stages with
//! content-addressed ids), skip-done, locks, and the dispatch to each stage.

pub mod execute;
pub mod heap;
pub mod job_end;
pub mod plan;
pub mod ranks;
pub mod slurm;
pub mod slurm_env;
pub mod stages;
pub mod survey;
pub mod threads;
pub mod workers;

pub use execute::{run_experiment, JobReport, Options};
pub use job_end::JobEnd;

/// The exit status of `unas` for bad input (a config file, an override): a worker process that exits
/// with it could not start its job. The CLI's `EXIT_CONFIG` is this value (defined here so the runner
/// reads its workers' exits without importing the CLI).
pub const EXIT_CONFIG: u8 = 2;

/// The exit status of `unas` when a run failed: a rank process that exits with it failed its job. The
/// CLI's `EXIT_RUN_FAILED` is this value (here so the rank launcher reads it without importing the CLI).
pub const EXIT_RUN_FAILED: u8 = 1;
