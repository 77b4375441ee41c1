//! The uniform draws of a step (the Gumbel samplers' U, the drop-path masks' U), recordable: inside
//! [`recorded`] every draw made through [`uniform`] on this thread is also kept, in draw order, so that
//! `unas diagnose parity-torch` can hand the exact noise of one step to the PyTorch reference.

use std::cell::RefCell;

use tch::{Device, Kind, Tensor};

thread_local! {
    /// The draws of the recording running on this thread, if any.
    static TAPE: RefCell<Option<Vec<Tensor>>> = const { RefCell::new(None) };
}

/// U ~ U[0, 1) of `size` (tch's generator), kept when a recording runs.
pub fn uniform(size: &[i64], kind: Kind, device: Device) -> Tensor {
    let u = Tensor::rand(size, (kind, device));
    TAPE.with(|t| {
        if let Some(tape) = t.borrow_mut().as_mut() {
            tape.push(u.shallow_clone());
        }
    });
    u
}

/// Runs `f`, returning its result and the draws it made through [`uniform`], in order.
pub fn recorded<T>(f: impl FnOnce() -> T) -> (T, Vec<Tensor>) {
    struct Stop(Option<Vec<Tensor>>);
    impl Drop for Stop {
        fn drop(&mut self) {
            TAPE.with(|t| *t.borrow_mut() = self.0.take());
        }
    }
    let outer = TAPE.with(|t| t.borrow_mut().replace(Vec::new()));
    let stop = Stop(outer);
    let out = f();
    let tape = TAPE.with(|t| t.borrow_mut().take()).unwrap_or_default();
    drop(stop);
    (out, tape)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recording_keeps_exactly_the_draws_made_inside_it_in_order() {
        let _before = uniform(&[2], Kind::Float, Device::Cpu);
        let ((a, b), tape) = recorded(|| {
            let a = uniform(&[3], Kind::Float, Device::Cpu);
            let b = uniform(&[1, 2], Kind::Double, Device::Cpu);
            (a, b)
        });
        assert_eq!(tape.len(), 2);
        assert_eq!((&tape[0] - &a).abs().max().double_value(&[]), 0.0);
        assert_eq!(tape[1].size(), b.size());
        assert_eq!(tape[1].kind(), Kind::Double);
        // nothing is kept once the recording is over
        let (_, empty) = recorded(|| ());
        assert!(empty.is_empty());
    }
}
