//! Architectures drawn uniformly from a search space: the random-sampling baseline (Yang et al., "NAS
//! evaluation is frustratingly hard", ICLR 2020: train architectures drawn at random with the
//! method's recipe) and the candidates of random search with weight sharing (Li & Talwalkar, UAI
//! 2019). A draw is a pure function of (seed, index): the same seed gives the same architecture on
//! every machine, and a resumed run rebuilds the network it started with.
//!
//! * DARTS space (spec §1.1, §5.1): per cell type and intermediate node i (state i+2), each of the two
//!   selectors picks its input uniformly among the i+2 earlier states and its op uniformly among the
//!   first `num_ops` primitives: exactly the choices the UNAS distribution has (no `none`, no top-k,
//!   both selectors may pick the same input and op).
//! * ProxylessNAS space (§5.2): each of the 21 blocks its candidate uniformly: the 6 MBConvs for a
//!   block that starts a stage, those and `mic_zero` (7) for the others.

use anyhow::{ensure, Result};

use super::darts::search_cell::STEPS;
use super::darts::{Genotype, NodeGene, PRIMITIVES};
use super::proxyless::genotype::{reduction_primitives, BLOCKS, BLOCK_PRIMITIVES, STAGE_STARTS};
use super::proxyless::ProxylessGenotype;
use crate::data::rng::{Purpose, SplitMix64};

/// The random stream of draw `index` under `seed` (its own [`Purpose`], so no data stream shares it).
pub fn stream(seed: u64, index: u64) -> SplitMix64 {
    SplitMix64::new(seed, Purpose::Architecture, index, 0)
}

/// One element of `choices`, each with probability 1/|choices|.
fn pick<T: Copy>(rng: &mut SplitMix64, choices: &[T]) -> T {
    choices[rng.below(choices.len() as u64) as usize]
}

/// One cell type's four nodes: node i's selectors each draw input ~ U{0..i+1}, op ~ U{first num_ops}.
fn darts_cell(rng: &mut SplitMix64, num_ops: usize) -> Vec<NodeGene> {
    let ops = &PRIMITIVES[..num_ops];
    (0..STEPS)
        .map(|i| {
            let inputs: Vec<usize> = (0..i + 2).collect();
            // selector 0 then selector 1, each (input, op): the order of the official `Alpha` rows
            let (in0, op0) = (pick(rng, &inputs), pick(rng, ops));
            let (in1, op1) = (pick(rng, &inputs), pick(rng, ops));
            NodeGene {
                inputs: [in0, in1],
                ops: [op0, op1],
            }
        })
        .collect()
}

/// A DARTS-space genotype drawn uniformly with the first `num_ops` primitives (normal cell first).
pub fn darts(rng: &mut SplitMix64, num_ops: usize) -> Result<Genotype> {
    ensure!(
        (1..=PRIMITIVES.len()).contains(&num_ops),
        "a DARTS-space draw keeps the first 1..={} primitives, got {num_ops}",
        PRIMITIVES.len()
    );
    let normal = darts_cell(rng, num_ops);
    let reduce = darts_cell(rng, num_ops);
    let g = Genotype {
        normal,
        normal_concat: (2..2 + STEPS).collect(),
        reduce,
        reduce_concat: (2..2 + STEPS).collect(),
    };
    g.validate()?;
    Ok(g)
}

