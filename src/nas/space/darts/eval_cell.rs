//! The evaluation cell (`darts/model.py:FactorizedCell`, spec §5.1): per node two branches
//! op0(states[in0]) + op1(states[in1]) with their own weights, BN affine, drop-path on every
//! non-Identity branch while training; output = concat of the genotype's `concat` states.

use anyhow::Result;
use tch::nn::{self, ModuleT};
use tch::{Kind, Tensor};

use super::genotype::NodeGene;
use super::ops::{Op, Preprocess, ReluConvBn};
use crate::nas::noise;

/// Drop-path (`util/utils.py:drop_path`): zero a whole example's branch with probability p and scale
/// the survivors by 1/(1−p): x · Bernoulli(1−p)[B,1,1,1] / (1−p).
pub fn drop_path(x: &Tensor, p: f64) -> Tensor {
    let keep = 1.0 - p;
    let mask = noise::uniform(&[x.size()[0], 1, 1, 1], Kind::Float, x.device())
        .lt(keep)
        .to_kind(x.kind());
    x / keep * mask
}

/// Widths and reduction flags of one cell: inputs c_{k-2} (C_pp channels) and c_{k-1} (C_p), C per node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CellShape {
    pub c_pp: i64,
    pub c_p: i64,
    pub c: i64,
    pub reduction: bool,
    /// The previous cell reduced, so c_{k-2} is at twice the resolution of c_{k-1}.
    pub reduction_prev: bool,
}

/// One evaluation cell; `nodes[i][s]` = (input state, op) of branch s of node i+2.
#[derive(Debug)]
pub struct EvalCell {
    pub reduction: bool,
    preprocess0: Preprocess,
    preprocess1: ReluConvBn,
    nodes: Vec<[(usize, Op); 2]>,
    concat: Vec<usize>,
}

impl EvalCell {
    /// Parameters: `preprocess0`, `preprocess1`, `node{i+2}.branch{s}.{op name}`.
    pub fn new(
        vs: &nn::Path,
        genes: &[NodeGene],
        concat: &[usize],
        shape: CellShape,
    ) -> Result<Self> {
        let CellShape {
            c_pp,
            c_p,
            c,
            reduction,
            reduction_prev,
        } = shape;
        let nodes = genes
            .iter()
            .enumerate()
            .map(|(i, gene)| {
                let node = vs / format!("node{}", i + 2);
                let branch = |s: usize| {
                    let (input, prim) = (gene.inputs[s], gene.ops[s]);
                    // reduction cells: stride 2 on branches that read the cell inputs
                    let stride = if reduction && input < 2 { 2 } else { 1 };
                    let path = &node / format!("branch{s}") / prim.name();
                    Op::new(&path, prim, c, stride, true).map(|op| (input, op))
                };
                Ok([branch(0)?, branch(1)?])
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(EvalCell {
            reduction,
            preprocess0: Preprocess::new(&(vs / "preprocess0"), c_pp, c, reduction_prev, true)?,
            preprocess1: ReluConvBn::new(&(vs / "preprocess1"), c_p, c, true),
            nodes,
            concat: concat.to_vec(),
        })
    }

    /// Output width as a multiple of C (the number of concatenated states).
    pub fn multiplier(&self) -> i64 {
        self.concat.len() as i64
    }

    /// s0 [B, C_pp, H', W'], s1 [B, C_p, H, W] → [B, |concat|·C, H/r, W/r].
    pub fn forward_t(&self, s0: &Tensor, s1: &Tensor, drop_prob: f64, train: bool) -> Tensor {
        let mut states = vec![
            self.preprocess0.forward_t(s0, train),
            self.preprocess1.forward_t(s1, train),
        ];
        for branches in &self.nodes {
            let run = |(input, op): &(usize, Op)| {
                let y = op.forward_t(&states[*input], train);
                if train && drop_prob > 0.0 && !op.is_identity() {
                    drop_path(&y, drop_prob)
                } else {
                    y
                }
            };
            let node = run(&branches[0]) + run(&branches[1]);
            states.push(node);
        }
        let out: Vec<&Tensor> = self.concat.iter().map(|&i| &states[i]).collect();
        Tensor::cat(&out, 1)
    }
}
