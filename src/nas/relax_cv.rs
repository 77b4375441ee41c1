//! RELAX's learned control-variate term r_φ (Grathwohl et al., 2018): a one-hidden-layer MLP on the
//! relaxed architecture vector, r_φ(ζ) = tanh(ζ·W1 + b1)·W2 + b2, trained by Adam on the single-sample
//! variance proxy ‖ĝ‖². The Adam moments are part of the state, so a resumed search continues exactly.

use std::path::Path;

use anyhow::Context;

use crate::nas::init;
use tch::{Device, Kind, Tensor};

/// r_φ and its optimiser state. Its two layers start as PyTorch's `nn.Linear(D, H)` and
/// `nn.Linear(H, 1)` would (`nas/init.rs`); RELAX is unbiased for every φ.
#[derive(Debug)]
pub struct RelaxControlVariate {
    /// φ = [W1 [D, H], b1 [H], W2 [H, 1], b2 [1]], leaves with `requires_grad`.
    params: Vec<Tensor>,
    adam_m: Vec<Tensor>,
    adam_v: Vec<Tensor>,
    /// Adam steps taken.
    steps: i64,
    pub lr: f64,
}

const NAMES: [&str; 4] = ["w1", "b1", "w2", "b2"];
const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const ADAM_EPS: f64 = 1e-8;

impl RelaxControlVariate {
    /// D = `dim` inputs (Σ S·K over the selector groups), H = `hidden` tanh units. W1, b1 ~ U(±1/√D),
    /// W2, b2 ~ U(±1/√H).
    pub fn new(dim: i64, hidden: i64, lr: f64, kind: Kind, device: Device) -> Self {
        let layer = |shape: &[i64], fan_in| init::linear_tensor(shape, fan_in, kind, device);
        let params = vec![
            layer(&[dim, hidden], dim),
            layer(&[hidden], dim),
            layer(&[hidden, 1], hidden),
            layer(&[1], hidden),
        ]
        .into_iter()
        .map(|p| p.set_requires_grad(true))
        .collect::<Vec<_>>();
        let zeros = |ps: &[Tensor]| ps.iter().map(Tensor::zeros_like).collect::<Vec<_>>();
        RelaxControlVariate {
            adam_m: zeros(&params),
            adam_v: zeros(&params),
            params,
            steps: 0,
            lr,
        }
    }

