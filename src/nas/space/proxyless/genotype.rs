//! Genotypes of the ProxylessNAS space (spec §5.2, §9): one candidate per searchable block (21 blocks
//! on the ProxylessNAS-GPU skeleton). Published as two lists, `reduce` (the blocks that start a stage:
//! 1, 5, 9, 13, 17, 21) and `normal` (the other 15, in order); `mic_zero` skips a block (identity), and
//! only `normal` blocks may take it.

use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};

use crate::config::GenotypeChoice;

/// Searchable blocks.
pub const BLOCKS: usize = 21;
/// Blocks (1-based) that start a stage: the channel count changes there.
pub const STAGE_STARTS: [usize; 6] = [1, 5, 9, 13, 17, 21];

/// The candidates of a non-first block in the order of the architecture logits (`BLOCK_PRIMITIVES`,
/// 7 entries): `mic_zero` at index 0 as officially, then the MBConvs kernel-major. The order after
/// index 0 is [UNCONFIRMED] (the release's list could not be read); genotypes print and load by name,
/// so it only matters for reading raw logits.
pub const BLOCK_PRIMITIVES: [BlockOp; 7] = [
    BlockOp::Zero,
    BlockOp::MbConv {
        kernel: 3,
        expand: 3,
    },
    BlockOp::MbConv {
        kernel: 3,
        expand: 6,
    },
    BlockOp::MbConv {
        kernel: 5,
        expand: 3,
    },
    BlockOp::MbConv {
        kernel: 5,
        expand: 6,
    },
    BlockOp::MbConv {
        kernel: 7,
        expand: 3,
    },
    BlockOp::MbConv {
        kernel: 7,
        expand: 6,
    },
];

/// The candidates of a first-of-stage block (`REDUCTION_PRIMITIVES`, 6 entries): no `mic_zero`.
pub fn reduction_primitives() -> &'static [BlockOp] {
    &BLOCK_PRIMITIVES[1..]
}

/// Whether block `b` (1-based) starts a stage (its channels change: no `mic_zero`).
pub fn starts_stage(b: usize) -> bool {
    STAGE_STARTS.contains(&b)
}

/// One candidate: an MBConv with kernel k and expansion e (`mic_{k}x{k}_e{e}`), or `mic_zero`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BlockOp {
    MbConv { kernel: i64, expand: i64 },
    Zero,
}

impl BlockOp {
    /// The official name, e.g. `mic_5x5_e3`.
    pub fn name(self) -> String {
        match self {
            BlockOp::MbConv { kernel, expand } => format!("mic_{kernel}x{kernel}_e{expand}"),
            BlockOp::Zero => "mic_zero".into(),
        }
    }

    pub fn parse(name: &str) -> Result<BlockOp> {
        if name == "mic_zero" {
            return Ok(BlockOp::Zero);
        }
        let parsed = name.strip_prefix("mic_").and_then(|rest| {
            let (k, e) = rest.split_once("_e")?;
            let (k1, k2) = k.split_once('x')?;
            Some((
                k1.parse::<i64>().ok()?,
                k2.parse::<i64>().ok()?,
                e.parse::<i64>().ok()?,
            ))
        });
        match parsed {
            Some((k, k2, e)) if k == k2 && [3, 5, 7].contains(&k) && [3, 6].contains(&e) => {
                Ok(BlockOp::MbConv {
                    kernel: k,
                    expand: e,
                })
            }
            _ => bail!(
                "unknown ProxylessNAS candidate `{name}`; expected mic_{{3x3,5x5,7x7}}_e{{3,6}} or mic_zero"
            ),
        }
    }
}

impl Serialize for BlockOp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.name())
    }
}

impl<'de> Deserialize<'de> for BlockOp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        BlockOp::parse(&name).map_err(serde::de::Error::custom)
    }
}

/// A discrete ProxylessNAS-space architecture, in the published two-list form.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxylessGenotype {
    /// Blocks 1, 5, 9, 13, 17, 21.
    pub reduce: Vec<BlockOp>,
    /// The other 15 blocks, in order.
    pub normal: Vec<BlockOp>,
}

/// Candidates from a whitespace-separated list of official names.
fn ops(names: &str) -> Vec<BlockOp> {
    names
        .split_whitespace()
        .map(|n| BlockOp::parse(n).expect("published names parse"))
        .collect()
}

impl ProxylessGenotype {
    /// UNAS in the ProxylessNAS space (`proxylessnas/genotypes.py: UNAS`).
    pub fn unas() -> ProxylessGenotype {
        ProxylessGenotype {
            reduce: ops("mic_5x5_e3 mic_7x7_e3 mic_7x7_e3 mic_5x5_e3 mic_7x7_e6 \
                 mic_7x7_e6"),
            normal: ops("mic_3x3_e3 mic_zero mic_zero mic_zero mic_zero \
                 mic_zero mic_3x3_e3 mic_3x3_e3 mic_3x3_e3 mic_3x3_e3 \
                 mic_3x3_e3 mic_3x3_e3 mic_7x7_e3 mic_7x7_e3 mic_7x7_e3"),
        }
    }

