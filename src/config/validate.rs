//! Range and consistency checks of a resolved experiment. Each problem names its field; the loader
//! turns the field into file:line:col. All problems are reported at once.
//!
//! The rules are what the consumers need, written down where the user can be told: a network the
//! constructors cannot build (odd widths behind a `FactorizedReduce`, reduction cells that do not fit,
//! an auxiliary head's BatchNorm on a batch of one), a split smaller than the batch drawn from it, a
//! name that cannot become a folder, and an upper bound on every size, each with its reason. Non-finite
//! numbers never get here: the YAML pass refuses them where they are written (`yaml.rs`).

use super::estimator::Selection;
use super::path::FieldPath;
use super::recipe::TrainRecipe;
use super::schema::*;
use super::width::Width;

type Problems = Vec<(FieldPath, String)>;

/// A run folder is `results/runs/<name>/<tier>/<stage>-seed<seed>-<id>`: a name is one path component,
/// far below the 255 bytes a file system allows, and readable in a table.
pub const MAX_NAME_CHARS: usize = 100;
/// The synthetic generator defines 100 distinct classes (4 shapes × 5 orientations × 5 periods); class
/// k and k + 100 would be the same images under two labels.
pub const MAX_SYNTHETIC_CLASSES: u32 = 100;
/// Synthetic images are generated in memory and held resident on the run's device.
pub const MAX_SYNTHETIC_BYTES: u64 = 8 << 30;
/// The deepest network in the paper has 20 cells; each cell adds its activations to the memory of a
/// step, so far deeper networks only exhaust the device.
pub const MAX_LAYERS: u32 = 64;
/// The widest network in the paper starts at C = 70 (ImageNet automatic width); memory grows with C².
pub const MAX_CHANNELS: u32 = 512;
/// The paper's largest global batch is 1024 (8 GPUs × 128); activations grow linearly with it.
pub const MAX_BATCH: u32 = 8192;
/// The paper's longest schedule is 600 epochs.
pub const MAX_EPOCHS: u32 = 10_000;
/// Each seed is a whole search or training run.
pub const MAX_SEEDS: usize = 100;

/// A value as the YAML file spells it (`imagenet_darts`, `UNAS_CIFAR10`), for messages.
fn yaml<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => "?".into(),
    }
}

fn p(path: &str) -> FieldPath {
    FieldPath::parse(path).expect("static field path")
}

fn check(out: &mut Problems, ok: bool, path: &str, msg: impl FnOnce() -> String) {
    if !ok {
        out.push((p(path), msg()));
    }
}

fn positive(out: &mut Problems, path: &str, v: f64) {
    check(out, v.is_finite() && v > 0.0, path, || {
        format!("must be a finite number > 0, got {v}")
    });
}

fn non_negative(out: &mut Problems, path: &str, v: f64) {
    check(out, v.is_finite() && v >= 0.0, path, || {
        format!("must be a finite number ≥ 0, got {v}")
    });
}

fn unit_interval_open_right(out: &mut Problems, path: &str, v: f64) {
    check(out, (0.0..1.0).contains(&v), path, || {
        format!("must be in [0, 1), got {v}")
    });
}

/// `lo ≤ v ≤ hi`, with the reason for the upper bound in the message.
fn within(out: &mut Problems, path: &str, v: u64, lo: u64, hi: u64, why: &str) {
    check(out, v >= lo, path, || format!("must be ≥ {lo}, got {v}"));
    check(out, v <= hi, path, || {
        format!("must be at most {hi}, got {v}: {why}")
    });
}

pub fn validate(e: &Experiment) -> Problems {
    let mut out = Problems::new();
    name(&mut out, &e.name);
    dataset(&mut out, &e.dataset);
    space(&mut out, e);
    if let Some(sr) = &e.search {
        search(&mut out, e, sr);
    }
    if let Some(t) = &e.train {
        train(&mut out, e, &TrainRecipe::of(t));
    }
    check(
        &mut out,
        e.search.is_some() || e.train.is_some(),
        "search",
        || "an experiment needs a `search` section, a `train` section, or both".into(),
    );
    seeds(&mut out, &e.seeds);
    for (i, dev) in e.deviations.iter().enumerate() {
        if dev.trim().is_empty() {
            out.push((
                p(&format!("deviations[{i}]")),
                "an empty deviation says nothing; remove it".into(),
            ));
        }
    }
    out
}

