//! Genotypes of the DARTS space (spec §5.3, §9): per cell type, per intermediate node, two branches,
//! each an (input, op). Inputs: 0 = c_{k-2}, 1 = c_{k-1}, 2.. = earlier nodes; output = concat of
//! `concat` states (2..5). The published UNAS genotypes and DARTS_V2 are available by name.

use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};

use super::ops::Primitive;
use super::search_cell::STEPS;
use crate::config::GenotypeChoice;
use crate::nas::arch::DartsMode;

/// One intermediate node: branch s applies `ops[s]` to state `inputs[s]`; the node is their sum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeGene {
    pub inputs: [usize; 2],
    pub ops: [Primitive; 2],
}

/// A discrete DARTS-space architecture.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Genotype {
    pub normal: Vec<NodeGene>,
    pub normal_concat: Vec<usize>,
    pub reduce: Vec<NodeGene>,
    pub reduce_concat: Vec<usize>,
}

const fn node(inputs: [usize; 2], ops: [Primitive; 2]) -> NodeGene {
    NodeGene { inputs, ops }
}

use Primitive::{
    AvgPool3x3 as AVG, DilConv3x3 as DIL3, MaxPool3x3 as MAX, SepConv3x3 as SEP3,
    SepConv5x5 as SEP5, SepConv7x7 as SEP7, SkipConnect as SKIP,
};

impl Genotype {
    fn published(normal: [NodeGene; 4], reduce: [NodeGene; 4]) -> Genotype {
        Genotype {
            normal: normal.to_vec(),
            normal_concat: vec![2, 3, 4, 5],
            reduce: reduce.to_vec(),
            reduce_concat: vec![2, 3, 4, 5],
        }
    }

    /// UNAS, searched on CIFAR-10 (`darts/genotypes.py`).
    pub fn unas_cifar10() -> Genotype {
        Genotype::published(
            [
                node([0, 0], [SEP5, SKIP]),
                node([0, 1], [SKIP, DIL3]),
                node([0, 1], [SEP3, DIL3]),
                node([1, 0], [SEP3, DIL3]),
            ],
            [
                node([0, 0], [SEP3, SEP5]),
                node([1, 0], [SKIP, SEP3]),
                node([1, 0], [AVG, SKIP]),
                node([3, 1], [SEP5, AVG]),
            ],
        )
    }

    /// UNAS, searched on CIFAR-100.
    pub fn unas_cifar100() -> Genotype {
        Genotype::published(
            [
                node([0, 0], [SEP3, DIL3]),
                node([1, 0], [DIL3, SEP3]),
                node([0, 1], [SKIP, SEP3]),
                node([1, 0], [SEP5, SEP3]),
            ],
            [
                node([0, 0], [SEP7, SEP3]),
                node([1, 0], [SEP3, SEP5]),
                node([1, 0], [SEP7, DIL3]),
                node([0, 3], [DIL3, SEP3]),
            ],
        )
    }

    /// UNAS, searched on ImageNet (5 ops).
    pub fn unas_imagenet() -> Genotype {
        Genotype::published(
            [
                node([0, 0], [SEP3, SKIP]),
                node([0, 1], [SEP3, SKIP]),
                node([1, 0], [SEP3, SEP5]),
                node([0, 1], [SEP3, DIL3]),
            ],
            [
                node([0, 1], [SEP5, SEP3]),
                node([0, 1], [SEP5, SEP3]),
                node([1, 0], [SEP5, DIL3]),
                node([3, 1], [DIL3, SEP3]),
            ],
        )
    }

    /// DARTS (second order), `quark0/darts:cnn/genotypes.py:DARTS_V2`; its pairs (op, input) taken two
    /// per node.
    pub fn darts_v2() -> Genotype {
        Genotype::published(
            [
                node([0, 1], [SEP3, SEP3]),
                node([0, 1], [SEP3, SEP3]),
                node([1, 0], [SEP3, SKIP]),
                node([0, 2], [SKIP, DIL3]),
            ],
            [
                node([0, 1], [MAX, MAX]),
                node([2, 1], [SKIP, MAX]),
                node([0, 2], [MAX, SKIP]),
                node([2, 1], [SKIP, MAX]),
            ],
        )
    }

    /// The published genotype a config names; `None` for `search`, `random` and the ProxylessNAS-space
    /// ones.
    pub fn from_choice(choice: GenotypeChoice) -> Option<Genotype> {
        match choice {
            GenotypeChoice::UnasCifar10 => Some(Genotype::unas_cifar10()),
            GenotypeChoice::UnasCifar100 => Some(Genotype::unas_cifar100()),
            GenotypeChoice::UnasImagenet => Some(Genotype::unas_imagenet()),
            GenotypeChoice::DartsV2 => Some(Genotype::darts_v2()),
            GenotypeChoice::Search
            | GenotypeChoice::Random
            | GenotypeChoice::UnasProxyless
            | GenotypeChoice::ProxylessGpu => None,
        }
    }

