//! The architecture step (spec §1.3, Algorithm 1): draw → f on the discrete and/or relaxed sample →
//! the estimator's surrogate S → ∇_logits S → Adam on the logits. f is the configured objective
//! (train / val / gen-gap, spec §3) plus the space's own term (DARTS: the pair penalty), per example,
//! or per sub-batch with one architecture and one forward pass each.

use std::ops::Range;

use anyhow::{Context, Result};
use tch::{Kind, Tensor};

use crate::config::{self, ObjectiveKind};
use crate::data::loader::{self, Batch, Loader};
use crate::dist::Ranks;
use crate::nas::arch::SampleKind;
use crate::nas::estimator::GradVariance;
use crate::nas::objective;
use crate::nas::space::{pass_norm, SearchSpace};
use crate::results::diverged::Finite;
use crate::results::rows::Term;
use crate::train::optim::Optimizer;
use crate::train::rng::{Pass, StepStreams};

use super::arch_per::ArchPer;
use super::loss::per_example_ce;
use super::plan::StepContext;
use super::state::SearchState;

/// One architecture step on training batch `b` (and, for `val`/`gen-gap`, the next validation batch)
/// with `draw`; pushes f(b), f(ζ), the gap, the penalty, the gradient variance and the entropy. With a
/// latency objective, S also holds the latency term of a second sample; returns that sample's latency.
pub(super) fn arch_step<S: SearchSpace>(
    st: &mut SearchState<S>,
    cx: &StepContext,
    chk: &mut Finite,
    grad_var: &mut GradVariance,
    terms: &mut Vec<(Term, Tensor)>,
) -> Result<Option<f64>> {
    let StepContext { s, ep, b, draw, at } = *cx;
    let at = &at;
    let val = match s.objective.kind {
        ObjectiveKind::Train => None,
        ObjectiveKind::Val | ObjectiveKind::Gengap => Some(next_val(
            &mut st.val_loader,
            st.meta.search_steps,
            at.run_seed,
        )?),
    };
    let SearchState {
        space,
        est,
        opt_a,
        arch,
        latency,
        ..
    } = st;
    let arch = *arch;
    let ranks = crate::dist::ranks();
    let (mut gap, mut pair, mut evaluations) = (None, None, 0);
    let mut f = |xs: &[Tensor], kind: SampleKind| -> Tensor {
        let sample = space.sample(xs);
        let streams = Some((*at, Pass::Objective(evaluations)));
        evaluations += 1;
        let over = per_sub_batch_over(&*space, xs, kind, arch, b, val.as_ref(), s, ranks, streams);
        let (per, g) = match over {
            Ok(v) => v,
            // a peer rank left: f must still return [N]; `ranks.check()` below stops the step
            Err(_) => {
                let zeros = Tensor::zeros([arch.samples(b)], (Kind::Float, b.images.device()));
                (touching(&zeros, &space.distribution().parameters()), None)
            }
        };
        if kind != SampleKind::OneHot {
            gap = g.map(|g| g.detach().mean(Kind::Float));
        }
        match space.penalty(&sample, s.objective.pair_penalty) {
            Some(p) => {
                if kind != SampleKind::OneHot {
                    pair = Some(p.detach().mean(Kind::Float));
                }
                per + ranks.once(&p) // f + 0.2·P_n (P from the whole draw: every rank computes it)
            }
            None => per,
        }
    };
    opt_a.zero_grad();
    let dist = space.distribution();
    let estimate = est.estimate_over(dist, draw, &mut f, chk, ranks);
    ranks.check()?;
    let estimate = estimate.map_err(|d| d.during(ep.phase, ep.epoch))?;
    let (surrogate, lat_ms) = match latency {
        Some(l) => {
            at.seed(Pass::LatencySample, 0); // the same second sample on every rank
            let (s_lat, ms) = l.step(&*space, &b.images, est.estimator, chk)?;
            // S = S_acc + S_lat (spec §2.5); S_lat is of the whole batch: every rank computes it
            (estimate.surrogate + ranks.once(&s_lat), Some(ms))
        }
        None => (estimate.surrogate, None),
    };
    let grads = logit_grads(&surrogate, &dist.parameters(), ranks)?; // ∇_logits S is the estimator
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

/// ∇_logits S, also left in the logits' `.grad` for the architecture optimiser. Only the logits are
/// differentiated: the supernet's weights get no gradient in this step (the weight step computes its
/// own from zero), so autograd skips every weight-gradient kernel of this backward pass — the same
/// logit gradients as `S.backward()`, for roughly a third less backward work. Over ranks, each rank's
/// S reaches what it computed and the gradients are summed: the one-process gradient.
fn logit_grads(surrogate: &Tensor, logits: &[Tensor], ranks: &Ranks) -> Result<Vec<Tensor>> {
    let grads = if ranks.world() > 1 {
        // a rank's S may reach no logit at all (REINFORCE off rank 0): + 0·Σa keeps them all in
        let s = touching(surrogate, logits);
        let grads = Tensor::run_backward(&[&s], logits, false, false);
        let refs: Vec<&Tensor> = grads.iter().collect();
        ranks.sum("the architecture-logit gradients", &refs)?;
        grads
    } else {
        Tensor::run_backward(&[surrogate], logits, false, false)
    };
    // .grad ← g exactly: ∂(Σ a·sg(g))/∂a = g, accumulated into the zeroed (or undefined) .grad
    let carrier = logits
        .iter()
        .zip(&grads)
        .map(|(a, g)| (a * g.detach()).sum(a.kind()))
        .reduce(|x, y| x + y);
    if let Some(c) = carrier {
        c.backward();
    }
    Ok(grads)
}

/// `s + 0·Σ params`: the value of `s` (exactly), with every parameter in its graph.
pub(super) fn touching(s: &Tensor, params: &[Tensor]) -> Tensor {
    params
        .iter()
        .fold(s.shallow_clone(), |acc, p| acc + (p * 0.0).sum(s.kind()))
}

/// The next validation batch. The iterator restarts when exhausted, reshuffled with the official
/// reseeding (`valid_queue.sampler.set_epoch(global_step + seed)`): its order is keyed by the search
/// steps done so far plus the run's seed; the search loop restarts it the same way at every search
/// epoch's start ([`restart_val`]).
pub(super) fn next_val(val: &mut Loader, global_step: u64, seed: u64) -> Result<loader::Batch> {
    match val.next_batch()? {
        Some(b) => Ok(b),
        None => {
            restart_val(val, global_step, seed);
            val.next_batch()?
                .context("the validation split yields no batch")
        }
    }
}

/// `valid_queue.sampler.set_epoch(global_step + seed); iter(valid_queue)`: the validation iterator
/// from its start, in the order keyed by `global_step + seed`.
pub(super) fn restart_val(val: &mut Loader, global_step: u64, seed: u64) {
    val.resume(loader::LoaderState {
        epoch: global_step + seed,
        position: 0,
    });
}

/// f for the draw `xs` on every sub-batch (and the gap when computed), each sub-batch a forward pass
/// with its rows of `xs`: per example [B] with one architecture per example, the sub-batch means [G]
/// with one per sub-batch (f_g is one GPU's mean in the official DDP run). With one architecture per
/// example the one-hot b goes through the relaxed path (op-skip still drops unchosen ops), as the
/// official code evaluates f(b): the discrete fast path would normalise each group of examples with its
/// own BN statistics.
#[cfg(test)]
pub(super) fn per_sub_batch<S: SearchSpace>(
    space: &S,
    xs: &[Tensor],
    kind: SampleKind,
    arch: ArchPer,
    b: &Batch,
    val: Option<&Batch>,
    s: &config::Search,
) -> (Tensor, Option<Tensor>) {
    per_sub_batch_over(space, xs, kind, arch, b, val, s, &Ranks::one(), None)
        .expect("one rank runs no collective")
}

/// [`per_sub_batch`] over ranks: this rank runs its own sub-batches ([`Ranks::own`]); f and the gap
/// come back whole, with the other ranks' entries as constants ([`Ranks::assemble`]), so every rank
/// holds the one-process values and its gradient reaches only what it computed. With `streams`, each
/// sub-batch draws from its own stream of that pass ([`StepStreams`]).
#[allow(clippy::too_many_arguments)]
pub(super) fn per_sub_batch_over<S: SearchSpace>(
    space: &S,
    xs: &[Tensor],
    kind: SampleKind,
    arch: ArchPer,
    b: &Batch,
    val: Option<&Batch>,
    s: &config::Search,
    ranks: &Ranks,
    streams: Option<(StepStreams, Pass)>,
) -> Result<(Tensor, Option<Tensor>)> {
    let groups = arch.groups();
    let own = ranks.own(groups as usize);
    let (per, gaps) = sub_batches(space, xs, kind, arch, b, val, s, own.clone(), streams);
    // where this rank's entries start in the whole vector, and its length
    let (start, total) = match arch {
        ArchPer::Example(_) => {
            let n = b.images.size()[0];
            (own.start as i64 * n / groups, n) // sub-batch g starts at ⌊g·n/G⌋
        }
        ArchPer::SubBatch(_) => (own.start as i64, groups),
    };
    let per = ranks.assemble("the search objective f", &per, start, total)?;
    let gaps = match gaps {
        Some(g) => Some(ranks.assemble("the generalisation gap", &g.detach(), start, total)?),
        None => None,
    };
    Ok((per, gaps))
}

/// f (and the gap) on the sub-batches `which` of `b`, concatenated in order (each from its stream).
#[allow(clippy::too_many_arguments)]
fn sub_batches<S: SearchSpace>(
    space: &S,
    xs: &[Tensor],
    kind: SampleKind,
    arch: ArchPer,
    b: &Batch,
    val: Option<&Batch>,
    s: &config::Search,
    which: Range<usize>,
    streams: Option<(StepStreams, Pass)>,
) -> (Tensor, Option<Tensor>) {
    let va = val.map(|v| v.split(arch.groups()));
    let (mut per, mut gaps) = (Vec::new(), Vec::new());
    for (g, (part, rows)) in arch.parts(b, xs).into_iter().enumerate() {
        if !which.contains(&g) {
            continue;
        }
        let path = match arch {
            ArchPer::Example(_) if kind == SampleKind::OneHot && part.images.size()[0] > 1 => {
                SampleKind::Relaxed
            }
            _ => kind,
        };
        let v = va.as_ref().map(|v| &v[g]);
        if let Some((at, pass)) = streams {
            at.seed(pass, g);
        }
        let (p, gap) = objective_of(space, &rows, path, &part, v, s);
        match arch {
            ArchPer::Example(_) => {
                per.push(p);
                gaps.extend(gap);
            }
            ArchPer::SubBatch(_) => {
                // in f's own precision (float64 in the parity check, which a float32 mean rounded)
                per.push(p.mean(p.kind()).reshape([1]));
                gaps.extend(gap.map(|x| x.mean(x.kind()).reshape([1])));
            }
        }
    }
    let gaps = (!gaps.is_empty()).then(|| Tensor::cat(&gaps, 0));
    (Tensor::cat(&per, 0), gaps)
}

/// The search objective of one architecture sample (its draw tensors `rows`, one architecture per
/// example or one for all) on a training batch and, for `val`/`gengap`, a validation batch: f per
/// example [B], and |ℓ_va − ℓ_tr| per example when computed.
fn objective_of<S: SearchSpace>(
    space: &S,
    rows: &[Tensor],
    path: SampleKind,
    b: &Batch,
    val: Option<&Batch>,
    s: &config::Search,
) -> (Tensor, Option<Tensor>) {
    let sample = space.sample(rows);
    let loss =
        |x: &Batch| per_example_ce(&space.forward(&x.images, &sample, path, true), &x.labels);
    match (&s.objective.kind, val) {
        (ObjectiveKind::Train, _) | (_, None) => (loss(b), None), // f = ℓ_tr
        (ObjectiveKind::Val, Some(v)) => (loss(v), None),         // f = ℓ_va (no training forward)
        (ObjectiveKind::Gengap, Some(v)) => {
            let (l_tr, l_va) = if s.batched_passes {
                train_and_val_batched(space, rows, path, b, v)
            } else {
                (loss(b), loss(v))
            };
            let (f, gap) = objective::gengap(&l_tr, &l_va, s.objective.lambda);
            (f, Some(gap))
        }
    }
}

/// (ℓ_tr, ℓ_va) per example from one forward of both batches with the sample repeated for the
/// validation rows (example n of each batch has architecture n), each batch normalised alone
/// ([`pass_norm::batched`]): the two separate forwards' values in one pass.
fn train_and_val_batched<S: SearchSpace>(
    space: &S,
    rows: &[Tensor],
    path: SampleKind,
    b: &Batch,
    v: &Batch,
) -> (Tensor, Tensor) {
    let (n_tr, n_va) = (b.images.size()[0], v.images.size()[0]);
    let twice: Vec<Tensor> = rows
        .iter()
        .map(|x| {
            let n = x.size()[1]; // [S, N, K]: N = 1 (one architecture) or N = B (per example)
            assert!(
                n == 1 || (n == n_tr && n == n_va),
                "per-example samples of {n} for batches of {n_tr} and {n_va}"
            );
            if n == 1 {
                x.shallow_clone()
            } else {
                Tensor::cat(&[x, x], 1)
            }
        })
        .collect();
    let images = Tensor::cat(&[&b.images, &v.images], 0);
    let labels = Tensor::cat(&[&b.labels, &v.labels], 0);
    let logits = pass_norm::batched(&[n_tr, n_va], || {
        space.forward(&images, &space.sample(&twice), path, true)
    });
    let l = per_example_ce(&logits, &labels);
    (l.narrow(0, 0, n_tr), l.narrow(0, n_tr, n_va))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nas::distribution::Sampler;
    use crate::nas::estimator;
    use crate::nas::space::darts::{DartsSearch, DartsSearchConfig};
    use tch::nn::VarStore;
    use tch::Device;

    /// A REBAR surrogate of the cross-entropy of a tiny supernet on per-example architectures.
    fn surrogate(space: &DartsSearch, seed: i64) -> Tensor {
        tch::manual_seed(seed);
        let x = Tensor::randn([4, 3, 16, 16], (Kind::Float, Device::Cpu));
        let y = Tensor::randint(10, [4], (Kind::Int64, Device::Cpu));
        let draw = space.distribution().sample(4, 0.4, Sampler::Rebar);
        let mut f = |xs: &[Tensor], kind: SampleKind| {
            let path = if kind == SampleKind::OneHot {
                SampleKind::Relaxed
            } else {
                kind
            };
            per_example_ce(&space.forward(&x, &space.sample(xs), path, true), &y)
        };
        estimator::rebar(&draw, &mut f, &mut Finite::eager(0))
            .unwrap()
            .surrogate
    }

    #[test]
    fn logit_gradients_equal_a_full_backward_and_leave_the_weights_alone() {
        tch::manual_seed(0);
        let vs = VarStore::new(Device::Cpu);
        let cfg = DartsSearchConfig {
            layers: 3,
            channels: 4,
            ..DartsSearchConfig::cifar(10)
        };
        let space = DartsSearch::new(&vs.root(), &cfg, 0.0).unwrap();
        let logits = space.distribution().parameters();
        // a random, non-uniform distribution, so that every logit has a gradient of its own
        tch::no_grad(|| {
            for l in &logits {
                l.shallow_clone().copy_(&(Tensor::randn_like(l) * 0.5));
            }
        });
        surrogate(&space, 7).backward();
        let full: Vec<Tensor> = logits.iter().map(|l| l.grad().copy()).collect();
        for (_, w) in vs.variables() {
            let mut g = w.grad();
            if g.defined() {
                let _ = g.zero_();
            }
        }
        for l in &logits {
            let _ = l.grad().zero_();
        }
        let grads = logit_grads(&surrogate(&space, 7), &logits, &Ranks::one()).unwrap();
        for ((l, g), f) in logits.iter().zip(&grads).zip(&full) {
            assert!(f.abs().sum(Kind::Float).double_value(&[]) > 0.0);
            assert_eq!(g, f, "logit gradient differs from the full backward's");
            assert_eq!(&l.grad(), f, "the optimiser would not see the same .grad");
        }
        for (name, w) in vs.variables() {
            let g = w.grad();
            let touched = g.defined() && g.abs().sum(Kind::Float).double_value(&[]) > 0.0;
            assert!(
                !touched,
                "{name} received a gradient in the architecture step"
            );
        }
    }
}
