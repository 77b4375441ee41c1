//! Datasets: CIFAR-10/100, ImageNet folders, the embedded synthetic dataset (spec §1.5, §6).
//!
//! [`open`] turns a `config::Dataset` into a [`Dataset`]: CIFAR and synthetic are held resident on the
//! run's device (uint8 `[N,3,32,32]` + int64 `[N]`), ImageNet is a list of files decoded on demand.
//! [`split::search_split`] makes UNAS's weight/validation split; [`loader`] turns a split into batches
//! (shuffled per epoch from the run's seed, augmented on the device, resumable at (epoch, position)).

pub mod augment;
pub(crate) mod bench;
pub mod cifar;
pub(crate) mod cli;
pub mod fetch;
pub mod fingerprint;
pub mod identity;
pub mod imagenet;
pub(crate) mod inspect;
pub mod loader;
pub mod memory_format;
pub mod presence;
pub mod rng;
pub mod share;
pub mod split;
pub mod synthetic;

use anyhow::{ensure, Result};
use tch::{Device, Kind, Tensor};

use crate::config::{self, DatasetName};

pub use augment::AugmentSpec;
pub use imagenet::{ImageList, ImageNetSource, ImageNetTransform};
pub use loader::{Batch, BatchSource, Loader, LoaderState, ResidentSource};
pub use split::{search_split, SearchSplit};

/// Per-channel normalisation `x ↦ (x/255 − mean)/std` (RGB order).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Normalization {
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl Normalization {
    /// DARTS `utils._data_transforms_cifar10`.
    pub const CIFAR10: Normalization = Normalization {
        mean: [0.491_399_68, 0.482_158_27, 0.446_531_24],
        std: [0.247_032_33, 0.243_485_05, 0.261_587_68],
    };
    /// The CIFAR-100 training set's statistics. The official UNAS code does not use them: it
    /// normalises CIFAR-100 with [`Normalization::CIFAR10`] (`util/datasets.py` calls
    /// `_data_transforms_cifar10` for both); `dataset.statistics: cifar100` selects these.
    pub const CIFAR100: Normalization = Normalization {
        mean: [0.5071, 0.4865, 0.4409],
        std: [0.2673, 0.2564, 0.2762],
    };
    /// torchvision's ImageNet statistics.
    pub const IMAGENET: Normalization = Normalization {
        mean: [0.485, 0.456, 0.406],
        std: [0.229, 0.224, 0.225],
    };

    /// Per-channel mean/std of uint8 images `[N,3,H,W]` (scaled to [0,1]).
    pub fn measure(images: &Tensor) -> Normalization {
        let x = images.to_kind(Kind::Float) / 255.0;
        let dims: &[i64] = &[0, 2, 3];
        let mean = Vec::<f32>::try_from(x.mean_dim(dims, false, Kind::Float)).unwrap_or_default();
        let std = Vec::<f32>::try_from(x.std_dim(dims, false, false)).unwrap_or_default();
        let arr = |v: Vec<f32>, d: f32| [0, 1, 2].map(|i| v.get(i).copied().unwrap_or(d));
        Normalization {
            mean: arr(mean, 0.5),
            std: arr(std, 0.25),
        }
    }
}

/// Images resident in memory: `images` uint8 `[N,3,H,W]`, `labels` int64 `[N]`, on one device.
#[derive(Debug)]
pub struct TensorSplit {
    pub images: Tensor,
    pub labels: Tensor,
}

impl TensorSplit {
    pub fn new(images: Tensor, labels: Tensor) -> Result<Self> {
        ensure!(
            images.dim() == 4 && images.kind() == Kind::Uint8,
            "images must be uint8 [N,3,H,W], got {:?} {:?}",
            images.kind(),
            images.size()
        );
        ensure!(
            labels.size() == [images.size()[0]] && labels.kind() == Kind::Int64,
            "labels must be int64 [N] with N = {}, got {:?} {:?}",
            images.size()[0],
            labels.kind(),
            labels.size()
        );
        Ok(TensorSplit { images, labels })
    }

    pub fn len(&self) -> usize {
        self.labels.size()[0] as usize
    }

    /// The same split sharing its tensors (no copy).
    pub fn shallow(&self) -> TensorSplit {
        TensorSplit {
            images: self.images.shallow_clone(),
            labels: self.labels.shallow_clone(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The samples at `indices`, in that order (a copy on the same device).
    pub fn select(&self, indices: &[i64]) -> TensorSplit {
        let idx = Tensor::from_slice(indices).to_device(self.images.device());
        TensorSplit {
            images: self.images.index_select(0, &idx),
            labels: self.labels.index_select(0, &idx),
        }
    }

    pub fn to_device(&self, device: Device) -> TensorSplit {
        TensorSplit {
            images: self.images.to_device(device),
            labels: self.labels.to_device(device),
        }
    }

    /// Number of samples of each class 0..classes.
    pub fn class_counts(&self, classes: i64) -> Vec<i64> {
        let counts = self
            .labels
            .to_device(Device::Cpu)
            .bincount::<Tensor>(None, classes);
        Vec::<i64>::try_from(counts).unwrap_or_default()
    }
}

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

/// Opens the configured dataset, normalised with `cfg.statistics()`; resident splits are moved to
/// `device`.
pub fn open(cfg: &config::Dataset, device: Device) -> Result<Dataset> {
    let mut ds = match cfg.name {
        DatasetName::Cifar10 | DatasetName::Cifar100 => {
            let variant = cifar::Variant::from_name(cfg.name).expect("a CIFAR name");
            cifar::open(variant, &cfg.root, device)?
        }
        DatasetName::Synthetic => synthetic::open(&cfg.synthetic, device),
        DatasetName::Imagenet => imagenet::open(&cfg.root)?,
    };
    ds.norm = normalization(cfg.statistics(), &ds)?;
    Ok(ds)
}

/// The normalisation `stats` names for an opened dataset.
fn normalization(stats: config::Statistics, ds: &Dataset) -> Result<Normalization> {
    use config::Statistics;
    Ok(match stats {
        Statistics::Cifar10 => Normalization::CIFAR10,
        Statistics::Cifar100 => Normalization::CIFAR100,
        Statistics::Imagenet => Normalization::IMAGENET,
        Statistics::Measured => match &ds.splits {
            Splits::Resident { train, .. } => Normalization::measure(&train.images),
            Splits::Folder { .. } => anyhow::bail!(
                "dataset.statistics: measured needs a resident dataset; an ImageNet folder is \
                 decoded per batch: use `statistics: imagenet`"
            ),
        },
    })
}
