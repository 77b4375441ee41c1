//! The weight step (spec §1.3; the warm-up's only step, §1.4): Adam on the supernet's weights, on the
//! same training batch as the architecture step, with that step's relaxed sample detached — one
//! forward per sub-batch (∇ of the mean of the sub-batch means, as DDP averages the GPUs'
//! gradients; `darts` trains on its softmax mixture instead), gradient-norm clipping, and the step's
//! loss and top-1 into the epoch's running means.

use tch::{Kind, Tensor};

use crate::config;
use crate::data::loader::Batch;
use crate::nas::arch::SampleKind;
use crate::nas::distribution::Draw;
use crate::nas::space::SearchSpace;
use crate::results::rows::Term;
use crate::train::clip_grad_norm;
use crate::train::optim::Optimizer;

use super::state::SearchState;
use super::{per_example_ce, weight_sample, ArchPer};

/// One weight step on `b`; pushes the loss, the top-1 and the weights' gradient norm.
pub(super) fn weight_step<S: SearchSpace>(
    st: &mut SearchState<S>,
    s: &config::Search,
    warm: bool,
    b: &Batch,
    draw: &Draw,
    terms: &mut Vec<(Term, Tensor)>,
) {
    let (xs, kind) = weight_sample(s.estimator, st.space.distribution(), draw);
    let opt = if warm {
        &mut st.opt_warm
    } else {
        &mut st.opt_w
    };
    opt.zero_grad();
    let (loss, logits) = weight_gradient(&st.space, st.arch, b, &xs, kind);
    let gnorm = clip_grad_norm(st.weights.iter().map(|(_, t)| t), s.grad_clip);
    opt.step();
    let bsz = b.images.size()[0] as f64;
    let correct = logits
        .argmax(-1, false)
        .eq_tensor(&b.labels)
        .to_kind(Kind::Float)
        .sum(Kind::Float);
    st.loss.add(&loss, bsz);
    st.top1.add(&(&correct * (100.0 / bsz)), bsz);
    terms.push((Term::LossTrain, loss));
    terms.push((Term::AccTrainPct, correct * (100.0 / bsz)));
    terms.push((Term::GradNormWeights, gnorm));
}

/// Accumulates ∇_w (1/G)·Σ_g ℓ_g into the weights' gradients, ℓ_g the mean cross-entropy of
/// sub-batch g under its rows of `xs` (one forward per sub-batch, its own BN statistics: DDP averages
/// the GPUs' gradients); returns the mean of the sub-batch means and the logits, detached.
pub(super) fn weight_gradient<S: SearchSpace>(
    space: &S,
    arch: ArchPer,
    b: &Batch,
    xs: &[Tensor],
    kind: SampleKind,
) -> (Tensor, Tensor) {
    let groups = arch.groups() as f64;
    let (mut losses, mut all) = (Vec::new(), Vec::new());
    for (part, rows) in arch.parts(b, xs) {
        let logits = space.forward(&part.images, &space.sample(&rows), kind, true);
        let l = per_example_ce(&logits, &part.labels).mean(Kind::Float);
        (&l / groups).backward(); // ∇ (1/G)·Σ_g ℓ_g
        losses.push(l.detach());
        all.push(logits.detach());
    }
    (
        Tensor::stack(&losses, 0).mean(Kind::Float),
        Tensor::cat(&all, 0),
    )
}
