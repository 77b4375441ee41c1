//! The experiment format end to end through the library: tiers, `--set`, positions of validation
//! errors, the identity of a resolved config, and every shipped experiment at every tier.

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use unas::config::config_id;
use unas::config::Tiers;
use unas::config::*;
use unas::config::{parse_experiment, resolve};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

const BASE: &str = "\
name: t
dataset: {name: synthetic}
space: {name: darts, layers: 3, channels: 4}
search:
  estimator: rebar
  objective: {kind: gengap}
  epochs: {warmup: 1, search: 1}
train: {recipe: cifar}
seeds: {search: [0], train: [0]}
";

fn tiers() -> Tiers {
    Tiers::parse("tiers.yaml", unas::config::EMBEDDED_TIERS).unwrap()
}

fn resolve_text(text: &str, tier: Tier, sets: &[&str]) -> Result<Resolved, ConfigError> {
    let e = parse_experiment("x.yaml", text)?;
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    resolve("x.yaml", text, e, tier, &tiers(), &sets)
}

fn shipped_experiments() -> Vec<PathBuf> {
    unas::cli::experiment_files(&[root().join("experiments")]).unwrap()
}

#[test]
fn every_shipped_experiment_validates_at_every_tier() {
    let files = shipped_experiments();
    assert!(
        files.len() >= 12,
        "the paper suite is in experiments/paper: {files:?}"
    );
    for f in &files {
        for tier in [Tier::Paper, Tier::Quick, Tier::Smoke] {
            if let Err(e) = load(f, tier, &[]) {
                panic!("{} at tier {tier}: {e}", f.display());
            }
        }
    }
}

#[test]
fn smoke_tier_puts_every_experiment_on_synthetic_data_and_one_seed() {
    for f in shipped_experiments() {
        let r = load(&f, Tier::Smoke, &[]).unwrap();
        let e = &r.experiment;
        assert_eq!(e.dataset.name, DatasetName::Synthetic, "{}", f.display());
        assert_eq!(e.seeds.search, vec![0]);
        assert_eq!(e.device, DeviceChoice::Cpu);
        if let Some(s) = &e.search {
            assert!(s.epochs.warmup + s.epochs.search <= 3);
        }
    }
}

#[test]
fn tier_changes_the_id_and_paper_tier_keeps_the_file_as_written() {
    let paper = resolve_text(BASE, Tier::Paper, &[]).unwrap();
    let smoke = resolve_text(BASE, Tier::Smoke, &[]).unwrap();
    assert_ne!(paper.id, smoke.id);
    assert_eq!(paper.experiment.space.layers, 3);
    assert_eq!(
        paper.experiment.search.as_ref().unwrap().batch,
        128,
        "official default batch"
    );
}

#[test]
fn train_fields_left_out_take_the_recipe_values() {
    let r = resolve_text(BASE, Tier::Paper, &[]).unwrap();
    let t = r.experiment.train.unwrap();
    assert_eq!(
        (t.epochs, t.batch, t.lr, t.channels, t.layers),
        (
            Some(600),
            Some(128),
            Some(0.05),
            Some(Width::Fixed(36)),
            Some(20)
        )
    );
    assert_eq!(t.cutout, Some(16));
    // Writing a recipe default explicitly gives the same id.
    let explicit = BASE.replace(
        "train: {recipe: cifar}",
        "train: {recipe: cifar, epochs: 600, lr: 5.0e-2}",
    );
    assert_eq!(
        resolve_text(&explicit, Tier::Paper, &[]).unwrap().id,
        resolve_text(BASE, Tier::Paper, &[]).unwrap().id
    );
}

const IMAGENET_TRAIN: &str = "\
name: t
dataset: {name: synthetic, synthetic: {like: imagenet}}
space: {name: darts, layers: 3, channels: 4}
train: {recipe: imagenet_darts, genotype: UNAS_IMAGENET, channels: WIDTH}
seeds: {search: [0], train: [0]}
";