/// The name is one folder under `results/runs/`: portable characters, not hidden, not too long.
fn name(o: &mut Problems, name: &str) {
    let shown: String = if name.chars().count() > 40 {
        format!("{}…", name.chars().take(40).collect::<String>())
    } else {
        name.to_owned()
    };
    let shown = shown.escape_debug().to_string();
    check(o, !name.is_empty(), "name", || {
        "must not be empty (it names the run folder, e.g. `c10-darts-unas`)".into()
    });
    check(
        o,
        name.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)),
        "name",
        || {
            format!("`{shown}` cannot name the run folder: use only letters, digits, `-`, `_` and `.` (no spaces, `/` or other characters)")
        },
    );
    check(o, !name.starts_with('.'), "name", || {
        format!("`{shown}` cannot name the run folder: it must not start with `.` (`.`, `..` and hidden folders)")
    });
    let n = name.chars().count();
    check(o, n <= MAX_NAME_CHARS, "name", || {
        format!("is {n} characters long; it names the run folder, so keep it to at most {MAX_NAME_CHARS}")
    });
}

fn dataset(o: &mut Problems, d: &Dataset) {
    check(
        o,
        d.train_portion > 0.0 && d.train_portion < 1.0,
        "dataset.train_portion",
        || {
            format!(
                "must be strictly between 0 and 1 (0.9 gives the official 45k/5k split), got {}",
                d.train_portion
            )
        },
    );
    let root = d.root.to_string_lossy();
    check(o, !root.is_empty(), "dataset.root", || {
        "must not be empty (the folder the dataset lives in, e.g. `data/`)".into()
    });
    check(o, !root.contains('\0'), "dataset.root", || {
        "contains a NUL character, which no file system allows in a path".into()
    });
    if d.name != DatasetName::Synthetic {
        return;
    }
    let s = &d.synthetic;
    check(o, s.classes >= 2, "dataset.synthetic.classes", || {
        format!("must be ≥ 2, got {}", s.classes)
    });
    check(
        o,
        s.classes <= MAX_SYNTHETIC_CLASSES,
        "dataset.synthetic.classes",
        || {
            format!(
                "must be at most {MAX_SYNTHETIC_CLASSES}, got {}: the generator draws {MAX_SYNTHETIC_CLASSES} distinct classes, so class k and k + {MAX_SYNTHETIC_CLASSES} would be the same images under two labels",
                s.classes
            )
        },
    );
    check(o, s.train >= 2, "dataset.synthetic.train", || {
        format!("must be ≥ 2 images, got {}", s.train)
    });
    check(o, s.test >= 1, "dataset.synthetic.test", || {
        format!("must be ≥ 1 image, got {}", s.test)
    });
    let side = s.like.side() as u64;
    let per_image = 3 * side * side;
    let max_images = MAX_SYNTHETIC_BYTES / per_image;
    for (field, n) in [
        ("dataset.synthetic.train", s.train),
        ("dataset.synthetic.test", s.test),
    ] {
        check(o, n <= max_images, field, || {
            format!(
                "must be at most {max_images} images, got {n}: synthetic images are generated in memory and held on the run's device, {per_image} bytes each at {side}×{side}, at most {} GiB in all",
                MAX_SYNTHETIC_BYTES >> 30
            )
        });
    }
    let total = s.train.saturating_add(s.test).saturating_mul(per_image);
    if s.train <= max_images && s.test <= max_images {
        check(
            o,
            total <= MAX_SYNTHETIC_BYTES,
            "dataset.synthetic.train",
            || {
                format!(
                "train + test = {} images are {:.1} GiB of pixels; synthetic images are held on the run's device, at most {} GiB in all — lower dataset.synthetic.train or .test",
                s.train + s.test,
                total as f64 / (1u64 << 30) as f64,
                MAX_SYNTHETIC_BYTES >> 30
            )
            },
        );
    }
}

