//! Is a dataset where an experiment expects it? A cheap look (file sizes, class folders) that
//! `unas reproduce --tier quick|paper` makes before any work, so that a machine without the datasets
//! stops at once with the list of what is missing, how to fetch it and the ImageNet folder layout.

use std::path::{Path, PathBuf};

use crate::config::{self, DatasetName};
use crate::data::{cifar, image_list};

/// One dataset that is not where an experiment expects it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Missing {
    pub dataset: DatasetName,
    pub root: PathBuf,
    /// What is wrong, in words (the first missing or short file, or the missing split folder).
    pub what: String,
    /// The command or layout that fixes it.
    pub fix: String,
}

/// `None` when the dataset of `cfg` is present (the synthetic one always is).
pub fn missing(cfg: &config::Dataset) -> Option<Missing> {
    let gone = |what: String, fix: String| {
        Some(Missing {
            dataset: cfg.name,
            root: cfg.root.clone(),
            what,
            fix,
        })
    };
    match cfg.name {
        DatasetName::Synthetic => None,
        DatasetName::Cifar10 | DatasetName::Cifar100 => {
            let variant = cifar::Variant::from_name(cfg.name).expect("a CIFAR name");
            let dir = cfg.root.join(variant.folder());
            let fix = format!(
                "unas data fetch {} --root {}",
                variant.cli_name(),
                cfg.root.display()
            );
            for (file, bytes) in cifar::Format::official(variant).files() {
                let p = dir.join(&file);
                match std::fs::metadata(&p) {
                    Ok(m) if m.is_file() && m.len() == bytes => {}
                    Ok(m) => {
                        return gone(
                            format!("{} has {} bytes, expected {bytes}", p.display(), m.len()),
                            fix,
                        )
                    }
                    Err(_) => return gone(format!("{} is missing", p.display()), fix),
                }
            }
            None
        }
        DatasetName::Imagenet => {
            for split in ["train", "val"] {
                let d = cfg.root.join(split);
                if !has_class_folder(&d) {
                    return gone(
                        format!("{} is missing or has no class folders", d.display()),
                        image_list::layout(&cfg.root),
                    );
                }
            }
            None
        }
    }
}

fn has_class_folder(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .is_ok_and(|mut it| it.any(|e| e.is_ok_and(|e| e.file_type().is_ok_and(|t| t.is_dir()))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(name: &str, root: &Path) -> config::Dataset {
        serde_saphyr::from_str(&format!("{{name: {name}, root: \"{}\"}}", root.display())).unwrap()
    }

    #[test]
    fn absent_cifar_and_imagenet_are_named_with_their_fix_and_present_ones_pass() {
        let tmp = tempfile::tempdir().unwrap();
        let m = missing(&cfg("cifar100", tmp.path())).unwrap();
        assert!(
            m.what.contains("cifar-100-binary/train.bin is missing"),
            "{}",
            m.what
        );
        assert_eq!(
            m.fix,
            format!("unas data fetch cifar100 --root {}", tmp.path().display())
        );
        let dir = tmp.path().join("cifar-10-batches-bin");
        cifar::write_folder(&dir, &cifar::Format::official(cifar::Variant::Cifar10)).unwrap();
        assert_eq!(missing(&cfg("cifar10", tmp.path())), None);
        let m = missing(&cfg("imagenet", &tmp.path().join("imagenet"))).unwrap();
        assert!(m.fix.contains("/train/<wnid>/*.JPEG"), "{}", m.fix);
        for split in ["train", "val"] {
            std::fs::create_dir_all(tmp.path().join("imagenet").join(split).join("n01440764"))
                .unwrap();
        }
        assert_eq!(
            missing(&cfg("imagenet", &tmp.path().join("imagenet"))),
            None
        );
        assert_eq!(missing(&cfg("synthetic", tmp.path())), None);
    }
}
