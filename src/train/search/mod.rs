//! The UNAS search loop (spec §1.3–1.5) over a [`SearchSpace`] (DARTS or ProxylessNAS), on resident
//! datasets (CIFAR, synthetic) or ImageNet folders.
//!
//! Per mini-batch of the search phase: one architecture step ([`arch_step`]: Adam on the logits, the
//! configured estimator on the configured objective), then one weight step ([`weight_step`]: Adam,
//! clip 5) on the same training batch with the detached relaxed sample. Warm-up epochs train the
//! weights alone with relaxed samples of the (uniform) initial distribution, with their own Adam at a
//! constant lr. With a latency objective ([`latency`], ProxylessNAS) the architecture step adds the
//! control-variate latency term of a second sample. At the end of every epoch ([`epoch`]): validation,
//! the genotype, the tables (and the mode architecture's measured latency), a
//! checkpoint ([`state`] says what it holds; [`crate::train::recorder`] writes it).
//!
//! Every step draws its randomness from a seed derived from (run seed, phase, epoch, step) and the
//! loaders are keyed by (seed, epoch, index), so a run resumed from a checkpoint continues
//! bit-identically on the CPU.

mod arch_per;
mod arch_step;
mod bench_step;
mod candidates;
mod epoch;
mod iteration;
mod latency;
mod loss;
mod parity_step;
mod plan;
mod run;
mod state;
#[cfg(test)]
mod tests;
mod weight_step;

pub(crate) use bench_step::time_steps;
pub(crate) use parity_step::record_steps;
pub use run::run;
