//! The ProxylessNAS space as the search loop sees it (spec §1.2, §5.2): the MBConv supernet, the
//! distribution over its 21 blocks (`normal` [15, 7] with `mic_zero`, `reduce` [6, 6]), the genotype
//! of the mode in the published two-list form, and the discrete network of a sample for the latency
//! term to time.

use anyhow::Result;
use tch::{nn, Tensor};

use super::genotype::{reduction_primitives, ProxylessGenotype, BLOCK_PRIMITIVES, STAGE_STARTS};
use super::search_net::{choices_of, ProxylessSearchConfig, ProxylessSearchNet};
use crate::autocast::Amp;
use crate::nas::arch::{ProxylessSample, SampleKind};
use crate::nas::distribution::{choices, Categoricals, ProxylessAlphas};
use crate::nas::space::search_space::{to_json, ChoiceLabel, DiscreteNetwork, SearchSpace};
use crate::results::rows::ChoiceKey;

/// The latency surrogate's features of one architecture given by its per-block op indices (21, in
/// block order): the [`ProxylessAlphas::arch_vector`] of its one-hot sample, the layout the search
/// fits the surrogate on (141 entries: the `normal` rows, then the `reduce` rows).
pub fn choice_features(indices: &[usize]) -> Tensor {
    let (mut normal, mut reduce) = (Vec::new(), Vec::new());
    for (i, &k) in indices.iter().enumerate() {
        let (list, width) = if super::genotype::starts_stage(i + 1) {
            (&mut reduce, reduction_primitives().len())
        } else {
            (&mut normal, BLOCK_PRIMITIVES.len())
        };
        list.push(
            Tensor::from_slice(&[k as i64])
                .one_hot(width as i64)
                .reshape([1, 1, -1]),
        );
    }
    let group = |rows: &[Tensor]| Tensor::cat(rows, 0).to_kind(tch::Kind::Double); // [S, 1, K]
    ProxylessAlphas::arch_vector(&[group(&normal), group(&reduce)]).reshape([-1])
}

/// The ProxylessNAS supernet with its architecture distribution.
pub struct ProxylessSearch {
    /// The precision the supernet's forwards run in (fp32 unless set with `in_precision`).
    amp: Amp,
    net: ProxylessSearchNet,
    alphas: ProxylessAlphas,
}

impl ProxylessSearch {
    /// The supernet's parameters under `vs` and a uniform distribution softened by `soften_eps`.
    pub fn new(
        vs: &nn::Path,
        cfg: &ProxylessSearchConfig,
        soften_eps: f64,
    ) -> Result<ProxylessSearch> {
        Ok(ProxylessSearch {
            net: ProxylessSearchNet::new(vs, cfg)?,
            alphas: ProxylessAlphas::new(soften_eps, vs.device()),
            amp: Amp::default(),
        })
    }

    /// The same space with its forwards in `amp`'s precision.
    pub fn in_precision(self, amp: Amp) -> ProxylessSearch {
        ProxylessSearch { amp, ..self }
    }

    pub fn net(&self) -> &ProxylessSearchNet {
        &self.net
    }

    /// The genotype of the distribution's mode.
    pub fn genotype(&self) -> Result<ProxylessGenotype> {
        let (normal, reduce) = self.alphas.mode();
        ProxylessGenotype::from_indices(&normal, &reduce)
    }
}

/// Block number (1-based) of row `row` of group `normal` or `reduce`.
pub fn block_of(group: &str, row: usize) -> usize {
    if group == "reduce" {
        STAGE_STARTS.get(row).copied().unwrap_or(0)
    } else {
        (1..=21)
            .filter(|b| !STAGE_STARTS.contains(b))
            .nth(row)
            .unwrap_or(0)
    }
}

impl SearchSpace for ProxylessSearch {
    type Sample = ProxylessSample;

    fn distribution(&self) -> &Categoricals {
        &self.alphas.dist
    }

    fn sample(&self, xs: &[Tensor]) -> ProxylessSample {
        self.alphas.to_sample(xs)
    }

    fn forward(
        &self,
        x: &Tensor,
        sample: &ProxylessSample,
        kind: SampleKind,
        train: bool,
    ) -> Tensor {
        self.amp
            .forward(x.device(), || self.net.forward(x, sample, kind, train))
    }

    fn penalty(&self, _sample: &ProxylessSample, _weight: f64) -> Option<Tensor> {
        None // no pair penalty in this space (spec §1.5)
    }

    fn genotype_json(&self, pretty: bool) -> Result<String> {
        to_json(&self.genotype()?, pretty)
    }

    fn genotype_of(&self, onehot: &[Tensor], pretty: bool) -> Result<String> {
        let (normal, reduce) = ProxylessAlphas::arch_of(choices(onehot));
        to_json(&ProxylessGenotype::from_indices(&normal, &reduce)?, pretty)
    }

    /// Groups `normal` and `reduce`; the selector row is the block's place in its group.
    fn choice_label(&self, group: &str, selector: usize, choice: usize) -> ChoiceLabel {
        let list = if group == "reduce" {
            reduction_primitives()
        } else {
            &BLOCK_PRIMITIVES[..]
        };
        ChoiceLabel {
            cell_type: group.to_owned(),
            node: block_of(group, selector) as i64,
            key: ChoiceKey::Op,
            name: list.get(choice).map(|op| op.name()).unwrap_or_default(),
        }
    }

    fn discrete_network(&self, onehot: &[Tensor]) -> Option<DiscreteNetwork<'_>> {
        let choices = choices_of(&self.alphas.to_sample(onehot)); // one host read, before timing
        Some(Box::new(move |x: &Tensor| {
            tch::no_grad(|| self.net.forward_discrete(x, &choices, false))
        }))
    }

    fn arch_features(&self, xs: &[Tensor]) -> Option<Tensor> {
        Some(ProxylessAlphas::arch_vector(xs))
    }
}

#[cfg(test)]
mod feature_tests {
    use super::*;

    #[test]
    fn choice_features_put_each_block_one_hot_in_the_searchs_layout() {
        // normal blocks in order (7 wide), then the first-of-stage blocks (6 wide)
        let indices: Vec<usize> = (0..21).map(|i| (i * 5) % 6).collect();
        let f = Vec::<f64>::try_from(choice_features(&indices)).unwrap();
        assert_eq!(f.len(), 15 * 7 + 6 * 6);
        let (mut normal, mut reduce, mut ones) = (0, 0, Vec::new());
        for (i, &k) in indices.iter().enumerate() {
            if super::super::genotype::starts_stage(i + 1) {
                ones.push(15 * 7 + 6 * reduce + k);
                reduce += 1;
            } else {
                ones.push(7 * normal + k);
                normal += 1;
            }
        }
        ones.sort_unstable();
        let found: Vec<usize> = (0..f.len()).filter(|&j| f[j] == 1.0).collect();
        assert_eq!(found, ones);
        assert_eq!(f.iter().sum::<f64>(), 21.0);
    }
}
