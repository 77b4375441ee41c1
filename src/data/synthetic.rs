//! `synthetic`, the embedded dataset: CIFAR-shaped (3×32×32) images generated from a seed, no files;
//! with `like: imagenet` the same scenes drawn at 3×224×224 (an ImageNet stand-in).
//!
//! Class k is a combination of a **shape** (k mod 4: disk, square, ring, cross), a **texture
//! orientation** inside it (θ = π·((k div 4) mod 5)/5) and a **texture period** (((k div 20) mod 5) ↦
//! 4, 6, 3, 8, 5 px), so up to 100 classes are distinct. Nuisances: the object's position (centre in
//! [10, 22]²) and size (radius 7–13 px), the texture phase, foreground and background colours, a faint
//! background grating of random orientation, and Gaussian pixel noise (σ = 0.06). Telling classes apart
//! needs oriented-edge and shape features at an unknown position and scale — what convolutions and
//! pooling give, and what a wider receptive field or a better cell can do better.
//!
//! Sample i of a split is a pure function of (seed, split, i) (`rng::SplitMix64`), generated in parallel;
//! its class is i mod classes, so classes are balanced.

use rayon::prelude::*;
use tch::{Device, Tensor};

use crate::config::{DatasetName, ImageShape, SyntheticSpec};
use crate::data::dataset::{Dataset, Splits};
use crate::data::fingerprint;
use crate::data::normalization::Normalization;
use crate::data::rng::{Purpose, SplitMix64};
use crate::data::tensor_split::TensorSplit;

/// Bump when the images a seed produces change: it is part of the fingerprint.
pub const GENERATOR_VERSION: u32 = 1;

/// The scene is defined on a 32×32 canvas; larger images sample it more finely.
const CANVAS: f64 = 32.0;
const PERIODS: [f64; 5] = [4.0, 6.0, 3.0, 8.0, 5.0];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    Disk,
    Square,
    Ring,
    Cross,
}

/// The visual definition of class k.
fn class_params(k: u32) -> (Shape, f64, f64) {
    let shape = [Shape::Disk, Shape::Square, Shape::Ring, Shape::Cross][(k % 4) as usize];
    // θ = π · ((k div 4) mod 5) / 5
    let theta = std::f64::consts::PI * ((k / 4) % 5) as f64 / 5.0;
    let period = PERIODS[((k / 20) % 5) as usize];
    (shape, theta, period)
}

/// Whether (u, v), in units of the object radius around its centre, lies inside `shape`.
fn inside(shape: Shape, u: f64, v: f64) -> bool {
    let r = (u * u + v * v).sqrt();
    match shape {
        Shape::Disk => r < 1.0,
        Shape::Square => u.abs().max(v.abs()) < 0.8,
        Shape::Ring => (0.55..1.0).contains(&r),
        Shape::Cross => (u.abs() < 0.3 || v.abs() < 0.3) && u.abs().max(v.abs()) < 1.0,
    }
}

/// One image, 3 planes of side×side bytes.
fn render(class: u32, rng: &mut SplitMix64, side: usize) -> Vec<u8> {
    let (shape, theta, period) = class_params(class);
    let cx = rng.range(10.0, 22.0);
    let cy = rng.range(10.0, 22.0);
    let radius = rng.range(7.0, 13.0);
    let phase = rng.range(0.0, std::f64::consts::TAU);
    let fg: [f64; 3] = [0, 1, 2].map(|_| rng.range(0.3, 1.0));
    let bg: [f64; 3] = [0, 1, 2].map(|_| rng.range(0.0, 0.6));
    let bg_theta = rng.range(0.0, std::f64::consts::PI);
    let (c, s) = (theta.cos(), theta.sin());
    let (bc, bs) = (bg_theta.cos(), bg_theta.sin());
    let mut out = vec![0u8; 3 * side * side];
    let scale = CANVAS / side as f64;
    for y in 0..side {
        for x in 0..side {
            let (xf, yf) = (x as f64 * scale, y as f64 * scale);
            let (u, v) = ((xf - cx) / radius, (yf - cy) / radius);
            // texture g = ½ + ½ sin(2π (x cos θ + y sin θ) / period + φ)
            let g = 0.5 + 0.5 * (std::f64::consts::TAU * (xf * c + yf * s) / period + phase).sin();
            let bg_wave = 0.08 * (std::f64::consts::TAU * (xf * bc + yf * bs) / 5.0).sin();
            let obj = inside(shape, u, v);
            for ch in 0..3 {
                let value = if obj {
                    fg[ch] * (0.3 + 0.7 * g)
                } else {
                    bg[ch] + bg_wave
                } + 0.06 * rng.normal();
                out[ch * side * side + y * side + x] =
                    (value.clamp(0.0, 1.0) * 255.0).round() as u8;
            }
        }
    }
    out
}

/// Generates `n` samples of split `split` (0 train, 1 test): uint8 `[n,3,S,S]` (S = 32, or 224 with
/// `like: imagenet`), int64 `[n]`, on the CPU.
pub fn generate(spec: &SyntheticSpec, split: u64, n: u64) -> TensorSplit {
    let classes = spec.classes.max(1);
    let side = spec.like.side() as usize;
    let images: Vec<Vec<u8>> = (0..n)
        .into_par_iter()
        .map(|i| {
            let mut rng = SplitMix64::new(spec.seed, Purpose::Synthetic, split, i);
            render((i % classes as u64) as u32, &mut rng, side)
        })
        .collect();
    let labels: Vec<i64> = (0..n).map(|i| (i % classes as u64) as i64).collect();
    let flat: Vec<u8> = images.concat();
    TensorSplit::new(
        Tensor::from_slice(&flat).view([n as i64, 3, side as i64, side as i64]),
        Tensor::from_slice(&labels),
    )
    .expect("generated shapes are consistent")
}

