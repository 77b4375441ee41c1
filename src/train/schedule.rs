//! Learning-rate schedules and ramps as closed forms of (epoch, step), so that a resumed run computes
//! the same value without saving scheduler state.
//!
//! **Stepping convention.** The official code builds `CosineAnnealingLR` and calls `scheduler.step()`
//! at the *start* of every epoch, before training (PyTorch 1.1 style, spec §1.5). The scheduler's
//! counter is therefore already 1 in the first epoch: 0-based epoch e trains with the cosine value at
//! t = e + 1, and the last epoch (e = T − 1) trains at η_min. The from-scratch recipes step it only
//! from the first post-warm-up epoch on, so there epoch e ≥ W uses t = e − W + 1.
//! PyTorch 1.1 evaluates the cosine recursively from the current lr; where the lr entering the cosine
//! equals the base lr (always, here: the warm-up ends at exactly η₀) that equals the closed form up to
//! rounding.

use serde::{Deserialize, Serialize};

use crate::config::Recipe;

/// `CosineAnnealingLR` in closed form: η_t = η_min + (η₀ − η_min)(1 + cos(π t / T)) / 2.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cosine {
    /// η₀, the base learning rate.
    pub lr: f64,
    /// η_min, reached at t = T.
    pub lr_min: f64,
    /// T (`T_max`), in scheduler steps (epochs).
    pub t_max: f64,
}

impl Cosine {
    /// η_t at scheduler counter t.
    pub fn at(&self, t: f64) -> f64 {
        // η_t = η_min + (η₀ − η_min)(1 + cos(π t/T))/2
        self.lr_min
            + (self.lr - self.lr_min) * (1.0 + (std::f64::consts::PI * t / self.t_max).cos()) / 2.0
    }

    /// The lr of 0-based epoch `epoch` under the official stepping (t = epoch + 1).
    pub fn for_epoch(&self, epoch: u32) -> f64 {
        self.at(f64::from(epoch) + 1.0)
    }
}

/// The search schedules (§1.5): weights and architecture logits each follow a cosine over the search
/// epochs (T = search epochs) to their own η_min, stepped at the start of every epoch; the warm-up
/// epochs before them (§1.4) run at a constant lr and do not advance it.
pub fn search_cosine(lr: f64, lr_min: f64, search_epochs: u32) -> Cosine {
    Cosine {
        lr,
        lr_min,
        t_max: f64::from(search_epochs),
    }
}

/// From-scratch training (§6): a linear warm-up per step over W epochs, then a cosine stepped at the
/// start of every later epoch.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct WarmupCosine {
    /// Peak learning rate η₀ (already scaled with the batch).
    pub lr: f64,
    /// W, warm-up epochs.
    pub warmup_epochs: u32,
    pub cosine: Cosine,
}

impl WarmupCosine {
    /// §6.1 (`darts/train_eval_cifar.py`): cosine over the E − W post-warm-up epochs to 0, so the
    /// last epoch trains at lr 0.
    pub fn cifar(lr: f64, epochs: u32, warmup_epochs: u32) -> WarmupCosine {
        WarmupCosine {
            lr,
            warmup_epochs,
            cosine: Cosine {
                lr,
                lr_min: 0.0,
                t_max: f64::from(epochs - warmup_epochs.min(epochs)),
            },
        }
    }

    /// §6.2 and §6.3 (`darts/train_eval_imagenet.py`, `proxylessnas/train_eval.py`): cosine with
    /// T = E (all epochs) to `--min_learning_rate` (0) but stepped only after the warm-up, so it ends
    /// at t = E − W, slightly above η_min.
    pub fn imagenet(lr: f64, epochs: u32, warmup_epochs: u32, lr_min: f64) -> WarmupCosine {
        WarmupCosine {
            lr,
            warmup_epochs,
            cosine: Cosine {
                lr,
                lr_min,
                t_max: f64::from(epochs),
            },
        }
    }

    /// The official schedule of a recipe.
    pub fn for_recipe(recipe: Recipe, lr: f64, epochs: u32, warmup_epochs: u32) -> WarmupCosine {
        match recipe {
            Recipe::Cifar => WarmupCosine::cifar(lr, epochs, warmup_epochs),
            Recipe::ImagenetDarts | Recipe::ImagenetProxyless => {
                WarmupCosine::imagenet(lr, epochs, warmup_epochs, 0.0)
            }
        }
    }

