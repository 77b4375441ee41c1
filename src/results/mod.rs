//! The results layer every stage writes through: run-folder layout, the one Parquet schema, atomic
//! writes and locks, provenance and status.

pub mod atomic;
pub mod layout;
pub mod parquet;
pub mod provenance;
pub mod schema;
pub mod status;

pub use layout::{ResultsRoot, RunDir};
pub use schema::Table;
pub use status::{State, Status};
