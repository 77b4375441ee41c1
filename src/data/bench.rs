//! `unas bench data`: images/s of the input pipelines, each against a baseline measured in the same run.
//!
//! * CIFAR augmentation (crop + flip + Cutout + normalise, batch 256) vs normalise only, on the CPU and,
//!   when present, on CUDA.
//! * ImageNet decode + RandomResizedCrop + flip on one core vs decode only, on generated JPEGs.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use tch::{Device, Kind, Tensor};

use crate::data::augment::AugmentSpec;
use crate::data::image_list::ImageList;
use crate::data::imagenet::{self, ImageNetTransform};
use crate::data::loader::{BatchSource, Batching, ResidentSource};
use crate::data::normalization::Normalization;
use crate::data::rng::{Purpose, SplitMix64};
use crate::data::tensor_split::TensorSplit;

fn cifar_images_per_s(device: Device, augment: AugmentSpec, n: i64) -> Result<f64> {
    let images = Tensor::randint(256, [n, 3, 32, 32], (Kind::Uint8, Device::Cpu));
    let labels = Tensor::zeros([n], (Kind::Int64, Device::Cpu));
    let split = TensorSplit::new(images, labels)?.to_device(device);
    let batching = Batching {
        batch_size: 256,
        drop_last: true,
        shuffle: true,
        seed: 0,
    };
    let src = ResidentSource::new(split, batching, augment, Normalization::CIFAR10);
    let sync = || {
        if let Device::Cuda(i) = device {
            tch::Cuda::synchronize(i as i64);
        }
    };
    src.batch(0, 0)?;
    sync();
    let t = Instant::now();
    let mut images = 0;
    for i in 0..src.batches_per_epoch() {
        images += src.batch(1, i)?.labels.size()[0];
    }
    sync();
    Ok(images as f64 / t.elapsed().as_secs_f64())
}

fn imagenet_images_per_s(list: &ImageList, crop: bool) -> Result<f64> {
    let t = Instant::now();
    for (i, (path, _)) in list.items.iter().enumerate() {
        let mut rng = SplitMix64::new(0, Purpose::Augment, 0, i as u64);
        if crop {
            imagenet::load_and_crop(path, ImageNetTransform::Train, &mut rng)?;
        } else {
            let bytes = std::fs::read(path)?;
            std::hint::black_box(
                image::load_from_memory_with_format(&bytes, image::ImageFormat::Jpeg)?.to_rgb8(),
            );
        }
    }
    Ok(list.len() as f64 / t.elapsed().as_secs_f64())
}

/// Runs the data benchmarks and prints one line per measurement.
pub fn run() -> Result<()> {
    let build = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    println!(
        "unas bench data ({build} build, {} CPU threads)",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let _ = crate::device::load_cuda_backend();
    let mut devices = vec![Device::Cpu];
    if tch::Cuda::is_available() {
        devices.push(Device::Cuda(0));
    }
    for device in devices {
        let n = if device == Device::Cpu { 8192 } else { 65536 };
        let base = cifar_images_per_s(device, AugmentSpec::NONE, n)?;
        let aug = cifar_images_per_s(device, AugmentSpec::TRAIN_CUTOUT, n)?;
        println!(
            "cifar augment {device:?}: {aug:>10.0} images/s (crop+flip+cutout+normalise); normalise only {base:.0} images/s; ratio {:.2}",
            aug / base
        );
    }
    let dir: PathBuf = std::env::temp_dir().join(format!("unas-bench-data-{}", std::process::id()));
    let wnids = ["n00000001", "n00000002"];
    imagenet::write_jpeg_folder(&dir, &wnids, 24, 0).context("writing benchmark JPEGs")?;
    let list = ImageList::scan(&dir, &dir);
    let result = list.and_then(|list| {
        let decode = imagenet_images_per_s(&list, false)?;
        let crop = imagenet_images_per_s(&list, true)?;
        println!(
            "imagenet decode+RandomResizedCrop+flip, 1 core: {crop:.0} images/s; decode only {decode:.0} images/s; ratio {:.2} ({} JPEGs of 300–500 × 240–400 px)",
            crop / decode,
            list.len()
        );
        Ok(())
    });
    let _ = std::fs::remove_dir_all(&dir);
    result
}
