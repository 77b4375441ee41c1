//! Latency measured on the run's device (spec §4): timing a discrete network ([`timing`]), the stamp
//! that names the device of every number ([`stamp`]), the ridge-regression surrogate on the one-hot
//! architecture vector ([`surrogate`]) with its per-device cache ([`cache`]), and the per-(block, op)
//! table of `unas latency table` ([`table`]).

pub mod cache;
pub mod stamp;
pub mod surrogate;
pub mod table;
pub mod timing;

pub use stamp::DeviceStamp;
pub use surrogate::{FitReport, Surrogate};
pub use timing::{measure_ms, Timing};

#[cfg(test)]
mod tests;
