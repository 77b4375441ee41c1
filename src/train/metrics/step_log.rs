//! The step log: a step's metrics stay on the device; every N steps one read turns the block into rows
//! of the `steps` table and checks every value for NaN/Inf, and the step's deferred finite checks
//! ([`crate::results::diverged::Finite`]: f(b), f(ζ), the logits, …) with them.

use std::time::Instant;

use tch::{Device, Kind, Tensor};

use crate::results::diverged::Checks;
use crate::results::rows::{StepRow, Term};
use crate::results::{Diverged, Phase};

/// Seconds since the run started, continuing across resumes (`offset_s` = the wall time the run had
/// used when its checkpoint was taken).
#[derive(Clone, Debug)]
pub struct Clock {
    start: Instant,
    offset_s: f64,
}

impl Clock {
    pub fn start(offset_s: f64) -> Clock {
        Clock {
            start: Instant::now(),
            offset_s,
        }
    }

    pub fn wall_s(&self) -> f64 {
        self.offset_s + self.start.elapsed().as_secs_f64()
    }
}

/// What the loop knows about a step on the host, without a sync.
#[derive(Clone, Debug, PartialEq)]
pub struct StepInfo {
    pub phase: Phase,
    pub epoch: u32,
    /// Global step within the phase.
    pub step: u64,
    /// Images the step trained on (for images/s).
    pub images: u64,
    pub lr_weights: Option<f64>,
    pub lr_arch: Option<f64>,
    /// Measured latency of the sampled architecture (ProxylessNAS space), ms.
    pub lat_ms: Option<f64>,
}

struct Pending {
    info: StepInfo,
    wall_s: f64,
    terms: Vec<Term>,
    /// The terms of the step's finite checks, in the order they were made.
    checks: Vec<String>,
    /// [checks.len() + terms.len()] Double, on the device: each check's witness, then the terms'
    /// values.
    values: Tensor,
}

/// Per-step metrics, kept on the device and read every `every` steps.
pub struct StepLog {
    seed: u64,
    every: usize,
    clock: Clock,
    block_start_s: f64,
    pending: Vec<Pending>,
    rows: Vec<StepRow>,
}

impl StepLog {
    pub fn new(seed: u64, every: usize, clock: Clock) -> StepLog {
        let block_start_s = clock.wall_s();
        StepLog {
            seed,
            every: every.max(1),
            clock,
            block_start_s,
            pending: Vec::new(),
            rows: Vec::new(),
        }
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Records a step: `terms` are 0-d (or one-element) tensors on any device, kept there, and
    /// `checks` the step's deferred finite checks ([`crate::results::diverged::finite_witness`]).
    /// Reads the block (one sync) when it is full; a failed check or a non-finite term in it is
    /// returned as [`Diverged`] (within a step, the checks first: they were made first).
    pub fn record(
        &mut self,
        info: StepInfo,
        terms: &[(Term, &Tensor)],
        checks: Checks,
    ) -> Result<(), Diverged> {
        let v: Vec<Tensor> = checks
            .iter()
            .map(|(_, t)| t)
            .chain(terms.iter().map(|(_, t)| *t))
            .map(|t| t.detach().to_kind(Kind::Double).reshape([1]))
            .collect();
        let values = if v.is_empty() {
            Tensor::zeros([0], (Kind::Double, Device::Cpu))
        } else {
            Tensor::cat(&v, 0)
        };
        self.pending.push(Pending {
            info,
            wall_s: self.clock.wall_s(),
            terms: terms.iter().map(|(t, _)| *t).collect(),
            checks: checks.into_iter().map(|(term, _)| term).collect(),
            values,
        });
        if self.pending.len() >= self.every {
            self.flush()
        } else {
            Ok(())
        }
    }

    /// Reads every pending step into rows with one device→host copy per device. All rows are kept
    /// even when one diverged; the first non-finite value is returned.
    pub fn flush(&mut self) -> Result<(), Diverged> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        let host: Vec<f64> = {
            let on_cpu: Vec<Tensor> = pending
                .iter()
                .map(|p| p.values.to_device(Device::Cpu))
                .collect();
            let all = Tensor::cat(&on_cpu, 0);
            Vec::<f64>::try_from(all).expect("a 1-d Double tensor converts")
        };
        let now = self.clock.wall_s();
        let images: u64 = pending.iter().map(|p| p.info.images).sum();
        let span = now - self.block_start_s;
        let images_per_s = (span > 0.0 && images > 0).then(|| images as f64 / span);
        self.block_start_s = now;

        let mut first_bad: Option<Diverged> = None;
        let mut at = 0;
        for p in pending {
            for term in &p.checks {
                let value = host[at];
                at += 1;
                if !value.is_finite() && first_bad.is_none() {
                    first_bad = Some(Diverged {
                        at: Some((p.info.phase, p.info.epoch)),
                        step: p.info.step,
                        term: term.clone(),
                        value,
                    });
                }
            }
            let mut terms = [None; 9];
            for t in &p.terms {
                let v = host[at];
                at += 1;
                terms[t.index()] = Some(v);
                if !v.is_finite() && first_bad.is_none() {
                    first_bad = Some(Diverged {
                        at: Some((p.info.phase, p.info.epoch)),
                        step: p.info.step,
                        term: t.column().to_owned(),
                        value: v,
                    });
                }
            }
            self.rows.push(StepRow {
                phase: p.info.phase,
                seed: self.seed,
                epoch: p.info.epoch,
                step: p.info.step,
                terms,
                lr_weights: p.info.lr_weights,
                lr_arch: p.info.lr_arch,
                lat_ms: p.info.lat_ms,
                images_per_s,
                wall_s: p.wall_s,
            });
        }
        match first_bad {
            Some(d) => Err(d),
            None => Ok(()),
        }
    }

