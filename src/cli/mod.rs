//! The command line. `main.rs` calls [`main`]: arguments are parsed once into typed values
//! ([`args`]: every command declared in one place, value enums for every choice), `entry::run`
//! dispatches and returns `anyhow::Result<ExitCode>`, and errors are printed in exactly one place
//! ([`main`]).
//!
//! Exit codes ([`exit`](self::EXIT_OK)): 0 success, 1 a run failed (or could not run), 2 bad input —
//! a config or usage error ([`BadInput`]): nothing ran, nothing was written.

pub mod args;
mod bench;
mod diagnose;
mod entry;
mod exit;
mod experiments;
mod latency;
mod logging;
mod status;
pub mod submit;

pub use entry::main;
pub use exit::{BadInput, EXIT_CONFIG, EXIT_OK, EXIT_RUN_FAILED};
pub use experiments::experiment_files;
