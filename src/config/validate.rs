//! Range and consistency checks of a resolved experiment. Each problem names its field; the loader
//! turns the field into file:line:col. All problems are reported at once.

use super::path::FieldPath;
use super::schema::*;

type Problems = Vec<(FieldPath, String)>;

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

pub fn validate(e: &Experiment) -> Problems {
    let mut out = Problems::new();
    let o = &mut out;

    check(
        o,
        !e.name.is_empty()
            && e.name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            && !e.name.starts_with('.'),
        "name",
        || {
            format!(
                "`{}` must be non-empty letters, digits, `-`, `_` or `.` (it names the run folder)",
                e.name
            )
        },
    );

    // dataset
    let d = &e.dataset;
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
    if d.name == DatasetName::Synthetic {
        check(
            o,
            d.synthetic.classes >= 2,
            "dataset.synthetic.classes",
            || format!("must be ≥ 2, got {}", d.synthetic.classes),
        );
        check(o, d.synthetic.train >= 2, "dataset.synthetic.train", || {
            format!("must be ≥ 2 images, got {}", d.synthetic.train)
        });
        check(o, d.synthetic.test >= 1, "dataset.synthetic.test", || {
            format!("must be ≥ 1 image, got {}", d.synthetic.test)
        });
    }

    // space
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
            check(o, s.channels >= 1, "space.channels", || {
                "must be ≥ 1".into()
            });
        }
        SpaceName::Proxyless => {
            check(o, s.ops == 7, "space.ops", || {
                format!(
                    "the ProxylessNAS space has exactly 7 block primitives, got {}",
                    s.ops
                )
            });
        }
    }
    positive(o, "space.width_multiplier", s.width_multiplier);

    // search
    if let Some(sr) = &e.search {
        positive(o, "search.temperature", sr.temperature);
        non_negative(o, "search.soften_eps", sr.soften_eps);
        check(o, sr.batch >= 1, "search.batch", || "must be ≥ 1".into());
        check(
            o,
            sr.sub_batches >= 1 && sr.batch % sr.sub_batches.max(1) == 0,
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
            sr.sub_batches <= 1 || sr.sampling == Sampling::PerBatch,
            "search.sub_batches",
            || "sub-batches need one architecture per batch (`sampling: per_batch`)".into(),
        );
        check(
            o,
            sr.epochs.warmup + sr.epochs.search >= 1,
            "search.epochs",
            || "warmup + search must be ≥ 1 epoch".into(),
        );
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
            check(
                o,
                s.name == SpaceName::Proxyless,
                "search.objective.latency",
                || {
                    "latency is only measurable in the ProxylessNAS space (`space.name: proxyless`, spec §4)".into()
                },
            );
            check(
                o,
                sr.sampling == Sampling::PerBatch,
                "search.sampling",
                || {
                    "a latency objective needs one architecture per batch (`sampling: per_batch`)"
                        .into()
                },
            );
            positive(o, "search.objective.latency.target_ms", l.target_ms);
            non_negative(o, "search.objective.latency.coeff", l.coeff);
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
            check(
                o,
                l.repeats >= 1,
                "search.objective.latency.repeats",
                || "must be ≥ 1".into(),
            );
            check(
                o,
                l.surrogate_samples >= 2,
                "search.objective.latency.surrogate_samples",
                || "must be ≥ 2".into(),
            );
            non_negative(o, "search.objective.latency.ridge", l.ridge);
        }
    }

    // train (already filled from the recipe)
    if let Some(t) = &e.train {
        let epochs = t.epochs.unwrap_or(0);
        check(o, epochs >= 1, "train.epochs", || "must be ≥ 1".into());
        check(o, t.batch.unwrap_or(0) >= 1, "train.batch", || {
            "must be ≥ 1".into()
        });
        positive(o, "train.lr", t.lr.unwrap_or(0.0));
        unit_interval_open_right(o, "train.momentum", t.momentum.unwrap_or(0.0));
        non_negative(o, "train.weight_decay", t.weight_decay.unwrap_or(0.0));
        check(
            o,
            t.warmup_epochs.unwrap_or(0) <= epochs,
            "train.warmup_epochs",
            || {
                format!(
                    "must be ≤ train.epochs ({epochs}), got {}",
                    t.warmup_epochs.unwrap_or(0)
                )
            },
        );
        check(o, t.layers.unwrap_or(0) >= 3, "train.layers", || {
            format!("must be ≥ 3, got {}", t.layers.unwrap_or(0))
        });
        let auto_width = t.recipe == Recipe::ImagenetDarts;
        check(
            o,
            t.channels.unwrap_or(0) >= 1 || auto_width || t.recipe == Recipe::ImagenetProxyless,
            "train.channels",
            || "must be ≥ 1 (0 = automatic width exists only for recipe imagenet_darts)".into(),
        );
        unit_interval_open_right(o, "train.drop_path", t.drop_path.unwrap_or(0.0));
        non_negative(
            o,
            "train.auxiliary_weight",
            t.auxiliary_weight.unwrap_or(0.0),
        );
        unit_interval_open_right(o, "train.label_smoothing", t.label_smoothing.unwrap_or(0.0));
        positive(o, "train.grad_clip", t.grad_clip.unwrap_or(0.0));
        non_negative(o, "train.max_macs_m", t.max_macs_m.unwrap_or(0.0));
        if auto_width && t.channels == Some(0) {
            positive(o, "train.max_macs_m", t.max_macs_m.unwrap_or(0.0));
        }
        let want = match t.recipe {
            Recipe::Cifar => ImageShape::Cifar,
            Recipe::ImagenetDarts | Recipe::ImagenetProxyless => ImageShape::Imagenet,
        };
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
        match t.genotype.space() {
            None => check(o, e.search.is_some(), "train.genotype", || {
                "`search` (the default) trains the genotype this experiment's search derives, but there is no `search` section; name a published genotype (UNAS_CIFAR10, UNAS_CIFAR100, UNAS_IMAGENET, DARTS_V2, UNAS_PROXYLESS, PROXYLESS_GPU)".into()
            }),
            Some(gs) => check(o, gs == s.name, "train.genotype", || {
                format!(
                    "genotype `{}` belongs to the `{}` space, the experiment's space is `{}`",
                    yaml(&t.genotype),
                    yaml(&gs),
                    yaml(&s.name)
                )
            }),
        }
    }

    check(o, e.search.is_some() || e.train.is_some(), "search", || {
        "an experiment needs a `search` section, a `train` section, or both".into()
    });

    // seeds
    check(o, !e.seeds.search.is_empty(), "seeds.search", || {
        "must list at least one seed".into()
    });
    check(o, !e.seeds.train.is_empty(), "seeds.train", || {
        "must list at least one seed".into()
    });
    for (name, list) in [("search", &e.seeds.search), ("train", &e.seeds.train)] {
        for (i, s) in list.iter().enumerate() {
            if list[..i].contains(s) {
                out.push((
                    p(&format!("seeds.{name}[{i}]")),
                    format!("seed {s} is listed twice"),
                ));
            }
        }
    }
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
