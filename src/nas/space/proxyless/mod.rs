//! The ProxylessNAS space (spec §5.2). Built so far: the genotypes and the evaluation network that the
//! `imagenet_proxyless` recipe trains. The search supernet and the latency objective are not built.

pub mod count;
pub mod eval_net;
pub mod genotype;
pub(crate) mod inspect;

pub use eval_net::ProxylessEvalNet;
pub use genotype::{BlockOp, ProxylessGenotype};