#[test]
fn automatic_width_is_written_auto_or_0_and_a_bad_width_is_refused_at_its_line() {
    let with = |w: &str| resolve_text(&IMAGENET_TRAIN.replace("WIDTH", w), Tier::Paper, &[]);
    let auto = with("auto").unwrap();
    assert_eq!(auto.experiment.train.unwrap().channels, Some(Width::Auto));
    assert_eq!(
        auto.id,
        with("0").unwrap().id,
        "`auto` and 0: one width, one id"
    );
    assert_ne!(auto.id, with("48").unwrap().id);
    for bad in ["wide", "-2", "36.5"] {
        let e = with(bad).unwrap_err();
        let i = &e.issues[0];
        assert_eq!(i.field.as_ref().unwrap().to_string(), "train.channels");
        assert_eq!(i.pos.expect("position").line, 4, "{bad}");
        assert!(
            i.message.contains("`auto` or a whole number of channels"),
            "{bad}: {e}"
        );
    }
    let e = resolve_text(BASE, Tier::Paper, &["train.channels=auto"])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("field `train.channels`: must be ≥ 1")
            && e.contains("only for recipe imagenet_darts"),
        "{e}"
    );
}

#[test]
fn id_ignores_key_order_comments_and_number_formatting() {
    let reordered = "\
# the same experiment, written differently
seeds: {train: [0], search: [0]}
train: {recipe: cifar}   # a comment
space: {channels: 4, layers: 3, name: darts}
search:
  epochs: {search: 1, warmup: 1}
  objective: {kind: gengap, lambda: 5.0e-1}
  temperature: 0.40
  estimator: rebar
dataset: {name: synthetic, train_portion: 9e-1}
name: t
";
    let a = resolve_text(BASE, Tier::Smoke, &[]).unwrap();
    let b = resolve_text(reordered, Tier::Smoke, &[]).unwrap();
    assert_eq!(a.id, b.id);
    let different = resolve_text(
        &BASE.replace("kind: gengap", "kind: gengap, lambda: 0.6"),
        Tier::Smoke,
        &[],
    )
    .unwrap();
    assert_ne!(a.id, different.id);
}

#[test]
fn description_and_deviations_do_not_change_the_id() {
    let doc = format!("{BASE}description: words\ndeviations: [\"one GPU\"]\n");
    assert_eq!(
        resolve_text(&doc, Tier::Paper, &[]).unwrap().id,
        resolve_text(BASE, Tier::Paper, &[]).unwrap().id
    );
}

#[test]
fn set_overrides_are_typed_and_change_the_id() {
    let r = resolve_text(
        BASE,
        Tier::Paper,
        &[
            "search.batch=64",
            "search.objective.lambda=1",
            "seeds.search=[3, 4]",
        ],
    )
    .unwrap();
    let s = r.experiment.search.as_ref().unwrap();
    assert_eq!(s.batch, 64);
    assert_eq!(s.objective.lambda, 1.0);
    assert_eq!(r.experiment.seeds.search, vec![3, 4]);
    assert_ne!(r.id, resolve_text(BASE, Tier::Paper, &[]).unwrap().id);
    // A --set wins over the tier (an even batch: the smoke tier cuts it into 2 sub-batches).
    let r = resolve_text(BASE, Tier::Smoke, &["search.batch=6"]).unwrap();
    assert_eq!(r.experiment.search.unwrap().batch, 6);
}

#[test]
fn a_bad_set_names_itself_the_field_and_what_was_expected() {
    let e = resolve_text(BASE, Tier::Paper, &["search.batch=lots"])
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("--set search.batch=lots: field `search.batch`"),
        "{e}"
    );
    assert!(e.contains("expected u32"), "{e}");
    let e = resolve_text(BASE, Tier::Paper, &["search.estimatr=gsm"])
        .unwrap_err()
        .to_string();
    assert!(e.contains("did you mean `estimator`?"), "{e}");
    let e = resolve_text(BASE, Tier::Paper, &["search.temperature=0"])
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("--set search.temperature=0: field `search.temperature`: must be"),
        "{e}"
    );
    let e = resolve_text(BASE, Tier::Paper, &["nonsense"])
        .unwrap_err()
        .to_string();
    assert!(e.contains("expected `field.path=value`"), "{e}");
    let e = resolve_text(BASE, Tier::Paper, &["seeds.search[5]=1"])
        .unwrap_err()
        .to_string();
    assert!(e.contains("out of range"), "{e}");
}

