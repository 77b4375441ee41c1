//! Tiers: the same experiment at three sizes. `paper` is the file as written; `quick` is real data on
//! one GPU in about an hour for the suite; `smoke` is synthetic data and tiny nets on a CPU in seconds.
//! A tier is an overlay in `experiments/tiers.yaml`, merged into the experiment before validation; the
//! tier is part of the resolved config and so of its id.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use super::error::ConfigError;
use super::path::FieldPath;
use super::positions::{Pos, Positions};
use super::yaml::{check_structure, one, saphyr_error};

pub use super::tier::Tier;

/// The shipped tiers file, used when no `tiers.yaml` is found beside or above an experiment.
pub const EMBEDDED_TIERS: &str = include_str!("../../experiments/tiers.yaml");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TierDef {
    #[serde(default)]
    #[allow(dead_code)]
    description: String,
    #[serde(default)]
    overlay: Value,
    /// Overlays for the experiments of one space only, merged after `overlay`: sizes that would be
    /// wrong for another space (the ProxylessNAS supernet's width and input side).
    #[serde(default)]
    by_space: BTreeMap<String, Value>,
}

/// A loaded tiers file: the overlay of each tier it defines.
#[derive(Debug)]
pub struct Tiers {
    pub source: String,
    defs: BTreeMap<Tier, Value>,
    space_defs: BTreeMap<(Tier, String), Value>,
    positions: Positions,
}

impl Tiers {
    /// `tiers.yaml` in the experiment's folder or the nearest folder above it; else the shipped one.
    pub fn for_experiment(experiment: &Path) -> Result<Tiers, ConfigError> {
        match find_tiers_file(experiment) {
            Some(path) => {
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    ConfigError::single(path.display().to_string(), format!("cannot read: {e}"))
                })?;
                Tiers::parse(&path.display().to_string(), &text)
            }
            None => Tiers::parse("<built-in tiers.yaml>", EMBEDDED_TIERS),
        }
    }

    pub fn parse(source: &str, text: &str) -> Result<Tiers, ConfigError> {
        // Syntax, tags, duplicate keys and non-finite numbers, with the field they are in.
        check_structure(source, text)?;
        let raw: BTreeMap<String, TierDef> =
            serde_saphyr::from_str(text).map_err(|e| saphyr_error(source, &e, None))?;
        let positions = Positions::of_yaml(text);
        let mut defs = BTreeMap::new();
        let mut space_defs = BTreeMap::new();
        for (name, def) in raw {
            let at = FieldPath::root().child(&name);
            let pos = positions.find(&at).map(|(p, _)| p);
            let Some(tier) = Tier::from_name(&name) else {
                return Err(one(
                    source,
                    pos,
                    Some(at),
                    format!("unknown tier `{name}`, expected `smoke`, `quick` or `paper`"),
                ));
            };
            let overlay = match def.overlay {
                Value::Null => Value::Object(Default::default()),
                v @ Value::Object(_) => v,
                _ => {
                    let at = at.child("overlay");
                    let pos = positions.find(&at).map(|(p, _)| p);
                    return Err(one(
                        source,
                        pos,
                        Some(at),
                        format!("tier `{name}`: `overlay` must be a mapping"),
                    ));
                }
            };
            defs.insert(tier, overlay);
            for (space, v) in def.by_space {
                let at = at.child("by_space").child(&space);
                if !matches!(v, Value::Object(_)) {
                    let pos = positions.find(&at).map(|(p, _)| p);
                    return Err(one(
                        source,
                        pos,
                        Some(at),
                        format!("tier `{name}`: `by_space.{space}` must be a mapping"),
                    ));
                }
                space_defs.insert((tier, space), v);
            }
        }
        Ok(Tiers {
            source: source.to_owned(),
            defs,
            space_defs,
            positions,
        })
    }

    pub fn overlay(&self, tier: Tier) -> Option<&Value> {
        self.defs.get(&tier)
    }

    /// The tier's overlay for the experiments of space `space` (its YAML name), if it has one.
    pub fn space_overlay(&self, tier: Tier, space: &str) -> Option<&Value> {
        self.space_defs.get(&(tier, space.to_owned()))
    }

    /// Where in the tiers file a field of a tier's overlay is written: in the overlay of the
    /// experiment's space (`space`) if it sets the field there, else in the common overlay.
    pub fn position_of(&self, tier: Tier, space: Option<&str>, field: &FieldPath) -> Option<Pos> {
        let find = |base: FieldPath| {
            let mut full = base;
            full.0.extend(field.0.iter().cloned());
            self.positions.find(&full)
        };
        let at = FieldPath::root().child(tier.as_str());
        // the space's overlay only where it spells the field itself
        let by_space = space
            .and_then(|s| find(at.child("by_space").child(s)))
            .filter(|(_, exact)| *exact);
        by_space
            .or_else(|| find(at.child("overlay")))
            .map(|(p, _)| p)
    }
}

