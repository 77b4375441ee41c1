//! The architecture step (spec §1.3, Algorithm 1): draw → f on the discrete and/or relaxed sample →
//! the estimator's surrogate S → ∇_logits S → Adam on the logits. f is the configured objective
//! (train / val / gen-gap, spec §3) plus the space's own term (DARTS: the pair penalty), per example,
//! or per sub-batch with one architecture and one forward pass each.

use anyhow::{Context, Result};
use tch::{Kind, Tensor};

use crate::config::{self, ObjectiveKind};
use crate::data::loader::{self, Batch, Loader};
use crate::nas::arch::SampleKind;
use crate::nas::distribution::Draw;
use crate::nas::estimator::GradVariance;
use crate::nas::objective;
use crate::nas::space::SearchSpace;
use crate::results::rows::Term;
use crate::train::optim::Optimizer;

use super::state::SearchState;
use super::{per_example_ce, sample_rows, ArchPer, EpochPlan};

/// One architecture step on training batch `b` (and, for `val`/`gen-gap`, the next validation batch)
/// with `draw`; pushes f(b), f(ζ), the gap, the penalty, the gradient variance and the entropy. With a
/// latency objective, S also holds the latency term of a second sample; returns that sample's latency.
#[allow(clippy::too_many_arguments)]
pub(super) fn arch_step<S: SearchSpace>(
    st: &mut SearchState<S>,
    s: &config::Search,
    ep: &EpochPlan,
    b: &Batch,
    draw: &Draw,
    step: u64,
    grad_var: &mut GradVariance,
    terms: &mut Vec<(Term, Tensor)>,
) -> Result<Option<f64>> {
    let val = match s.objective.kind {
        ObjectiveKind::Train => None,
        ObjectiveKind::Val | ObjectiveKind::Gengap => Some(next_val(&mut st.val_loader)?),
    };
    let SearchState {
        space,
        est,
        opt_a,
        arch,
        latency,
        ..
    } = st;
    let (arch, n) = (*arch, arch.samples(b));
    let (mut gap, mut pair) = (None, None);
    let mut f = |xs: &[Tensor], kind: SampleKind| -> Tensor {
        let sample = space.sample(xs);
        let (per, g) = match arch {
            // With one architecture per example, the discrete fast path would normalise each group
            // of examples with its own BN statistics; the official code evaluates f(b) through the
            // relaxed supernet (BN over the whole batch). Exactness first: the one-hot b goes
            // through the relaxed path then (op-skip still drops unchosen ops).
            ArchPer::Example => {
                let path = if n > 1 { SampleKind::Relaxed } else { kind };
                objective_of(&*space, &sample, path, b, val.as_ref(), s)
            }
            // One forward pass per sub-batch with its own sample, as one GPU of the official DDP
            // run: f_g is that sub-batch's mean.
            ArchPer::SubBatch(groups) => {
                per_sub_batch(&*space, xs, kind, groups, b, val.as_ref(), s)
            }
        };
        if kind == SampleKind::Relaxed {
            gap = g.map(|g| g.detach().mean(Kind::Float));
        }
        match space.penalty(&sample, s.objective.pair_penalty) {
            Some(p) => {
                if kind == SampleKind::Relaxed {
                    pair = Some(p.detach().mean(Kind::Float));
                }
                per + p // f + 0.2·P_n
            }
            None => per,
        }
    };
    opt_a.zero_grad();
    let dist = space.distribution();
    let estimate = est
        .estimate(dist, draw, &mut f, step)
        .map_err(|d| d.during(ep.phase, ep.epoch))?;
    let (surrogate, lat_ms) = match latency {
        Some(l) => {
            let (s_lat, ms) = l.step(&*space, &b.images, est.estimator, step)?;
            (estimate.surrogate + s_lat, Some(ms)) // S = S_acc + S_lat (spec §2.5)
        }
        None => (estimate.surrogate, None),
    };
    surrogate.backward(); // ∇_logits S is the estimator
    let grads: Vec<Tensor> = dist
        .parameters()
        .iter()
        .map(|p| p.grad().detach().copy())
        .collect();
    let var = grad_var.observe(&grads);
    opt_a.step();
    terms.extend(estimate.f_discrete.map(|v| (Term::FDiscrete, v)));
    terms.extend(estimate.f_relaxed.map(|v| (Term::FRelaxed, v)));
    terms.extend(gap.map(|g| (Term::GenGap, g)));
    terms.extend(pair.map(|p| (Term::PairPenalty, p)));
    terms.push((Term::GradVarArch, var));
    terms.push((Term::EntropyNats, dist.entropy().detach()));
    Ok(lat_ms)
}

/// The next validation batch; the iterator restarts (reshuffled) when exhausted, as the official one.
fn next_val(val: &mut Loader) -> Result<loader::Batch> {
    match val.next_batch()? {
        Some(b) => Ok(b),
        None => val
            .next_batch()?
            .context("the validation split yields no batch"),
    }
}

/// f per sub-batch [G] (and the mean gap per sub-batch when computed), each sub-batch with its own
/// sample row of `xs`.
fn per_sub_batch<S: SearchSpace>(
    space: &S,
    xs: &[Tensor],
    kind: SampleKind,
    groups: i64,
    b: &Batch,
    val: Option<&Batch>,
    s: &config::Search,
) -> (Tensor, Option<Tensor>) {
    let tr = b.split(groups);
    let va = val.map(|v| v.split(groups));
    let (mut per, mut gaps) = (Vec::new(), Vec::new());
    for (g, part) in tr.iter().enumerate() {
        let sg = space.sample(&sample_rows(xs, g as i64));
        let v = va.as_ref().map(|v| &v[g]);
        let (p, gap) = objective_of(space, &sg, kind, part, v, s);
        per.push(p.mean(Kind::Float));
        gaps.extend(gap.map(|x| x.mean(Kind::Float)));
    }
    let gaps = (!gaps.is_empty()).then(|| Tensor::stack(&gaps, 0));
    (Tensor::stack(&per, 0), gaps)
}

/// The search objective of one architecture sample (or one per example) on a training batch and, for
/// `val`/`gengap`, a validation batch: f per example [B], and |ℓ_va − ℓ_tr| per example when computed.
fn objective_of<S: SearchSpace>(
    space: &S,
    sample: &S::Sample,
    path: SampleKind,
    b: &Batch,
    val: Option<&Batch>,
    s: &config::Search,
) -> (Tensor, Option<Tensor>) {
    let loss = |x: &Batch| per_example_ce(&space.forward(&x.images, sample, path, true), &x.labels);
    let l_tr = loss(b);
    match (&s.objective.kind, val) {
        (ObjectiveKind::Train, _) | (_, None) => (l_tr, None), // f = ℓ_tr
        (ObjectiveKind::Val, Some(v)) => (loss(v), None),      // f = ℓ_va
        (ObjectiveKind::Gengap, Some(v)) => {
            let (f, gap) = objective::gengap(&l_tr, &loss(v), s.objective.lambda);
            (f, Some(gap))
        }
    }
}