fn space(o: &mut Problems, e: &Experiment) {
    let s = &e.space;
    match s.name {
        SpaceName::Darts => {
            check(o, (2..=7).contains(&s.ops), "space.ops", || {
                format!("the DARTS space has 7 primitives (keep the first 2..=7; CIFAR 7, ImageNet 5), got {}", s.ops)
            });
            check(o, s.layers >= 3, "space.layers", || {
                format!(
                    "must be ≥ 3 (two reduction cells at L/3 and 2L/3), got {}",
                    s.layers
                )
            });
            within(
                o,
                "space.layers",
                s.layers as u64,
                0,
                MAX_LAYERS as u64,
                "the search networks of the paper have 8 (CIFAR) and 14 (ImageNet) cells, and every cell holds the activations of all candidate ops",
            );
            within(
                o,
                "space.channels",
                s.channels as u64,
                1,
                MAX_CHANNELS as u64 / 2,
                "the paper searches at C = 16; the supernet runs every candidate op, so its memory grows with C²",
            );
            if e.dataset.shape() == ImageShape::Imagenet {
                check(o, s.channels.is_multiple_of(2), "space.channels", || {
                    format!("must be even on ImageNet-shaped data, got {}: the ImageNet stem hands the first cell 3C channels at twice its resolution, and the FactorizedReduce that halves them needs an even width", s.channels)
                });
            }
            check(
                o,
                s.width_multiplier == 1.0,
                "space.width_multiplier",
                || {
                    format!(
                    "has no effect in the DARTS space (the width is `space.channels`), got {}; remove it",
                    s.width_multiplier
                )
                },
            );
        }
        SpaceName::Proxyless => {
            check(o, s.ops == 7, "space.ops", || {
                format!(
                    "the ProxylessNAS space has exactly 7 block primitives, got {}",
                    s.ops
                )
            });
            proxyless_space(o, s);
        }
    }
    if s.name == SpaceName::Darts {
        for (field, set) in [
            ("space.resolution", s.resolution.is_some()),
            ("space.zero_dropout", s.zero_dropout.is_some()),
        ] {
            check(o, !set, field, || {
                "has no effect in the DARTS space (a ProxylessNAS supernet setting); remove it"
                    .into()
            });
        }
    }
}

/// The widest supernet the paper searches is width 1.0; its memory grows with the square of the width.
pub const MAX_WIDTH_MULTIPLIER: f64 = 4.0;
/// The paper searches at 224 px; a step holds the activations of every candidate at this side.
pub const MAX_RESOLUTION: u32 = 1024;

fn proxyless_space(o: &mut Problems, s: &Space) {
    let w = s.width_multiplier;
    check(
        o,
        w.is_finite() && w > 0.0,
        "space.width_multiplier",
        || {
            format!("must be a finite number > 0 (it multiplies every width of the ProxylessNAS-GPU skeleton; 1.0 in the paper), got {w}")
        },
    );
    check(
        o,
        w.is_nan() || w <= MAX_WIDTH_MULTIPLIER,
        "space.width_multiplier",
        || {
            format!("must be at most {MAX_WIDTH_MULTIPLIER}, got {w}: the paper searches at 1.0 and the supernet's memory grows with the square of the width")
        },
    );
    if let Some(r) = s.resolution {
        let stride = super::limits::TOTAL_STRIDE;
        check(
            o,
            r >= stride && r % stride == 0,
            "space.resolution",
            || {
                format!("must be a positive multiple of {stride}, got {r}: the stem and four stride-2 stages halve the side five times (224 → 7 in the paper), so the strides must divide it")
            },
        );
        check(o, r <= MAX_RESOLUTION, "space.resolution", || {
            format!("must be at most {MAX_RESOLUTION}, got {r}: the paper searches at 224 px and a step holds the activations of every candidate op")
        });
    }
    if let Some(p) = s.zero_dropout {
        unit_interval_open_right(o, "space.zero_dropout", p);
    }
}

/// Images in the search's weight and validation splits (⌊portion·N⌋ and the rest), where N is known.
fn search_splits(d: &Dataset) -> (u64, u64) {
    let (n, _) = d.name.sizes(&d.synthetic);
    let w = ((d.train_portion * n as f64).floor() as u64).min(n);
    (w, n - w)
}