/// The fingerprint of a spec: the generator version and every parameter.
pub fn fingerprint(spec: &SyntheticSpec) -> String {
    let like = match spec.like {
        ImageShape::Cifar => "",
        ImageShape::Imagenet => " like=imagenet",
    };
    fingerprint::of_generator(&format!(
        "unas-synthetic v{GENERATOR_VERSION} classes={} train={} test={} seed={}{like}",
        spec.classes, spec.train, spec.test, spec.seed
    ))
}

/// Generates both splits and places them on `device`; normalisation is measured on the train split.
pub fn open(spec: &SyntheticSpec, device: Device) -> Dataset {
    let train = generate(spec, 0, spec.train);
    let test = generate(spec, 1, spec.test);
    Dataset {
        name: DatasetName::Synthetic,
        classes: spec.classes as i64,
        norm: Normalization::measure(&train.images),
        fingerprint: fingerprint(spec),
        splits: Splits::Resident {
            train: train.to_device(device),
            test: test.to_device(device),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::nn::{self, Module, OptimizerConfig};
    use tch::Kind;

    fn spec(seed: u64) -> SyntheticSpec {
        SyntheticSpec {
            classes: 10,
            train: 2000,
            test: 500,
            seed,
            like: ImageShape::Cifar,
        }
    }

    #[test]
    fn the_imagenet_stand_in_draws_the_same_scene_at_224() {
        let small = generate(&spec(5), 0, 3);
        let big = generate(
            &SyntheticSpec {
                like: ImageShape::Imagenet,
                ..spec(5)
            },
            0,
            3,
        );
        assert_eq!(big.images.size(), [3, 3, 224, 224]);
        assert!(small.labels.equal(&big.labels));
        // Pooled back to 32×32 the big image is close to the small one (same scene, same draws for
        // the scene; only the per-pixel noise differs).
        let pooled = big.images.to_kind(Kind::Float).avg_pool2d(
            [7, 7],
            [7, 7],
            [0, 0],
            false,
            true,
            None::<i64>,
        );
        let diff = (pooled - small.images.to_kind(Kind::Float))
            .abs()
            .mean(Kind::Float)
            .double_value(&[]);
        assert!(diff < 25.0, "mean |Δ| = {diff} grey levels");
        assert_ne!(
            fingerprint(&spec(5)),
            fingerprint(&SyntheticSpec {
                like: ImageShape::Imagenet,
                ..spec(5)
            })
        );
    }

    #[test]
    fn same_seed_gives_the_same_bytes_and_another_seed_does_not() {
        let a = generate(&spec(3), 0, 64);
        let b = generate(&spec(3), 0, 64);
        let c = generate(&spec(4), 0, 64);
        assert!(a.images.equal(&b.images) && a.labels.equal(&b.labels));
        assert!(!a.images.equal(&c.images));
        assert_eq!(fingerprint(&spec(3)), fingerprint(&spec(3)));
        assert_ne!(fingerprint(&spec(3)), fingerprint(&spec(4)));
    }

    #[test]
    fn hundred_classes_are_pairwise_distinct_definitions() {
        let mut seen = std::collections::HashSet::new();
        for k in 0..100 {
            let (s, t, p) = class_params(k);
            assert!(
                seen.insert((s as u8, t.to_bits(), p.to_bits())),
                "class {k}"
            );
        }
    }

    /// A tiny conv net (conv-relu-pool ×2, linear) trained for 4 epochs on 2000 images reaches ≥ 35 %
    /// test accuracy (chance: 10 %), so the classes are learnable from spatial features.
    #[test]
    fn tiny_conv_net_beats_chance_clearly() {
        tch::manual_seed(0);
        let data = open(&spec(0), Device::Cpu);
        let Splits::Resident { train, test } = &data.splits else {
            unreachable!()
        };
        let norm = |x: &Tensor| (x.to_kind(Kind::Float) / 255.0 - 0.5) / 0.25;
        let vs = nn::VarStore::new(Device::Cpu);
        let p = vs.root();
        let c = nn::ConvConfig {
            padding: 1,
            ..Default::default()
        };
        let net = nn::seq()
            .add(nn::conv2d(&p / "c1", 3, 16, 3, c))
            .add_fn(|x| x.relu().max_pool2d_default(2))
            .add(nn::conv2d(&p / "c2", 16, 32, 3, c))
            .add_fn(|x| x.relu().max_pool2d_default(2))
            .add(nn::conv2d(&p / "c3", 32, 32, 3, c))
            .add_fn(|x| x.relu().adaptive_avg_pool2d([1, 1]).flat_view())
            .add(nn::linear(&p / "fc", 32, 10, Default::default()));
        let mut opt = nn::Adam::default().build(&vs, 3e-3).unwrap();
        for epoch in 0..4 {
            let perm =
                crate::data::rng::SplitMix64::new(0, crate::data::rng::Purpose::Shuffle, epoch, 0)
                    .permutation(train.len());
            for chunk in perm.chunks(50) {
                let b = train.select(chunk);
                let loss = net
                    .forward(&norm(&b.images))
                    .cross_entropy_for_logits(&b.labels);
                opt.backward_step(&loss);
            }
        }
        let acc = tch::no_grad(|| {
            net.forward(&norm(&test.images))
                .accuracy_for_logits(&test.labels)
                .double_value(&[])
        });
        assert!(acc >= 0.35, "test accuracy {acc:.3} (chance 0.1)");
    }
}
