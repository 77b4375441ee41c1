//! ImageNet (ILSVRC2012) as a folder: `train/<wnid>/*.JPEG`, `val/<wnid>/*.JPEG`; classes are the sorted
//! wnids. Too big for memory, so batches are decoded on demand: JPEG decode (image/zune-jpeg) and the
//! geometric transform run in parallel on the CPU (rayon), colour jitter and normalisation run as tensor
//! ops on the run's device; a prefetching [`crate::data::loader::Loader`] keeps the GPU fed.
//!
//! * train (spec §6.2): RandomResizedCrop 224 (scale 0.08–1, ratio 3/4–4/3) → HFlip →
//!   ColorJitter(0.4, 0.4, 0.4, 0.2) → Normalize.
//! * eval and search: Resize 256 (shorter side) → CenterCrop 224 → Normalize.
//!
//! An unreadable JPEG is skipped (the batch is one smaller), counted, and logged; more than
//! `max_unreadable` of them is an error.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use image::imageops::FilterType;
use image::{DynamicImage, RgbImage};
use rayon::prelude::*;
use tch::{Device, Kind, Tensor};

use crate::config::DatasetName;
use crate::data::batch::{Pending, Share};
use crate::data::dataset::{Dataset, Splits};
use crate::data::fingerprint;
use crate::data::image_list::{layout, ImageList};
use crate::data::loader::{Batch, BatchSource, Batching, OrderCache};
use crate::data::memory_format;
use crate::data::normalization::Normalization;
use crate::data::rng::{Purpose, SplitMix64};

/// Output side of the train and eval crops.
pub const CROP: u32 = 224;
/// Shorter side after the eval resize.
pub const RESIZE: u32 = 256;

