//! `unas data inspect NAME --root DIR`: counts per split and class, image shape, fingerprint, and what
//! is wrong if anything is — the first thing to run after putting data in place.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;
use tch::Device;

use crate::config::{DatasetName, SyntheticSpec};
use crate::data::{cifar, imagenet, synthetic, Dataset, Splits};

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
        if let Some((c, _)) = s.per_class.iter().enumerate().find(|(_, &n)| n == 0) {
            report
                .problems
                .push(format!("{} split: class {c} has no images", s.split));
        }
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
    if r.problems.is_empty() {
        let _ = writeln!(out, "status       ok");
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
