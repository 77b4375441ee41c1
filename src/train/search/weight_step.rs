//! The weight step (spec §1.3; the warm-up's only step, §1.4): Adam on the supernet's weights, on the
//! same training batch as the architecture step, with that step's relaxed sample detached — one
//! forward per sub-batch when each sub-batch has its own architecture (∇ of the mean of the
//! sub-batch means, as DDP averages the GPUs' gradients), gradient-norm clipping, and the step's
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
use super::{per_example_ce, sample_rows, ArchPer};

/// One weight step on `b`; pushes the loss, the top-1 and the weights' gradient norm.
pub(super) fn weight_step<S: SearchSpace>(
    st: &mut SearchState<S>,
    s: &config::Search,
    warm: bool,
    b: &Batch,
    draw: &Draw,
    terms: &mut Vec<(Term, Tensor)>,
) {
    let relaxed: Vec<Tensor> = draw.relaxed.iter().map(Tensor::detach).collect();
    let opt = if warm {
        &mut st.opt_warm
    } else {
        &mut st.opt_w
    };
    opt.zero_grad();
    let (loss, logits) = match st.arch {
        ArchPer::SubBatch(groups) if groups > 1 => {
            let (mut losses, mut all) = (Vec::new(), Vec::new());
            for (g, part) in b.split(groups).iter().enumerate() {
                let sg = st.space.sample(&sample_rows(&relaxed, g as i64));
                let logits = st
                    .space
                    .forward(&part.images, &sg, SampleKind::Relaxed, true);
                let l = per_example_ce(&logits, &part.labels).mean(Kind::Float);
                (&l / groups as f64).backward(); // ∇ (1/G)·Σ_g ℓ_g
                losses.push(l.detach());
                all.push(logits.detach());
            }
            (
                Tensor::stack(&losses, 0).mean(Kind::Float),
                Tensor::cat(&all, 0),
            )
        }
        _ => {
            let sample = st.space.sample(&relaxed);
            let logits = st
                .space
                .forward(&b.images, &sample, SampleKind::Relaxed, true);
            let loss = per_example_ce(&logits, &b.labels).mean(Kind::Float);
            loss.backward();
            (loss.detach(), logits.detach())
        }
    };
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
