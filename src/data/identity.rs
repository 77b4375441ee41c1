//! A dataset's fingerprint without loading it: what run ids and `provenance.json` carry, so a changed
//! dataset never reuses finished runs. The same value [`super::open::open`] computes (synthetic: the
//! generator's parameters; CIFAR and ImageNet folders: blake3 over the files, cached on disk by
//! [`super::fingerprint`]), and memoised per process, so planning a suite costs one look per dataset.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use anyhow::{bail, Result};

use crate::config::{self, DatasetName};
use crate::data::{cifar, fingerprint, image_list, synthetic};

fn memo() -> &'static Mutex<HashMap<String, String>> {
    static MEMO: OnceLock<Mutex<HashMap<String, String>>> = OnceLock::new();
    MEMO.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The fingerprint of the configured dataset (hex blake3), or an error naming the missing folder and
/// how to get it.
pub fn fingerprint(cfg: &config::Dataset) -> Result<String> {
    let key = serde_json::to_string(cfg)?;
    if let Some(f) = memo().lock().expect("fingerprint memo").get(&key) {
        return Ok(f.clone());
    }
    let f = compute(cfg)?;
    memo()
        .lock()
        .expect("fingerprint memo")
        .insert(key, f.clone());
    Ok(f)
}

fn compute(cfg: &config::Dataset) -> Result<String> {
    match cfg.name {
        DatasetName::Synthetic => Ok(synthetic::fingerprint(&cfg.synthetic)),
        DatasetName::Cifar10 | DatasetName::Cifar100 => {
            let Some(variant) = cifar::Variant::from_name(cfg.name) else {
                bail!("{:?} is not a CIFAR dataset", cfg.name)
            };
            let dir = cifar::folder(variant, &cfg.root)?;
            let files: Vec<PathBuf> = cifar::Format::official(variant)
                .files()
                .iter()
                .map(|(f, _)| dir.join(f))
                .collect();
            fingerprint::of_files(&cfg.root, &files, variant.cli_name())
        }
        DatasetName::Imagenet => {
            let root = &cfg.root;
            let train = image_list::ImageList::scan(&root.join("train"), root)?;
            let val = image_list::ImageList::scan(&root.join("val"), root)?;
            let files: Vec<PathBuf> = train
                .items
                .iter()
                .chain(&val.items)
                .map(|(p, _)| p.clone())
                .collect();
            fingerprint::of_files(root, &files, "imagenet")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_planned_fingerprint_is_the_one_the_opened_dataset_has() {
        let mut cfg: config::Dataset = serde_json::from_value(serde_json::json!({
            "name": "synthetic", "synthetic": {"classes": 3, "train": 12, "test": 6}
        }))
        .unwrap();
        let opened = crate::data::open::open(&cfg, tch::Device::Cpu).unwrap();
        assert_eq!(fingerprint(&cfg).unwrap(), opened.fingerprint);
        cfg.synthetic.train = 13;
        assert_ne!(fingerprint(&cfg).unwrap(), opened.fingerprint);
    }

    #[test]
    fn a_missing_cifar_folder_says_how_to_get_it() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg: config::Dataset = serde_json::from_value(serde_json::json!({
            "name": "cifar10", "root": tmp.path()
        }))
        .unwrap();
        let e = format!("{:#}", fingerprint(&cfg).unwrap_err());
        assert!(e.contains("not found") && e.contains("fetch"), "{e}");
    }
}
