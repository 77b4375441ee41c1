//! The DARTS space as the search loop sees it: the paired-input supernet and its distribution
//! (spec §1.1, §5.1), the pair penalty (§3), the derived genotype (§5.3).

use anyhow::Result;
use tch::{nn, Tensor};

use super::{DartsSearchConfig, DartsSearchNet, Genotype, Primitive};
use crate::autocast::Amp;
use crate::nas::arch::{DartsSample, SampleKind};
use crate::nas::distribution::{choices, Categoricals, DartsAlphas};
use crate::nas::objective::pair_penalty;
use crate::nas::space::search_space::{to_json, ChoiceLabel, SearchSpace};
use crate::results::rows::ChoiceKey;

/// The DARTS supernet with its architecture distribution (4 intermediate nodes per cell).
pub struct DartsSearch {
    /// The precision the supernet's forwards run in (fp32 unless set with `in_precision`).
    amp: Amp,
    net: DartsSearchNet,
    alphas: DartsAlphas,
    num_ops: usize,
}

impl DartsSearch {
    /// Builds the supernet's parameters under `vs` (initialised from tch's generator, which the loop
    /// seeds) and a uniform distribution softened by `soften_eps` on `device`.
    pub fn new(vs: &nn::Path, cfg: &DartsSearchConfig, soften_eps: f64) -> Result<DartsSearch> {
        Ok(DartsSearch {
            net: DartsSearchNet::new(vs, cfg)?,
            alphas: DartsAlphas::new(4, cfg.num_ops as i64, soften_eps, vs.device()),
            num_ops: cfg.num_ops,
            amp: Amp::default(),
        })
    }

    /// The same space with its forwards in `amp`'s precision.
    pub fn in_precision(self, amp: Amp) -> DartsSearch {
        DartsSearch { amp, ..self }
    }
}

impl SearchSpace for DartsSearch {
    type Sample = DartsSample;

    fn distribution(&self) -> &Categoricals {
        &self.alphas.dist
    }

    fn sample(&self, xs: &[Tensor]) -> DartsSample {
        self.alphas.to_sample(xs)
    }

    fn forward(&self, x: &Tensor, sample: &DartsSample, kind: SampleKind, train: bool) -> Tensor {
        self.amp
            .forward(x.device(), || self.net.forward(x, sample, kind, train))
    }

    fn penalty(&self, sample: &DartsSample, weight: f64) -> Option<Tensor> {
        Some(pair_penalty(sample, weight)) // weight·P_n
    }

    fn genotype_json(&self, pretty: bool) -> Result<String> {
        to_json(
            &Genotype::from_mode(&self.alphas.mode(), self.num_ops)?,
            pretty,
        )
    }

    fn genotype_of(&self, onehot: &[Tensor], pretty: bool) -> Result<String> {
        let arch = self.alphas.arch_of(choices(onehot));
        to_json(&Genotype::from_mode(&arch, self.num_ops)?, pretty)
    }

    /// Groups are named `<cell type>/node<i>/<inputs|ops>`.
    fn choice_label(&self, group: &str, _selector: usize, choice: usize) -> ChoiceLabel {
        let mut parts = group.split('/');
        let cell_type = parts.next().unwrap_or_default().to_owned();
        let node = parts
            .next()
            .and_then(|n| n.trim_start_matches("node").parse().ok())
            .unwrap_or(0);
        let (key, name) = if parts.next() == Some("inputs") {
            let name = match choice {
                0 => "c_{k-2}".into(),
                1 => "c_{k-1}".into(),
                j => format!("node{}", j - 2),
            };
            (ChoiceKey::Input, name)
        } else {
            let name = Primitive::from_index(choice)
                .map(|p| p.name().to_owned())
                .unwrap_or_default();
            (ChoiceKey::Op, name)
        };
        ChoiceLabel {
            cell_type,
            node,
            key,
            name,
        }
    }
}
