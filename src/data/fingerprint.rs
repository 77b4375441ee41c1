//! Dataset fingerprints for run ids and provenance: blake3 over the files' contents, computed once and
//! cached beside the dataset folder (`<root>/.unas-fingerprint-<name>.json`, keyed by every file's
//! relative path, size and mtime), never inside it.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use anyhow::{Context, Result};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::results::atomic::write_json;

#[derive(Serialize, Deserialize, PartialEq, Eq, Debug)]
struct FileKey {
    path: String,
    bytes: u64,
    mtime_ns: u128,
}

#[derive(Serialize, Deserialize)]
struct Cache {
    files: Vec<FileKey>,
    fingerprint: String,
}

fn key(root: &Path, file: &Path) -> Result<FileKey> {
    let meta = fs::metadata(file).with_context(|| format!("reading {}", file.display()))?;
    let mtime_ns = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    Ok(FileKey {
        path: file
            .strip_prefix(root)
            .unwrap_or(file)
            .to_string_lossy()
            .into_owned(),
        bytes: meta.len(),
        mtime_ns,
    })
}

/// The cache file of dataset `name` under `root`.
pub fn cache_path(root: &Path, name: &str) -> PathBuf {
    root.join(format!(".unas-fingerprint-{name}.json"))
}

/// blake3 over (relative path, size, blake3(content)) of every file, in the given order; cached.
pub fn of_files(root: &Path, files: &[PathBuf], name: &str) -> Result<String> {
    let keys = files
        .iter()
        .map(|f| key(root, f))
        .collect::<Result<Vec<_>>>()?;
    let cache = cache_path(root, name);
    if let Ok(text) = fs::read_to_string(&cache) {
        if let Ok(c) = serde_json::from_str::<Cache>(&text) {
            if c.files == keys {
                return Ok(c.fingerprint);
            }
        }
    }
    let hashes = files
        .par_iter()
        .map(|f| -> Result<blake3::Hash> {
            let mut h = blake3::Hasher::new();
            let mut file = fs::File::open(f).with_context(|| format!("opening {}", f.display()))?;
            std::io::copy(&mut file, &mut h).with_context(|| format!("hashing {}", f.display()))?;
            Ok(h.finalize())
        })
        .collect::<Result<Vec<_>>>()?;
    let mut all = blake3::Hasher::new();
    for (k, h) in keys.iter().zip(&hashes) {
        all.update(k.path.as_bytes());
        all.update(&k.bytes.to_le_bytes());
        all.update(h.as_bytes());
    }
    let fingerprint = all.finalize().to_hex().to_string();
    let record = Cache {
        files: keys,
        fingerprint: fingerprint.clone(),
    };
    if let Err(e) = write_json(&cache, &record) {
        tracing::warn!(
            "could not cache the fingerprint in {}: {e:#}",
            cache.display()
        );
    }
    Ok(fingerprint)
}

/// blake3 of a generator's parameters and version (datasets that are computed, not read).
pub fn of_generator(description: &str) -> String {
    blake3::hash(description.as_bytes()).to_hex().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_is_cached_and_follows_content() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("a.bin");
        fs::write(&f, b"hello").unwrap();
        let one = of_files(tmp.path(), std::slice::from_ref(&f), "t").unwrap();
        assert!(cache_path(tmp.path(), "t").exists());
        assert_eq!(
            one,
            of_files(tmp.path(), std::slice::from_ref(&f), "t").unwrap()
        );
        fs::write(&f, b"hellO!").unwrap();
        let two = of_files(tmp.path(), std::slice::from_ref(&f), "t").unwrap();
        assert_ne!(one, two);
    }
}
