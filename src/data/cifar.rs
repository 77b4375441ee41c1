//! CIFAR-10 and CIFAR-100, official binary versions.
//!
//! * CIFAR-10: `cifar-10-batches-bin/data_batch_{1..5}.bin`, `test_batch.bin`; 10 000 records each of
//!   1 label byte + 3072 pixel bytes (R, G, B planes of 32×32).
//! * CIFAR-100: `cifar-100-binary/train.bin` (50 000), `test.bin` (10 000); records of 2 label bytes
//!   (coarse, fine — we use fine) + 3072 pixel bytes.
//!
//! `tch::vision::cifar::load_dir` reads only CIFAR-10, converts to float/255 (4× the memory we keep
//! resident), assumes 10 000 records per file without checking sizes and copies record by record; so we
//! read both formats here with strict checks and keep the pixels as uint8.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use tch::{Device, Tensor};

use crate::config::DatasetName;
use crate::data::dataset::{Dataset, Splits};
use crate::data::fingerprint;
use crate::data::normalization::Normalization;
use crate::data::tensor_split::TensorSplit;

/// Pixel bytes per image: 3 planes × 32 × 32.
pub const PIXELS: usize = 3 * 32 * 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Variant {
    Cifar10,
    Cifar100,
}

impl Variant {
    pub fn from_name(name: DatasetName) -> Option<Variant> {
        match name {
            DatasetName::Cifar10 => Some(Variant::Cifar10),
            DatasetName::Cifar100 => Some(Variant::Cifar100),
            DatasetName::Imagenet | DatasetName::Synthetic => None,
        }
    }

    pub fn name(self) -> DatasetName {
        match self {
            Variant::Cifar10 => DatasetName::Cifar10,
            Variant::Cifar100 => DatasetName::Cifar100,
        }
    }

    /// The CLI spelling (`cifar10`, `cifar100`).
    pub fn cli_name(self) -> &'static str {
        match self {
            Variant::Cifar10 => "cifar10",
            Variant::Cifar100 => "cifar100",
        }
    }

    /// The folder the official archive extracts to.
    pub fn folder(self) -> &'static str {
        match self {
            Variant::Cifar10 => "cifar-10-batches-bin",
            Variant::Cifar100 => "cifar-100-binary",
        }
    }

    pub fn classes(self) -> i64 {
        match self {
            Variant::Cifar10 => 10,
            Variant::Cifar100 => 100,
        }
    }

    /// Label bytes in front of each record, and which of them is the class (CIFAR-100: the fine label).
    fn label_bytes(self) -> (usize, usize) {
        match self {
            Variant::Cifar10 => (1, 0),
            Variant::Cifar100 => (2, 1),
        }
    }

    pub fn record_bytes(self) -> usize {
        self.label_bytes().0 + PIXELS
    }

    /// The official normalisation: CIFAR-10's statistics for both variants (`util/datasets.py`
    /// calls `_data_transforms_cifar10` for CIFAR-100 too; `dataset.statistics` can change it).
    pub fn norm(self) -> Normalization {
        Normalization::CIFAR10
    }
}

/// The files of a CIFAR folder and the records each must hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Format {
    pub variant: Variant,
    pub train: Vec<(String, usize)>,
    pub test: (String, usize),
}

impl Format {
    /// The official layout (50 000 train, 10 000 test).
    pub fn official(variant: Variant) -> Format {
        Format::with_records(variant, 10_000)
    }

    /// The official file names with `per_file` records per CIFAR-10 batch (CIFAR-100: 5·per_file train,
    /// per_file test); used by tests to build small folders in the exact layout.
    pub fn with_records(variant: Variant, per_file: usize) -> Format {
        match variant {
            Variant::Cifar10 => Format {
                variant,
                train: (1..=5)
                    .map(|i| (format!("data_batch_{i}.bin"), per_file))
                    .collect(),
                test: ("test_batch.bin".into(), per_file),
            },
            Variant::Cifar100 => Format {
                variant,
                train: vec![("train.bin".into(), 5 * per_file)],
                test: ("test.bin".into(), per_file),
            },
        }
    }

    /// Every file of the folder with its exact size in bytes.
    pub fn files(&self) -> Vec<(String, u64)> {
        let rb = self.variant.record_bytes() as u64;
        self.train
            .iter()
            .chain(std::iter::once(&self.test))
            .map(|(f, n)| (f.clone(), *n as u64 * rb))
            .collect()
    }
}

fn fetch_hint(variant: Variant, root: &Path) -> String {
    format!(
        "run `unas data fetch {} --root {}`",
        variant.cli_name(),
        root.display()
    )
}