/// Scans `root/train` and `root/val` (same wnids) and fingerprints every file.
pub fn open(root: &Path) -> Result<Dataset> {
    let train = ImageList::scan(&root.join("train"), root)?;
    let val = ImageList::scan(&root.join("val"), root)?;
    if train.wnids != val.wnids {
        bail!(
            "{}/val has {} class folders that differ from the {} of {}/train; {}",
            root.display(),
            val.wnids.len(),
            train.wnids.len(),
            root.display(),
            layout(root)
        );
    }
    let files: Vec<PathBuf> = train
        .items
        .iter()
        .chain(&val.items)
        .map(|(p, _)| p.clone())
        .collect();
    Ok(Dataset {
        name: DatasetName::Imagenet,
        classes: train.wnids.len() as i64,
        norm: Normalization::IMAGENET,
        fingerprint: fingerprint::of_files(root, &files, "imagenet")?,
        splits: Splits::Folder { train, val },
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageNetTransform {
    /// RandomResizedCrop 224 + HFlip + ColorJitter(0.4, 0.4, 0.4, 0.2).
    Train,
    /// Resize 256 → CenterCrop 224 (evaluation, and both search splits).
    Eval,
}

/// Colour-jitter factors of one sample: brightness, contrast, saturation ∈ [0.6, 1.4], hue ∈ [−0.2, 0.2].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Jitter {
    pub brightness: f32,
    pub contrast: f32,
    pub saturation: f32,
    pub hue: f32,
}

/// torchvision `RandomResizedCrop.get_params`: (top, left, height, width) of the crop.
pub fn random_resized_crop(w: u32, h: u32, rng: &mut SplitMix64) -> (u32, u32, u32, u32) {
    let area = (w * h) as f64;
    let (lr0, lr1) = ((3.0f64 / 4.0).ln(), (4.0f64 / 3.0).ln());
    for _ in 0..10 {
        // target area ~ U(0.08, 1)·area, aspect ~ exp(U(ln 3/4, ln 4/3))
        let target = area * rng.range(0.08, 1.0);
        let aspect = rng.range(lr0, lr1).exp();
        let cw = (target * aspect).sqrt().round() as u32;
        let ch = (target / aspect).sqrt().round() as u32;
        if 0 < cw && cw <= w && 0 < ch && ch <= h {
            let top = rng.below((h - ch + 1) as u64) as u32;
            let left = rng.below((w - cw + 1) as u64) as u32;
            return (top, left, ch, cw);
        }
    }
    // fallback: central crop with the ratio clamped to [3/4, 4/3]
    let ratio = w as f64 / h as f64;
    let (cw, ch) = if ratio < 3.0 / 4.0 {
        (w, (w as f64 / (3.0 / 4.0)).round() as u32)
    } else if ratio > 4.0 / 3.0 {
        ((h as f64 * 4.0 / 3.0).round() as u32, h)
    } else {
        (w, h)
    };
    (
        (h - ch.min(h)) / 2,
        (w - cw.min(w)) / 2,
        ch.min(h),
        cw.min(w),
    )
}

/// Decodes a JPEG and applies the CPU part of `transform`: an RGB 224×224 image (HWC bytes).
pub fn load_and_crop(
    path: &Path,
    transform: ImageNetTransform,
    rng: &mut SplitMix64,
) -> Result<(Vec<u8>, Jitter)> {
    let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    // DynamicImage's methods are compiled (optimised) inside `image`; the generic `imageops` functions
    // would be instantiated in this crate at its opt-level, 25× slower in the dev profile.
    let img = image::load_from_memory_with_format(&bytes, image::ImageFormat::Jpeg)
        .with_context(|| format!("decoding {}", path.display()))?;
    let img = DynamicImage::ImageRgb8(img.into_rgb8());
    let (w, h) = (img.width(), img.height());
    let out: RgbImage = match transform {
        ImageNetTransform::Train => {
            let (top, left, ch, cw) = random_resized_crop(w, h, rng);
            let out =
                img.crop_imm(left, top, cw, ch)
                    .resize_exact(CROP, CROP, FilterType::Triangle);
            let out = if rng.below(2) == 1 { out.fliph() } else { out };
            out.into_rgb8()
        }
        ImageNetTransform::Eval => {
            // shorter side → 256, then the central 224×224
            let (nw, nh) = if w <= h {
                (RESIZE, (RESIZE as f64 * h as f64 / w as f64) as u32)
            } else {
                ((RESIZE as f64 * w as f64 / h as f64) as u32, RESIZE)
            };
            let resized = img.resize_exact(nw, nh, FilterType::Triangle);
            let top = ((nh - CROP) as f64 / 2.0).round() as u32;
            let left = ((nw - CROP) as f64 / 2.0).round() as u32;
            resized.crop_imm(left, top, CROP, CROP).into_rgb8()
        }
    };
    let jitter = Jitter {
        brightness: rng.range(0.6, 1.4) as f32,
        contrast: rng.range(0.6, 1.4) as f32,
        saturation: rng.range(0.6, 1.4) as f32,
        hue: rng.range(-0.2, 0.2) as f32,
    };
    Ok((out.into_raw(), jitter))
}

fn gray(x: &Tensor) -> Tensor {
    // Y = 0.299 R + 0.587 G + 0.114 B  → [B,1,H,W]
    (x.narrow(1, 0, 1) * 0.299 + x.narrow(1, 1, 1) * 0.587 + x.narrow(1, 2, 1) * 0.114)
        .to_kind(Kind::Float)
}

fn inverse3(m: [[f32; 3]; 3]) -> [[f32; 3]; 3] {
    let c = |i: usize, j: usize| {
        let (r0, r1) = ((i + 1) % 3, (i + 2) % 3);
        let (c0, c1) = ((j + 1) % 3, (j + 2) % 3);
        m[r0][c0] * m[r1][c1] - m[r0][c1] * m[r1][c0]
    };
    let det = m[0][0] * c(0, 0) + m[0][1] * c(0, 1) + m[0][2] * c(0, 2);
    let mut inv = [[0f32; 3]; 3];
    for (i, row) in inv.iter_mut().enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            // (M⁻¹)ᵢⱼ = cofactor(j, i) / det M
            *v = c(j, i) / det;
        }
    }
    inv
}

/// Hue rotation by 2π·h in the YIQ plane, as an RGB→RGB matrix.
fn hue_matrix(h: f32) -> [f32; 9] {
    let to_yiq = [
        [0.299, 0.587, 0.114],
        [0.596, -0.274, -0.322],
        [0.211, -0.523, 0.312],
    ];
    let to_rgb = inverse3(to_yiq);
    let (s, c) = (std::f32::consts::TAU * h).sin_cos();
    let rot = [[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]];
    let mul = |a: [[f32; 3]; 3], b: [[f32; 3]; 3]| {
        let mut m = [[0f32; 3]; 3];
        for i in 0..3 {
            for j in 0..3 {
                m[i][j] = (0..3).map(|k| a[i][k] * b[k][j]).sum();
            }
        }
        m
    };
    let m = mul(to_rgb, mul(rot, to_yiq));
    [
        m[0][0], m[0][1], m[0][2], m[1][0], m[1][1], m[1][2], m[2][0], m[2][1], m[2][2],
    ]
}

