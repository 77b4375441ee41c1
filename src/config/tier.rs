//! The tier an experiment runs at: `paper` is the file as written, `quick` real data on one GPU in
//! about an hour for the suite, `smoke` synthetic data and tiny nets on a CPU in seconds. A leaf: the
//! overlays that define each tier live in [`super::tiers`].

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    Smoke,
    Quick,
    #[default]
    Paper,
}

impl Tier {
    /// Every tier, smallest first.
    pub const ALL: [Tier; 3] = [Tier::Smoke, Tier::Quick, Tier::Paper];

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Smoke => "smoke",
            Tier::Quick => "quick",
            Tier::Paper => "paper",
        }
    }

    /// The tier spelt `name` (as in `tiers.yaml` and `--tier`), if there is one.
    pub fn from_name(name: &str) -> Option<Tier> {
        Tier::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tier_round_trips_through_its_name() {
        for t in Tier::ALL {
            assert_eq!(Tier::from_name(t.as_str()), Some(t));
            assert_eq!(t.to_string(), t.as_str());
        }
        assert_eq!(Tier::from_name("Paper"), None);
    }
}
