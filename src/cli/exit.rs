//! The exit codes of `unas` and the error that means bad input (exit 2), shared by every command.

pub const EXIT_OK: u8 = 0;
pub const EXIT_RUN_FAILED: u8 = crate::runner::EXIT_RUN_FAILED;
pub const EXIT_CONFIG: u8 = crate::runner::EXIT_CONFIG;

/// Bad input (a config file, an override, a suite folder): printed as it is, exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);
