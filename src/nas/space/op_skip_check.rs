//! Test support shared by the two supernets: every `search.op_skip_threshold` validation accepts
//! ([0, 1)) must build a network that trains.

use tch::nn::VarStore;
use tch::{Kind, Tensor};

/// The largest `search.op_skip_threshold` validation accepts: the last f64 below 1.
pub const LARGEST_THRESHOLD: f64 = 1.0 - f64::EPSILON / 2.0;

/// For each threshold, `forward(threshold)` builds a net and runs a relaxed training forward; the
/// logits must be [B, classes] and their backward must leave a finite gradient on the classifier.
pub fn assert_trains_at(
    thresholds: &[f64],
    shape: [i64; 2],
    forward: impl Fn(f64) -> (VarStore, Tensor),
) {
    assert!((0.0..1.0).contains(&LARGEST_THRESHOLD) && LARGEST_THRESHOLD > 0.9);
    for &thr in thresholds {
        let (vs, out) = forward(thr);
        assert_eq!(out.size(), shape, "threshold {thr}");
        out.sum(Kind::Float).backward();
        let g = vs.variables()["classifier.weight"].grad();
        assert!(
            g.defined(),
            "threshold {thr}: no gradient reaches the classifier"
        );
        assert!(
            g.isfinite().all().int64_value(&[]) == 1,
            "threshold {thr}: non-finite gradient"
        );
    }
}

/// An all-skipped network ignores its input: with `forward(threshold, images)` (each net built from the same seed), the
/// logits of `x` and of `x` mirrored are equal at [`LARGEST_THRESHOLD`] and differ at 0.
pub fn assert_input_ignored_only_when_all_skipped(
    x: &Tensor,
    forward: impl Fn(f64, &Tensor) -> Tensor,
) {
    let other = x.flip([3]); // the images mirrored: another input
    let spread = |thr: f64| {
        tch::no_grad(|| {
            (forward(thr, x) - forward(thr, &other))
                .abs()
                .max()
                .double_value(&[])
        })
    };
    assert_eq!(spread(LARGEST_THRESHOLD), 0.0);
    assert!(spread(0.0) > 1e-6);
}
