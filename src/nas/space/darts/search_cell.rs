//! The paired-input search cell (`darts/model_search.py:CellPairedInput`, spec §1.1, §5.1): node i
//! (state i+2) sums a mixed op over every predecessor j < i+2, weighted by the edge weights that the two
//! selectors of the node induce. Two forwards: relaxed (weighted sum over ops, with the official op-skip
//! rule) and discrete (only the chosen (input, op) of each branch runs, per example).

use std::collections::BTreeMap;

use anyhow::Result;
use tch::nn::{self, ModuleT};
use tch::{Kind, Tensor};

use super::ops::{Op, Preprocess, ReluConvBn, PRIMITIVES};
use crate::nas::arch::{CellSample, SampleKind};

/// Intermediate nodes per cell (`steps`); the cell output concatenates all of them.
pub const STEPS: usize = 4;

/// Edge weights of node i from its two selectors' samples, inputs [2, N, i+2] and ops [2, N, K]:
/// W[n, j, k] = Σ_s inputs[s, n, j] · ops[s, n, k] → [N, i+2, K].
pub fn edge_weights(inputs: &Tensor, ops: &Tensor) -> Tensor {
    (inputs.unsqueeze(-1) * ops.unsqueeze(2)).sum_dim_intlist(
        [0i64].as_slice(),
        false,
        None::<Kind>,
    )
}

/// What a forward pass must know on the host about one cell type's sample, read for both cell types
/// in one device synchronisation per forward instead of one (or two) per node: per node, the batch-max weight of every
/// (edge, op) for the relaxed path's op-skip rule, or every example's chosen input and op per selector
/// for the discrete path.
#[derive(Debug)]
pub struct CellPlan {
    nodes: Vec<NodeHost>,
}

#[derive(Debug)]
enum NodeHost {
    /// max_n W[n, j, k], flattened over (j, k); empty when op-skip is off (or the sample is dense).
    WMax(Vec<f64>),
    /// [selector][example] chosen input j and op k.
    Choices { j: [Vec<i64>; 2], k: [Vec<i64>; 2] },
}

impl CellPlan {
    /// The plans of several cell types' samples (normal and reduce) in one device synchronisation.
    pub fn for_cells(
        samples: &[&CellSample],
        kind: SampleKind,
        op_skip_threshold: f64,
    ) -> Vec<CellPlan> {
        let wmax = |sample: &CellSample| -> Vec<Tensor> {
            (0..sample.inputs.len())
                .map(|i| {
                    edge_weights(&sample.inputs[i], &sample.ops[i])
                        .detach()
                        .amax([0i64].as_slice(), false)
                        .flatten(0, -1)
                        .to_kind(Kind::Double)
                })
                .collect()
        };
        // per node: argmax of inputs [2, N] then of ops [2, N]
        let choices = |sample: &CellSample| -> Vec<Tensor> {
            (0..sample.inputs.len())
                .flat_map(|i| [&sample.inputs[i], &sample.ops[i]])
                .map(|t| t.detach().argmax(-1, false).flatten(0, -1))
                .collect()
        };
        let empty = |sample: &CellSample| CellPlan {
            nodes: (0..sample.inputs.len())
                .map(|_| NodeHost::WMax(Vec::new()))
                .collect(),
        };
        match kind {
            SampleKind::Dense => samples.iter().map(|s| empty(s)).collect(),
            SampleKind::Relaxed if op_skip_threshold <= 0.0 => {
                samples.iter().map(|s| empty(s)).collect()
            }
            SampleKind::Relaxed => {
                let parts: Vec<Vec<Tensor>> = samples.iter().map(|s| wmax(s)).collect();
                let host = read_all::<f64>(&parts, Kind::Double);
                host.into_iter()
                    .map(|nodes| CellPlan {
                        nodes: nodes.into_iter().map(NodeHost::WMax).collect(),
                    })
                    .collect()
            }
            SampleKind::OneHot => {
                let parts: Vec<Vec<Tensor>> = samples.iter().map(|s| choices(s)).collect();
                let host = read_all::<i64>(&parts, Kind::Int64);
                let halves = |v: Vec<i64>| {
                    let n = v.len() / 2;
                    [v[..n].to_vec(), v[n..].to_vec()]
                };
                host.into_iter()
                    .map(|pieces| {
                        let mut it = pieces.into_iter();
                        let mut nodes = Vec::new();
                        while let (Some(j), Some(k)) = (it.next(), it.next()) {
                            nodes.push(NodeHost::Choices {
                                j: halves(j),
                                k: halves(k),
                            });
                        }
                        CellPlan { nodes }
                    })
                    .collect()
            }
        }
    }
}

