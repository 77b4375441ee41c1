//! [`open`]: a `config::Dataset` turned into an opened [`Dataset`], normalised as configured.

use anyhow::Result;
use tch::Device;

use crate::config::{self, DatasetName};
use crate::data::dataset::{Dataset, Splits};
use crate::data::normalization::Normalization;
use crate::data::{cifar, imagenet, synthetic};

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