    /// The lr of step `step` (0-based within the epoch) of 0-based epoch `epoch`, with
    /// `steps_per_epoch` steps per epoch (`len(train_queue)`).
    pub fn lr(&self, epoch: u32, step: u64, steps_per_epoch: u64) -> f64 {
        let w = self.warmup_epochs;
        if epoch < w {
            // η = η₀ · (1 + step + epoch·len) / (W·len)
            let done = 1 + step + u64::from(epoch) * steps_per_epoch;
            self.lr * (done as f64 / (u64::from(w) * steps_per_epoch) as f64)
        } else {
            // t = e − W + 1 (stepped at the start of every post-warm-up epoch)
            self.cosine.at(f64::from(epoch - w) + 1.0)
        }
    }
}

/// Drop-path probability of epoch e (§6.1): p · e / E, rising linearly from 0.
pub fn drop_path_prob(p: f64, epoch: u32, epochs: u32) -> f64 {
    // p_e = p·e/E
    p * f64::from(epoch) / f64::from(epochs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * b.abs().max(1e-12)
    }

    #[test]
    fn search_cosine_is_stepped_before_the_first_epoch_and_ends_at_the_minimum() {
        // CIFAR search: η₀ = 6e-4, η_min = 1e-4, 85 epochs.
        let c = search_cosine(6e-4, 1e-4, 85);
        let first = 1e-4 + 5e-4 * (1.0 + (std::f64::consts::PI / 85.0).cos()) / 2.0;
        assert!(close(c.for_epoch(0), first));
        assert!(c.for_epoch(0) < 6e-4, "epoch 0 already uses t = 1");
        assert!(
            close(c.for_epoch(84), 1e-4),
            "the last epoch trains at η_min"
        );
        assert!(close(c.at(0.0), 6e-4));
        assert!(close(c.at(42.5), 3.5e-4), "half-way is the mean");
    }

    #[test]
    fn cifar_warmup_rises_per_step_to_the_peak_then_cosine_reaches_zero_at_the_last_epoch() {
        let s = WarmupCosine::cifar(0.05, 600, 30);
        let len = 391;
        assert!(close(s.lr(0, 0, len), 0.05 / (30.0 * 391.0)));
        assert!(close(s.lr(0, 1, len), 0.05 * 2.0 / (30.0 * 391.0)));
        assert!(
            close(s.lr(29, 390, len), 0.05),
            "the warm-up ends exactly at η₀"
        );
        // Epoch 30 is the first cosine epoch: t = 1 of T = 570.
        let t1 = 0.05 * (1.0 + (std::f64::consts::PI / 570.0).cos()) / 2.0;
        assert!(close(s.lr(30, 0, len), t1));
        assert_eq!(
            s.lr(30, 0, len),
            s.lr(30, 390, len),
            "constant within an epoch"
        );
        assert!(
            s.lr(599, 0, len).abs() < 1e-18,
            "the last epoch trains at 0"
        );
    }

    #[test]
    fn cifar_without_warmup_is_a_plain_cosine_over_all_epochs() {
        let s = WarmupCosine::cifar(0.025, 600, 0);
        assert!(close(
            s.lr(0, 5, 100),
            search_cosine(0.025, 0.0, 600).for_epoch(0)
        ));
    }

    #[test]
    fn imagenet_cosine_spans_all_epochs_and_ends_above_zero() {
        let s = WarmupCosine::for_recipe(Recipe::ImagenetDarts, 0.8, 250, 5);
        let len = 1252;
        assert!(close(s.lr(4, 1251, len), 0.8));
        let first = 0.8 * (1.0 + (std::f64::consts::PI / 250.0).cos()) / 2.0;
        assert!(close(s.lr(5, 0, len), first));
        let last = 0.8 * (1.0 + (std::f64::consts::PI * 245.0 / 250.0).cos()) / 2.0;
        assert!(close(s.lr(249, 0, len), last));
        assert!(last > 5e-4 && last < 1e-3, "ends slightly above 0: {last}");
        assert_eq!(
            WarmupCosine::for_recipe(Recipe::ImagenetProxyless, 0.2, 300, 5),
            WarmupCosine::imagenet(0.2, 300, 5, 0.0)
        );
    }

    #[test]
    fn drop_path_rises_linearly_from_zero() {
        assert_eq!(drop_path_prob(0.2, 0, 600), 0.0);
        assert!(close(drop_path_prob(0.2, 300, 600), 0.1));
    }
}
