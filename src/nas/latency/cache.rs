//! The surrogate cache: one fitted surrogate per (device, space configuration, measurement settings),
//! under `<results>/cache/latency/`, so that a second search on the same device skips the
//! `surrogate_samples` timed networks. The key holds everything the timings depend on; a file whose
//! key differs (another driver, libtorch or thread count) is never used.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::stamp::DeviceStamp;
use super::surrogate::Surrogate;
use crate::config::identity::canonical_json;
use crate::results::atomic;

/// What a cached surrogate was measured with.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SurrogateKey {
    pub stamp: DeviceStamp,
    /// `proxyless`, its width multiplier, input side, classes, zero-op dropout.
    pub space: serde_json::Value,
    pub batch: u32,
    pub repeats: u32,
    pub samples: u32,
    pub ridge: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CachedSurrogate {
    pub key: SurrogateKey,
    pub surrogate: Surrogate,
}

impl SurrogateKey {
    /// The cache file of this key under `cache_dir`.
    pub fn path(&self, cache_dir: &Path) -> PathBuf {
        let text = canonical_json(&serde_json::to_value(self).expect("a key serialises"));
        let hash = blake3::hash(text.as_bytes()).to_hex();
        let device = self.stamp.device.replace(':', "");
        cache_dir.join(format!("surrogate-{device}-{}.json", &hash[..16]))
    }

    /// The cached surrogate of this key, if there is one (a file of another key is ignored).
    pub fn load(&self, cache_dir: &Path) -> Result<Option<Surrogate>> {
        let path = self.path(cache_dir);
        if !path.is_file() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading the latency cache {}", path.display()))?;
        let cached: CachedSurrogate = serde_json::from_str(&text).with_context(|| {
            format!(
                "parsing the latency cache {} (delete it to measure again)",
                path.display()
            )
        })?;
        Ok((cached.key == *self).then_some(cached.surrogate))
    }

    pub fn store(&self, cache_dir: &Path, surrogate: &Surrogate) -> Result<PathBuf> {
        std::fs::create_dir_all(cache_dir)
            .with_context(|| format!("creating {}", cache_dir.display()))?;
        let path = self.path(cache_dir);
        let cached = CachedSurrogate {
            key: self.clone(),
            surrogate: surrogate.clone(),
        };
        atomic::write_json(&path, &cached)?;
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nas::latency::FitReport;

    #[test]
    fn a_stored_surrogate_is_found_by_its_key_only() {
        let dir = tempfile::tempdir().unwrap();
        let key = SurrogateKey {
            stamp: DeviceStamp::of(tch::Device::Cpu),
            space: serde_json::json!({"width_multiplier": 0.25, "resolution": 32}),
            batch: 8,
            repeats: 3,
            samples: 64,
            ridge: 1.0,
        };
        let s = Surrogate {
            weights: vec![1.0, 2.0],
            bias_ms: 0.5,
            fit: FitReport {
                n_train: 8,
                n_test: 2,
                ridge: 1.0,
                mae_train_ms: 0.1,
                mae_test_ms: 0.2,
                r2_test: 0.9,
            },
        };
        assert_eq!(key.load(dir.path()).unwrap(), None);
        key.store(dir.path(), &s).unwrap();
        assert_eq!(key.load(dir.path()).unwrap(), Some(s));
        let other = SurrogateKey {
            repeats: 10,
            ..key.clone()
        };
        assert_eq!(other.load(dir.path()).unwrap(), None);
        assert_ne!(other.path(dir.path()), key.path(dir.path()));
    }

    /// A run that fits its surrogate keeps the fitted weights in memory; a run that reads the cache
    /// gets them back from JSON. Both must predict the same bits, or a resumed search differs from
    /// the original (serde_json's default parser is one ulp off on about 12 % of doubles).
    #[test]
    fn a_cached_surrogate_reads_back_bit_for_bit() {
        let dir = tempfile::tempdir().unwrap();
        let key = SurrogateKey {
            stamp: DeviceStamp::of(tch::Device::Cpu),
            space: serde_json::json!({"resolution": 32}),
            batch: 8,
            repeats: 1,
            samples: 200,
            ridge: 0.3,
        };
        // 200 awkward doubles: (k·0.7368…)^1.5 − 1.2 has no short decimal form
        let weights: Vec<f64> = (1..=200)
            .map(|k| (k as f64 * 0.736_851_209_3).powf(1.5) / 97.0 - 1.2)
            .collect();
        let s = Surrogate {
            weights,
            bias_ms: std::f64::consts::PI / 3.0,
            fit: FitReport {
                n_train: 160,
                n_test: 40,
                ridge: 0.3,
                mae_train_ms: 1.0 / 7.0,
                mae_test_ms: 2.0 / 7.0,
                r2_test: 0.1f64.sqrt(),
            },
        };
        key.store(dir.path(), &s).unwrap();
        let back = key.load(dir.path()).unwrap().unwrap();
        for (a, b) in s.weights.iter().zip(&back.weights) {
            assert_eq!(a.to_bits(), b.to_bits(), "{a:e} read back as {b:e}");
        }
        assert_eq!(back, s);
    }
}
