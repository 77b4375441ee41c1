//! The images of an ImageNet split in the folder layout `<split>/<wnid>/*.JPEG`, classes from the
//! sorted wnids.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// What an ImageNet folder must look like (for the messages that find it missing or empty).
pub fn layout(root: &Path) -> String {
    format!(
        "expected ImageNet (ILSVRC2012) in the folder layout\n  {r}/train/<wnid>/*.JPEG   e.g. {r}/train/n01440764/n01440764_10026.JPEG (one folder per class)\n  {r}/val/<wnid>/*.JPEG     the 50 000 validation images sorted into the same class folders",
        r = root.display()
    )
}

/// The images of one split: `items[i]` = (file, class index into `wnids`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageList {
    pub wnids: Vec<String>,
    pub items: Vec<(PathBuf, i64)>,
}

fn is_jpeg(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("jpeg") || e.eq_ignore_ascii_case("jpg"))
}

impl ImageList {
    /// Lists `dir/<wnid>/*.JPEG` with classes from the sorted wnids; `root` is only for the message.
    pub fn scan(dir: &Path, root: &Path) -> Result<ImageList> {
        if !dir.is_dir() {
            bail!("{} is missing; {}", dir.display(), layout(root));
        }
        let mut wnids: Vec<String> = fs::read_dir(dir)
            .with_context(|| format!("listing {}", dir.display()))?
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        wnids.sort();
        if wnids.is_empty() {
            bail!("{} has no class folders; {}", dir.display(), layout(root));
        }
        let mut items = Vec::new();
        for (label, wnid) in wnids.iter().enumerate() {
            let mut files: Vec<PathBuf> = fs::read_dir(dir.join(wnid))
                .with_context(|| format!("listing {}", dir.join(wnid).display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && is_jpeg(p))
                .collect();
            if files.is_empty() {
                bail!(
                    "{} holds no .JPEG files; {}",
                    dir.join(wnid).display(),
                    layout(root)
                );
            }
            files.sort();
            items.extend(files.into_iter().map(|f| (f, label as i64)));
        }
        Ok(ImageList { wnids, items })
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The images at `indices` (a search split), same classes.
    pub fn select(&self, indices: &[i64]) -> ImageList {
        ImageList {
            wnids: self.wnids.clone(),
            items: indices
                .iter()
                .map(|&i| self.items[i as usize].clone())
                .collect(),
        }
    }

    /// Images per class.
    pub fn class_counts(&self) -> Vec<i64> {
        let mut c = vec![0; self.wnids.len()];
        for (_, l) in &self.items {
            c[*l as usize] += 1;
        }
        c
    }
}
