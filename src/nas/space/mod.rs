//! Search spaces: DARTS (spec §5.1) and, later, ProxylessNAS (§5.2).

pub mod darts;
