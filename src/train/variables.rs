//! Helpers over a network's variables shared by both loops.

use tch::{nn, Kind, Tensor};

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
