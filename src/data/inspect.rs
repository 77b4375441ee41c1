//! `unas data inspect NAME --root DIR`: counts per split and class, image shape, fingerprint, and what
//! is wrong if anything is — the first thing to run after putting data in place.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;
use tch::Device;

use crate::config::{DatasetName, SyntheticSpec};
use crate::data::dataset::{Dataset, Splits};
use crate::data::{cifar, imagenet, synthetic};

#[derive(Debug, Serialize)]
pub struct SplitReport {
    pub split: String,
    pub images: u64,
    pub per_class: Vec<i64>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub dataset: DatasetName,
    pub root: String,
    pub classes: i64,
    /// [C, H, W] of what a batch holds (ImageNet: after the 224 crop).
    pub image_shape: Vec<i64>,
    pub fingerprint: Option<String>,
    pub splits: Vec<SplitReport>,
    /// Empty when the dataset is usable.
    pub problems: Vec<String>,
    /// Usable, but probably not what was meant (a class histogram far from balanced).
    pub warnings: Vec<String>,
}

/// A split whose largest class holds more than this many times the images of its smallest is
/// reported as unbalanced. CIFAR is exactly balanced and ImageNet's training split spans 732–1300
/// images per class (1.8×); a folder far beyond that almost always has wrong labels.
pub const IMBALANCE_RATIO: f64 = 3.0;

/// Problems (a class without images, counts that do not cover every class) and warnings (a histogram
/// far from balanced) of one split's class counts.
pub fn class_balance(split: &str, per_class: &[i64], classes: i64) -> (Vec<String>, Vec<String>) {
    let (mut problems, mut warnings) = (Vec::new(), Vec::new());
    if per_class.len() as i64 != classes {
        problems.push(format!(
            "{split} split: counted {} classes, expected {classes}",
            per_class.len()
        ));
        return (problems, warnings);
    }
    let total: i64 = per_class.iter().sum();
    if total == 0 {
        problems.push(format!("{split} split: has no images"));
        return (problems, warnings);
    }
    let empty: Vec<usize> = (0..per_class.len())
        .filter(|&c| per_class[c] == 0)
        .collect();
    if !empty.is_empty() {
        let list: Vec<String> = empty.iter().take(10).map(|c| c.to_string()).collect();
        problems.push(format!(
            "{split} split: {} of {classes} classes have no images (class {}{})",
            empty.len(),
            list.join(", "),
            if empty.len() > 10 { ", …" } else { "" }
        ));
    }
    let (lo_c, lo) = per_class
        .iter()
        .copied()
        .enumerate()
        .min_by_key(|&(_, n)| n)
        .unwrap_or((0, 0));
    let (hi_c, hi) = per_class
        .iter()
        .copied()
        .enumerate()
        .max_by_key(|&(_, n)| n)
        .unwrap_or((0, 0));
    if hi as f64 > IMBALANCE_RATIO * lo as f64 {
        warnings.push(format!(
            "{split} split: classes are wildly unbalanced — class {hi_c} has {hi} images ({:.0}% of {total}), class {lo_c} has {lo}; a balanced split has about {} per class. Check the labels (a folder whose labels are all one class trains nothing)",
            100.0 * hi as f64 / total as f64,
            total / classes.max(1)
        ));
    }
    (problems, warnings)
}