/// Every tensor of `parts` (1-d, of `kind`) read to the host in one transfer, split back the same way.
fn read_all<T>(parts: &[Vec<Tensor>], kind: Kind) -> Vec<Vec<Vec<T>>>
where
    T: Clone + tch::kind::Element,
    Vec<T>: TryFrom<Tensor>,
{
    let flat: Vec<&Tensor> = parts.iter().flatten().collect();
    let lens: Vec<usize> = flat.iter().map(|t| t.numel()).collect();
    let all: Vec<T> = match Tensor::f_cat(&flat, 0).map(|t| Vec::<T>::try_from(t.to_kind(kind))) {
        Ok(Ok(v)) => v,
        _ => panic!("reading the op-skip plan to the host"),
    };
    let mut pieces = split(&all, &lens).into_iter();
    parts
        .iter()
        .map(|p| {
            p.iter()
                .map(|_| pieces.next().expect("one piece per tensor"))
                .collect()
        })
        .collect()
}

/// Consecutive pieces of `all` with the given lengths.
fn split<T: Clone>(all: &[T], lens: &[usize]) -> Vec<Vec<T>> {
    let mut at = 0;
    lens.iter()
        .map(|&n| {
            let piece = all[at..at + n].to_vec();
            at += n;
            piece
        })
        .collect()
}

/// One search cell. `edges[i][j][k]` is op k on the edge from state j to node i.
#[derive(Debug)]
pub struct SearchCell {
    pub reduction: bool,
    preprocess0: Preprocess,
    preprocess1: ReluConvBn,
    edges: Vec<Vec<Vec<Op>>>,
}