/// ColorJitter on float `[B,3,H,W]` in [0, 1] with per-sample factors (brightness, contrast, saturation,
/// hue, in that fixed order; each result clamped to [0, 1]).
pub fn color_jitter(x: &Tensor, jitter: &[Jitter]) -> Tensor {
    let dev = x.device();
    let b = jitter.len() as i64;
    let per = |f: fn(&Jitter) -> f32| {
        Tensor::from_slice(&jitter.iter().map(f).collect::<Vec<f32>>())
            .to_device(dev)
            .view([b, 1, 1, 1])
    };
    let x = (x * per(|j| j.brightness)).clamp(0.0, 1.0);
    // contrast: x' = c·x + (1 − c)·mean(gray(x))
    let c = per(|j| j.contrast);
    let m = gray(&x).mean_dim(&[1i64, 2, 3][..], true, Kind::Float);
    let x = (&x * &c + (c.neg() + 1.0) * m).clamp(0.0, 1.0);
    // saturation: x' = s·x + (1 − s)·gray(x)
    let s = per(|j| j.saturation);
    let x = (&x * &s + (s.neg() + 1.0) * gray(&x)).clamp(0.0, 1.0);
    let mats: Vec<f32> = jitter.iter().flat_map(|j| hue_matrix(j.hue)).collect();
    let m = Tensor::from_slice(&mats).to_device(dev).view([b, 3, 3]);
    Tensor::einsum("bij,bjhw->bihw", &[m, x], None::<&[i64]>).clamp(0.0, 1.0)
}

/// Batches of an ImageNet split.
pub struct ImageNetSource {
    list: ImageList,
    batching: Batching,
    transform: ImageNetTransform,
    device: Device,
    max_unreadable: u64,
    unreadable: AtomicU64,
    last_error: Mutex<Option<String>>,
    order: OrderCache,
    share: Option<Share>,
}

/// A decoded image: its pixels (HWC bytes), its colour jitter, its label.
type Decoded = (Vec<u8>, Jitter, i64);

impl ImageNetSource {
    pub fn new(
        list: ImageList,
        batching: Batching,
        transform: ImageNetTransform,
        device: Device,
        max_unreadable: u64,
    ) -> Self {
        ImageNetSource {
            list,
            batching,
            transform,
            device,
            max_unreadable,
            unreadable: AtomicU64::new(0),
            last_error: Mutex::new(None),
            order: OrderCache::default(),
            share: None,
        }
    }

    /// Only the rows of `share`'s slices are decoded; the batches are then pending ([`settled`]).
    pub fn sharing(self, share: Share) -> Self {
        let share = Some(share).filter(|s| !s.whole());
        ImageNetSource { share, ..self }
    }

    /// The dataset indices of batch `index` of `epoch`, before any was skipped.
    fn ids(&self, epoch: u64, index: usize) -> Vec<i64> {
        let order = self.order.get(&self.batching, epoch, self.len());
        let start = (index * self.batching.batch_size).min(order.len());
        let end = (start + self.batching.batch_size).min(order.len());
        order[start..end].to_vec()
    }

