//! A weighted running mean kept on the device, read once per epoch.

use anyhow::{Context, Result};
use tch::{Device, Kind, Tensor};

/// A weighted running mean kept on the device: Σ wᵢxᵢ / Σ wᵢ, read once (an epoch's training loss
/// and accuracy). Its two sums are 0-d Double tensors, saved with a mid-epoch checkpoint.
#[derive(Debug)]
pub struct DeviceMean {
    sum: Tensor,
    weight: Tensor,
}

impl DeviceMean {
    pub fn new(device: Device) -> DeviceMean {
        DeviceMean {
            sum: Tensor::zeros([], (Kind::Double, device)),
            weight: Tensor::zeros([], (Kind::Double, device)),
        }
    }

    /// Adds x with weight w (x a 0-d or one-element tensor, e.g. a batch mean with w = batch size).
    pub fn add(&mut self, x: &Tensor, w: f64) {
        tch::no_grad(|| {
            // Σ wx += w·x;  Σ w += w
            let _ = self
                .sum
                .g_add_(&(x.detach().to_kind(Kind::Double).reshape([]) * w));
            let _ = self.weight.g_add_scalar_(w);
        });
    }

    /// The mean (a sync), `None` before the first value.
    pub fn mean(&self) -> Option<f64> {
        let w = self.weight.double_value(&[]);
        (w > 0.0).then(|| self.sum.double_value(&[]) / w)
    }

    /// Σ wx and Σ w summed over the ranks (each rank added its own share): the mean of them all.
    pub fn sum_over(&mut self, ranks: &crate::dist::Ranks, what: &str) -> anyhow::Result<()> {
        ranks.sum(what, &[&self.sum, &self.weight])
    }

    pub fn reset(&mut self) {
        let _ = self.sum.zero_();
        let _ = self.weight.zero_();
    }

    pub fn state_tensors(&self, prefix: &str) -> Vec<(String, Tensor)> {
        vec![
            (format!("{prefix}/sum"), self.sum.shallow_clone()),
            (format!("{prefix}/weight"), self.weight.shallow_clone()),
        ]
    }

    pub fn load_state_tensors(
        &mut self,
        prefix: &str,
        saved: &std::collections::BTreeMap<String, Tensor>,
    ) -> Result<()> {
        for (name, dst) in [("sum", &mut self.sum), ("weight", &mut self.weight)] {
            let k = format!("{prefix}/{name}");
            let src = saved
                .get(&k)
                .with_context(|| format!("the checkpoint has no `{k}`"))?;
            *dst = src.to_kind(Kind::Double).to_device(dst.device()).copy();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_mean_is_the_weighted_mean_and_survives_save_and_load() {
        let mut m = DeviceMean::new(Device::Cpu);
        assert_eq!(m.mean(), None);
        m.add(&Tensor::from(1.0f32), 3.0);
        m.add(&Tensor::from(3.0f32), 1.0);
        assert_eq!(m.mean(), Some(1.5));
        let saved: std::collections::BTreeMap<_, _> = m
            .state_tensors("epoch_loss")
            .into_iter()
            .map(|(k, t)| (k, t.copy()))
            .collect();
        let mut back = DeviceMean::new(Device::Cpu);
        back.load_state_tensors("epoch_loss", &saved).unwrap();
        assert_eq!(back.mean(), Some(1.5));
        back.reset();
        assert_eq!(back.mean(), None);
    }
}