    /// r_φ(x) = tanh(x·W1 + b1)·W2 + b2: x [N, D] → [N].
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let [w1, b1, w2, b2] = [0, 1, 2, 3].map(|i| &self.params[i]);
        (x.matmul(w1) + b1).tanh().matmul(w2).squeeze_dim(-1) + b2
    }

    pub fn parameters(&self) -> &[Tensor] {
        &self.params
    }

    /// φ by name (`w1`, `b1`, `w2`, `b2`).
    pub fn named_parameters(&self) -> Vec<(String, Tensor)> {
        NAMES
            .iter()
            .zip(&self.params)
            .map(|(n, p)| ((*n).to_owned(), p.detach()))
            .collect()
    }

    /// The gradient of the last Adam step, by name, while it is the first: m = (1 − β₁)·g after one
    /// step, so g = m/(1 − β₁) (`unas diagnose parity-torch` compares it). `None` after more steps.
    pub fn first_step_gradients(&self) -> Option<Vec<(String, Tensor)>> {
        (self.steps == 1).then(|| {
            NAMES
                .iter()
                .zip(&self.adam_m)
                .map(|(n, m)| ((*n).to_owned(), m / (1.0 - BETA1)))
                .collect()
        })
    }

    /// φ and its Adam moments in `kind` (the parity check's float64 steps).
    pub fn to_kind(&mut self, kind: Kind) {
        for p in &self.params {
            let mut p = p.shallow_clone();
            tch::no_grad(|| p.set_data(&p.to_kind(kind)));
        }
        for m in self.adam_m.iter_mut().chain(self.adam_v.iter_mut()) {
            *m = m.to_kind(kind);
        }
    }

    /// One Adam step φ ← φ − lr·m̂/(√v̂ + 1e-8) with `grads` in parameter order.
    pub fn adam_step(&mut self, grads: &[Tensor]) {
        self.steps += 1;
        let t = self.steps as i32;
        let (c1, c2) = (1.0 - BETA1.powi(t), 1.0 - BETA2.powi(t));
        tch::no_grad(|| {
            for ((p, g), (m, v)) in self
                .params
                .iter_mut()
                .zip(grads)
                .zip(self.adam_m.iter_mut().zip(self.adam_v.iter_mut()))
            {
                *m = &*m * BETA1 + g * (1.0 - BETA1); // m ← β1·m + (1−β1)·g
                *v = &*v * BETA2 + g * g * (1.0 - BETA2); // v ← β2·v + (1−β2)·g²
                let update = (&*m / c1) / ((&*v / c2).sqrt() + ADAM_EPS) * self.lr;
                let _ = p.f_sub_(&update).expect("in-place update of a φ leaf");
            }
        });
    }

    /// φ, its Adam moments and the step count, by name.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for (i, name) in NAMES.iter().enumerate() {
            out.push((format!("phi.{name}"), self.params[i].detach()));
            out.push((format!("adam_m.{name}"), self.adam_m[i].shallow_clone()));
            out.push((format!("adam_v.{name}"), self.adam_v[i].shallow_clone()));
        }
        out.push(("steps".into(), Tensor::from_slice(&[self.steps])));
        out
    }

    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        Tensor::save_multi(&self.state(), path)
            .with_context(|| format!("saving the RELAX control variate to {}", path.display()))
    }

    /// Restore a state written by [`RelaxControlVariate::save`] into a network of the same shape.
    pub fn load(&mut self, path: &Path) -> anyhow::Result<()> {
        let device = self.params[0].device();
        let loaded = Tensor::load_multi_with_device(path, device).with_context(|| {
            format!(
                "loading the RELAX control variate from {} (delete the checkpoint to restart the search)",
                path.display()
            )
        })?;
        let get = |name: String| {
            loaded
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, t)| t.shallow_clone())
                .with_context(|| format!("{}: missing tensor `{name}`", path.display()))
        };
        for (i, name) in NAMES.iter().enumerate() {
            let phi = get(format!("phi.{name}"))?;
            anyhow::ensure!(
                phi.size() == self.params[i].size(),
                "{}: `phi.{name}` has shape {:?}, expected {:?} (the search space changed)",
                path.display(),
                phi.size(),
                self.params[i].size()
            );
            tch::no_grad(|| self.params[i].copy_(&phi));
            self.adam_m[i] = get(format!("adam_m.{name}"))?;
            self.adam_v[i] = get(format!("adam_v.{name}"))?;
        }
        self.steps = get("steps".into())?.int64_value(&[0]);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_through_a_file() {
        tch::manual_seed(1);
        let mut a = RelaxControlVariate::new(5, 4, 1e-2, Kind::Float, Device::Cpu);
        let grads: Vec<Tensor> = a.parameters().iter().map(Tensor::ones_like).collect();
        a.adam_step(&grads);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relax.pt");
        a.save(&path).unwrap();
        let mut b = RelaxControlVariate::new(5, 4, 1e-2, Kind::Float, Device::Cpu);
        b.load(&path).unwrap();
        let x = Tensor::randn([3, 5], (Kind::Float, Device::Cpu));
        let diff = (a.forward(&x) - b.forward(&x))
            .abs()
            .max()
            .double_value(&[]);
        assert_eq!(diff, 0.0);
        assert_eq!(b.steps, 1);
        // the next steps agree too (the moments were restored)
        a.adam_step(&grads);
        b.adam_step(&grads);
        let diff = (a.forward(&x) - b.forward(&x))
            .abs()
            .max()
            .double_value(&[]);
        assert_eq!(diff, 0.0);
    }
}
