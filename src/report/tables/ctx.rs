//! What every table is made from ([`Ctx`]: the scan, its groups and their evidence, the published
//! numbers) and which paper table an experiment belongs to ([`family`]); a leaf, so that the tables and
//! the random baseline (`report::baseline`) read both without importing the tables' face.

use std::collections::BTreeMap;

use crate::config::reference::Reference;

use super::super::cells;
use super::super::evidence::{Evidence, Metric};
use super::super::scan::{Group, RunConfig, Scan};

/// What every table is made from.
pub(crate) struct Ctx<'a> {
    pub scan: &'a Scan,
    pub groups: &'a [Group],
    pub evidence: &'a BTreeMap<String, Evidence>,
    pub reference: Option<&'a Reference>,
}

impl Ctx<'_> {
    pub(crate) fn evidence(&self, g: &Group) -> Evidence {
        self.evidence.get(&g.key()).cloned().unwrap_or_default()
    }

    /// A cell of `m` for group `g` with its stage's marks and its tier.
    pub(crate) fn cell(&self, g: &Group, m: Metric, decimals: usize) -> String {
        let e = self.evidence(g);
        cells::stat(e.stat(m), decimals, &e.gap_counts(m.stage()), &g.tier)
    }
}

/// The paper table an experiment's numbers belong to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Family {
    Cifar10,
    Cifar100,
    ImagenetDarts,
    Proxyless,
}

/// Read from the space, the training recipe and the dataset. At the smoke tier every dataset is the
/// synthetic stand-in, so a CIFAR-shaped one is told apart by its name (`c100`, `cifar100`). A sweep's
/// variant belongs to no paper table: it has its sweep's table ([`sweep`]).
pub(crate) fn family(c: &RunConfig) -> Option<Family> {
    if c.sweep_of.is_some() {
        return None;
    }
    if c.space.name == "proxyless" {
        return Some(Family::Proxyless);
    }
    match c.train.as_ref().map(|t| t.recipe.as_str()) {
        Some("imagenet_proxyless") => return Some(Family::Proxyless),
        Some("imagenet_darts") => return Some(Family::ImagenetDarts),
        _ => {}
    }
    match c.dataset.name.as_str() {
        "cifar10" => Some(Family::Cifar10),
        "cifar100" => Some(Family::Cifar100),
        "imagenet" => Some(Family::ImagenetDarts),
        "synthetic" => {
            let like_imagenet =
                c.dataset.synthetic.as_ref().and_then(|s| s.like.as_deref()) == Some("imagenet");
            let n = c.name.to_lowercase();
            Some(if like_imagenet {
                Family::ImagenetDarts
            } else if n.contains("c100") || n.contains("cifar100") {
                Family::Cifar100
            } else {
                Family::Cifar10
            })
        }
        _ => None,
    }
}
