//! The weight step (spec §1.3; the warm-up's only step, §1.4): Adam on the supernet's weights, on the
//! same training batch as the architecture step, with that step's relaxed sample detached — one
//! forward per sub-batch (∇ of the mean of the sub-batch means, as DDP averages the GPUs'
//! gradients; `darts` trains on its softmax mixture instead), gradient-norm clipping, and the step's
//! loss and top-1 into the epoch's running means.

use anyhow::Result;
use tch::{Kind, Tensor};

use crate::config;
use crate::config::estimator::WeightSample;
use crate::data::loader::Batch;
use crate::dist::Ranks;
use crate::nas::arch::SampleKind;
use crate::nas::distribution::Draw;
use crate::nas::space::SearchSpace;
use crate::results::rows::Term;
use crate::train::clip_grad_norm;
use crate::train::metrics::top1_correct;
use crate::train::optim::Optimizer;
use crate::train::rng::{Pass, StepStreams};

use super::arch_per::ArchPer;
use super::loss::per_example_ce;
use super::plan::StepContext;
use super::state::SearchState;

/// One weight step on `b`; pushes the loss, the top-1 and the weights' gradient norm. Over ranks,
/// each runs its own sub-batches and the weights' gradients are summed before the clip and the step,
/// so every rank takes the one-process step.
pub(super) fn weight_step<S: SearchSpace>(
    st: &mut SearchState<S>,
    cx: &StepContext,
    terms: &mut Vec<(Term, Tensor)>,
) -> Result<()> {
    let (s, warm, b, draw, at) = (cx.s, cx.ep.warm(), cx.b, cx.draw, &cx.at);
    let ranks = crate::dist::ranks();
    let (xs, kind) = weight_sample(s.estimator, st.space.distribution(), draw);
    let opt = if warm {
        &mut st.opt_warm
    } else {
        &mut st.opt_w
    };
    opt.zero_grad();
    let (loss, correct) = weight_gradient(&st.space, st.arch, b, &xs, kind, ranks, Some(at))?;
    crate::train::variables::sum_gradients(&st.weights, ranks)?;
    let gnorm = clip_grad_norm(st.weights.iter().map(|(_, t)| t), s.grad_clip);
    opt.step();
    let bsz = b.images.size()[0] as f64;
    st.loss.add(&loss, bsz);
    st.top1.add(&(&correct * (100.0 / bsz)), bsz);
    terms.push((Term::LossTrain, loss));
    terms.push((Term::AccTrainPct, correct * (100.0 / bsz)));
    terms.push((Term::GradNormWeights, gnorm));
    Ok(())
}

/// Accumulates ∇_w (1/G)·Σ_g ℓ_g into the weights' gradients, ℓ_g the mean cross-entropy of
/// sub-batch g under its rows of `xs` (one forward per sub-batch, its own BN statistics: DDP averages
/// the GPUs' gradients), over this rank's sub-batches ([`Ranks::own`]; all of them for one rank).
/// With `streams`, sub-batch g draws from its own stream ([`Pass::Weights`], g). Returns the mean of
/// all G sub-batch means and the number of correct top-1 predictions in `b`.
pub(super) fn weight_gradient<S: SearchSpace>(
    space: &S,
    arch: ArchPer,
    b: &Batch,
    xs: &[Tensor],
    kind: SampleKind,
    ranks: &Ranks,
    streams: Option<&StepStreams>,
) -> Result<(Tensor, Tensor)> {
    let groups = arch.groups();
    let own = ranks.own(groups as usize);
    let (mut losses, mut correct) = (Vec::new(), Vec::new());
    for (g, (part, rows)) in arch.parts(b, xs).into_iter().enumerate() {
        if !own.contains(&g) {
            continue;
        }
        if let Some(at) = streams {
            at.seed(Pass::Weights, g);
        }
        let logits = space.forward(&part.images, &space.sample(&rows), kind, true);
        let l = per_example_ce(&logits, &part.labels).mean(Kind::Float);
        (&l / groups as f64).backward(); // ∇ (1/G)·Σ_g ℓ_g
        losses.push(l.detach().reshape([1]));
        correct.push(top1_correct(&logits.detach(), &part.labels));
    }
    ranks.slice_totals(&losses, &correct, own.start, groups)
}

/// What the weight step (and the search-time validation) trains on: a draw's relaxed sample ζ
/// (official), for `darts` the softmax mixture q̃ itself with every op run (first-order DARTS), for
/// `random_ws` the draw's one-hot architectures (only their ops run).
pub(super) fn weight_sample(
    estimator: config::Estimator,
    dist: &crate::nas::distribution::Categoricals,
    draw: &Draw,
) -> (Vec<Tensor>, SampleKind) {
    match estimator.weight_sample() {
        WeightSample::Mixture => (
            dist.probabilities(1).iter().map(Tensor::detach).collect(),
            SampleKind::Dense,
        ),
        WeightSample::Relaxed => (
            draw.relaxed.iter().map(Tensor::detach).collect(),
            SampleKind::Relaxed,
        ),
        WeightSample::Discrete => (
            draw.onehot.iter().map(Tensor::detach).collect(),
            SampleKind::OneHot,
        ),
    }
}