/// Opens the dataset on the CPU and reports on it; failures become `problems`, not errors.
pub fn inspect(name: DatasetName, root: &Path) -> Report {
    let opened: anyhow::Result<Dataset> = match name {
        DatasetName::Cifar10 => cifar::open(cifar::Variant::Cifar10, root, Device::Cpu),
        DatasetName::Cifar100 => cifar::open(cifar::Variant::Cifar100, root, Device::Cpu),
        DatasetName::Imagenet => imagenet::open(root),
        DatasetName::Synthetic => Ok(synthetic::open(&SyntheticSpec::default(), Device::Cpu)),
    };
    let mut report = Report {
        dataset: name,
        root: root.display().to_string(),
        classes: 0,
        image_shape: vec![],
        fingerprint: None,
        splits: vec![],
        problems: vec![],
        warnings: vec![],
    };
    let data = match opened {
        Ok(d) => d,
        Err(e) => {
            report.problems.push(format!("{e:#}"));
            return report;
        }
    };
    report.classes = data.classes;
    report.fingerprint = Some(data.fingerprint.clone());
    match &data.splits {
        Splits::Resident { train, test } => {
            report.image_shape = train.images.size()[1..].to_vec();
            for (split, s) in [("train", train), ("test", test)] {
                report.splits.push(SplitReport {
                    split: split.into(),
                    images: s.len() as u64,
                    per_class: s.class_counts(data.classes),
                });
            }
        }
        Splits::Folder { train, val } => {
            report.image_shape = vec![3, imagenet::CROP as i64, imagenet::CROP as i64];
            for (split, s) in [("train", train), ("val", val)] {
                report.splits.push(SplitReport {
                    split: split.into(),
                    images: s.len() as u64,
                    per_class: s.class_counts(),
                });
            }
        }
    }
    for s in &report.splits {
        let (problems, warnings) = class_balance(&s.split, &s.per_class, report.classes);
        report.problems.extend(problems);
        report.warnings.extend(warnings);
    }
    report
}

/// The report as text for a terminal.
pub fn render(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "dataset      {:?} at {}", r.dataset, r.root);
    if r.classes > 0 {
        let _ = writeln!(out, "classes      {}", r.classes);
        let _ = writeln!(out, "image shape  {:?}", r.image_shape);
    }
    if let Some(f) = &r.fingerprint {
        let _ = writeln!(out, "fingerprint  {f}");
    }
    for s in &r.splits {
        let (lo, hi) = (
            s.per_class.iter().min().copied().unwrap_or(0),
            s.per_class.iter().max().copied().unwrap_or(0),
        );
        let _ = writeln!(
            out,
            "{:<12} {} images, {lo}–{hi} per class",
            s.split, s.images
        );
    }
    for w in &r.warnings {
        let _ = writeln!(out, "warning      {w}");
    }
    if r.problems.is_empty() && r.warnings.is_empty() {
        let _ = writeln!(out, "status       ok");
    } else if r.problems.is_empty() {
        let _ = writeln!(out, "status       usable, but see the warnings above");
    } else {
        for p in &r.problems {
            let _ = writeln!(out, "problem      {p}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_cifar_is_reported_as_a_problem_with_the_fetch_command() {
        let tmp = tempfile::tempdir().unwrap();
        let r = inspect(DatasetName::Cifar10, tmp.path());
        assert_eq!(r.problems.len(), 1);
        assert!(r.problems[0].contains("unas data fetch cifar10"));
        assert!(render(&r).contains("problem"));
    }

    #[test]
    fn a_split_whose_labels_are_all_one_class_is_not_reported_ok() {
        let (problems, warnings) = class_balance("train", &[50_000, 0, 0, 0, 0, 0, 0, 0, 0, 0], 10);
        assert!(
            problems[0].contains("9 of 10 classes have no images"),
            "{problems:?}"
        );
        assert!(warnings[0].contains("wildly unbalanced"), "{warnings:?}");
        assert!(
            warnings[0].contains("class 0 has 50000 images (100% of 50000)"),
            "{warnings:?}"
        );
        // Unbalanced but every class present: a warning, not a problem.
        let (problems, warnings) = class_balance("train", &[9_000, 1_000, 1_000], 3);
        assert!(
            problems.is_empty() && warnings.len() == 1,
            "{problems:?} {warnings:?}"
        );
        // ImageNet-like spread (732–1300) and exact balance are fine.
        assert_eq!(
            class_balance("train", &[732, 1300, 1000], 3),
            (vec![], vec![])
        );
        assert_eq!(class_balance("test", &[5, 5], 2), (vec![], vec![]));
        // Counts that do not cover the classes are a problem, not silently fine.
        assert!(!class_balance("train", &[], 10).0.is_empty());
    }

    #[test]
    fn synthetic_report_counts_balanced_classes() {
        let r = inspect(DatasetName::Synthetic, Path::new("."));
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        assert_eq!(r.image_shape, [3, 32, 32]);
        assert_eq!(r.splits[0].images, 2000);
        assert!(r.splits[0].per_class.iter().all(|&n| n == 200));
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains("\"dataset\":\"synthetic\""));
    }
}
