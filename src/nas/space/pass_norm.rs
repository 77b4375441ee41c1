//! BatchNorm that keeps each forward pass's statistics when several passes run as one batch
//! (`search.batched_passes`). The training and validation batches of the gen-gap objective share the
//! supernet's weights and the architecture sample, so they can go through the supernet as one batch —
//! half the kernel launches — except that the official code normalises each with its own batch
//! statistics. Inside [`batched`], every [`PassNorm`] cuts its input into the passes' row ranges and
//! runs libtorch's BatchNorm on each in order, so the outputs, the gradients and the running
//! statistics (updated once per pass, in pass order) are what separate passes give. Convolutions,
//! poolings, the mixed ops' weighting and the classifier act on every example alone and need nothing.
//!
//! Outside [`batched`] (training from scratch, eval mode, every other forward) a `PassNorm` is
//! `nn::BatchNorm`.

use std::cell::RefCell;

use tch::nn::{self, ModuleT};
use tch::Tensor;

thread_local! {
    /// The row counts of the passes of the batched forward running on this thread, if any.
    static PASSES: RefCell<Option<Vec<i64>>> = const { RefCell::new(None) };
}

/// Runs `f` with its forwards' batches made of passes of `rows` examples each (in order).
pub fn batched<T>(rows: &[i64], f: impl FnOnce() -> T) -> T {
    struct Restore(Option<Vec<i64>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            PASSES.with(|p| *p.borrow_mut() = self.0.take());
        }
    }
    let _restore = Restore(PASSES.with(|p| p.borrow_mut().replace(rows.to_vec())));
    f()
}

fn passes() -> Option<Vec<i64>> {
    PASSES.with(|p| p.borrow().clone())
}

/// BatchNorm2d, per pass inside [`batched`].
#[derive(Debug)]
pub struct PassNorm {
    bn: nn::BatchNorm,
}

impl PassNorm {
    pub fn new(vs: &nn::Path, c: i64, cfg: nn::BatchNormConfig) -> PassNorm {
        PassNorm {
            bn: nn::batch_norm2d(vs, c, cfg),
        }
    }
}

impl ModuleT for PassNorm {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        match passes() {
            Some(rows) if train && rows.len() > 1 => {
                let n = x.size()[0];
                assert_eq!(
                    rows.iter().sum::<i64>(),
                    n,
                    "a batched forward of passes {rows:?} reached a BatchNorm with {n} rows"
                );
                let parts: Vec<Tensor> = x
                    .split_with_sizes(&rows, 0)
                    .iter()
                    .map(|part| part.apply_t(&self.bn, true)) // each pass with its own statistics
                    .collect();
                Tensor::cat(&parts, 0)
            }
            _ => x.apply_t(&self.bn, train),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    fn norm(vs: &nn::VarStore) -> PassNorm {
        let cfg = nn::BatchNormConfig {
            ws_init: nn::Init::Const(1.0), // tch's default γ is random: the two norms must agree
            ..Default::default()
        };
        PassNorm::new(&(vs.root() / "bn"), 3, cfg)
    }

    #[test]
    fn batched_passes_normalise_alone_and_update_the_running_statistics_as_separate_passes() {
        tch::manual_seed(0);
        let (vs_a, vs_b) = (
            nn::VarStore::new(Device::Cpu),
            nn::VarStore::new(Device::Cpu),
        );
        let (a, b) = (norm(&vs_a), norm(&vs_b));
        let x = Tensor::randn([5, 3, 4, 4], (Kind::Float, Device::Cpu)) * 3.0 + 1.0;
        let y = Tensor::randn([4, 3, 4, 4], (Kind::Float, Device::Cpu));
        let separate = Tensor::cat(&[x.apply_t(&a, true), y.apply_t(&a, true)], 0);
        let xy = Tensor::cat(&[&x, &y], 0);
        let together = batched(&[5, 4], || xy.apply_t(&b, true));
        let d = (&separate - &together).abs().max().double_value(&[]);
        assert_eq!(d, 0.0, "batched differs from separate by {d}");
        let stats = |vs: &nn::VarStore| {
            let mut v = vs.variables().into_iter().collect::<Vec<_>>();
            v.sort_by(|p, q| p.0.cmp(&q.0));
            v
        };
        for ((name, s), (_, t)) in stats(&vs_a).iter().zip(stats(&vs_b).iter()) {
            let d = (s - t).abs().max().double_value(&[]);
            assert_eq!(d, 0.0, "{name} differs by {d}");
        }
        // without `batched` the same call normalises the whole batch at once: another result
        let whole = xy.apply_t(&norm(&nn::VarStore::new(Device::Cpu)), true);
        assert!((whole - &together).abs().max().double_value(&[]) > 1e-3);
        // and `batched` is scoped: it is gone after the call
        assert!(passes().is_none());
    }

    #[test]
    #[should_panic(expected = "reached a BatchNorm with 9 rows")]
    fn a_batch_that_is_not_the_passes_is_refused() {
        let vs = nn::VarStore::new(Device::Cpu);
        let x = Tensor::randn([9, 3, 2, 2], (Kind::Float, Device::Cpu));
        let _ = batched(&[5, 5], || x.apply_t(&norm(&vs), true));
    }
}