    /// ProxylessNAS-GPU as copied into the UNAS repository (`proxylessnas/genotypes.py`).
    pub fn proxyless_gpu() -> ProxylessGenotype {
        ProxylessGenotype {
            reduce: ops("mic_5x5_e3 mic_7x7_e3 mic_7x7_e6 mic_5x5_e6 mic_7x7_e6 \
                 mic_7x7_e6"),
            normal: ops("mic_zero mic_zero mic_zero mic_zero mic_zero \
                 mic_3x3_e3 mic_zero mic_zero mic_5x5_e3 mic_zero \
                 mic_3x3_e3 mic_5x5_e3 mic_7x7_e6 mic_7x7_e6 mic_5x5_e6"),
        }
    }

    /// A published genotype of this space by name; `None` for other spaces' names.
    pub fn from_choice(choice: GenotypeChoice) -> Option<ProxylessGenotype> {
        match choice {
            GenotypeChoice::UnasProxyless => Some(ProxylessGenotype::unas()),
            GenotypeChoice::ProxylessGpu => Some(ProxylessGenotype::proxyless_gpu()),
            GenotypeChoice::Search
            | GenotypeChoice::Random
            | GenotypeChoice::UnasCifar10
            | GenotypeChoice::UnasCifar100
            | GenotypeChoice::UnasImagenet
            | GenotypeChoice::DartsV2 => None,
        }
    }

    pub fn validate(&self) -> Result<()> {
        ensure!(
            self.reduce.len() == STAGE_STARTS.len()
                && self.normal.len() == BLOCKS - STAGE_STARTS.len(),
            "a ProxylessNAS genotype has 6 `reduce` and 15 `normal` blocks, got {} and {}",
            self.reduce.len(),
            self.normal.len()
        );
        if let Some(i) = self.reduce.iter().position(|op| *op == BlockOp::Zero) {
            bail!(
                "block {} (`reduce[{i}]`) starts a stage and cannot be mic_zero: its channels (or its stride) change, so it cannot be skipped",
                STAGE_STARTS[i]
            );
        }
        Ok(())
    }

    /// The genotype of per-block indices into [`BLOCK_PRIMITIVES`] (`normal`, 15) and
    /// [`reduction_primitives`] (`reduce`, 6): the distribution's mode.
    pub fn from_indices(normal: &[usize], reduce: &[usize]) -> Result<ProxylessGenotype> {
        let pick = |list: &[BlockOp], i: usize, what: &str| {
            list.get(i).copied().with_context(|| {
                format!(
                    "{what} op index {i} is outside its {} candidates",
                    list.len()
                )
            })
        };
        let g = ProxylessGenotype {
            normal: normal
                .iter()
                .map(|&i| pick(&BLOCK_PRIMITIVES, i, "normal"))
                .collect::<Result<_>>()?,
            reduce: reduce
                .iter()
                .map(|&i| pick(reduction_primitives(), i, "reduce"))
                .collect::<Result<_>>()?,
        };
        g.validate()?;
        Ok(g)
    }

    /// The op of every block 1..=21, in order.
    pub fn blocks(&self) -> Vec<BlockOp> {
        let (mut r, mut n) = (self.reduce.iter(), self.normal.iter());
        (1..=BLOCKS)
            .map(|b| {
                let next = if STAGE_STARTS.contains(&b) {
                    r.next()
                } else {
                    n.next()
                };
                *next.expect("validated lengths")
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_bad_names_are_refused() {
        for name in ["mic_3x3_e3", "mic_7x7_e6", "mic_zero"] {
            assert_eq!(BlockOp::parse(name).unwrap().name(), name);
        }
        for bad in ["mic_3x5_e3", "mic_9x9_e3", "mic_3x3_e4", "zero", "mic_3x3"] {
            assert!(BlockOp::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn published_genotypes_expand_to_21_blocks_as_the_spec_lists_them() {
        for g in [
            ProxylessGenotype::unas(),
            ProxylessGenotype::proxyless_gpu(),
        ] {
            g.validate().unwrap();
            assert_eq!(g.blocks().len(), BLOCKS);
        }
        // spec §9 `expanded` of UNAS: blocks 1, 2, 3, 13, 17, 21.
        let b = ProxylessGenotype::unas().blocks();
        let names: Vec<String> = [1, 2, 3, 13, 17, 21]
            .iter()
            .map(|&i| b[i - 1].name())
            .collect();
        assert_eq!(
            names,
            [
                "mic_5x5_e3",
                "mic_3x3_e3",
                "mic_zero",
                "mic_5x5_e3",
                "mic_7x7_e6",
                "mic_7x7_e6"
            ]
        );
        let json = serde_json::to_string(&ProxylessGenotype::unas()).unwrap();
        let back: ProxylessGenotype = serde_json::from_str(&json).unwrap();
        assert_eq!(back, ProxylessGenotype::unas());
    }
}
