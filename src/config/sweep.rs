//! Sweeps as data: a `sweep:` section (`search.temperature: [0.2, 0.4, 0.8, 1.6]`, several keys → the
//! product of their values) expands one experiment file into a grid of variants. Each variant is a full
//! experiment — the file with one value per key applied as a `--set` would be, validated and given its
//! own id — named `<name>.<leaf>-<value>` per key (`c10-temperature.temperature-0.2`), with `sweep_of`
//! naming the file's experiment so that the report can show the sweep as one table and one plot.

use std::path::Path;

use serde_json::Value;

use super::error::ConfigError;
use super::load::{parse_checked, read_text, resolve, Resolved};
use super::path::FieldPath;
use super::tier::Tier;
use super::tiers::Tiers;
use super::yaml::one;

/// More variants than this in one file is almost certainly a typo (and hours of compute).
pub const MAX_VARIANTS: usize = 256;

/// Reads one experiment file and resolves it: one [`Resolved`] without a `sweep`, every variant of
/// the grid with one (in the order of the keys, the last key varying fastest).
pub fn load_variants(
    path: &Path,
    tier: Tier,
    sets: &[String],
) -> Result<Vec<Resolved>, ConfigError> {
    let src = path.display().to_string();
    let text = read_text(path)?;
    let experiment = parse_checked(&src, &text, true)?;
    let tiers = Tiers::for_experiment(path)?;
    if experiment.sweep_of.is_some() {
        return Err(one(
            &src,
            None,
            FieldPath::parse("sweep_of").ok(),
            "is written by the expansion of a `sweep`; remove it from the file".into(),
        ));
    }
    let Some(grid) = experiment.sweep.clone() else {
        return Ok(vec![resolve(&src, &text, experiment, tier, &tiers, sets)?]);
    };
    let points = expand(&src, &grid)?;
    points
        .iter()
        .map(|point| {
            let mut all = vec![
                format!("name={}", variant_name(&experiment.name, point)),
                format!("sweep_of={}", experiment.name),
            ];
            all.extend(
                point
                    .iter()
                    .map(|(k, v)| format!("{k}={}", serde_json::to_string(v).expect("json"))),
            );
            all.extend(sets.iter().cloned());
            resolve(&src, &text, experiment.clone(), tier, &tiers, &all)
        })
        .collect()
}

/// One point of the grid: (field path, value) per key.
pub type Point = Vec<(String, Value)>;

/// The product of the keys' values (the last key fastest); every key a field path with a non-empty
/// list.
pub fn expand(
    src: &str,
    grid: &std::collections::BTreeMap<String, Vec<Value>>,
) -> Result<Vec<Point>, ConfigError> {
    let mut points: Vec<Point> = vec![Vec::new()];
    for (key, values) in grid {
        let field = format!("sweep.{key}");
        let bad = |msg: String| one(src, None, FieldPath::parse(&field).ok(), msg);
        FieldPath::parse(key).map_err(|m| bad(format!("`{key}` is not a field path: {m}")))?;
        if matches!(key.as_str(), "name" | "sweep" | "sweep_of") {
            return Err(bad(format!("`{key}` cannot be swept")));
        }
        if values.is_empty() {
            return Err(bad("needs at least one value, e.g. `[0.2, 0.4]`".into()));
        }
        points = points
            .into_iter()
            .flat_map(|p| {
                values.iter().map(move |v| {
                    let mut q = p.clone();
                    q.push((key.clone(), v.clone()));
                    q
                })
            })
            .collect();
        if points.len() > MAX_VARIANTS {
            return Err(bad(format!(
                "the sweep has more than {MAX_VARIANTS} variants; split it into several files"
            )));
        }
    }
    Ok(points)
}

/// `<name>.<leaf>-<value>` per key, the leaf being the last segment of the field path and the value
/// kept to the characters a run folder allows (others become `_`).
pub fn variant_name(name: &str, point: &Point) -> String {
    let mut out = name.to_owned();
    for (key, v) in point {
        let leaf = key.rsplit('.').next().unwrap_or(key);
        let value = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let value: String = value
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        out.push_str(&format!(".{leaf}-{value}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn two_keys_expand_into_their_product_with_the_last_key_fastest() {
        let grid = [
            (
                "search.objective.lambda".to_string(),
                vec![json!(0.25), json!(1.0)],
            ),
            (
                "search.temperature".to_string(),
                vec![json!(0.2), json!(0.4), json!(0.8)],
            ),
        ]
        .into_iter()
        .collect();
        let points = expand("x.yaml", &grid).unwrap();
        assert_eq!(points.len(), 6);
        assert_eq!(
            variant_name("c10", &points[1]),
            "c10.lambda-0.25.temperature-0.4"
        );
        assert_eq!(
            variant_name("c10", &points[5]),
            "c10.lambda-1.0.temperature-0.8"
        );
    }

    #[test]
    fn an_empty_list_and_a_swept_name_are_errors_naming_the_field() {
        let empty = [("search.temperature".to_string(), vec![])]
            .into_iter()
            .collect();
        let e = expand("x.yaml", &empty).unwrap_err().to_string();
        assert!(
            e.contains("sweep.search.temperature") && e.contains("at least one value"),
            "{e}"
        );
        let name = [("name".to_string(), vec![json!("a")])]
            .into_iter()
            .collect();
        assert!(expand("x.yaml", &name)
            .unwrap_err()
            .to_string()
            .contains("cannot be swept"));
    }
}
