//! Signals the training loops obey: SIGTERM (Slurm's pre-emption, `kill`) → checkpoint and exit;
//! SIGUSR1 → checkpoint and carry on. The handlers only set flags; the loop polls them between steps,
//! so a checkpoint is never taken in the middle of an update. A second SIGTERM while the first is
//! still pending exits at once (status 143), for a user who really means it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use signal_hook::consts::{SIGTERM, SIGUSR1};
use signal_hook::SigId;

/// What the loop should do at its next poll.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// SIGTERM: save a checkpoint, mark the run interrupted, exit.
    CheckpointAndExit,
    /// SIGUSR1: save a checkpoint and go on.
    CheckpointAndContinue,
}

/// Installed signal flags; unregistered on drop.
#[derive(Debug)]
pub struct Signals {
    term: Arc<AtomicBool>,
    usr1: Arc<AtomicBool>,
    ids: Vec<SigId>,
}

impl Signals {
    /// Installs the handlers for SIGTERM and SIGUSR1.
    pub fn install() -> Result<Signals> {
        let term = Arc::new(AtomicBool::new(false));
        let usr1 = Arc::new(AtomicBool::new(false));
        // The conditional shutdown is registered first, so it sees the flag as it was before this
        // signal: a second SIGTERM exits.
        let ids = vec![
            signal_hook::flag::register_conditional_shutdown(SIGTERM, 128 + SIGTERM, term.clone())
                .context("installing the SIGTERM handler")?,
            signal_hook::flag::register(SIGTERM, term.clone())
                .context("installing the SIGTERM handler")?,
            signal_hook::flag::register(SIGUSR1, usr1.clone())
                .context("installing the SIGUSR1 handler")?,
        ];
        Ok(Signals { term, usr1, ids })
    }

    /// The pending request, if any. SIGTERM wins over SIGUSR1 and stays pending (the loop is about to
    /// exit); a SIGUSR1 request is consumed by the poll that returns it.
    pub fn poll(&self) -> Option<Request> {
        if self.term.load(Ordering::SeqCst) {
            return Some(Request::CheckpointAndExit);
        }
        self.usr1
            .swap(false, Ordering::SeqCst)
            .then_some(Request::CheckpointAndContinue)
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
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

    // One test for both signals: SIGTERM must not reach this test binary without a handler.
    #[test]
    fn sigusr1_asks_once_to_checkpoint_and_continue_and_sigterm_to_checkpoint_and_exit() {
        let s = Signals::install().unwrap();
        assert_eq!(s.poll(), None);
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
    }
}
