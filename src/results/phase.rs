//! The phases a run goes through, in order: a search run has `warmup` (architecture frozen, §1.4) then
//! `search` (§1.3); a from-scratch run has `train` (§6). Step counters restart in every phase.

use serde::{Deserialize, Serialize};

/// A phase of a run. The derived order is the order a run goes through them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Weight-only epochs with the architecture frozen at the uniform distribution (§1.4).
    Warmup,
    /// One architecture step and one weight step per mini-batch (§1.3).
    Search,
    /// From-scratch training of a fixed genotype (§6).
    Train,
}

impl Phase {
    pub const ALL: [Phase; 3] = [Phase::Warmup, Phase::Search, Phase::Train];

    /// The value of the `phase` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Warmup => "warmup",
            Phase::Search => "search",
            Phase::Train => "train",
        }
    }

    /// The value of the `stage` column: warm-up belongs to the search stage.
    pub fn stage(self) -> &'static str {
        match self {
            Phase::Warmup | Phase::Search => "search",
            Phase::Train => "train",
        }
    }

    /// Parses a `phase` column value.
    pub fn parse(s: &str) -> Option<Phase> {
        Phase::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