fn search(o: &mut Problems, e: &Experiment, sr: &Search) {
    let s = &e.space;
    if let Some(k) = sr.candidates {
        check(o, k >= 1, "search.candidates", || {
            "must be at least 1: random search returns the best of the candidates it scores".into()
        });
    }
    positive(o, "search.temperature", sr.temperature);
    non_negative(o, "search.soften_eps", sr.soften_eps);
    within(
        o,
        "search.batch",
        sr.batch as u64,
        1,
        MAX_BATCH as u64,
        "the paper's largest global batch is 1024, and a step holds the activations of the whole batch",
    );
    if e.dataset.train_portion > 0.0 && e.dataset.train_portion < 1.0 {
        let (w, v) = search_splits(&e.dataset);
        check(o, sr.batch as u64 <= w.min(v), "search.batch", || {
            format!(
                "is {} but the search splits the {} training images into {w} for the weights and {v} for validation (dataset.train_portion {}), and every step draws a full batch from both; lower search.batch or enlarge the dataset",
                sr.batch,
                w + v,
                e.dataset.train_portion
            )
        });
    }
    check(
        o,
        sr.sub_batches >= 1 && sr.batch.is_multiple_of(sr.sub_batches.max(1)),
        "search.sub_batches",
        || {
            format!(
                "must be ≥ 1 and divide search.batch ({}), got {}",
                sr.batch, sr.sub_batches
            )
        },
    );
    check(
        o,
        sr.epochs.warmup as u64 + sr.epochs.search as u64 >= 1,
        "search.epochs",
        || "warmup + search must be ≥ 1 epoch".into(),
    );
    for (field, n) in [
        ("search.epochs.warmup", sr.epochs.warmup),
        ("search.epochs.search", sr.epochs.search),
    ] {
        within(
            o,
            field,
            n as u64,
            0,
            MAX_EPOCHS as u64,
            "the paper searches for 100 epochs",
        );
    }
    positive(o, "search.lr.weights", sr.lr.weights);
    positive(o, "search.lr.arch", sr.lr.arch);
    non_negative(o, "search.lr.weights_min", sr.lr.weights_min);
    non_negative(o, "search.lr.arch_min", sr.lr.arch_min);
    non_negative(o, "search.weight_decay.weights", sr.weight_decay.weights);
    non_negative(o, "search.weight_decay.arch", sr.weight_decay.arch);
    positive(o, "search.grad_clip", sr.grad_clip);
    unit_interval_open_right(o, "search.op_skip_threshold", sr.op_skip_threshold);
    non_negative(o, "search.objective.lambda", sr.objective.lambda);
    non_negative(
        o,
        "search.objective.pair_penalty",
        sr.objective.pair_penalty,
    );
    if let Some(l) = &sr.objective.latency {
        latency(o, s, sr, l);
    }
}

fn latency(o: &mut Problems, s: &Space, sr: &Search, l: &Latency) {
    check(
        o,
        s.name == SpaceName::Proxyless,
        "search.objective.latency",
        || {
            "latency is only measurable in the ProxylessNAS space (`space.name: proxyless`, spec §4)"
                .into()
        },
    );
    check(
        o,
        sr.sampling == Sampling::PerBatch,
        "search.sampling",
        || "a latency objective needs one architecture per batch (`sampling: per_batch`)".into(),
    );
    check(
        o,
        sr.estimator.is_score_function(),
        "search.estimator",
        || {
            format!(
                "is `{}`, but measured latency is not differentiable: a latency objective needs a score-function estimator (`rebar` or `relax`: the surrogate control variate of spec §2.5; `reinforce`: a moving-average baseline)",
                yaml(&sr.estimator)
            )
        },
    );
    check(
        o,
        l.target_ms.is_finite() && l.target_ms > 0.0,
        "search.objective.latency.target_ms",
        || {
            format!(
                "must be a finite number > 0 (the latency T in ms that the hinge c_t·relu(lat − T) allows; 10 in the paper), got {}",
                l.target_ms
            )
        },
    );
    check(
        o,
        l.coeff.is_finite() && l.coeff >= 0.0,
        "search.objective.latency.coeff",
        || {
            format!(
                "must be a finite number ≥ 0 (a negative coefficient would reward slow networks; 0.1 in the paper), got {}",
                l.coeff
            )
        },
    );
    non_negative(o, "search.objective.latency.ridge", l.ridge);
    check(
        o,
        l.batch >= 1 && l.batch <= sr.batch,
        "search.objective.latency.batch",
        || {
            format!(
                "must be between 1 and search.batch ({}), got {}",
                sr.batch, l.batch
            )
        },
    );
    within(
        o,
        "search.objective.latency.repeats",
        l.repeats as u64,
        1,
        10_000,
        "latency is the median of the repeats; the paper uses 10",
    );
    let min = super::limits::MIN_SAMPLES as u64;
    check(
        o,
        l.surrogate_samples as u64 >= min,
        "search.objective.latency.surrogate_samples",
        || {
            format!(
                "must be ≥ {min}, got {}: the surrogate is fitted on 80 % of the timed architectures and tested on the other 20 %, which must hold at least two for its R²",
                l.surrogate_samples
            )
        },
    );
    within(
        o,
        "search.objective.latency.surrogate_samples",
        l.surrogate_samples as u64,
        0,
        1_000_000,
        "each sample is a timed network; the paper fits the surrogate on 10 000",
    );
}

