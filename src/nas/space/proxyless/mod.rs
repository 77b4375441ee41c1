//! The ProxylessNAS space (spec §5.2): the genotypes, the evaluation network that the
//! `imagenet_proxyless` recipe trains, and the search supernet with its distribution (the latency
//! term it is searched with is `nas::latency`).

pub mod count;
pub mod eval_net;
pub mod genotype;
pub(crate) mod inspect;
mod mbconv;
pub mod search_net;
pub mod search_space;
mod skeleton;

pub use eval_net::ProxylessEvalNet;
pub use genotype::{BlockOp, ProxylessGenotype};
pub use search_net::{ProxylessSearchConfig, ProxylessSearchNet};
pub use search_space::ProxylessSearch;
