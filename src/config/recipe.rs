//! The training recipe a from-scratch run follows, resolved once: every field has its value (the
//! file's, or the recipe's default from `config::Train::resolved`, spec §6.1–6.3), so no call site
//! carries a fallback of its own.

use anyhow::{Context, Result};

use crate::config::{GenotypeChoice, Recipe, Train};

/// A `train:` section with every option filled in.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainRecipe {
    pub recipe: Recipe,
    pub genotype: GenotypeChoice,
    /// `train.genotype_seed` (with `genotype: random`).
    pub genotype_seed: Option<u64>,
    pub epochs: u32,
    pub batch: u32,
    pub lr: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    pub warmup_epochs: u32,
    /// Initial channels C; `0` = the largest even C under `max_macs_m` (ImageNet-DARTS).
    pub channels: u32,
    pub layers: u32,
    pub drop_path: f64,
    pub auxiliary_weight: f64,
    /// Cutout side in pixels (0 = off).
    pub cutout: u32,
    pub label_smoothing: f64,
    pub grad_clip: f64,
    pub max_macs_m: f64,
    /// `train.cuda_graphs`.
    pub cuda_graphs: bool,
}

impl TrainRecipe {
    /// The recipe of a `train:` section, defaults filled from its `recipe`.
    pub fn of(t: &Train) -> Result<TrainRecipe> {
        let r = t.resolved();
        // `resolved` fills every field; a `None` here is a bug in the recipe table, named.
        macro_rules! field {
            ($name:ident) => {
                r.$name.with_context(|| {
                    format!(
                        "train.{} has no value for recipe {:?} (a bug in unas' recipe table)",
                        stringify!($name),
                        r.recipe
                    )
                })?
            };
        }
        Ok(TrainRecipe {
            recipe: r.recipe,
            genotype: r.genotype,
            genotype_seed: r.genotype_seed,
            epochs: field!(epochs),
            batch: field!(batch),
            lr: field!(lr),
            momentum: field!(momentum),
            weight_decay: field!(weight_decay),
            warmup_epochs: field!(warmup_epochs),
            channels: field!(channels),
            layers: field!(layers),
            drop_path: field!(drop_path),
            auxiliary_weight: field!(auxiliary_weight),
            cutout: field!(cutout),
            label_smoothing: field!(label_smoothing),
            grad_clip: field!(grad_clip),
            max_macs_m: field!(max_macs_m),
            cuda_graphs: r.cuda_graphs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_value_wins_and_every_other_field_takes_the_recipe_default() {
        let mut t = Train {
            recipe: Recipe::Cifar,
            genotype: GenotypeChoice::Search,
            genotype_seed: None,
            epochs: Some(7),
            batch: None,
            lr: None,
            momentum: None,
            weight_decay: None,
            warmup_epochs: None,
            channels: None,
            layers: None,
            drop_path: None,
            auxiliary_weight: None,
            cutout: None,
            label_smoothing: None,
            grad_clip: None,
            max_macs_m: None,
            cuda_graphs: false,
        };
        let r = TrainRecipe::of(&t).unwrap();
        assert_eq!((r.epochs, r.layers, r.channels, r.lr), (7, 20, 36, 0.05));
        t.recipe = Recipe::ImagenetDarts;
        let r = TrainRecipe::of(&t).unwrap();
        assert_eq!((r.layers, r.channels, r.label_smoothing), (14, 0, 0.1));
        assert_eq!(r.max_macs_m, 600.0);
    }
}
