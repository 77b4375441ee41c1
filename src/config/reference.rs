//! `experiments/reference.yaml`: published numbers, only confirmed ones, each with its source. Reports
//! show them in a column labelled as the source's, never as our results.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::error::ConfigError;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reference {
    pub entries: Vec<Entry>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stat {
    Mean,
    Best,
    Single,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Which paper table the number belongs to (`cifar10`, `cifar100`, `imagenet_darts`, `proxyless`, ...).
    pub table: String,
    pub method: String,
    /// Column name with its unit, as in our Parquet schema (`test_error_pct`, `params_m`, `lat_ms`).
    pub metric: String,
    pub stat: Stat,
    pub value: f64,
    #[serde(default)]
    pub std: Option<f64>,
    #[serde(default)]
    pub runs: Option<u32>,
    /// Where the number was read. Required: an unsourced number does not belong here.
    pub source: String,
}

pub fn load(path: &Path) -> Result<Reference, ConfigError> {
    let src = path.display().to_string();
    let text = super::yaml::read_text(path)?;
    let r: Reference =
        serde_saphyr::from_str(&text).map_err(|e| super::yaml::saphyr_error(&src, &e, None))?;
    for (i, e) in r.entries.iter().enumerate() {
        if e.source.trim().is_empty() || !e.value.is_finite() {
            return Err(ConfigError::single(
                &src,
                format!(
                    "entry {i} ({} / {}): needs a finite value and a source",
                    e.method, e.metric
                ),
            ));
        }
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    #[test]
    fn shipped_reference_parses_and_every_number_has_a_source() {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/reference.yaml");
        let r = super::load(&p).unwrap();
        assert!(r.entries.len() >= 10);
        assert!(r.entries.iter().all(|e| !e.source.is_empty()));
        // The UNAS paper's own numbers are unconfirmed and must not be here.
        assert!(r
            .entries
            .iter()
            .all(|e| !e.method.to_lowercase().contains("unas")));
    }
}
