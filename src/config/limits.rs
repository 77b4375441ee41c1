//! Two sizes of the method that validation checks before anything runs, defined here so that both
//! `config/validate.rs` and `nas/` read them without `config` importing `nas` (layers point one way).

/// Total stride of the ProxylessNAS skeleton: the stem and four stages halve the side, so a
/// resolution must be a multiple of it (`nas::space::proxyless::search_net` builds on it).
pub const TOTAL_STRIDE: u32 = 32;

/// The smallest sample count of a latency surrogate whose 20 % split holds two architectures (an R²
/// needs two) (`nas::latency::surrogate` fits on it).
pub const MIN_SAMPLES: usize = 10;