    /// The rows read so far (flush first to include pending steps).
    pub fn take_rows(&mut self) -> Vec<StepRow> {
        std::mem::take(&mut self.rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::diverged::{check_finite, finite_witness, Finite};
    use crate::results::State;

    fn info(phase: Phase, epoch: u32, step: u64) -> StepInfo {
        StepInfo {
            phase,
            epoch,
            step,
            images: 32,
            lr_weights: Some(1e-3),
            lr_arch: None,
            lat_ms: None,
        }
    }

    #[test]
    fn steps_are_read_in_blocks_and_keep_every_value_exactly() {
        let mut log = StepLog::new(0, 3, Clock::start(0.0));
        let losses = [2.3025123456789, 2.1, 1.9876543210123];
        for (s, l) in losses.iter().enumerate() {
            let loss = Tensor::from(*l);
            let acc = Tensor::from(12.5f32);
            log.record(
                info(Phase::Search, 0, s as u64),
                &[(Term::LossTrain, &loss), (Term::AccTrainPct, &acc)],
                vec![("f(b)".into(), finite_witness(&loss))],
            )
            .unwrap();
            if s < 2 {
                assert!(
                    log.take_rows().is_empty(),
                    "nothing is read before the block is full"
                );
            }
        }
        let rows = log.take_rows();
        assert_eq!(rows.len(), 3);
        for (r, l) in rows.iter().zip(losses) {
            assert_eq!(r.term(Term::LossTrain), Some(l));
            assert_eq!(r.term(Term::AccTrainPct), Some(12.5));
            assert_eq!(r.term(Term::FDiscrete), None);
            assert_eq!(r.lr_weights, Some(1e-3));
        }
        assert_eq!(
            rows.iter().map(|r| r.step).collect::<Vec<_>>(),
            vec![0, 1, 2]
        );
    }

    #[test]
    fn a_non_finite_term_is_reported_with_its_step_and_name() {
        let mut log = StepLog::new(0, 10, Clock::start(0.0));
        let ok = Tensor::from(1.0);
        let bad = Tensor::from(f64::NAN);
        log.record(
            info(Phase::Search, 2, 40),
            &[(Term::FRelaxed, &ok)],
            Vec::new(),
        )
        .unwrap();
        log.record(
            info(Phase::Search, 2, 41),
            &[(Term::FDiscrete, &ok), (Term::FRelaxed, &bad)],
            Vec::new(),
        )
        .unwrap();
        let err = log.flush().unwrap_err();
        assert_eq!((err.step, err.term.as_str()), (41, "f_relaxed"));
        assert_eq!(
            err.state(),
            State::Diverged {
                step: 41,
                term: "f_relaxed".into()
            }
        );
        assert_eq!(
            log.take_rows().len(),
            2,
            "rows up to the divergence are kept"
        );
        let host = check_finite(Phase::Train, 1, 7, &[("lat_ms", Some(f64::INFINITY))]);
        assert_eq!(host.unwrap_err().term, "lat_ms");
    }

    #[test]
    fn a_deferred_check_fails_the_block_read_at_its_step_before_that_steps_terms() {
        let mut log = StepLog::new(0, 10, Clock::start(0.0));
        let ok = Tensor::from(1.0);
        let f_b = Tensor::from_slice(&[0.5f32, f32::NEG_INFINITY]);
        for step in 0..3u64 {
            let mut chk = Finite::deferred(step);
            chk.check(&ok, "logits normal").unwrap();
            if step == 1 {
                chk.check(&f_b, "f(b)").unwrap(); // deferred: no error yet
            }
            let bad = Tensor::from(f64::NAN);
            let term = if step == 1 { &bad } else { &ok };
            log.record(
                info(Phase::Search, 1, step),
                &[(Term::FRelaxed, term)],
                chk.take(),
            )
            .unwrap();
        }
        let err = log.flush().unwrap_err();
        assert_eq!((err.step, err.term.as_str()), (1, "f(b)"));
        assert_eq!(err.value, f64::NEG_INFINITY);
        assert_eq!(err.at, Some((Phase::Search, 1)));
        assert_eq!(log.take_rows().len(), 3, "every step's row is kept");
    }
}