#[test]
fn range_errors_point_at_the_line_and_column_of_the_field() {
    let text = BASE.replace(
        "objective: {kind: gengap}",
        "objective: {kind: gengap, lambda: -1}",
    );
    let e = resolve_text(&text, Tier::Paper, &[]).unwrap_err();
    let i = &e.issues[0];
    assert_eq!(
        i.field.as_ref().unwrap().to_string(),
        "search.objective.lambda"
    );
    let pos = i.pos.expect("position");
    assert_eq!(pos.line, 6);
    assert_eq!(
        &text.lines().nth(5).unwrap()[pos.col as usize - 1..][..2],
        "-1",
        "column points at the value"
    );
}

#[test]
fn all_range_problems_are_reported_at_once() {
    let text = BASE
        .replace(
            "objective: {kind: gengap}",
            "objective: {kind: gengap, lambda: -1}\n  temperature: 0",
        )
        .replace("search: [0], train", "search: [], train");
    let e = resolve_text(&text, Tier::Paper, &[]).unwrap_err();
    let fields: Vec<String> = e
        .issues
        .iter()
        .map(|i| i.field.as_ref().unwrap().to_string())
        .collect();
    for f in [
        "search.temperature",
        "search.objective.lambda",
        "seeds.search",
    ] {
        assert!(
            fields.contains(&f.to_string()),
            "{f} missing from {fields:?}"
        );
    }
}

#[test]
fn a_tiers_file_beside_the_experiment_is_used() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("tiers.yaml"),
        "smoke:\n  overlay:\n    search: {batch: 5}\n",
    )
    .unwrap();
    let f = dir.path().join("e.yaml");
    std::fs::write(&f, BASE).unwrap();
    let r = load(&f, Tier::Smoke, &[]).unwrap();
    assert_eq!(r.experiment.search.unwrap().batch, 5);
    // A tier overlay that breaks the range rules is blamed on the tiers file.
    std::fs::write(
        dir.path().join("tiers.yaml"),
        "smoke:\n  overlay:\n    search: {temperature: 0}\n",
    )
    .unwrap();
    let e = load(&f, Tier::Smoke, &[]).unwrap_err().to_string();
    assert!(e.contains("tiers.yaml (tier smoke):3:"), "{e}");
}

#[test]
fn resolved_yaml_parses_back_to_the_same_experiment() {
    for f in shipped_experiments() {
        let r = load(&f, Tier::Paper, &[]).unwrap();
        let back = parse_experiment("resolved", &r.to_yaml()).unwrap();
        assert_eq!(back, r.experiment, "{}", f.display());
    }
}

fn file(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap()
}

#[test]
fn resolved_config_is_printed_with_its_id() {
    let f = root().join("experiments/paper/c10-darts-unas.yaml");
    let r = load(&f, Tier::Paper, &[]).unwrap();
    assert_eq!(r.id.len(), 64);
    assert!(r.to_yaml().contains(&r.id));
    assert!(file(&f).contains("c10-darts-unas"));
}

// ---- property test: parse → serialise → parse is the identity, and the id is stable ----

fn estimator() -> impl Strategy<Value = Estimator> {
    prop_oneof![
        Just(Estimator::Gsm),
        Just(Estimator::StGsm),
        Just(Estimator::Darts),
        Just(Estimator::Reinforce),
        Just(Estimator::Rebar),
        Just(Estimator::Relax),
        Just(Estimator::RandomWs)
    ]
}

fn finite() -> impl Strategy<Value = f64> {
    prop_oneof![
        0.0..10.0f64,
        (1u32..1000).prop_map(|x| x as f64 * 1e-4),
        Just(0.4)
    ]
}

