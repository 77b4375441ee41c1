//! The per-example loss every pass of the search computes.

use tch::{Reduction, Tensor};

/// Per-example cross-entropy [B].
pub(super) fn per_example_ce(logits: &Tensor, y: &Tensor) -> Tensor {
    logits.cross_entropy_loss::<Tensor>(y, None, Reduction::None, -100, 0.0)
}
