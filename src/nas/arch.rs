//! The values that pass between the architecture distribution and the supernets: one sample of every
//! selector, relaxed (ζ, on the simplex) or discrete (b, one-hot), with a leading batch axis N that is
//! the mini-batch size (one architecture per example, CIFAR) or 1 (one per batch, ImageNet; broadcast).

use tch::{Device, Kind, Tensor};

/// Samples of the paired-input selectors of one DARTS cell type (spec §1.1). Node i (state i+2) has two
/// selectors s ∈ {0,1}, each choosing one of the i+2 inputs and one of the K ops:
/// `inputs[i]`: [2, N, i+2], `ops[i]`: [2, N, K]. The supernet forms the edge weights
/// W[i][n, j, k] = Σ_s inputs[i][s, n, j] · ops[i][s, n, k].
#[derive(Debug)]
pub struct CellSample {
    pub inputs: Vec<Tensor>,
    pub ops: Vec<Tensor>,
}

/// One sample of the whole DARTS-space distribution: all normal cells share one, all reduction cells
/// another.
#[derive(Debug)]
pub struct DartsSample {
    pub normal: CellSample,
    pub reduce: CellSample,
}

/// Whether a sample is relaxed or one-hot, and so which ops the supernet runs: a one-hot sample lets it
/// run only the chosen op of each branch (the discrete fast path). A one-hot sample may still carry a
/// gradient (straight-through).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SampleKind {
    /// The weighted sum over ops with the official op-skip (an op whose largest weight in the batch is
    /// below the threshold contributes 0 and gets no gradient; spec §1.3).
    Relaxed,
    OneHot,
    /// The weighted sum over every op of every edge, no op-skip: the softmax mixture of `darts` (whose
    /// small weights are not negligible) and the straight-through sample of `st_gsm` (whose gradient
    /// must reach the unchosen ops of an edge) go this way.
    Dense,
}

/// The mode of the DARTS-space distribution (argmax of every selector): per node, per selector, the
/// chosen (input, op) with op indices in the official 7-entry primitive order.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DartsMode {
    pub normal: Vec<[(usize, usize); 2]>,
    pub reduce: Vec<[(usize, usize); 2]>,
}

/// One sample of the ProxylessNAS-space distribution (spec §1.2): `normal` [15, N, 7] (with
/// `mic_zero`), `reduce` [6, N, 6] (first block of each stage, no zero op).
#[derive(Debug)]
pub struct ProxylessSample {
    pub normal: Tensor,
    pub reduce: Tensor,
}

impl CellSample {
    pub fn detach(&self) -> CellSample {
        CellSample {
            inputs: self.inputs.iter().map(Tensor::detach).collect(),
            ops: self.ops.iter().map(Tensor::detach).collect(),
        }
    }

    /// N: the batch axis of the sample (1 for one architecture per mini-batch).
    pub fn batch(&self) -> i64 {
        self.ops.first().map(|t| t.size()[1]).unwrap_or(1)
    }
}

impl DartsSample {
    pub fn detach(&self) -> DartsSample {
        DartsSample {
            normal: self.normal.detach(),
            reduce: self.reduce.detach(),
        }
    }
}

/// ζ = softmax((a + g)/τ), g ~ Gumbel(0, 1), a = 0 (uniform), over the last axis of `shape`; one-hot of
/// its argmax for the discrete path. A leaf that requires grad, so the backward reaches the sample.
fn random_selector(shape: &[i64], kind: SampleKind, device: Device) -> Tensor {
    let u = Tensor::rand(shape, (Kind::Float, device)).clamp(1e-10, 1.0 - 1e-7);
    let gumbel = -(-u.log()).log();
    let zeta = (gumbel / 0.4).softmax(-1, Kind::Float);
    let t = match kind {
        SampleKind::Relaxed | SampleKind::Dense => zeta,
        SampleKind::OneHot => zeta
            .argmax(-1, false)
            .one_hot(*shape.last().expect("non-empty shape"))
            .to_kind(Kind::Float),
    };
    t.set_requires_grad(true)
}

impl CellSample {
    /// A sample of the uniform distribution for every node of one cell type (inputs [2, N, i+2], ops
    /// [2, N, K]), relaxed or one-hot; its tensors are leaves that require grad (benchmarks, tests).
    pub fn random(n: i64, num_ops: i64, kind: SampleKind, device: Device) -> CellSample {
        CellSample {
            inputs: (0..4)
                .map(|i| random_selector(&[2, n, i + 2], kind, device))
                .collect(),
            ops: (0..4)
                .map(|_| random_selector(&[2, n, num_ops], kind, device))
                .collect(),
        }
    }
}