/// A ProxylessNAS-space genotype drawn uniformly, block 1 to 21 in order.
pub fn proxyless(rng: &mut SplitMix64) -> Result<ProxylessGenotype> {
    let (mut reduce, mut normal) = (Vec::new(), Vec::new());
    for b in 1..=BLOCKS {
        if STAGE_STARTS.contains(&b) {
            reduce.push(pick(rng, reduction_primitives()));
        } else {
            normal.push(pick(rng, &BLOCK_PRIMITIVES));
        }
    }
    let g = ProxylessGenotype { reduce, normal };
    g.validate()?;
    Ok(g)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Upper 0.1 % points of the chi-square distribution with 1..=6 degrees of freedom.
    const CHI2_999: [f64; 6] = [10.828, 13.816, 16.266, 18.467, 20.515, 22.458];

    /// Pearson's X² = Σ_c (O_c − E)² / E with E = n / |choices| (uniform null).
    fn chi2(counts: &[u64]) -> f64 {
        let n: u64 = counts.iter().sum();
        let e = n as f64 / counts.len() as f64;
        counts.iter().map(|&o| (o as f64 - e).powi(2) / e).sum()
    }

    /// Rejects uniformity at the 0.1 % level (X² above the upper 0.1 % point with k − 1 d.o.f.).
    fn uniform(counts: &[u64]) -> bool {
        chi2(counts) < CHI2_999[counts.len() - 2]
    }

    const DRAWS: u64 = 20_000;

    #[test]
    fn the_chi_square_check_rejects_a_draw_that_favours_one_choice() {
        // 7 choices, choice 0 drawn 3 % more often (and the others evenly less): the same check the
        // uniformity tests use must say no, or they could not fail.
        let mut rng = stream(7, 0);
        let mut counts = [0u64; 7];
        for _ in 0..DRAWS {
            let c = if rng.uniform() < 0.03 {
                0
            } else {
                rng.below(7) as usize
            };
            counts[c] += 1;
        }
        assert!(!uniform(&counts), "{counts:?}");
        let mut even = [0u64; 7];
        for _ in 0..DRAWS {
            even[rng.below(7) as usize] += 1;
        }
        assert!(uniform(&even), "{even:?}");
    }

    #[test]
    fn darts_draws_are_uniform_per_node_per_selector_for_inputs_and_ops() {
        for num_ops in [7usize, 5] {
            // [cell][node][selector] → counts of inputs (i+2) and ops (num_ops)
            let mut inputs: Vec<Vec<Vec<Vec<u64>>>> = (0..2)
                .map(|_| (0..STEPS).map(|i| vec![vec![0; i + 2]; 2]).collect())
                .collect();
            let mut ops = vec![vec![vec![vec![0u64; num_ops]; 2]; STEPS]; 2];
            for d in 0..DRAWS {
                let g = darts(&mut stream(11, d), num_ops).unwrap();
                for (c, nodes) in [&g.normal, &g.reduce].into_iter().enumerate() {
                    for (i, n) in nodes.iter().enumerate() {
                        for s in 0..2 {
                            inputs[c][i][s][n.inputs[s]] += 1;
                            let k = PRIMITIVES.iter().position(|&p| p == n.ops[s]).unwrap();
                            assert!(k < num_ops, "op {k} outside the first {num_ops}");
                            ops[c][i][s][k] += 1;
                        }
                    }
                }
            }
            for c in 0..2 {
                for i in 0..STEPS {
                    for s in 0..2 {
                        let (ic, oc) = (&inputs[c][i][s], &ops[c][i][s]);
                        assert!(uniform(ic), "cell {c} node {i} sel {s} inputs {ic:?}");
                        assert!(uniform(oc), "cell {c} node {i} sel {s} ops {oc:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn proxyless_draws_are_uniform_per_block_and_never_skip_a_stage_start() {
        let mut counts = vec![[0u64; 7]; BLOCKS];
        for d in 0..DRAWS {
            let g = proxyless(&mut stream(3, d)).unwrap();
            for (b, op) in g.blocks().into_iter().enumerate() {
                let k = BLOCK_PRIMITIVES.iter().position(|&p| p == op).unwrap();
                counts[b][k] += 1;
            }
        }
        for (b, c) in counts.iter().enumerate() {
            if STAGE_STARTS.contains(&(b + 1)) {
                assert_eq!(c[0], 0, "block {} starts a stage: no mic_zero", b + 1);
                assert!(uniform(&c[1..]), "block {}: {c:?}", b + 1);
            } else {
                assert!(uniform(c), "block {}: {c:?}", b + 1);
            }
        }
    }

    #[test]
    fn a_draw_is_a_function_of_its_seed_and_index() {
        let a = darts(&mut stream(5, 0), 7).unwrap();
        assert_eq!(a, darts(&mut stream(5, 0), 7).unwrap());
        assert_ne!(a, darts(&mut stream(6, 0), 7).unwrap());
        assert_ne!(a, darts(&mut stream(5, 1), 7).unwrap());
        let p = proxyless(&mut stream(5, 0)).unwrap();
        assert_eq!(p, proxyless(&mut stream(5, 0)).unwrap());
        assert_ne!(p, proxyless(&mut stream(6, 0)).unwrap());
    }
}
