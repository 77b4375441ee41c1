//! The DARTS search space as UNAS uses it (spec §1.1, §5.1, §5.3, §6.1–6.2): candidate ops, the
//! paired-input search cell and supernets (relaxed and discrete forward), the evaluation networks,
//! genotypes (published and derived), parameter and MAC counts, and the space's benchmark.

pub(crate) mod bench;
pub mod count;
pub mod eval_cell;
pub mod eval_net;
pub mod genotype;
pub(crate) mod inspect;
pub mod ops;
pub mod parity;
pub mod search_cell;
pub mod search_net;
pub mod search_space;
pub mod stem;

pub use eval_net::{DartsEvalNet, EvalConfig};
pub use genotype::{Genotype, NodeGene};
pub use ops::{Primitive, PRIMITIVES};
pub use search_net::{DartsSearchConfig, DartsSearchNet};
pub use search_space::DartsSearch;
pub use stem::StemKind;
