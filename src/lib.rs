//! unas: an experiment harness that reproduces UNAS (Vahdat, Mallya, Liu, Kautz, CVPR 2020) and makes
//! neural-architecture-search ablations cheap. One YAML file per experiment (`config`), executed
//! through tch (`runner` → the stages in `train`, through the contract in `stage`), logged to Parquet
//! (`results`), summarised by `report`.
//!
//! Data flows one way: config → runner → stage → train → results → report; the training layer never
//! imports the runner or the report layer, and the report layer reads only what runs wrote.
//!
//! The public surface is what a researcher's own tool builds on: the experiment format (`config`), the
//! datasets (`data`), the method (`nas`: spaces, distributions, estimators, objectives; what differs
//! between the estimators is a property of `config::Estimator`), the results
//! schema and run folders (`results`), and the command line (`cli`). Everything else is crate-private.

pub mod cli;
pub mod config;
pub mod data;
pub mod nas;
pub mod results;

pub(crate) mod autocast;
pub(crate) mod bench;
pub(crate) mod cuda_graph;
pub(crate) mod device;
pub(crate) mod dist;
pub(crate) mod embedded_shim;
pub(crate) mod progress;
#[cfg(feature = "report")]
pub(crate) mod report;
pub(crate) mod runner;
pub(crate) mod stage;
pub(crate) mod text_table;
pub(crate) mod train;
