//! Per-channel normalisation of images: the published statistics, or measured on a resident split.

use tch::{Kind, Tensor};

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
