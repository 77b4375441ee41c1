//! An opened dataset: where its samples live (resident tensors or a file list), its classes, its
//! normalisation and its content fingerprint.

use crate::config::DatasetName;
use crate::data::image_list::ImageList;
use crate::data::normalization::Normalization;
use crate::data::tensor_split::TensorSplit;

/// Where a dataset's samples live.
pub enum Splits {
    /// CIFAR and synthetic: both splits resident on the run's device.
    Resident {
        train: TensorSplit,
        test: TensorSplit,
    },
    /// ImageNet: file lists, decoded per batch.
    Folder { train: ImageList, val: ImageList },
}

/// An opened dataset: its splits, class count, normalisation and content fingerprint.
pub struct Dataset {
    pub name: DatasetName,
    pub classes: i64,
    pub norm: Normalization,
    /// blake3 of the files' contents (or of the generator parameters for `synthetic`), hex.
    pub fingerprint: String,
    pub splits: Splits,
}
