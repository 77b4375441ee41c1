//! A value that went NaN or ±Inf: the run is `diverged` at a step, in a named term, with the value.
//! One type for every place that finds one — the step log's block read, the host-side checks of the
//! loops, and the estimators' checks of f(b), f(ζ) and the logits — so the runner records them alike.

use std::fmt;

use tch::{Kind, Tensor};

use super::phase::Phase;
use super::status::State;

/// A value went NaN or ±Inf: the run is `diverged` at this step, in this term.
#[derive(Clone, Debug, PartialEq)]
pub struct Diverged {
    /// Where the loop was (`None` where the finder does not know, e.g. inside an estimator; the loop
    /// fills it in with [`Diverged::during`]).
    pub at: Option<(Phase, u32)>,
    /// Step within the phase.
    pub step: u64,
    pub term: String,
    /// The first non-finite value found (NaN, inf or -inf).
    pub value: f64,
}

impl fmt::Display for Diverged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} is {} at ", self.term, self.value)?;
        if let Some((phase, epoch)) = self.at {
            write!(f, "{phase} epoch {epoch} ")?;
        }
        write!(
            f,
            "step {}: the run diverged (lower the learning rate, or check the data)",
            self.step
        )
    }
}

impl std::error::Error for Diverged {}

impl Diverged {
    /// The same divergence, located in `phase` and `epoch`.
    pub fn during(mut self, phase: Phase, epoch: u32) -> Diverged {
        self.at.get_or_insert((phase, epoch));
        self
    }

    /// The run status to write.
    pub fn state(&self) -> State {
        State::Diverged {
            step: self.step,
            term: self.term.clone(),
        }
    }
}

/// Checks host-side values; the first non-finite one is an error naming its term.
pub fn check_finite(
    phase: Phase,
    epoch: u32,
    step: u64,
    values: &[(&str, Option<f64>)],
) -> Result<(), Diverged> {
    match values
        .iter()
        .find_map(|(term, v)| v.filter(|v| !v.is_finite()).map(|v| (term, v)))
    {
        Some((term, value)) => Err(Diverged {
            at: Some((phase, epoch)),
            step,
            term: (*term).to_owned(),
            value,
        }),
        None => Ok(()),
    }
}

/// A step's deferred finite checks: (term, [`finite_witness`]) in the order they were made.
pub type Checks = Vec<(String, Tensor)>;

/// Where a step's finite checks go. Eager: each is read at once (one device synchronisation each):
/// tests, diagnostics. Deferred: each stays on the device as its [`finite_witness`] until the step
/// log reads its block of steps, so the search step itself never waits for the device; a non-finite check
/// then makes the run `diverged` at that step, in that term, before any checkpoint is written.
#[derive(Debug)]
pub struct Finite {
    step: u64,
    deferred: Option<Checks>,
}

impl Finite {
    pub fn eager(step: u64) -> Finite {
        Finite {
            step,
            deferred: None,
        }
    }

    pub fn deferred(step: u64) -> Finite {
        Finite {
            step,
            deferred: Some(Vec::new()),
        }
    }

    pub fn step(&self) -> u64 {
        self.step
    }

    /// Checks that every entry of `t` is finite: now (eager), or at the block read (deferred).
    pub fn check(&mut self, t: &Tensor, term: &str) -> Result<(), Diverged> {
        match &mut self.deferred {
            None => check_finite_tensor(t, self.step, term),
            Some(pending) => {
                pending.push((term.to_owned(), finite_witness(t)));
                Ok(())
            }
        }
    }

    /// The deferred checks so far, in the order they were made.
    pub fn take(&mut self) -> Checks {
        self.deferred
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }
}

/// Σ t in Double, a 0-d tensor on `t`'s device, without a synchronisation: finite exactly when every
/// entry of `t` is (a NaN or ±∞ entry makes it NaN or ±∞; float entries cannot overflow a Double sum),
/// so the step log checks it like any other term.
pub fn finite_witness(t: &Tensor) -> Tensor {
    tch::no_grad(|| t.detach().to_kind(Kind::Double).sum(Kind::Double))
}

/// Ok if every entry of `t` is finite: one device synchronisation, and a second only on failure, to
/// read the first non-finite value.
pub fn check_finite_tensor(t: &Tensor, step: u64, term: &str) -> Result<(), Diverged> {
    tch::no_grad(|| {
        if t.isfinite().all().int64_value(&[]) != 0 {
            return Ok(());
        }
        let flat = t.detach().to_kind(Kind::Double).flatten(0, -1);
        let bad = flat.masked_select(&flat.isfinite().logical_not());
        Err(Diverged {
            at: None,
            step,
            term: term.to_owned(),
            value: bad.double_value(&[0]),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn witness(values: &[f64]) -> f64 {
        finite_witness(&Tensor::from_slice(values)).double_value(&[])
    }

    #[test]
    fn the_witness_is_finite_exactly_when_every_entry_is() {
        assert_eq!(witness(&[1.0, 2.0]), 3.0);
        assert_eq!(witness(&[1.0, f64::NEG_INFINITY]), f64::NEG_INFINITY);
        assert!(witness(&[1.0, f64::INFINITY, f64::NEG_INFINITY]).is_nan());
        assert!(witness(&[f64::NAN, 2.0]).is_nan());
        assert_eq!(witness(&[]), 0.0);
    }

    #[test]
    fn eager_checks_fail_at_once_and_deferred_ones_keep_their_terms_in_order() {
        let bad = Tensor::from_slice(&[0.5f32, f32::NAN]);
        let good = Tensor::from_slice(&[0.5f32]);
        let err = Finite::eager(7).check(&bad, "f(b)").unwrap_err();
        assert_eq!((err.step, err.term.as_str()), (7, "f(b)"));
        assert!(err.value.is_nan());
        let mut later = Finite::deferred(7);
        later.check(&good, "f(b)").unwrap();
        later.check(&bad, "f(ζ)").unwrap();
        let kept = later.take();
        let terms: Vec<&str> = kept.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(terms, ["f(b)", "f(ζ)"]);
        assert!(kept[1].1.double_value(&[]).is_nan());
        assert!(later.take().is_empty(), "take empties the list");
    }
}
