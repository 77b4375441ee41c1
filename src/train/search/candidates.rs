//! Random search with weight sharing (Li & Talwalkar, UAI 2019), once the supernet has been trained
//! on architectures drawn uniformly: K architectures drawn uniformly (the logits never moved, so the
//! distribution's one-hot draw is uniform over the space's valid choices), each scored with the
//! shared weights on the same validation images — the held-out split in one fixed order, with the
//! same random stream per batch for every candidate, BatchNorm in train mode as the search's own
//! validation — and the best returned as the search's genotype.

use anyhow::Result;
use tch::Kind;

use crate::data::loader::{self, Loader};
use crate::nas::arch::SampleKind;
use crate::nas::distribution::Sampler;
use crate::nas::space::SearchSpace;
use crate::results::candidate_rows::CandidateRow;
use crate::results::Phase;
use crate::train::metrics::DeviceMean;
use crate::train::rng::{derive_seed, Pass, StepStreams, Stream};

use super::arch_per::ArchPer;
use super::loss::per_example_ce;
use crate::train::metrics::top1_correct;

/// The end-of-epoch validation pass (and the scoring of candidates, which sees the same images) reads
/// the held-out split in one fixed order: the order of an epoch index that no iterator reaches.
pub(super) const VALIDATION_PASS: u64 = u64::MAX;

/// The epoch index of the candidates' draws and of their scoring passes in the run's random
/// streams: after every epoch a search can have.
const DRAWS: u32 = u32::MAX;
const SCORING: u32 = u32::MAX - 1;

/// A candidate's score with the shared weights.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Score {
    pub loss_val: f64,
    pub acc_val_pct: f64,
}

/// The best candidate: the highest validation top-1, ties to the lower loss, then to the earlier
/// draw; `None` for no candidate.
pub(super) fn best(scores: &[Score]) -> Option<usize> {
    (0..scores.len()).reduce(|a, b| {
        let (x, y) = (scores[a], scores[b]);
        let better = y.acc_val_pct > x.acc_val_pct
            || (y.acc_val_pct == x.acc_val_pct && y.loss_val < x.loss_val);
        if better {
            b
        } else {
            a
        }
    })
}

/// Draws `k` candidates, scores each on the validation split and marks the best; returns the rows
/// (genotypes on one line) and the index of the chosen one.
pub(super) fn search<S: SearchSpace>(
    space: &S,
    val: &Loader,
    arch: ArchPer,
    k: u32,
    seed: u64,
    temperature: f64,
) -> Result<(Vec<CandidateRow>, usize)> {
    let mut rows = Vec::with_capacity(k as usize);
    let mut scores = Vec::with_capacity(k as usize);
    for c in 0..k {
        tch::manual_seed(derive_seed(
            seed,
            Stream::Eval,
            Phase::Search,
            DRAWS,
            u64::from(c),
        ));
        let draw = tch::no_grad(|| {
            space
                .distribution()
                .sample(1, temperature, Sampler::Original)
        });
        let score = score(space, val, arch, &draw.onehot, seed)?;
        rows.push(CandidateRow {
            seed,
            candidate: c,
            genotype: space.genotype_of(&draw.onehot, false)?,
            loss_val: score.loss_val,
            acc_val_pct: score.acc_val_pct,
            chosen: false,
        });
        scores.push(score);
    }
    let chosen =
        best(&scores).ok_or_else(|| anyhow::anyhow!("random search scored no candidate"))?;
    rows[chosen].chosen = true;
    tracing::info!(
        candidates = k,
        chosen,
        acc_val_pct = scores[chosen].acc_val_pct,
        "random search: the best candidate with the shared weights"
    );
    Ok((rows, chosen))
}

/// Loss and top-1 (%) of one architecture (`onehot`, per-group [S, 1, K]) on the validation split,
/// no gradient, one forward per sub-batch as in training; every candidate sees the same batches and
/// the same random stream per sub-batch (dropout of the ProxylessNAS zero op). Over ranks each scores its
/// own sub-batches of every batch and the sums are added up.
fn score<S: SearchSpace>(
    space: &S,
    val: &Loader,
    arch: ArchPer,
    onehot: &[tch::Tensor],
    seed: u64,
) -> Result<Score> {
    let src = val.source();
    let device = space.distribution().groups[0].logits.device();
    let (mut loss, mut acc) = (DeviceMean::new(device), DeviceMean::new(device));
    let ranks = crate::dist::ranks();
    let own = ranks.own(arch.groups() as usize);
    tch::no_grad(|| -> Result<()> {
        for i in 0..src.batches_per_epoch() {
            let b = loader::settled(&*src, VALIDATION_PASS, i)?;
            // sub-batch g of batch i: its own stream, the same for every candidate and every rank
            let batch = StepStreams {
                run_seed: seed,
                phase: Phase::Search,
                epoch: SCORING,
                step: i as u64,
            };
            let parts = arch.parts(&b, onehot).into_iter().enumerate();
            for (g, (part, xs)) in parts.filter(|(g, _)| own.contains(g)) {
                batch.seed(Pass::Validation, g);
                let sample = space.sample(&xs);
                let logits = space.forward(&part.images, &sample, SampleKind::OneHot, true);
                let n = part.images.size()[0] as f64;
                loss.add(&per_example_ce(&logits, &part.labels).mean(Kind::Double), n);
                acc.add(&(top1_correct(&logits, &part.labels) / n), n);
            }
        }
        Ok(())
    })?;
    loss.sum_over(ranks, "a candidate's validation loss")?;
    acc.sum_over(ranks, "a candidate's validation top-1")?;
    Ok(Score {
        loss_val: loss.mean().unwrap_or(f64::NAN),
        acc_val_pct: 100.0 * acc.mean().unwrap_or(0.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(acc_val_pct: f64, loss_val: f64) -> Score {
        Score {
            loss_val,
            acc_val_pct,
        }
    }

    #[test]
    fn the_best_score_is_picked_wherever_it_was_planted() {
        assert_eq!(best(&[]), None);
        for at in 0..5 {
            let mut scores: Vec<Score> = (0..5).map(|i| s(40.0 + i as f64, 1.0)).collect();
            scores[at] = s(90.0, 2.0);
            assert_eq!(best(&scores), Some(at), "planted at {at}");
        }
        // equal accuracy: the lower loss, then the earlier draw
        assert_eq!(best(&[s(70.0, 1.5), s(70.0, 1.2), s(60.0, 0.1)]), Some(1));
        assert_eq!(best(&[s(70.0, 1.2), s(70.0, 1.2)]), Some(0));
    }
}
