//! Signals the process obeys, installed once for its whole life (not per run, so a signal that arrives
//! between two runs is not lost): SIGTERM (Slurm's pre-emption, `kill`) or SIGINT (Ctrl-C) → the
//! training loop checkpoints at its next poll and the run stops as `interrupted`; the runner then
//! starts nothing more and the process exits (128 + the signal). SIGUSR1 → checkpoint and carry on.
//! The handlers only set flags; the loop polls them between steps, so a checkpoint is never taken in
//! the middle of an update. A second SIGTERM or SIGINT while the first is pending exits at once
//! (status 143 / 130), for a user who really means it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use anyhow::{anyhow, Context, Result};
use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1};

/// What the loop should do at its next poll.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// SIGTERM or SIGINT: save a checkpoint, mark the run interrupted, stop.
    CheckpointAndExit,
    /// SIGUSR1: save a checkpoint and go on.
    CheckpointAndContinue,
}

/// The process's signal flags.
#[derive(Debug)]
struct Flags {
    /// Any stop signal arrived (the condition of the immediate exit on the second one).
    stop: Arc<AtomicBool>,
    term: Arc<AtomicBool>,
    int: Arc<AtomicBool>,
    usr1: Arc<AtomicBool>,
}

static FLAGS: OnceLock<std::result::Result<Flags, String>> = OnceLock::new();

fn install_flags() -> Result<Flags> {
    let flags = Flags {
        stop: Arc::new(AtomicBool::new(false)),
        term: Arc::new(AtomicBool::new(false)),
        int: Arc::new(AtomicBool::new(false)),
        usr1: Arc::new(AtomicBool::new(false)),
    };
    for (sig, which) in [(SIGTERM, &flags.term), (SIGINT, &flags.int)] {
        // The conditional shutdown is registered first, so it sees the flag as it was before this
        // signal: a second stop signal exits.
        signal_hook::flag::register_conditional_shutdown(sig, 128 + sig, flags.stop.clone())
            .context("installing a stop-signal handler")?;
        signal_hook::flag::register(sig, flags.stop.clone())
            .context("installing a stop-signal handler")?;
        signal_hook::flag::register(sig, which.clone())
            .context("installing a stop-signal handler")?;
    }
    signal_hook::flag::register(SIGUSR1, flags.usr1.clone())
        .context("installing the SIGUSR1 handler")?;
    Ok(flags)
}

fn flags() -> Result<&'static Flags> {
    FLAGS
        .get_or_init(|| install_flags().map_err(|e| format!("{e:#}")))
        .as_ref()
        .map_err(|e| anyhow!("{e}"))
}

/// A handle on the process's signal flags (the handlers are installed by the first one and stay).
#[derive(Debug)]
pub struct Signals {
    flags: &'static Flags,
}

impl Signals {
    /// Installs the handlers for SIGTERM, SIGINT and SIGUSR1 (once per process).
    pub fn install() -> Result<Signals> {
        Ok(Signals { flags: flags()? })
    }

    /// The pending request, if any. A stop wins over SIGUSR1 and stays pending (the loop is about to
    /// stop); a SIGUSR1 request is consumed by the poll that returns it.
    pub fn poll(&self) -> Option<Request> {
        if self.flags.stop.load(Ordering::SeqCst) {
            return Some(Request::CheckpointAndExit);
        }
        self.flags
            .usr1
            .swap(false, Ordering::SeqCst)
            .then_some(Request::CheckpointAndContinue)
    }
}

/// The stop signal that arrived (`SIGTERM` or `SIGINT`), if any: the runner starts nothing after it.
pub fn stop_requested() -> Option<StopSignal> {
    let f = FLAGS.get()?.as_ref().ok()?;
    if !f.stop.load(Ordering::SeqCst) {
        return None;
    }
    Some(if f.int.load(Ordering::SeqCst) {
        StopSignal::Int
    } else {
        StopSignal::Term
    })
}

/// Which stop signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopSignal {
    Term,
    Int,
}

impl StopSignal {
    pub fn name(self) -> &'static str {
        match self {
            StopSignal::Term => "SIGTERM",
            StopSignal::Int => "SIGINT",
        }
    }
    /// The signal's number.
    pub fn number(self) -> i32 {
        match self {
            StopSignal::Term => SIGTERM,
            StopSignal::Int => SIGINT,
        }
    }
    /// The shell's exit status for it (128 + the signal).
    pub fn exit_code(self) -> u8 {
        match self {
            StopSignal::Term => (128 + SIGTERM) as u8,
            StopSignal::Int => (128 + SIGINT) as u8,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raise(sig: i32) {
        // SAFETY: raise delivers the signal to this thread synchronously; handlers are installed.
        assert_eq!(unsafe { libc::raise(sig) }, 0);
    }

    // One test for every signal: the flags are per process, and SIGTERM must not reach this test
    // binary without a handler (a second one would exit it).
    #[test]
    fn sigusr1_asks_once_to_checkpoint_and_continue_and_sigterm_to_checkpoint_and_stop() {
        let s = Signals::install().unwrap();
        assert_eq!(s.poll(), None);
        assert_eq!(stop_requested(), None);
        raise(SIGUSR1);
        assert_eq!(s.poll(), Some(Request::CheckpointAndContinue));
        assert_eq!(s.poll(), None, "a SIGUSR1 request is consumed");
        raise(SIGTERM);
        assert_eq!(s.poll(), Some(Request::CheckpointAndExit));
        assert_eq!(
            s.poll(),
            Some(Request::CheckpointAndExit),
            "SIGTERM stays pending"
        );
        raise(SIGUSR1);
        assert_eq!(s.poll(), Some(Request::CheckpointAndExit), "SIGTERM wins");
        // A second handle (the next run) sees the same pending stop, and the runner knows which.
        let again = Signals::install().unwrap();
        assert_eq!(again.poll(), Some(Request::CheckpointAndExit));
        assert_eq!(stop_requested(), Some(StopSignal::Term));
        assert_eq!(StopSignal::Term.exit_code(), 143);
    }
}
