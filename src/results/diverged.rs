//! A value that went NaN or ±Inf: the run is `diverged` at a step, in a named term, with the value.
//! One type for every place that finds one — the step log's block read, the host-side checks of the
//! loops, and the estimators' checks of f(b), f(ζ) and the logits — so the runner records them alike.

use std::fmt;

use tch::Tensor;

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

/// Ok if every entry of `t` is finite: one device synchronisation, and a second only on failure, to
/// read the first non-finite value.
pub fn check_finite_tensor(t: &Tensor, step: u64, term: &str) -> Result<(), Diverged> {
    tch::no_grad(|| {
        if t.isfinite().all().int64_value(&[]) != 0 {
            return Ok(());
        }
        let flat = t.detach().to_kind(tch::Kind::Double).flatten(0, -1);
        let bad = flat.masked_select(&flat.isfinite().logical_not());
        Err(Diverged {
            at: None,
            step,
            term: term.to_owned(),
            value: bad.double_value(&[0]),
        })
    })
}