/// Reads one record file: pixels `[records·3072]` and class labels, with every check named by file.
pub fn read_records(path: &Path, variant: Variant, records: usize) -> Result<(Vec<u8>, Vec<i64>)> {
    let rb = variant.record_bytes();
    let expected = (records * rb) as u64;
    let meta = fs::metadata(path).with_context(|| {
        format!(
            "missing {} (expected a file of {expected} bytes: {records} records of {rb} bytes)",
            path.display()
        )
    })?;
    if meta.is_dir() {
        bail!(
            "{} is a directory; expected a file of {expected} bytes ({records} records of {rb} bytes)",
            path.display()
        );
    }
    if meta.len() % rb as u64 != 0 {
        bail!(
            "{}: size {} bytes is not a whole number of {rb}-byte records (expected {expected} bytes)",
            path.display(),
            meta.len()
        );
    }
    if meta.len() != expected {
        bail!(
            "{}: holds {} records, expected {records} ({expected} bytes)",
            path.display(),
            meta.len() / rb as u64
        );
    }
    let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let (label_bytes, label_at) = variant.label_bytes();
    let mut pixels = Vec::with_capacity(records * PIXELS);
    let mut labels = Vec::with_capacity(records);
    for (i, rec) in bytes.chunks_exact(rb).enumerate() {
        let label = rec[label_at] as i64;
        if label >= variant.classes() {
            bail!(
                "{}: record {i} has label {label}, expected 0..{}",
                path.display(),
                variant.classes() - 1
            );
        }
        labels.push(label);
        pixels.extend_from_slice(&rec[label_bytes..]);
    }
    Ok((pixels, labels))
}

fn read_split(dir: &Path, variant: Variant, files: &[(String, usize)]) -> Result<TensorSplit> {
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for (name, records) in files {
        let (p, l) = read_records(&dir.join(name), variant, *records)?;
        pixels.extend(p);
        labels.extend(l);
    }
    let n = labels.len() as i64;
    TensorSplit::new(
        Tensor::from_slice(&pixels).view([n, 3, 32, 32]),
        Tensor::from_slice(&labels),
    )
}

/// Loads (train, test) of a CIFAR folder on the CPU.
pub fn load(dir: &Path, format: &Format) -> Result<(TensorSplit, TensorSplit)> {
    let train = read_split(dir, format.variant, &format.train)?;
    let test = read_split(dir, format.variant, std::slice::from_ref(&format.test))?;
    Ok((train, test))
}