    /// Decodes images `ids` in parallel (`None`: unreadable, counted and logged); an error once more
    /// than `max_unreadable` were.
    fn decode(&self, epoch: u64, ids: &[i64]) -> Result<Vec<Option<Decoded>>> {
        let decoded: Vec<Option<Decoded>> = ids
            .par_iter()
            .map(|&i| {
                let (path, label) = &self.list.items[i as usize];
                let mut rng =
                    SplitMix64::new(self.batching.seed, Purpose::Augment, epoch, i as u64);
                match load_and_crop(path, self.transform, &mut rng) {
                    Ok((px, j)) => Some((px, j, *label)),
                    Err(e) => {
                        tracing::warn!("skipping an unreadable image: {e:#}");
                        self.unreadable.fetch_add(1, Ordering::Relaxed);
                        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) =
                            Some(format!("{e:#}"));
                        None
                    }
                }
            })
            .collect();
        let bad = self.unreadable();
        if bad > self.max_unreadable {
            let last = self
                .last_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
                .unwrap_or_default();
            bail!(
                "{bad} unreadable images so far (more than the limit of {}); last: {last}; \
                 check the dataset with `unas data inspect imagenet --root DIR`",
                self.max_unreadable
            );
        }
        Ok(decoded)
    }

    /// The images `[n,3,224,224]` of decoded `good`, jittered (training) and normalised, on the device.
    fn images(&self, good: &[&Decoded]) -> Tensor {
        let n = good.len() as i64;
        let side = CROP as i64;
        let pixels: Vec<u8> = good
            .iter()
            .flat_map(|(p, _, _)| p.iter().copied())
            .collect();
        let jitter: Vec<Jitter> = good.iter().map(|g| g.1).collect();
        let x = Tensor::from_slice(&pixels)
            .view([n, side, side, 3])
            .to_device(self.device);
        let x = memory_format::nchw(&x).to_kind(Kind::Float) / 255.0;
        let x = match self.transform {
            ImageNetTransform::Train => color_jitter(&x, &jitter),
            ImageNetTransform::Eval => x,
        };
        let norm = Normalization::IMAGENET;
        let mean = Tensor::from_slice(&norm.mean)
            .to_device(self.device)
            .view([1, 3, 1, 1]);
        let std = Tensor::from_slice(&norm.std)
            .to_device(self.device)
            .view([1, 3, 1, 1]);
        (x - mean) / std
    }
}

impl BatchSource for ImageNetSource {
    /// JPEGs skipped so far because they could not be read or decoded (for the run record).
    fn unreadable(&self) -> u64 {
        self.unreadable.load(Ordering::Relaxed)
    }
    fn len(&self) -> usize {
        self.list.len()
    }
    fn batching(&self) -> &Batching {
        &self.batching
    }
    /// Without a share: the batch's readable images. With one: the batch at its full size, the rows
    /// of the share's slices decoded (the unreadable ones zeros), the others zeros, every label; its
    /// unreadable rows pending until the ranks agree on them ([`settled`]).
    fn batch(&self, epoch: u64, index: usize) -> Result<Batch> {
        let ids = self.ids(epoch, index);
        let Some(share) = self.share.clone() else {
            let decoded = self.decode(epoch, &ids)?;
            let good: Vec<&Decoded> = decoded.iter().flatten().collect();
            let labels: Vec<i64> = good.iter().map(|g| g.2).collect();
            return Ok(Batch {
                images: self.images(&good),
                labels: Tensor::from_slice(&labels).to_device(self.device),
                pending: None,
            });
        };
        let rows = share.rows(ids.len());
        let decoded = self.decode(epoch, &ids[rows.clone()])?;
        let good: Vec<&Decoded> = decoded.iter().flatten().collect();
        let at: Vec<i64> = (rows.start..rows.end)
            .zip(&decoded)
            .filter(|(_, d)| d.is_some())
            .map(|(r, _)| r as i64)
            .collect();
        let unreadable: Vec<i64> = (rows.start..rows.end)
            .zip(&decoded)
            .filter(|(_, d)| d.is_none())
            .map(|(r, _)| r as i64)
            .collect();
        let side = CROP as i64;
        let n = ids.len() as i64;
        let mut images = Tensor::zeros([n, 3, side, side], (Kind::Float, self.device));
        if !good.is_empty() {
            let at = Tensor::from_slice(&at).to_device(self.device);
            let _ = images.index_copy_(0, &at, &self.images(&good));
        }
        let labels: Vec<i64> = ids.iter().map(|&i| self.list.items[i as usize].1).collect();
        Ok(Batch {
            images,
            labels: Tensor::from_slice(&labels).to_device(self.device),
            pending: Some(Pending {
                epoch,
                index,
                share,
                decoded: rows,
                unreadable,
            }),
        })
    }
    fn rows(&self, epoch: u64, index: usize, rows: &[i64]) -> Result<Batch> {
        let ids = self.ids(epoch, index);
        let wanted: Vec<i64> = rows.iter().map(|&r| ids[r as usize]).collect();
        let decoded = self.decode(epoch, &wanted)?;
        let good: Vec<&Decoded> = decoded.iter().flatten().collect();
        anyhow::ensure!(
            good.len() == wanted.len(),
            "an image another rank read could not be read here"
        );
        let labels: Vec<i64> = good.iter().map(|g| g.2).collect();
        Ok(Batch {
            images: self.images(&good),
            labels: Tensor::from_slice(&labels).to_device(self.device),
            pending: None,
        })
    }
}

