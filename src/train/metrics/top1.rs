//! Top-1 hits of a batch, on the device.

use tch::{Kind, Tensor};

/// The number of rows whose arg-max logit is the label (a Float scalar on the logits' device).
pub fn top1_correct(logits: &Tensor, labels: &Tensor) -> Tensor {
    logits
        .argmax(-1, false)
        .eq_tensor(labels)
        .to_kind(Kind::Float)
        .sum(Kind::Float)
}
