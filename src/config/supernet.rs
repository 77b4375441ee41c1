//! The ProxylessNAS search supernet's settings with every value filled in (spec §5.2): the file's
//! value where it wrote one, else the default (the dataset's image side, the official zero-op
//! dropout). The resolved config spells them out ([`Space::resolved`] writes this overlay into it),
//! so a value written or defaulted gives one id, and the supernet is built from a
//! [`ProxylessSupernet`], whose every field has its value: no call site carries a fallback of its own.

use super::schema::{Dataset, Space, SpaceName};

/// The official search-time dropout after `mic_zero`.
pub const ZERO_DROPOUT: f64 = 0.1;

/// The ProxylessNAS fields of a `space:` section, each with its value (each documented on [`Space`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProxylessSupernet {
    pub width_multiplier: f64,
    /// The side of the supernet's input, px.
    pub resolution: u32,
    pub zero_dropout: f64,
}

impl ProxylessSupernet {
    /// The overlay: each field the file's value if it wrote one, else its default.
    pub fn of(space: &Space, dataset: &Dataset) -> ProxylessSupernet {
        ProxylessSupernet {
            width_multiplier: space.width_multiplier,
            resolution: space.resolution.unwrap_or(dataset.shape().side() as u32),
            zero_dropout: space.zero_dropout.unwrap_or(ZERO_DROPOUT),
        }
    }

    /// `space` with these values written in.
    pub fn written(&self, space: &Space) -> Space {
        Space {
            width_multiplier: self.width_multiplier,
            resolution: Some(self.resolution),
            zero_dropout: Some(self.zero_dropout),
            ..space.clone()
        }
    }
}

impl Space {
    /// The supernet's fields the file left out, filled in ([`ProxylessSupernet::of`]), so that the
    /// resolved config is the same whether a value was written or defaulted. The DARTS space has
    /// none: its resolved config is the file's.
    pub fn resolved(&self, dataset: &Dataset) -> Space {
        match self.name {
            SpaceName::Proxyless => ProxylessSupernet::of(self, dataset).written(self),
            SpaceName::Darts => self.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_experiment;

    /// The `space:` section `text` of an ImageNet experiment, and its dataset.
    fn space(text: &str) -> (Space, Dataset) {
        let e = parse_experiment(
            "t.yaml",
            &format!(
                "name: t
dataset: {{name: imagenet, root: data/imagenet}}
space: {text}
seeds: {{search: [0], train: [0]}}
"
            ),
        )
        .unwrap();
        (e.space, e.dataset)
    }

    #[test]
    fn a_resolved_proxyless_space_spells_out_its_defaults_and_resolves_to_itself() {
        let (bare, d) = space("{name: proxyless}");
        let r = bare.resolved(&d);
        assert_eq!((r.resolution, r.zero_dropout), (Some(224), Some(0.1)));
        assert_eq!(
            ProxylessSupernet::of(&bare, &d),
            ProxylessSupernet {
                width_multiplier: 1.0,
                resolution: 224,
                zero_dropout: ZERO_DROPOUT
            }
        );
        assert_eq!(r.resolved(&d), r, "resolving twice changes nothing");
        // written values stay
        let (written, _) =
            space("{name: proxyless, resolution: 64, zero_dropout: 0.0, width_multiplier: 0.5}");
        let r = written.resolved(&d);
        assert_eq!((r.resolution, r.zero_dropout), (Some(64), Some(0.0)));
        assert_eq!(ProxylessSupernet::of(&r, &d).width_multiplier, 0.5);
        // the DARTS space has no supernet settings to fill in
        let (darts, _) = space("{name: darts}");
        assert_eq!(darts.resolved(&d), darts);
    }
}
