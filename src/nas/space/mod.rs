//! Search spaces: DARTS (spec §5.1) and ProxylessNAS (§5.2; its evaluation network so far).

pub mod darts;
#[cfg(test)]
mod op_skip_check;
pub mod pass_norm;
pub mod proxyless;
pub mod search_space;
pub mod trained_net;
pub mod uniform;

pub use search_space::{ChoiceLabel, DiscreteNetwork, SearchSpace};