prop_compose! {
    fn experiment()(
        name in "[a-z][a-z0-9-]{0,12}",
        desc in "[ -~]{0,40}",
        dataset in prop_oneof![Just(DatasetName::Cifar10), Just(DatasetName::Cifar100), Just(DatasetName::Synthetic)],
        portion in 0.05..0.95f64,
        layers in 3u32..20, channels in 1u32..64, ops in 2u32..8,
        est in estimator(),
        kind in prop_oneof![Just(ObjectiveKind::Train), Just(ObjectiveKind::Val), Just(ObjectiveKind::Gengap)],
        lambda in finite(), pp in finite(), temp in 0.01..5.0f64, eps in finite(),
        warmup in 0u32..20, search_epochs in 1u32..100, batch in 1u32..512,
        lr_w in finite(), per_batch in any::<bool>(), subs in 1u32..9, like_imagenet in any::<bool>(),
        train_epochs in proptest::option::of(1u32..700), drop in proptest::option::of(0.0..0.9f64),
        seeds in proptest::collection::vec(0u64..1000, 1..5),
        deterministic in any::<bool>(),
        bf16 in any::<bool>(),
        batched in any::<bool>(),
        graphs in any::<bool>(),
        deviations in proptest::collection::vec("[a-z ]{1,20}", 0..3),
    ) -> Experiment {
        let mut seeds = seeds;
        seeds.sort();
        seeds.dedup();
        Experiment {
            name,
            description: desc,
            dataset: Dataset { name: dataset, root: "data".into(), train_portion: portion, synthetic: SyntheticSpec { like: if like_imagenet { ImageShape::Imagenet } else { ImageShape::Cifar }, ..SyntheticSpec::default() }, statistics: None },
            space: Space { name: SpaceName::Darts, layers, channels, ops, width_multiplier: 1.0, resolution: None, zero_dropout: None },
            search: Some(Search {
                estimator: est,
                objective: Objective { kind, lambda, pair_penalty: pp, latency: None },
                temperature: temp,
                soften_eps: eps,
                sampling: if per_batch { Sampling::PerBatch } else { Sampling::PerExample },
                epochs: SearchEpochs { warmup, search: search_epochs },
                batch,
                lr: SearchLr { weights: lr_w + 1e-6, ..SearchLr::default() },
                weight_decay: WeightDecay::default(),
                grad_clip: 5.0,
                op_skip_threshold: 0.05,
                sub_batches: if per_batch { subs } else { 1 },
                batched_passes: batched,
                candidates: None,
            }.resolved()),
            train: Some(Train {
                recipe: Recipe::Cifar, genotype: GenotypeChoice::Search, genotype_seed: None, epochs: train_epochs, batch: None, lr: None,
                momentum: None, weight_decay: None, warmup_epochs: Some(0), channels: None, layers: None,
                drop_path: drop, auxiliary_weight: None, cutout: None, label_smoothing: None, grad_clip: None,
                max_macs_m: None, cuda_graphs: graphs, sub_batches: None,
            }.resolved()),
            seeds: Seeds { search: seeds.clone(), train: seeds },
            protocol: Protocol::MeanOverSearches,
            device: DeviceChoice::Auto,
            deterministic,
            precision: if bf16 { Precision::Bf16 } else { Precision::Fp32 },
            deviations,
            sweep: None,
            sweep_of: None,
        }
    }
}

/// JSON (which is YAML) with keys in reverse order and floats in exponent notation.
fn scrambled(v: &serde_json::Value) -> String {
    use serde_json::Value;
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            keys.reverse();
            let body: Vec<String> = keys
                .iter()
                .map(|k| {
                    format!(
                        "{}: {}",
                        serde_json::to_string(k).unwrap(),
                        scrambled(&m[*k])
                    )
                })
                .collect();
            format!("{{{}}}", body.join(", "))
        }
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(scrambled).collect::<Vec<_>>().join(", ")
        ),
        Value::Number(n) if n.is_f64() => format!("{:e}", n.as_f64().unwrap()),
        other => serde_json::to_string(other).unwrap(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn parse_serialise_parse_is_identity_and_id_is_stable(e in experiment()) {
        let yaml = serde_saphyr::to_string(&e).unwrap();
        let back = parse_experiment("prop", &yaml).unwrap();
        prop_assert_eq!(&back, &e);
        prop_assert_eq!(config_id(&back, Tier::Paper), config_id(&e, Tier::Paper));
        let text = scrambled(&serde_json::to_value(&e).unwrap());
        let again = parse_experiment("prop-scrambled", &text).unwrap();
        prop_assert_eq!(&again, &e);
        prop_assert_eq!(config_id(&again, Tier::Smoke), config_id(&e, Tier::Smoke));
    }
}