/// The folder of `variant` under `root`, or an error that says how to get it.
pub fn folder(variant: Variant, root: &Path) -> Result<PathBuf> {
    let dir = root.join(variant.folder());
    if !dir.is_dir() {
        bail!(
            "{} not found: {} expects the official binary version in {}/ ({}); {}",
            dir.display(),
            variant.cli_name(),
            variant.folder(),
            Format::official(variant)
                .files()
                .iter()
                .map(|(f, _)| f.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            fetch_hint(variant, root)
        );
    }
    Ok(dir)
}

/// Opens the official CIFAR folder under `root` with both splits resident on `device`.
pub fn open(variant: Variant, root: &Path, device: Device) -> Result<Dataset> {
    let dir = folder(variant, root)?;
    let format = Format::official(variant);
    let (train, test) = load(&dir, &format).with_context(|| {
        format!(
            "{} is incomplete or damaged; remove it and {}",
            dir.display(),
            fetch_hint(variant, root)
        )
    })?;
    let files: Vec<PathBuf> = format.files().iter().map(|(f, _)| dir.join(f)).collect();
    let fingerprint = fingerprint::of_files(root, &files, variant.cli_name())?;
    Ok(Dataset {
        name: variant.name(),
        classes: variant.classes(),
        norm: variant.norm(),
        fingerprint,
        splits: Splits::Resident {
            train: train.to_device(device),
            test: test.to_device(device),
        },
    })
}

/// Writes a folder in the exact official layout with `per_file` records per batch: the pixels of record
/// i are all (i mod 251), its class i mod classes (tests and benchmarks build datasets with this).
pub fn write_folder(dir: &Path, format: &Format) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let (label_bytes, label_at) = format.variant.label_bytes();
    for (name, records) in format.train.iter().chain(std::iter::once(&format.test)) {
        let mut bytes = Vec::with_capacity(records * format.variant.record_bytes());
        for i in 0..*records {
            let mut labels = vec![0u8; label_bytes];
            labels[label_at] = (i as i64 % format.variant.classes()) as u8;
            if label_bytes == 2 {
                labels[0] = labels[1] / 5; // coarse label: 20 superclasses
            }
            bytes.extend(labels);
            bytes.extend(std::iter::repeat_n((i % 251) as u8, PIXELS));
        }
        fs::write(dir.join(name), bytes).with_context(|| format!("writing {name}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(variant: Variant) -> (tempfile::TempDir, PathBuf, Format) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join(variant.folder());
        let format = Format::with_records(variant, 7);
        write_folder(&dir, &format).unwrap();
        (tmp, dir, format)
    }

    #[test]
    fn cifar10_records_give_uint8_planes_and_labels() {
        let (_t, dir, format) = small(Variant::Cifar10);
        let (train, test) = load(&dir, &format).unwrap();
        assert_eq!(train.images.size(), [35, 3, 32, 32]);
        assert_eq!(test.images.size(), [7, 3, 32, 32]);
        assert_eq!(train.images.kind(), tch::Kind::Uint8);
        // record 3 of batch 1: label 3, all pixels 3
        assert_eq!(train.labels.int64_value(&[3]), 3);
        assert_eq!(train.images.int64_value(&[3, 2, 31, 31]), 3);
        // record 0 of batch 2 is sample 7
        assert_eq!(train.labels.int64_value(&[7]), 0);
    }

    #[test]
    fn cifar100_uses_the_fine_label() {
        let (_t, dir, format) = small(Variant::Cifar100);
        let (train, _) = load(&dir, &format).unwrap();
        assert_eq!(train.len(), 35);
        assert_eq!(train.labels.int64_value(&[33]), 33);
    }

    #[test]
    fn truncated_file_is_refused_naming_file_and_record_size() {
        let (_t, dir, format) = small(Variant::Cifar10);
        let f = dir.join("data_batch_3.bin");
        let len = fs::metadata(&f).unwrap().len();
        fs::OpenOptions::new()
            .write(true)
            .open(&f)
            .unwrap()
            .set_len(len - 100)
            .unwrap();
        let err = format!("{:#}", load(&dir, &format).unwrap_err());
        assert!(err.contains("data_batch_3.bin"), "{err}");
        assert!(
            err.contains("not a whole number of 3073-byte records"),
            "{err}"
        );
    }

    #[test]
    fn wrong_record_count_missing_file_and_directory_are_refused() {
        let (_t, dir, format) = small(Variant::Cifar10);
        let err = format!(
            "{:#}",
            load(&dir, &Format::with_records(Variant::Cifar10, 8)).unwrap_err()
        );
        assert!(err.contains("holds 7 records, expected 8"), "{err}");

        fs::remove_file(dir.join("test_batch.bin")).unwrap();
        fs::create_dir(dir.join("test_batch.bin")).unwrap();
        let err = format!("{:#}", load(&dir, &format).unwrap_err());
        assert!(err.contains("test_batch.bin is a directory"), "{err}");

        fs::remove_dir(dir.join("test_batch.bin")).unwrap();
        let err = format!("{:#}", load(&dir, &format).unwrap_err());
        assert!(
            err.contains("missing") && err.contains("test_batch.bin"),
            "{err}"
        );
    }

    #[test]
    fn label_out_of_range_is_refused() {
        let (_t, dir, format) = small(Variant::Cifar10);
        let f = dir.join("data_batch_1.bin");
        let mut bytes = fs::read(&f).unwrap();
        bytes[2 * 3073] = 10;
        fs::write(&f, bytes).unwrap();
        let err = format!("{:#}", load(&dir, &format).unwrap_err());
        assert!(
            err.contains("record 2 has label 10, expected 0..9"),
            "{err}"
        );
    }

    #[test]
    fn cifar100_is_normalised_with_cifar10_statistics_as_the_official_code_unless_asked() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join(Variant::Cifar100.folder());
        write_folder(&dir, &Format::official(Variant::Cifar100)).unwrap();
        let mut cfg: crate::config::Dataset = serde_saphyr::from_str(&format!(
            "{{name: cifar100, root: \"{}\"}}",
            tmp.path().display()
        ))
        .unwrap();
        assert_eq!(cfg.statistics(), crate::config::Statistics::Cifar10);
        let ds = crate::data::open::open(&cfg, Device::Cpu).unwrap();
        assert_eq!(ds.norm, Normalization::CIFAR10);
        cfg.statistics = Some(crate::config::Statistics::Cifar100);
        let ds = crate::data::open::open(&cfg, Device::Cpu).unwrap();
        assert_eq!(ds.norm, Normalization::CIFAR100);
    }

    #[test]
    fn missing_folder_error_says_how_to_fetch() {
        let tmp = tempfile::tempdir().unwrap();
        let err = format!(
            "{:#}",
            open(Variant::Cifar100, tmp.path(), Device::Cpu)
                .err()
                .unwrap()
        );
        assert!(err.contains("unas data fetch cifar100 --root"), "{err}");
    }
}