    /// The published genotype by its config name (`UNAS_CIFAR10`, `DARTS_V2`, ...).
    pub fn by_name(name: &str) -> Result<Genotype> {
        let choice: GenotypeChoice = serde_json::from_value(serde_json::Value::String(
            name.to_owned(),
        ))
        .with_context(|| {
            format!(
                "unknown genotype `{name}`; the DARTS-space ones are UNAS_CIFAR10, UNAS_CIFAR100, \
                     UNAS_IMAGENET, DARTS_V2"
            )
        })?;
        match Genotype::from_choice(choice) {
            Some(g) => Ok(g),
            None => bail!(
                "`{name}` is not a DARTS-space genotype; use UNAS_CIFAR10, UNAS_CIFAR100, UNAS_IMAGENET \
                 or DARTS_V2"
            ),
        }
    }

    /// The genotype of the distribution's mode (spec §5.3): each selector's argmax (input, op), op indices
    /// in the official order, of which the search used the first `num_ops`.
    pub fn from_mode(mode: &DartsMode, num_ops: usize) -> Result<Genotype> {
        let cell = |nodes: &[[(usize, usize); 2]], what: &str| -> Result<Vec<NodeGene>> {
            nodes
                .iter()
                .enumerate()
                .map(|(i, pair)| {
                    let op = |k: usize| {
                        ensure!(
                            k < num_ops,
                            "{what} node {}: op index {k} is not below num_ops = {num_ops}",
                            i + 2
                        );
                        Primitive::from_index(k).with_context(|| {
                            format!("{what} node {}: op index {k} out of range", i + 2)
                        })
                    };
                    Ok(node(
                        [pair[0].0, pair[1].0],
                        [op(pair[0].1)?, op(pair[1].1)?],
                    ))
                })
                .collect()
        };
        let g = Genotype {
            normal: cell(&mode.normal, "normal")?,
            normal_concat: (2..2 + STEPS).collect(),
            reduce: cell(&mode.reduce, "reduce")?,
            reduce_concat: (2..2 + STEPS).collect(),
        };
        g.validate()?;
        Ok(g)
    }

    /// Node i may read only states 0..i+2; concat names existing states.
    pub fn validate(&self) -> Result<()> {
        for (what, nodes, concat) in [
            ("normal", &self.normal, &self.normal_concat),
            ("reduce", &self.reduce, &self.reduce_concat),
        ] {
            ensure!(!nodes.is_empty(), "{what} cell has no nodes");
            for (i, n) in nodes.iter().enumerate() {
                for input in n.inputs {
                    ensure!(
                        input < i + 2,
                        "{what} node {}: input {input} is not an earlier state (0..{})",
                        i + 2,
                        i + 1
                    );
                }
            }
            for &c in concat.iter() {
                ensure!(
                    (2..nodes.len() + 2).contains(&c),
                    "{what}_concat: {c} is not an intermediate node (2..{})",
                    nodes.len() + 1
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_genotypes_round_trip_through_json() {
        for g in [
            Genotype::unas_cifar10(),
            Genotype::unas_cifar100(),
            Genotype::unas_imagenet(),
            Genotype::darts_v2(),
        ] {
            g.validate().unwrap();
            let json = serde_json::to_string(&g).unwrap();
            assert_eq!(serde_json::from_str::<Genotype>(&json).unwrap(), g);
        }
        let json = serde_json::to_value(Genotype::unas_cifar10()).unwrap();
        assert_eq!(json["reduce"][3]["inputs"], serde_json::json!([3, 1]));
        assert_eq!(
            json["reduce"][3]["ops"],
            serde_json::json!(["sep_conv_5x5", "avg_pool_3x3"])
        );
    }

    #[test]
    fn genotype_from_mode_maps_op_indices_in_the_official_order() {
        let spec = Genotype::unas_cifar10();
        let idx = |p: Primitive| {
            super::super::ops::PRIMITIVES
                .iter()
                .position(|&q| q == p)
                .unwrap()
        };
        let pairs = |nodes: &[NodeGene]| -> Vec<[(usize, usize); 2]> {
            nodes
                .iter()
                .map(|n| [(n.inputs[0], idx(n.ops[0])), (n.inputs[1], idx(n.ops[1]))])
                .collect()
        };
        let mode = DartsMode {
            normal: pairs(&spec.normal),
            reduce: pairs(&spec.reduce),
        };
        assert_eq!(Genotype::from_mode(&mode, 7).unwrap(), spec);
        // avg_pool_3x3 (index 5) is not among the first 5 ops
        assert!(Genotype::from_mode(&mode, 5).is_err());
    }

    #[test]
    fn names_resolve_and_non_darts_names_are_refused() {
        assert_eq!(Genotype::by_name("DARTS_V2").unwrap(), Genotype::darts_v2());
        assert!(Genotype::by_name("UNAS_PROXYLESS").is_err());
        assert!(Genotype::by_name("unas_cifar10").is_err());
    }
}
