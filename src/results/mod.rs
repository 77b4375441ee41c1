//! The results layer every stage writes through: run-folder layout, the one Parquet schema, atomic
//! writes and locks, provenance and status.
//!
//! The public face is what a tool of one's own needs to read a results folder: the run folders, a
//! run's state, provenance, its Parquet tables ([`parquet::read`] against the one [`Table`] schema) and
//! its TensorBoard event files ([`event_file`]). Writing is the crate's.

pub(crate) mod atomic;
pub(crate) mod candidate_rows;
pub(crate) mod diverged;
pub mod event_file;
pub(crate) mod latency_rows;
pub(crate) mod layout;
pub mod parquet;
pub(crate) mod phase;
pub(crate) mod provenance;
pub(crate) mod rows;
pub(crate) mod run_log;
pub(crate) mod schema;
pub(crate) mod status;
pub(crate) mod versions;

pub use diverged::Diverged;
pub use layout::{ResultsRoot, RunDir};
pub use phase::Phase;
pub use provenance::{Provenance, RankRecord};
pub use schema::{Col, Column, Table};
pub use status::{read_state, Damaged, Interrupted, State, Status};
