//! The training recipes' defaults, one table, and the one overlay that fills a `train:` section from
//! it: the file's value where it wrote one, else its recipe's (spec §6.1–6.3). Every field of a
//! [`TrainRecipe`] has its value, so no call site carries a fallback of its own.

use super::schema::{GenotypeChoice, Recipe, Train};
use super::width::Width;

/// Declares [`TrainRecipe`] from the table below: the struct, the overlay [`TrainRecipe::of`] and the
/// section as a resolved config writes it ([`TrainRecipe::written`]). One row per field, one column per
/// recipe, in the order of the `Recipe` enum.
macro_rules! recipe_table {
    ($($field:ident: $ty:ty = $cifar:expr, $imagenet_darts:expr, $imagenet_proxyless:expr;)*) => {
        /// A `train:` section with every field filled in (each field is documented on [`Train`]).
        #[derive(Clone, Debug, PartialEq)]
        pub struct TrainRecipe {
            pub recipe: Recipe,
            pub genotype: GenotypeChoice,
            /// `train.genotype_seed` (with `genotype: random`).
            pub genotype_seed: Option<u64>,
            /// `train.cuda_graphs`.
            pub cuda_graphs: bool,
            $(pub $field: $ty,)*
        }

        impl TrainRecipe {
            /// The overlay: each field the file's value if it wrote one, else the recipe's default.
            pub fn of(t: &Train) -> TrainRecipe {
                TrainRecipe {
                    recipe: t.recipe,
                    genotype: t.genotype,
                    genotype_seed: t.genotype_seed,
                    cuda_graphs: t.cuda_graphs,
                    $($field: t.$field.unwrap_or_else(|| {
                        recipe_default(t.recipe, $cifar, $imagenet_darts, $imagenet_proxyless)
                    }),)*
                }
            }

            /// The section as a resolved config writes it: every field spelt out (so a value written
            /// or defaulted gives one id), except one slice where one slice is the recipe's default,
            /// which is written as nothing (the run ids of one-slice CIFAR trainings do not name
            /// `sub_batches`); one slice on a recipe whose default is more stays written, or reading
            /// the config back would give the default again.
            pub fn written(&self) -> Train {
                let all = Train {
                    recipe: self.recipe,
                    genotype: self.genotype,
                    genotype_seed: self.genotype_seed,
                    cuda_graphs: self.cuda_graphs,
                    $($field: Some(self.$field),)*
                };
                let default_g = TrainRecipe::of(&Train { sub_batches: None, ..all.clone() }).sub_batches;
                Train {
                    sub_batches: all.sub_batches.filter(|&g| g != 1 || default_g != 1),
                    ..all
                }
            }
        }
    };
}

/// One column of the table: the value of `recipe`.
fn recipe_default<T>(recipe: Recipe, cifar: T, imagenet_darts: T, imagenet_proxyless: T) -> T {
    match recipe {
        Recipe::Cifar => cifar,
        Recipe::ImagenetDarts => imagenet_darts,
        Recipe::ImagenetProxyless => imagenet_proxyless,
    }
}

// §6.1 CIFAR: C=36, L=20, 600 epochs, SGD 0.05, 30 warm-up epochs, aux 0.4, cutout 16, drop-path 0.2.
// §6.2 ImageNet-DARTS: 8 GPUs × 128, lr 0.1×8, wd 3e-5, LS 0.1, aux 0.4, warm-up 5, 250 epochs, the
//      largest even C under 600M MACs.
// §6.3 ImageNet-ProxylessNAS: 8 GPUs × 64, lr 0.025×8, wd 5e-5, LS 0.1, warm-up 5, 300 epochs, no aux,
//      the fixed skeleton's widths (channels and layers are not read).
#[rustfmt::skip]
recipe_table! {
//  field              type     cifar              imagenet_darts     imagenet_proxyless
    epochs:            u32   =  600,               250,               300;
    batch:             u32   =  128,               1024,              512;
    lr:                f64   =  0.05,              0.8,               0.2;
    momentum:          f64   =  0.9,               0.9,               0.9;
    weight_decay:      f64   =  3e-4,              3e-5,              5e-5;
    warmup_epochs:     u32   =  30,                5,                 5;
    channels:          Width =  Width::Fixed(36),  Width::Auto,       Width::Auto;
    layers:            u32   =  20,                14,                21;
    drop_path:         f64   =  0.2,               0.0,               0.0;
    auxiliary_weight:  f64   =  0.4,               0.4,               0.0;
    cutout:            u32   =  16,                0,                 0;
    label_smoothing:   f64   =  0.0,               0.1,               0.1;
    grad_clip:         f64   =  5.0,               5.0,               5.0;
    max_macs_m:        f64   =  0.0,               600.0,             0.0;
    sub_batches:       u32   =  1,                 8,                 8;
}

