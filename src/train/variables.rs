//! Helpers over a network's variables shared by both loops.

use anyhow::Result;
use tch::{nn, Kind, Tensor};

use crate::dist::Ranks;

/// Gives every parameter a zero gradient (a no-op for those that have one already at zero). The
/// optimisers skip a parameter whose gradient is undefined and update one whose gradient is zero
/// (weight decay, moments), so without this a resumed run would treat the ops that a step skipped
/// differently from the run that was never interrupted.
pub fn define_zero_grads<'a>(params: impl Iterator<Item = &'a Tensor>) {
    let zero = params
        .map(|p| (p * 0.0).sum(Kind::Float))
        .reduce(|a, b| a + b);
    if let Some(zero) = zero {
        zero.backward(); // ∂(Σ 0·p)/∂p = 0, defined
    }
}

/// Handles onto the same tensors (optimisers hold their own list of the parameters they update).
pub fn shallow(v: &[(String, Tensor)]) -> Vec<(String, Tensor)> {
    v.iter()
        .map(|(n, t)| (n.clone(), t.shallow_clone()))
        .collect()
}

/// Detached copies of `v`, named `prefix/{name}` (a state recorded before the next step changes it).
pub fn copies(prefix: &str, v: &[(String, Tensor)]) -> Vec<(String, Tensor)> {
    v.iter()
        .map(|(n, t)| (format!("{prefix}/{n}"), t.detach().copy()))
        .collect()
}

/// A named one-element double tensor (a learning rate, for a recorded step).
pub fn scalar(name: String, v: f64) -> (String, Tensor) {
    (name, Tensor::from_slice(&[v]).to_kind(Kind::Double))
}

/// Every variable of the store (weights and BN running statistics), sorted by name.
pub fn all_variables(vs: &nn::VarStore) -> Vec<(String, Tensor)> {
    let mut v: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// `∇w ← Σ_ranks ∇w` for every parameter (the identity for one rank). A parameter none of this
/// rank's sub-batches reached has no gradient yet; if another rank's did, it gets zeros first
/// ([`define_zero_grads`]), so every rank sums the same list and holds the gradients one process
/// running every sub-batch would.
pub fn sum_gradients(params: &[(String, Tensor)], ranks: &Ranks) -> Result<()> {
    if ranks.world() == 1 {
        return Ok(());
    }
    let defined: Vec<f32> = params
        .iter()
        .map(|(_, w)| f32::from(u8::from(w.grad().defined())))
        .collect();
    let anywhere = Tensor::from_slice(&defined);
    ranks.sum("which weights have gradients", &[&anywhere])?;
    let anywhere = Vec::<f32>::try_from(&anywhere)?;
    define_zero_grads(
        params
            .iter()
            .zip(&anywhere)
            .filter(|((_, w), any)| **any > 0.0 && !w.grad().defined())
            .map(|((_, w), _)| w),
    );
    let grads: Vec<Tensor> = params
        .iter()
        .map(|(_, w)| w.grad())
        .filter(Tensor::defined)
        .collect();
    let refs: Vec<&Tensor> = grads.iter().collect();
    ranks.sum("the weight gradients", &refs)
}
