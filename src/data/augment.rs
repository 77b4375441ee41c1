//! CIFAR augmentation as batched tensor ops on the run's device (DARTS `_data_transforms_cifar10`):
//! RandomCrop(32, padding 4) → RandomHorizontalFlip → ToTensor → Normalize → Cutout(16).
//!
//! Crop and flip are one `gather` over the zero-padded batch; Cutout is a mask. The per-sample random
//! numbers (crop offsets, flip, cutout centre) come from `rng::SplitMix64` keyed by (run seed, epoch, sample
//! index), drawn on the CPU (5 integers per image) and shipped to the device with the batch.

use tch::{Kind, Tensor};

use crate::data::normalization::Normalization;
use crate::data::rng::{Purpose, SplitMix64};

/// Which augmentations a batch source applies before normalising.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AugmentSpec {
    /// Random crop back to the input size after zero padding by this many pixels (DARTS: 4).
    pub crop_padding: Option<i64>,
    pub horizontal_flip: bool,
    /// Cutout square side (DARTS: 16); applied after normalisation, as in DARTS.
    pub cutout: Option<i64>,
}

impl AugmentSpec {
    /// No augmentation: normalise only (test sets).
    pub const NONE: AugmentSpec = AugmentSpec {
        crop_padding: None,
        horizontal_flip: false,
        cutout: None,
    };
    /// Search, both splits (spec §1.5): crop + flip, no cutout.
    pub const SEARCH: AugmentSpec = AugmentSpec {
        crop_padding: Some(4),
        horizontal_flip: true,
        cutout: None,
    };
    /// From-scratch training (spec §6.1): crop + flip + Cutout(16).
    pub const TRAIN_CUTOUT: AugmentSpec = AugmentSpec {
        crop_padding: Some(4),
        horizontal_flip: true,
        cutout: Some(16),
    };
}

/// Per-sample random draws: crop offsets (dy, dx) ∈ [0, 2p], flip ∈ {0, 1}, cutout centre (cy, cx).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Draws {
    pub dy: Vec<i64>,
    pub dx: Vec<i64>,
    pub flip: Vec<i64>,
    pub cy: Vec<i64>,
    pub cx: Vec<i64>,
}

impl AugmentSpec {
    /// Draws the parameters of sample `index` at `epoch` for images of `h`×`w` (always five draws in the
    /// same order, so changing one option does not shift the others).
    pub fn draw(&self, seed: u64, epoch: u64, indices: &[i64], h: i64, w: i64) -> Draws {
        let p = self.crop_padding.unwrap_or(0) as u64;
        let mut d = Draws::default();
        for &i in indices {
            let mut r = SplitMix64::new(seed, Purpose::Augment, epoch, i as u64);
            let (dy, dx, f, cy, cx) = (
                r.below(2 * p + 1) as i64,
                r.below(2 * p + 1) as i64,
                r.below(2) as i64,
                r.below(h as u64) as i64,
                r.below(w as u64) as i64,
            );
            d.dy.push(dy);
            d.dx.push(dx);
            d.flip.push(if self.horizontal_flip { f } else { 0 });
            d.cy.push(cy);
            d.cx.push(cx);
        }
        d
    }

