//! A split held resident on one device: uint8 images and int64 labels.

use anyhow::{ensure, Result};
use tch::{Device, Kind, Tensor};

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
