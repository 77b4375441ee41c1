//! Gradient-norm clipping with `torch.nn.utils.clip_grad_norm_` semantics (the weight step clips at 5,
//! §1.3, §6): the total L2 norm over all gradients, ‖g‖ = √(Σ_p ‖g_p‖²), and every gradient scaled by
//! min(1, max_norm / (‖g‖ + 1e-6)). The scale is applied as a device tensor (a factor of exactly 1.0
//! when no clipping is needed), so nothing is read back to the host: the returned norm stays on the
//! device until the metrics read it with the rest of a block of steps.

use tch::{Kind, Tensor};

/// Clips the gradients of `params` in place; returns the total norm before clipping, a 0-d tensor
/// on the gradients' device (0 when no parameter has a gradient). Parameters without a gradient are
/// skipped.
pub fn clip_grad_norm<'a>(params: impl IntoIterator<Item = &'a Tensor>, max_norm: f64) -> Tensor {
    let grads: Vec<Tensor> = params
        .into_iter()
        .map(|p| p.grad())
        .filter(|g| g.defined())
        .collect();
    if grads.is_empty() {
        return Tensor::from(0.0f32);
    }
    tch::no_grad(|| {
        // ‖g‖ = ‖(‖g_1‖, …, ‖g_n‖)‖₂
        let norms: Vec<Tensor> = grads.iter().map(|g| g.norm()).collect();
        let total = Tensor::stack(&norms, 0).norm();
        // c = min(1, max_norm / (‖g‖ + 1e-6))
        let coef = (total.to_kind(Kind::Double) + 1e-6)
            .reciprocal()
            .g_mul_scalar(max_norm)
            .clamp_max(1.0);
        for g in &grads {
            let mut g = g.shallow_clone();
            let _ = g.g_mul_(&coef.to_kind(g.kind()));
        }
        total
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param_with_grad(values: &[f64], grad: &[f64]) -> Tensor {
        let p = Tensor::from_slice(values).set_requires_grad(true);
        let g = Tensor::from_slice(grad);
        (&p * &g).sum(Kind::Double).backward(); // ∂/∂p Σ p·g = g
        p
    }

    fn grad_of(p: &Tensor) -> Vec<f64> {
        Vec::<f64>::try_from(p.grad()).unwrap()
    }

    #[test]
    fn a_norm_above_the_limit_is_scaled_to_the_limit_and_the_norm_before_is_returned() {
        // ‖(3, 4, 12)‖ = 13 over two parameters.
        let a = param_with_grad(&[0.0, 0.0], &[3.0, 4.0]);
        let b = param_with_grad(&[0.0], &[12.0]);
        let norm = clip_grad_norm([&a, &b], 5.0);
        assert!((norm.double_value(&[]) - 13.0).abs() < 1e-12);
        let c = 5.0 / (13.0 + 1e-6);
        assert_eq!(grad_of(&a), vec![3.0 * c, 4.0 * c]);
        assert_eq!(grad_of(&b), vec![12.0 * c]);
        let after: f64 = [grad_of(&a), grad_of(&b)]
            .concat()
            .iter()
            .map(|x| x * x)
            .sum::<f64>()
            .sqrt();
        assert!((after - 5.0).abs() < 1e-5);
    }

    #[test]
    fn a_norm_below_the_limit_leaves_gradients_bit_identical() {
        let a = param_with_grad(&[0.0, 0.0], &[0.3, -0.4]);
        let norm = clip_grad_norm([&a], 5.0);
        assert!((norm.double_value(&[]) - 0.5).abs() < 1e-12);
        assert_eq!(grad_of(&a), vec![0.3, -0.4]);
    }

    #[test]
    fn parameters_without_gradients_are_skipped() {
        let unused = Tensor::from_slice(&[1.0f64]).set_requires_grad(true);
        let norm = clip_grad_norm([&unused], 1.0);
        assert_eq!(norm.double_value(&[]), 0.0);
        assert!(!unused.grad().defined());
    }
}
