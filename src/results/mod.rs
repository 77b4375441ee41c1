//! The results layer every stage writes through: run-folder layout, the one Parquet schema, atomic
//! writes and locks, provenance and status.

pub mod atomic;
pub mod diverged;
pub mod event_file;
pub mod latency_rows;
pub mod layout;
pub mod parquet;
pub mod phase;
pub mod provenance;
pub mod rows;
pub mod run_log;
pub mod schema;
pub mod status;
pub mod versions;

pub use diverged::Diverged;
pub use layout::{ResultsRoot, RunDir};
pub use phase::Phase;
pub use schema::Table;
pub use status::{read_state, Damaged, Interrupted, State, Status};
