//! Data parallelism on libtorch's c10d, which tch does not bind: `shim.cpp` (built by build.rs, embedded
//! and loaded only when a run has more than one rank) wraps its stores and the Gloo process group,
//! `nccl.cpp` the NCCL one for CUDA tensors where `backend.rs` chooses it;
//! `c10d.rs` is the Rust face of it; `ranks.rs` is a run's ranks as the loops see them (one rank: the
//! identity); `alone.rs` is rank 0 working alone while the others wait for it. `train/` calls this;
//! it imports nothing above it.

mod alone;
mod backend;
mod c10d;
mod ranks;
#[cfg(test)]
mod tests;

pub use alone::Alone;
pub use backend::{nccl_facts, Candidacy, Request as BackendRequest};
#[cfg(test)]
use c10d::{Group, Store};
pub use ranks::{init, ranks, PeerLost, RankEnv, Ranks, StoreAddr, DEFAULT_TIMEOUT};
