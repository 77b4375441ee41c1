//! Neural-architecture search: the search spaces, the architecture distribution, the gradient
//! estimators and the search objectives (shared/design/unas-spec.md §1–§5).

pub mod arch;
pub(crate) mod diagnose;
pub mod distribution;
pub mod estimator;
pub mod init;
pub mod latency;
pub mod objective;
pub mod relax_cv;
pub mod space;