fn train(o: &mut Problems, e: &Experiment, t: &TrainRecipe) {
    let epochs = t.epochs;
    within(
        o,
        "train.epochs",
        epochs as u64,
        1,
        MAX_EPOCHS as u64,
        "the paper's longest schedule is 600 epochs",
    );
    let batch = t.batch;
    within(
        o,
        "train.batch",
        batch as u64,
        1,
        MAX_BATCH as u64,
        "the paper's largest batch is 1024, and a step holds the activations of the whole batch",
    );
    let g = t.sub_batches;
    check(
        o,
        g >= 1 && batch.is_multiple_of(g.max(1)),
        "train.sub_batches",
        || format!("must be ≥ 1 and divide train.batch ({batch}), got {g}"),
    );
    positive(o, "train.lr", t.lr);
    unit_interval_open_right(o, "train.momentum", t.momentum);
    non_negative(o, "train.weight_decay", t.weight_decay);
    check(o, t.warmup_epochs <= epochs, "train.warmup_epochs", || {
        format!("must be ≤ train.epochs ({epochs}), got {}", t.warmup_epochs)
    });
    let layers = t.layers;
    check(o, layers >= 3, "train.layers", || {
        format!("must be ≥ 3 (two reduction cells at L/3 and 2L/3), got {layers}")
    });
    within(
        o,
        "train.layers",
        layers as u64,
        0,
        MAX_LAYERS as u64,
        "the deepest network of the paper has 20 cells, and every cell adds to the memory of a step",
    );
    train_width(o, t);
    unit_interval_open_right(o, "train.drop_path", t.drop_path);
    non_negative(o, "train.auxiliary_weight", t.auxiliary_weight);
    unit_interval_open_right(o, "train.label_smoothing", t.label_smoothing);
    positive(o, "train.grad_clip", t.grad_clip);
    non_negative(o, "train.max_macs_m", t.max_macs_m);
    if t.recipe == Recipe::ImagenetDarts && t.channels == Width::Auto {
        positive(o, "train.max_macs_m", t.max_macs_m);
    }
    train_fit(o, e, t);
}

/// `train.channels` fits the recipe's network.
fn train_width(o: &mut Problems, t: &TrainRecipe) {
    match (t.recipe, t.channels) {
        (Recipe::Cifar, Width::Auto) => check(o, false, "train.channels", || {
            "must be ≥ 1 (`auto` or 0 = automatic width exists only for recipe imagenet_darts)"
                .into()
        }),
        (Recipe::ImagenetDarts, Width::Fixed(c)) => {
            check(o, c.is_multiple_of(2), "train.channels", || {
                format!("must be even (or 0 for the automatic width under train.max_macs_m, also written `auto`), got {c}: the ImageNet stem splits C into two halves and hands the first cell C channels at twice its resolution through a FactorizedReduce, which needs an even width")
            })
        }
        // The ProxylessNAS network has a fixed skeleton; the recipe's `auto` is all it reads.
        (Recipe::Cifar, Width::Fixed(_))
        | (Recipe::ImagenetDarts | Recipe::ImagenetProxyless, Width::Auto)
        | (Recipe::ImagenetProxyless, Width::Fixed(_)) => {}
    }
    within(
        o,
        "train.channels",
        t.channels.written() as u64,
        0,
        MAX_CHANNELS as u64,
        "the widest network of the paper starts at C = 70, and memory grows with C²",
    );
}

