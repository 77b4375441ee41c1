//! unas: an experiment harness that reproduces UNAS (Vahdat, Mallya, Liu, Kautz, CVPR 2020) and makes
//! neural-architecture-search ablations cheap. One YAML file per experiment (`config`), executed
//! through tch (`runner`), logged to Parquet (`results`).
//!
//! Data flows one way: config → runner → results → report; the training layer never reads reports.

pub mod cli;
pub mod config;
pub mod data;
pub mod device;
pub mod nas;
pub mod report;
pub mod results;
pub mod runner;
pub mod train;