impl Train {
    /// Every field the file left out filled in from the recipe (the overlay [`TrainRecipe::of`]), so
    /// that the resolved config (and its id) is the same whether a value was written or defaulted.
    pub fn resolved(&self) -> Train {
        TrainRecipe::of(self).written()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bare(recipe: Recipe) -> Train {
        Train {
            recipe,
            genotype: GenotypeChoice::Search,
            genotype_seed: None,
            epochs: None,
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
            sub_batches: None,
        }
    }

    #[test]
    fn a_written_value_wins_and_every_other_field_takes_the_recipe_default() {
        let mut t = bare(Recipe::Cifar);
        t.epochs = Some(7);
        let r = TrainRecipe::of(&t);
        assert_eq!(
            (r.epochs, r.layers, r.channels, r.lr),
            (7, 20, Width::Fixed(36), 0.05)
        );
        t.recipe = Recipe::ImagenetDarts;
        let r = TrainRecipe::of(&t);
        assert_eq!(
            (r.layers, r.channels, r.label_smoothing),
            (14, Width::Auto, 0.1)
        );
        assert_eq!(r.max_macs_m, 600.0);
        assert_eq!(r.sub_batches, 8, "8 GPUs × 128");
        t.recipe = Recipe::Cifar;
        assert_eq!(TrainRecipe::of(&t).sub_batches, 1);
        t.sub_batches = Some(1);
        assert_eq!(
            t.resolved().sub_batches,
            None,
            "one slice is written as nothing"
        );
        for recipe in [Recipe::ImagenetDarts, Recipe::ImagenetProxyless] {
            t.recipe = recipe;
            let back = t.resolved();
            assert_eq!(
                back.sub_batches,
                Some(1),
                "{recipe:?}: one slice stays written"
            );
            assert_eq!(
                TrainRecipe::of(&back).sub_batches,
                1,
                "{recipe:?}: and reads back as 1"
            );
        }
    }

    #[test]
    fn a_resolved_section_overlays_to_the_recipe_it_was_written_from() {
        // What the runner reads from a resolved config (the recipe of its `train:` section) is what the
        // file asked for, for every recipe and for values equal to, and other than, its defaults.
        for recipe in [
            Recipe::Cifar,
            Recipe::ImagenetDarts,
            Recipe::ImagenetProxyless,
        ] {
            for channels in [None, Some(Width::Auto), Some(Width::Fixed(48))] {
                for sub_batches in [None, Some(1), Some(4), Some(8)] {
                    let mut t = bare(recipe);
                    t.channels = channels;
                    t.sub_batches = sub_batches;
                    let r = TrainRecipe::of(&t);
                    let w = r.written();
                    let case =
                        format!("{recipe:?}, channels {channels:?}, sub_batches {sub_batches:?}");
                    assert_eq!(w.resolved(), w, "{case}: resolving twice changes nothing");
                    assert_eq!(TrainRecipe::of(&w), r, "{case}: read back");
                    if let Some(c) = channels {
                        assert_eq!(r.channels, c, "{case}");
                    }
                    if let Some(g) = sub_batches {
                        assert_eq!(r.sub_batches, g, "{case}");
                    }
                }
            }
        }
    }
}