/// The recipe, the dataset, the space and the genotype agree, and every batch the training loop
/// forms can be normalised.
fn train_fit(o: &mut Problems, e: &Experiment, t: &TrainRecipe) {
    let (d, s) = (&e.dataset, &e.space);
    let (batch, aux_w) = (t.batch, t.auxiliary_weight);
    let want = match t.recipe {
        Recipe::Cifar => ImageShape::Cifar,
        Recipe::ImagenetDarts | Recipe::ImagenetProxyless => ImageShape::Imagenet,
    };
    let side = want.side() as u32;
    let cutout = t.cutout;
    check(o, cutout <= side, "train.cutout", || {
        format!("is the side of the square Cutout erases; it must be at most the image side ({side} px), got {cutout}")
    });
    check(o, d.shape() == want, "train.recipe", || {
        format!(
            "recipe `{}` trains on {}-shaped images but dataset `{}` is {}-shaped{}",
            yaml(&t.recipe),
            yaml(&want),
            yaml(&d.name),
            yaml(&d.shape()),
            if d.name == DatasetName::Synthetic {
                format!(" (set `dataset.synthetic.like: {}`)", yaml(&want))
            } else {
                String::new()
            }
        )
    });
    let space_ok = match t.recipe {
        Recipe::Cifar | Recipe::ImagenetDarts => s.name == SpaceName::Darts,
        Recipe::ImagenetProxyless => s.name == SpaceName::Proxyless,
    };
    check(o, space_ok, "train.recipe", || {
        format!(
            "recipe `{}` does not fit space `{}`",
            yaml(&t.recipe),
            yaml(&s.name)
        )
    });
    if e.dataset.name != DatasetName::Imagenet && batch >= 1 {
        let (n, _) = d.name.sizes(&d.synthetic);
        check(o, batch as u64 <= n, "train.batch", || {
            format!("is {batch} but the training set has {n} images: every epoch would be one partial batch; lower train.batch")
        });
    }
    auxiliary_batches(o, e, aux_w, batch);
    let published =
        "UNAS_CIFAR10, UNAS_CIFAR100, UNAS_IMAGENET, DARTS_V2, UNAS_PROXYLESS, PROXYLESS_GPU";
    match t.genotype {
        GenotypeChoice::Search => check(o, e.search.is_some(), "train.genotype", || {
            format!("`search` (the default) trains the genotype this experiment's search derives, but there is no `search` section; say `random` or name a published genotype ({published})")
        }),
        // A uniform draw fits any space.
        GenotypeChoice::Random => {}
        GenotypeChoice::UnasCifar10
        | GenotypeChoice::UnasCifar100
        | GenotypeChoice::UnasImagenet
        | GenotypeChoice::DartsV2
        | GenotypeChoice::UnasProxyless
        | GenotypeChoice::ProxylessGpu => {
            let gs = t.genotype.space();
            check(o, gs == Some(s.name), "train.genotype", || {
                format!(
                    "genotype `{}` belongs to the `{}` space, the experiment's space is `{}`",
                    yaml(&t.genotype),
                    gs.map(|g| yaml(&g)).unwrap_or_default(),
                    yaml(&s.name)
                )
            })
        }
    }
    check(
        o,
        t.genotype_seed.is_none() || t.genotype == GenotypeChoice::Random,
        "train.genotype_seed",
        || {
            format!(
                "is read only with `genotype: random` (it seeds the uniform draw), but the genotype is `{}`; remove it",
                yaml(&t.genotype)
            )
        },
    );
}

