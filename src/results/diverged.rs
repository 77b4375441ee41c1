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

/// Where a step's finite checks go. Eager: each is read at once (one device synchronisation each):
/// tests, diagnostics. Deferred: each stays on the device as [`non_finite_flag`] until the step log
/// reads its block of steps, so the search step itself never waits for the device; a non-finite check
/// then makes the run `diverged` at that step, in that term, before any checkpoint is written.
#[derive(Debug)]
pub struct Finite {
    step: u64,
    deferred: Option<Vec<(String, Tensor)>>,
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
                if t.numel() > 0 {
                    pending.push((term.to_owned(), non_finite_flag(t)));
                }
                Ok(())
            }
        }
    }

    /// The deferred checks so far (term, [`non_finite_flag`]), in the order they were made.
    pub fn take(&mut self) -> Vec<(String, Tensor)> {
        self.deferred
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }
}

/// [2] Double on `t`'s device, without a synchronisation: (1 if any entry of `t` is NaN or ±∞, else
/// 0; the first such entry, else `t`'s first). `t` must not be empty.
pub fn non_finite_flag(t: &Tensor) -> Tensor {
    tch::no_grad(|| {
        let flat = t.detach().to_kind(Kind::Double).reshape([-1]);
        let bad = flat.isfinite().logical_not();
        // argmax returns the first maximum: the first non-finite entry when there is one
        let first = bad.to_kind(Kind::Float).argmax(0, false).reshape([1]);
        let value = flat.index_select(0, &first);
        Tensor::cat(&[bad.any().to_kind(Kind::Double).reshape([1]), value], 0)
    })
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

    fn flag(values: &[f64]) -> Vec<f64> {
        Vec::<f64>::try_from(non_finite_flag(&Tensor::from_slice(values))).unwrap()
    }

    #[test]
    fn the_flag_names_the_first_non_finite_entry_and_is_zero_when_all_are_finite() {
        assert_eq!(flag(&[1.0, 2.0]), vec![0.0, 1.0]);
        assert_eq!(
            flag(&[1.0, f64::INFINITY, f64::NAN]),
            vec![1.0, f64::INFINITY]
        );
        let nan_first = flag(&[f64::NAN, f64::NEG_INFINITY]);
        assert_eq!(nan_first[0], 1.0);
        assert!(nan_first[1].is_nan());
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
        later
            .check(
                &Tensor::zeros([0], (Kind::Float, tch::Device::Cpu)),
                "empty",
            )
            .unwrap();
        let kept = later.take();
        let terms: Vec<&str> = kept.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(terms, ["f(b)", "f(ζ)"]);
        assert_eq!(kept[1].1.double_value(&[0]), 1.0);
        assert!(later.take().is_empty(), "take empties the list");
    }
}