fn find_tiers_file(experiment: &Path) -> Option<PathBuf> {
    let start = experiment.parent()?;
    let start = if start.as_os_str().is_empty() {
        Path::new(".")
    } else {
        start
    };
    start
        .ancestors()
        .map(|d| d.join("tiers.yaml"))
        .find(|p| p.is_file())
}

/// Merges `overlay` into `target`: mappings merge key by key, anything else replaces. An overlay
/// mapping aimed at an absent section (`null`, e.g. `search:` of a train-only experiment) is skipped,
/// so one tier fits every experiment. Returns the paths the overlay set.
pub fn merge(target: &mut Value, overlay: &Value, at: &FieldPath, set: &mut Vec<FieldPath>) {
    match (target, overlay) {
        (Value::Null, Value::Object(_)) => {}
        (Value::Object(t), Value::Object(o)) => {
            for (k, v) in o {
                let here = at.child(k);
                match t.get_mut(k) {
                    Some(slot) => merge(slot, v, &here, set),
                    None => {
                        t.insert(k.clone(), v.clone());
                        set.push(here);
                    }
                }
            }
        }
        (slot, v) => {
            *slot = v.clone();
            set.push(at.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn overlay_merges_nested_and_skips_absent_sections() {
        let mut t = json!({"search": null, "space": {"layers": 8, "channels": 16}, "seeds": {"search": [0, 1]}});
        let o = json!({"search": {"batch": 8}, "space": {"layers": 3}, "seeds": {"search": [0]}});
        let mut set = Vec::new();
        merge(&mut t, &o, &FieldPath::root(), &mut set);
        assert_eq!(
            t,
            json!({"search": null, "space": {"layers": 3, "channels": 16}, "seeds": {"search": [0]}})
        );
        let mut set: Vec<String> = set.iter().map(|p| p.to_string()).collect();
        set.sort();
        assert_eq!(set, vec!["seeds.search", "space.layers"]);
    }

    #[test]
    fn a_space_overlay_applies_to_its_space_only_and_is_located() {
        let text = "smoke:\n  overlay:\n    search: {batch: 8}\n  by_space:\n    proxyless:\n      space: {resolution: 64}\n";
        let t = Tiers::parse("tiers.yaml", text).unwrap();
        assert_eq!(
            t.space_overlay(Tier::Smoke, "proxyless"),
            Some(&json!({"space": {"resolution": 64}}))
        );
        assert_eq!(t.space_overlay(Tier::Smoke, "darts"), None);
        let res = FieldPath::parse("space.resolution").unwrap();
        let batch = FieldPath::parse("search.batch").unwrap();
        assert_eq!(
            t.position_of(Tier::Smoke, Some("proxyless"), &res)
                .unwrap()
                .line,
            6
        );
        assert_eq!(
            t.position_of(Tier::Smoke, Some("proxyless"), &batch)
                .unwrap()
                .line,
            3
        );
        let shipped = Tiers::parse("tiers.yaml", EMBEDDED_TIERS).unwrap();
        assert!(shipped.space_overlay(Tier::Smoke, "proxyless").is_some());
    }

    #[test]
    fn shipped_tiers_file_parses_and_paper_is_empty() {
        let t = Tiers::parse("tiers.yaml", EMBEDDED_TIERS).unwrap();
        assert_eq!(t.overlay(Tier::Paper), Some(&json!({})));
        assert!(t.overlay(Tier::Smoke).unwrap().get("dataset").is_some());
    }
}