/// The auxiliary head of a DARTS network ends in a BatchNorm over a 1×1 map: in training it needs at
/// least two images in every batch, the last (partial) batch of an epoch included.
fn auxiliary_batches(o: &mut Problems, e: &Experiment, aux_w: f64, batch: u32) {
    if !(aux_w > 0.0 && e.space.name == SpaceName::Darts && batch >= 1) {
        return;
    }
    check(o, batch >= 2, "train.batch", || {
        "must be ≥ 2 while train.auxiliary_weight > 0: the auxiliary head's BatchNorm cannot normalise a batch of one image (set train.auxiliary_weight: 0 to train without the head)".into()
    });
    // The folder of an ImageNet run is counted when it is opened; CIFAR and synthetic sizes are known.
    if e.dataset.name == DatasetName::Imagenet || batch < 2 {
        return;
    }
    let (n, _) = e.dataset.name.sizes(&e.dataset.synthetic);
    check(o, n % batch as u64 != 1, "train.batch", || {
        let other = (batch + 1..).find(|b| n % *b as u64 != 1).unwrap_or(batch);
        format!(
            "{n} training images in batches of {batch} leave a last batch of one image, which the auxiliary head's BatchNorm cannot normalise; choose another train.batch (e.g. {other})"
        )
    });
}

/// Fields the user wrote (`written`: in the file or a `--set`) that the experiment never reads, so
/// that a value is never silently ignored. Tier overlays are not asked: one overlay fits every
/// experiment, and sizes it sets for a space or recipe that does not use them are harmless.
pub fn without_effect(e: &Experiment, written: &dyn Fn(&FieldPath) -> bool) -> Problems {
    let mut out = Problems::new();
    let mut unused = |path: &str, why: &str| {
        let f = p(path);
        if written(&f) {
            out.push((f, format!("has no effect: {why}; remove it")));
        }
    };
    if e.space.name == SpaceName::Proxyless {
        for f in ["space.layers", "space.channels"] {
            unused(
                f,
                "the ProxylessNAS space has a fixed skeleton (21 blocks, widths 24–432; spec §5.2)",
            );
        }
        if e.search.is_none() {
            for f in [
                "space.width_multiplier",
                "space.resolution",
                "space.zero_dropout",
            ] {
                unused(f, "it sizes the search supernet and this experiment has no `search`; the evaluation network is trained at width 1.0 on the dataset's images (spec §6.3)");
            }
        }
    }
    if let Some(s) = &e.search {
        if s.estimator.selection() == Selection::Mode {
            unused(
                "search.candidates",
                "only `estimator: random_ws` scores candidate architectures after the search",
            );
        }
    }
    if let Some(t) = e.train.as_ref().map(TrainRecipe::of) {
        if t.recipe == Recipe::ImagenetProxyless {
            for f in ["train.layers", "train.channels"] {
                unused(f, "the ProxylessNAS network has a fixed skeleton (21 blocks, widths 24–432; spec §5.2)");
            }
            if t.drop_path != 0.0 {
                unused(
                    "train.drop_path",
                    "the ProxylessNAS network has no drop-path",
                );
            }
            if t.auxiliary_weight != 0.0 {
                unused(
                    "train.auxiliary_weight",
                    "the ProxylessNAS network has no auxiliary head",
                );
            }
        }
        let auto_width = t.recipe == Recipe::ImagenetDarts && t.channels == Width::Auto;
        if !auto_width {
            unused("train.max_macs_m", "the MAC budget only chooses the automatic width (recipe imagenet_darts with `channels: auto`)");
        }
    }
    out
}

fn seeds(o: &mut Problems, seeds: &Seeds) {
    check(o, !seeds.search.is_empty(), "seeds.search", || {
        "must list at least one seed".into()
    });
    check(o, !seeds.train.is_empty(), "seeds.train", || {
        "must list at least one seed".into()
    });
    for (name, list) in [("search", &seeds.search), ("train", &seeds.train)] {
        let field = format!("seeds.{name}");
        check(o, list.len() <= MAX_SEEDS, &field, || {
            format!(
                "lists {} seeds; each seed is a whole run, so at most {MAX_SEEDS}",
                list.len()
            )
        });
        for (i, s) in list.iter().enumerate() {
            if list[..i].contains(s) {
                o.push((
                    p(&format!("seeds.{name}[{i}]")),
                    format!("seed {s} is listed twice"),
                ));
            }
        }
    }
}
