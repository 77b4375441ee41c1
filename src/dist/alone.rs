//! Rank 0 working alone while the other ranks wait for its result (the latency surrogate's timed
//! architectures): longer, maybe, than any collective waits for a peer (`UNAS_RANK_TIMEOUT_S`), so
//! rank 0 tells the others now and then that it is still at it, and each wait stays short. The
//! others leave [`Ranks::await_first`] when rank 0 calls [`Alone::done`]; a rank 0 that fails before
//! that ends its process, and their wait fails as any collective with a lost peer does.

use std::time::{Duration, Instant};

use anyhow::Result;

use super::ranks::Ranks;

/// How often rank 0 at work alone tells the others it still is (well under any sensible timeout).
const KEEP_ALIVE: Duration = Duration::from_secs(1);

/// What rank 0 sends: still at work, or done.
const WORKING: f64 = 1.0;
const DONE: f64 = 0.0;

/// Rank 0 at work alone ([`Ranks::alone`]).
pub struct Alone<'a> {
    ranks: &'a Ranks,
    what: &'a str,
    last: Instant,
}

impl Alone<'_> {
    /// A moment in rank 0's work: the others hear that it still works, at most once a [`KEEP_ALIVE`].
    pub fn tick(&mut self) -> Result<()> {
        if self.ranks.world() > 1 && self.last.elapsed() >= KEEP_ALIVE {
            self.ranks.broadcast_f64s(self.what, &mut [WORKING])?;
            self.last = Instant::now();
        }
        Ok(())
    }

    /// The end of rank 0's work: the others go on.
    pub fn done(self) -> Result<()> {
        self.ranks.broadcast_f64s(self.what, &mut [DONE])
    }
}

impl Ranks {
    /// Rank 0 starts working alone on `what`; the others call [`Ranks::await_first`] with it.
    pub fn alone<'a>(&'a self, what: &'a str) -> Alone<'a> {
        debug_assert!(self.is_first(), "only rank 0 works alone");
        Alone {
            ranks: self,
            what,
            last: Instant::now(),
        }
    }

    /// Ranks > 0: waits, however long, until rank 0's [`Alone::done`].
    pub fn await_first(&self, what: &str) -> Result<()> {
        loop {
            let mut said = [DONE];
            self.broadcast_f64s(what, &mut said)?;
            if said[0] != WORKING {
                return Ok(());
            }
        }
    }
}