/// Writes `per_class` JPEGs of varied sizes into `dir/<wnid>/` for each wnid (tests and benchmarks).
pub fn write_jpeg_folder(dir: &Path, wnids: &[&str], per_class: usize, seed: u64) -> Result<()> {
    for (c, wnid) in wnids.iter().enumerate() {
        let d = dir.join(wnid);
        fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
        for i in 0..per_class {
            let mut rng = SplitMix64::new(seed, Purpose::Synthetic, c as u64, i as u64);
            let (w, h) = (300 + rng.below(200) as u32, 240 + rng.below(160) as u32);
            let img = RgbImage::from_fn(w, h, |x, y| {
                let v = ((x * (c as u32 + 1) + y * 3) % 256) as u8;
                image::Rgb([v, (x % 256) as u8, (y % 256) as u8])
            });
            let path = d.join(format!("{wnid}_{i}.JPEG"));
            img.save_with_format(&path, image::ImageFormat::Jpeg)
                .with_context(|| format!("writing {}", path.display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const WNIDS: [&str; 3] = ["n02", "n01", "n03"];

    fn folder() -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        for split in ["train", "val"] {
            write_jpeg_folder(&tmp.path().join(split), &WNIDS, 3, 0).unwrap();
        }
        tmp
    }

    fn batching() -> Batching {
        Batching {
            batch_size: 4,
            drop_last: false,
            shuffle: true,
            seed: 5,
        }
    }

    #[test]
    fn classes_are_the_sorted_wnids() {
        let tmp = folder();
        let d = open(tmp.path()).unwrap();
        let Splits::Folder { train, val } = &d.splits else {
            unreachable!()
        };
        assert_eq!(train.wnids, ["n01", "n02", "n03"]);
        assert_eq!(train.class_counts(), [3, 3, 3]);
        assert_eq!(val.len(), 9);
        assert!(train.items[0].0.ends_with("n01/n01_0.JPEG"));
        assert_eq!(d.classes, 3);
    }

    #[test]
    fn missing_or_empty_folders_show_the_expected_layout() {
        let tmp = tempfile::tempdir().unwrap();
        let err = format!("{:#}", open(tmp.path()).err().unwrap());
        assert!(err.contains("train/<wnid>/*.JPEG"), "{err}");
        fs::create_dir_all(tmp.path().join("train/n01")).unwrap();
        let err = format!("{:#}", open(tmp.path()).err().unwrap());
        assert!(
            err.contains("holds no .JPEG files") && err.contains("val/<wnid>"),
            "{err}"
        );
    }

    #[test]
    fn train_and_eval_batches_are_224_normalised_and_reproducible() {
        let tmp = folder();
        let list = ImageList::scan(&tmp.path().join("train"), tmp.path()).unwrap();
        for t in [ImageNetTransform::Train, ImageNetTransform::Eval] {
            let s = ImageNetSource::new(list.clone(), batching(), t, Device::Cpu, 0);
            let a = s.batch(1, 0).unwrap();
            assert_eq!(a.images.size(), [4, 3, 224, 224]);
            assert_eq!(a.images.kind(), Kind::Float);
            // contiguous NCHW, never channels-last: see data/memory_format.rs for the oneDNN crash
            assert!(a.images.is_contiguous(), "{t:?}");
            let b = s.batch(1, 0).unwrap();
            assert!(a.images.equal(&b.images) && a.labels.equal(&b.labels));
            assert_eq!(s.batches_per_epoch(), 3);
        }
    }

    #[test]
    fn unreadable_jpeg_is_skipped_and_counted_then_too_many_is_an_error() {
        let tmp = folder();
        fs::write(tmp.path().join("train/n01/n01_1.JPEG"), b"not a jpeg").unwrap();
        let list = ImageList::scan(&tmp.path().join("train"), tmp.path()).unwrap();
        let plain = Batching {
            shuffle: false,
            batch_size: 9,
            ..batching()
        };
        let s = ImageNetSource::new(list.clone(), plain, ImageNetTransform::Eval, Device::Cpu, 1);
        let b = s.batch(0, 0).unwrap();
        assert_eq!(b.labels.size(), [8]);
        assert_eq!(s.unreadable(), 1);
        let strict = ImageNetSource::new(list, plain, ImageNetTransform::Eval, Device::Cpu, 0);
        let err = format!("{:#}", strict.batch(0, 0).unwrap_err());
        assert!(
            err.contains("n01_1.JPEG") && err.contains("limit of 0"),
            "{err}"
        );
    }

    /// Two ranks of two slices: each decodes only its half of a batch of 8 whose row 5 is unreadable;
    /// settled with the other's mask, each holds exactly the rows one process gives its slice of the
    /// 7 readable images (rank 1 decodes row 3, which its slice gained, then).
    #[test]
    fn a_rank_decodes_only_its_slices_and_settles_to_the_rows_one_process_gives_them() {
        use crate::data::batch::Share;
        use crate::data::share::settle;
        let tmp = folder();
        fs::write(tmp.path().join("train/n02/n02_2.JPEG"), b"not a jpeg").unwrap();
        let list = ImageList::scan(&tmp.path().join("train"), tmp.path()).unwrap();
        let plain = Batching {
            shuffle: false,
            batch_size: 8,
            ..batching()
        };
        let source = || {
            ImageNetSource::new(
                list.clone(),
                plain,
                ImageNetTransform::Train,
                Device::Cpu,
                5,
            )
        };
        let one = source().batch(0, 0).unwrap();
        assert_eq!(one.labels.size(), [7], "row 5 skipped");
        let whole = one.split(2);
        for (rank, want) in whole.iter().enumerate() {
            let s = source().sharing(Share {
                own: rank..rank + 1,
                groups: 2,
            });
            let raw = s.batch(0, 0).unwrap();
            assert_eq!(raw.labels.size(), [8], "the nominal batch, before settling");
            // the other half was never decoded: zeros, and the bad image never seen by rank 0
            let other = if rank == 0 {
                raw.images.narrow(0, 4, 4)
            } else {
                raw.images.narrow(0, 0, 4)
            };
            assert_eq!(other.abs().sum(Kind::Float).double_value(&[]), 0.0);
            assert_eq!(
                s.unreadable(),
                rank as u64,
                "rank {rank} decoded row 5 or not"
            );
            let others_mask = |m: &Tensor| {
                if rank == 0 {
                    let _ = m.get(5).fill_(1.0); // what rank 1 reports
                }
                Ok(())
            };
            let mut decoded_later = Vec::new();
            let settled = settle(raw, others_mask, |e, i, rows| {
                decoded_later.extend_from_slice(rows);
                s.rows(e, i, rows)
            })
            .unwrap();
            assert_eq!(settled.labels.size(), [7]);
            let mine = &settled.split(2)[rank];
            assert!(mine.images.equal(&want.images), "rank {rank}'s images");
            assert!(mine.labels.equal(&want.labels), "rank {rank}'s labels");
            let gained: &[i64] = if rank == 1 { &[3] } else { &[] };
            assert_eq!(
                decoded_later, gained,
                "rank {rank} decoded what its slice gained"
            );
        }
    }

    #[test]
    fn random_resized_crop_stays_inside_the_image() {
        let mut rng = SplitMix64::new(0, Purpose::Augment, 0, 0);
        for (w, h) in [(500, 375), (100, 1000), (224, 224)] {
            for _ in 0..200 {
                let (t, l, ch, cw) = random_resized_crop(w, h, &mut rng);
                assert!(ch > 0 && cw > 0 && t + ch <= h && l + cw <= w);
            }
        }
    }

    #[test]
    fn hue_zero_and_unit_factors_leave_colours_unchanged() {
        let x = Tensor::rand([2, 3, 5, 5], (Kind::Float, Device::Cpu));
        let id = Jitter {
            brightness: 1.0,
            contrast: 1.0,
            saturation: 1.0,
            hue: 0.0,
        };
        let y = color_jitter(&x, &[id, id]);
        assert!(y.allclose(&x, 1e-3, 1e-3, false));
    }
}