    /// Augments and normalises uint8 `[B,3,H,W]` → float `[B,3,H,W]` on the images' device.
    pub fn apply(&self, images: &Tensor, draws: &Draws, norm: &Normalization) -> Tensor {
        let dev = images.device();
        let [b, c, h, w] = images.size()[..] else {
            panic!("images must be [B,3,H,W], got {:?}", images.size())
        };
        let on = |v: &[i64]| Tensor::from_slice(v).to_device(dev);
        let x = match self.crop_padding {
            Some(p) => {
                let padded = images.constant_pad_nd([p, p, p, p]);
                let wp = w + 2 * p;
                let ar_h = Tensor::arange(h, (Kind::Int64, dev)).view([1, h]);
                let ar_w = Tensor::arange(w, (Kind::Int64, dev)).view([1, w]);
                let flip = on(&draws.flip).view([b, 1]);
                // row = dy + i;  col = dx + (flip ? W−1−j : j)
                let rows = on(&draws.dy).view([b, 1]) + &ar_h;
                let cols = on(&draws.dx).view([b, 1]) + &ar_w + flip * (ar_w.neg() * 2 + (w - 1));
                let lin = (rows.view([b, h, 1]) * wp + cols.view([b, 1, w]))
                    .view([b, 1, h * w])
                    .expand([b, c, h * w], false);
                padded
                    .view([b, c, -1])
                    .gather(2, &lin, false)
                    .view([b, c, h, w])
            }
            None if self.horizontal_flip => {
                let flipped = images.flip([3]);
                let f = on(&draws.flip).view([b, 1, 1, 1]).to_kind(Kind::Bool);
                flipped.where_self(&f, images)
            }
            None => images.shallow_clone(),
        };
        let mean = Tensor::from_slice(&norm.mean)
            .to_device(dev)
            .view([1, 3, 1, 1]);
        let std = Tensor::from_slice(&norm.std)
            .to_device(dev)
            .view([1, 3, 1, 1]);
        // x̂ = (x/255 − mean) / std
        let mut out = (x.to_kind(Kind::Float) / 255.0 - mean) / std;
        if let Some(len) = self.cutout {
            let half = len / 2;
            let ar_h = Tensor::arange(h, (Kind::Int64, dev)).view([1, h]);
            let ar_w = Tensor::arange(w, (Kind::Int64, dev)).view([1, w]);
            let cy = on(&draws.cy).view([b, 1]);
            let cx = on(&draws.cx).view([b, 1]);
            // zero rows [cy−L/2, cy+L/2) × cols [cx−L/2, cx+L/2), clipped to the image
            let rmask = ar_h
                .ge_tensor(&(&cy - half))
                .logical_and(&ar_h.lt_tensor(&(cy + half)));
            let cmask = ar_w
                .ge_tensor(&(&cx - half))
                .logical_and(&ar_w.lt_tensor(&(cx + half)));
            let mask = rmask
                .view([b, 1, h, 1])
                .logical_and(&cmask.view([b, 1, 1, w]));
            out = out.masked_fill(&mask, 0.0);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    const ID: Normalization = Normalization {
        mean: [0.0; 3],
        std: [1.0 / 255.0; 3],
    };

    fn ramp() -> Tensor {
        // pixel (c, y, x) = (10·y + x) mod 250 + 1 (so 0 is only ever padding)
        (Tensor::arange(32 * 32, (Kind::Int64, Device::Cpu))
            .view([1, 1, 32, 32])
            .divide_scalar_mode(32, "floor")
            * 10
            + Tensor::arange(32, (Kind::Int64, Device::Cpu)).view([1, 1, 1, 32]))
        .remainder(250)
            + 1
    }

    fn img() -> Tensor {
        ramp().expand([2, 3, 32, 32], false).to_kind(Kind::Uint8)
    }

    fn draws(dy: i64, dx: i64, flip: i64, cy: i64, cx: i64) -> Draws {
        Draws {
            dy: vec![dy, 4],
            dx: vec![dx, 4],
            flip: vec![flip, 0],
            cy: vec![cy, 0],
            cx: vec![cx, 0],
        }
    }

    #[test]
    fn crop_offset_shifts_the_image_and_pads_with_zeros() {
        let spec = AugmentSpec {
            crop_padding: Some(4),
            horizontal_flip: false,
            cutout: None,
        };
        let out = spec.apply(&img(), &draws(0, 8, 0, 0, 0), &ID).round();
        // dy = 0: rows −4..27 of the original, so row 0..3 are padding; dx = 8: cols 4..35
        assert_eq!(out.double_value(&[0, 0, 3, 0]), 0.0);
        assert_eq!(out.double_value(&[0, 0, 4, 0]), 1.0 + 4.0); // (y 0, x 4)
        assert_eq!(out.double_value(&[0, 2, 10, 27]), 1.0 + 60.0 + 31.0);
        assert_eq!(out.double_value(&[0, 1, 10, 28]), 0.0);
        // sample 1, offset (4, 4): identity
        assert!(out.get(1).equal(&img().get(1).to_kind(Kind::Float)));
    }

    #[test]
    fn flip_mirrors_columns() {
        let spec = AugmentSpec::SEARCH;
        let out = spec.apply(&img(), &draws(4, 4, 1, 0, 0), &ID).round();
        assert!(out
            .get(0)
            .equal(&img().get(0).flip([2]).to_kind(Kind::Float)));
    }

    #[test]
    fn cutout_zeroes_a_16_square_clipped_at_the_border() {
        let spec = AugmentSpec::TRAIN_CUTOUT;
        let out = spec.apply(&img(), &draws(4, 4, 0, 20, 2), &ID).round();
        let zeros = out.get(0).eq(0.0).sum(Kind::Int64).int64_value(&[]);
        assert_eq!(zeros, 3 * 16 * 10); // rows 12..28, cols 0..10
        assert_eq!(out.double_value(&[0, 0, 12, 9]), 0.0);
        assert_ne!(out.double_value(&[0, 0, 12, 10]), 0.0);
        assert_ne!(out.double_value(&[0, 0, 11, 0]), 0.0);
    }

    #[test]
    fn normalisation_uses_mean_and_std() {
        let n = Normalization {
            mean: [0.5; 3],
            std: [0.25; 3],
        };
        let x = Tensor::full([1, 3, 32, 32], 255, (Kind::Uint8, Device::Cpu));
        let out = AugmentSpec::NONE.apply(&x, &AugmentSpec::NONE.draw(0, 0, &[0], 32, 32), &n);
        assert!((out.double_value(&[0, 1, 5, 5]) - 2.0).abs() < 1e-6);
    }

    #[test]
    fn draws_depend_on_seed_epoch_and_index_only() {
        let s = AugmentSpec::TRAIN_CUTOUT;
        let a = s.draw(7, 3, &[5, 9], 32, 32);
        assert_eq!(a, s.draw(7, 3, &[5, 9], 32, 32));
        let b = s.draw(7, 3, &[9, 5], 32, 32);
        assert_eq!((a.dy[0], a.cx[1]), (b.dy[1], b.cx[0]));
        assert_ne!(a, s.draw(7, 4, &[5, 9], 32, 32));
        assert!(a.dy.iter().all(|&d| (0..=8).contains(&d)));
    }
}
