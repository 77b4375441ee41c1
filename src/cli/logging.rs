//! The log: to stderr at the level `-v` asks for (warnings by default; `RUST_LOG` overrides), through
//! the progress bars so the two never mix; and into the current run folder's `run.log` at info level
//! (debug with `-vv`), whatever stderr shows.

use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter, Layer};

use crate::progress::StderrWriter;
use crate::results::run_log::RunLogWriter;

/// Installs the subscriber and the progress display.
pub fn init(verbose: u8) {
    crate::progress::init();
    let level = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let stderr_filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| level.into());
    let file_level = if verbose >= 2 {
        LevelFilter::DEBUG
    } else {
        LevelFilter::INFO
    };
    let _ = tracing_subscriber::registry()
        .with(
            fmt::layer()
                .with_writer(StderrWriter)
                .with_filter(stderr_filter),
        )
        .with(
            fmt::layer()
                .with_ansi(false)
                .with_writer(RunLogWriter)
                .with_filter(file_level),
        )
        .try_init();
}