impl SearchCell {
    /// A cell on C channels whose inputs have C_pp and C_p channels; BN affine=false throughout.
    /// Parameters: `preprocess0`, `preprocess1`, `node{i+2}.edge{j}.{op name}`.
    pub fn new(
        vs: &nn::Path,
        c_pp: i64,
        c_p: i64,
        c: i64,
        num_ops: usize,
        reduction: bool,
        reduction_prev: bool,
    ) -> Result<Self> {
        let edges = (0..STEPS)
            .map(|i| {
                let node = vs / format!("node{}", i + 2);
                (0..i + 2)
                    .map(|j| {
                        let edge = &node / format!("edge{j}");
                        // reduction cells: stride 2 on the edges from the cell inputs
                        let stride = if reduction && j < 2 { 2 } else { 1 };
                        PRIMITIVES[..num_ops]
                            .iter()
                            .map(|&p| Op::new(&(&edge / p.name()), p, c, stride, false))
                            .collect::<Result<Vec<_>>>()
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(SearchCell {
            reduction,
            preprocess0: Preprocess::new(&(vs / "preprocess0"), c_pp, c, reduction_prev, false)?,
            preprocess1: ReluConvBn::new(&(vs / "preprocess1"), c_p, c, false),
            edges,
        })
    }

    /// s0 [B, C_pp, H', W'], s1 [B, C_p, H, W] → [B, 4C, H/r, W/r] (r = 2 in reduction cells).
    /// `sample` has N = B (one architecture per example) or N = 1 (broadcast).
    pub fn forward(
        &self,
        s0: &Tensor,
        s1: &Tensor,
        sample: &CellSample,
        plan: &CellPlan,
        op_skip_threshold: f64,
        train: bool,
    ) -> Tensor {
        let batch = s1.size()[0];
        let n = sample.batch();
        assert!(
            n == 1 || n == batch,
            "architecture sample has batch {n}, the images {batch}: sample one architecture per \
             example or one per mini-batch"
        );
        let mut states = vec![
            self.preprocess0.forward_t(s0, train),
            self.preprocess1.forward_t(s1, train),
        ];
        for (i, edges) in self.edges.iter().enumerate() {
            let w = edge_weights(&sample.inputs[i], &sample.ops[i]);
            let node = match &plan.nodes[i] {
                NodeHost::WMax(w_max) => {
                    relaxed_node(edges, &states, &w, w_max, op_skip_threshold, train)
                }
                NodeHost::Choices { j, k } => discrete_node(edges, &states, &w, j, k, train),
            };
            states.push(node);
        }
        Tensor::cat(&states[2..], 1)
    }
}

/// node = Σ_j Σ_k W[:, j, k] · op_jk(state_j), skipping op k of edge j when max_n W[n, j, k] < threshold
/// (`MixedOp.forward`: the op contributes 0 and gets no gradient); an empty `w_max` skips nothing.
fn relaxed_node(
    edges: &[Vec<Op>],
    states: &[Tensor],
    w: &Tensor,
    w_max: &[f64],
    threshold: f64,
    train: bool,
) -> Tensor {
    let k_ops = w.size()[2];
    let mut acc: Option<Tensor> = None;
    for (j, ops) in edges.iter().enumerate() {
        for (k, op) in ops.iter().enumerate() {
            if !w_max.is_empty() && threshold > 0.0 && w_max[j * k_ops as usize + k] < threshold {
                continue;
            }
            let wk = w
                .select(1, j as i64)
                .select(1, k as i64)
                .view([-1, 1, 1, 1]);
            let term = wk * op.forward_t(&states[j], train);
            acc = Some(match acc {
                None => term,
                Some(a) => a + term,
            });
        }
    }
    acc.unwrap_or_else(|| zero_node(edges, states, train))
}

/// A node whose every op was skipped (only possible with a degenerate sample): zeros of the right shape.
fn zero_node(edges: &[Vec<Op>], states: &[Tensor], train: bool) -> Tensor {
    tch::no_grad(|| edges[0][0].forward_t(&states[0], train)).zeros_like()
}

/// The discrete fast path on a one-hot sample: per example only the chosen (input j, op k) of each
/// selector runs. Examples are grouped by their choice; each group runs its op once on its rows
/// (index_select) and is scattered back (index_add), scaled by W[n, j, k] so that a straight-through
/// gradient reaches the sample. Two selectors with the same (j, k) share one run (W = 2 there), exactly
/// as the relaxed sum counts them.
fn discrete_node(
    edges: &[Vec<Op>],
    states: &[Tensor],
    w: &Tensor,
    [j0, j1]: &[Vec<i64>; 2],
    [k0, k1]: &[Vec<i64>; 2],
    train: bool,
) -> Tensor {
    let batch = states[0].size()[0];
    let mut groups: BTreeMap<(i64, i64), Vec<i64>> = BTreeMap::new();
    for n in 0..j0.len() {
        let (a, b) = ((j0[n], k0[n]), (j1[n], k1[n]));
        groups.entry(a).or_default().push(n as i64);
        if b != a {
            groups.entry(b).or_default().push(n as i64);
        }
    }
    let broadcast = j0.len() == 1;
    let mut out: Option<Tensor> = None;
    for ((j, k), rows) in groups {
        let op = &edges[j as usize][k as usize];
        let w_jk = w.select(1, j).select(1, k); // [N]
        out = Some(if broadcast || rows.len() as i64 == batch {
            // every example (or the one shared architecture) chose this branch: no gather needed
            let term = w_jk.view([-1, 1, 1, 1]) * op.forward_t(&states[j as usize], train);
            match out {
                None => term,
                Some(a) => a + term,
            }
        } else {
            let idx = Tensor::from_slice(&rows).to_device(states[0].device());
            let y = op.forward_t(&states[j as usize].index_select(0, &idx), train);
            let scaled = w_jk.index_select(0, &idx).view([-1, 1, 1, 1]) * y;
            let base = out.unwrap_or_else(|| {
                let mut shape = scaled.size();
                shape[0] = batch;
                Tensor::zeros(&shape, (scaled.kind(), scaled.device()))
            });
            base.index_add(0, &idx, &scaled)
        });
    }
    out.unwrap_or_else(|| zero_node(edges, states, train))
}
