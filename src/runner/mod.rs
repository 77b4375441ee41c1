//! From resolved experiments to finished runs: the plan (experiments × seeds × stages with
//! content-addressed ids), skip-done, locks, and the dispatch to each stage.

pub mod execute;
pub mod plan;
pub mod slurm;
pub mod stages;
pub mod survey;
pub mod threads;
pub mod workers;

pub use execute::{run_experiment, JobEnd, JobReport, Options};
