//! The plan of an experiment: experiments × seeds × stages, each job with a content-addressed run id.
//! A stage's id covers only what it computes from — the search id does not change when the training
//! recipe does — plus the dataset's fingerprint (a changed dataset never reuses a finished run) and the
//! ids of the stages it consumes.

use anyhow::{Context, Result};
use serde_json::{json, Value};

use crate::config::identity::{canonical_json, hash_parts};
use crate::config::Resolved;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stage {
    /// Architecture search: warm-up + search epochs, derives a genotype.
    Search,
    /// From-scratch training of a genotype, tested on the test set every epoch.
    Train,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Search => "search",
            Stage::Train => "train",
        }
    }
}

/// One run of one stage at one seed.
#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    pub stage: Stage,
    pub seed: u64,
    pub run_id: String,
    /// For a training job of a searched genotype: the search job it consumes.
    pub upstream: Option<Box<Job>>,
    /// The canonical JSON the id was computed from.
    pub identity: String,
    /// The dataset's fingerprint (part of the id).
    pub fingerprint: String,
    /// The id of the stage's shape: everything but the seed and the upstream run. Runs of one shape
    /// take about as long, so finished ones predict the others (the ETA of `unas status`).
    pub shape_id: String,
}

impl Job {
    /// The section and the G (`sub_batches`, 1 when absent) of this job's stage: the slices every
    /// batch is cut into, which R ranks split between them (R must divide G).
    pub fn sub_batches(&self, r: &Resolved) -> (&'static str, usize) {
        let e = &r.experiment;
        let g = match self.stage {
            Stage::Search => e.search.as_ref().map_or(1, |s| s.sub_batches),
            Stage::Train => e
                .train
                .as_ref()
                .map_or(1, |t| crate::config::TrainRecipe::of(t).sub_batches),
        };
        (self.stage.as_str(), g.max(1) as usize)
    }
}

/// The format of a stage's computation: bump a stage's when its numbers change in a way that
/// invalidates earlier results (its downstream stages follow through their upstream id).
/// 3: the dataset's fingerprint is part of every id.
/// search 4: every slice of a search step's forward passes, each search-time validation batch and
/// the latency term's second sample draw from streams of their own (any rank draws what one process
/// draws), so ProxylessNAS searches and search-time validation draw other numbers than under 3.
fn stage_format(stage: Stage) -> &'static str {
    match stage {
        Stage::Search => "4",
        Stage::Train => "3",
    }
}

fn stage_identity(r: &Resolved, stage: Stage, seed: Option<u64>, fingerprint: &str) -> String {
    let e = &r.experiment;
    let mut v: Value = match stage {
        Stage::Search => json!({
            "dataset": e.dataset, "space": e.space, "search": e.search,
            "deterministic": e.deterministic, "tier": r.tier.as_str(),
        }),
        Stage::Train => json!({
            "dataset": e.dataset, "space": e.space, "train": e.train,
            "deterministic": e.deterministic, "tier": r.tier.as_str(),
        }),
    };
    v["data_fingerprint"] = json!(fingerprint);
    // every network starts from this initialisation: another one computes other numbers
    v["init"] = json!(crate::nas::init::SCHEME);
    if !e.precision.is_fp32() {
        v["precision"] = json!(e.precision); // absent at fp32: earlier runs keep their ids
    }
    if let Some(seed) = seed {
        v["seed"] = json!(seed);
    }
    canonical_json(&v)
}

fn job(r: &Resolved, fp: &str, stage: Stage, seed: u64, upstream: Option<Job>) -> Job {
    let identity = stage_identity(r, stage, Some(seed), fp);
    let up = upstream
        .as_ref()
        .map(|u| u.run_id.clone())
        .unwrap_or_default();
    let run_id = hash_parts(&[
        ("format", stage_format(stage)),
        ("stage", stage.as_str()),
        ("config", &identity),
        ("upstream", &up),
    ]);
    let shape_id = hash_parts(&[
        ("format", stage_format(stage)),
        ("stage", stage.as_str()),
        ("config", &stage_identity(r, stage, None, fp)),
    ]);
    Job {
        stage,
        seed,
        run_id,
        upstream: upstream.map(Box::new),
        identity,
        fingerprint: fp.to_owned(),
        shape_id,
    }
}

/// All jobs of an experiment, searches first; a training job of `genotype: search` follows its search.
/// Fails (with where to get it) when the dataset, whose fingerprint every id holds, is missing.
pub fn plan(r: &Resolved) -> Result<Vec<Job>> {
    let fp = crate::data::identity::fingerprint(&r.experiment.dataset).with_context(|| {
        format!(
            "{}: the dataset is needed to plan its runs (its fingerprint is part of every run id)",
            r.experiment.name
        )
    })?;
    Ok(plan_with(r, &fp))
}

/// The jobs of `r` over a dataset of fingerprint `fp`.
pub fn plan_with(r: &Resolved, fp: &str) -> Vec<Job> {
    let e = &r.experiment;
    let mut jobs = Vec::new();
    let searches: Vec<Job> = match &e.search {
        Some(_) => e
            .seeds
            .search
            .iter()
            .map(|&s| job(r, fp, Stage::Search, s, None))
            .collect(),
        None => Vec::new(),
    };
    jobs.extend(searches.iter().cloned());
    if let Some(t) = &e.train {
        if t.genotype.is_searched() {
            for s in &searches {
                for &ts in &e.seeds.train {
                    jobs.push(job(r, fp, Stage::Train, ts, Some(s.clone())));
                }
            }
        } else {
            for &ts in &e.seeds.train {
                jobs.push(job(r, fp, Stage::Train, ts, None));
            }
        }
    }
    jobs
}

/// How many jobs `r` plans (needs no dataset).
pub fn job_count(r: &Resolved) -> usize {
    plan_with(r, "").len()
}

/// Rough cost in millions of image passes (forward + backward), to compare experiments before running.
pub fn rough_cost_m_images(r: &Resolved) -> f64 {
    use crate::config::ObjectiveKind;
    let e = &r.experiment;
    let (train_n, _) = e.dataset.name.sizes(&e.dataset.synthetic);
    let mut total = 0.0;
    if let Some(s) = &e.search {
        let n = train_n as f64 * e.dataset.train_portion;
        // α-step passes per image: discrete + relaxed for REBAR/RELAX, one for the others; doubled by a
        // paired validation pass for gen-gap; plus the one weight step.
        let per_obj = f64::from(s.estimator.evaluations());
        let obj = if s.objective.kind == ObjectiveKind::Gengap {
            2.0
        } else {
            1.0
        };
        let search_passes = per_obj * obj + 1.0;
        // random search then scores each candidate on the whole validation split: forwards only,
        // about a third of a forward + backward each
        let val_n = train_n as f64 - n;
        let scoring = f64::from(s.candidates.unwrap_or(0)) * val_n / 3.0;
        let one = n * (s.epochs.warmup as f64 + s.epochs.search as f64 * search_passes) + scoring;
        total += one * e.seeds.search.len() as f64;
    }
    if let Some(t) = &e.train {
        let trainings = if t.genotype.is_searched() {
            e.seeds.search.len() * e.seeds.train.len()
        } else {
            e.seeds.train.len()
        };
        let epochs = crate::config::TrainRecipe::of(t).epochs;
        total += train_n as f64 * f64::from(epochs) * trainings as f64;
    }
    total / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Tier;

    fn load(file: &str, tier: Tier, sets: &[&str]) -> Resolved {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        crate::config::load(
            &std::path::Path::new("experiments/paper").join(file),
            tier,
            &sets,
        )
        .unwrap()
    }

    fn c10(sets: &[&str]) -> Resolved {
        load("c10-darts-unas.yaml", Tier::Smoke, sets)
    }

    #[test]
    fn every_id_holds_the_dataset_fingerprint_and_a_shape_spans_the_seeds() {
        let r = c10(&["seeds.search=[0,1]"]);
        let (a, b) = (plan_with(&r, "data-a"), plan_with(&r, "data-b"));
        assert_eq!(a.len(), 4);
        for (x, y) in a.iter().zip(&b) {
            assert_ne!(x.run_id, y.run_id, "a changed dataset never reuses a run");
            assert_eq!(x.fingerprint, "data-a");
        }
        // Two search seeds: two ids, one shape.
        assert_ne!(a[0].run_id, a[1].run_id);
        assert_eq!(a[0].shape_id, a[1].shape_id);
        assert_ne!(a[0].shape_id, a[2].shape_id, "a training is another shape");
        // The search's id does not move with the training recipe.
        let r2 = c10(&["seeds.search=[0,1]", "train.epochs=3"]);
        let c = plan_with(&r2, "data-a");
        assert_eq!(a[0].run_id, c[0].run_id);
        assert_ne!(a[2].run_id, c[2].run_id);
        // The initialisation scheme is part of every id (runs from tch's default init are not these).
        for j in &a {
            assert!(
                j.identity.contains(r#""init":"pytorch-default""#),
                "{}",
                j.identity
            );
        }
        // plan() uses the dataset's real fingerprint.
        let real = plan(&r).unwrap();
        let fp = crate::data::identity::fingerprint(&r.experiment.dataset).unwrap();
        assert_eq!(real[0].run_id, plan_with(&r, &fp)[0].run_id);
    }

    #[test]
    fn a_random_sampling_experiment_trains_once_per_training_seed_and_its_seed_is_in_the_id() {
        let random = |sets: &[&str]| load("random-c10-darts.yaml", Tier::Paper, sets);
        let jobs = plan_with(&random(&[]), "d");
        assert_eq!(jobs.len(), 8, "8 random architectures, no search");
        assert!(jobs
            .iter()
            .all(|j| j.stage == Stage::Train && j.upstream.is_none()));
        let fixed = plan_with(&random(&["train.genotype_seed=3"]), "d");
        assert_ne!(
            jobs[0].run_id, fixed[0].run_id,
            "a fixed draw is another run"
        );
    }

    #[test]
    fn bf16_runs_have_ids_of_their_own_and_fp32_keeps_the_ids_it_had() {
        let ids = |sets: &[&str]| -> Vec<String> {
            plan_with(&c10(sets), "d")
                .into_iter()
                .map(|j| j.run_id)
                .collect()
        };
        let (default, fp32, bf16) = (ids(&[]), ids(&["precision=fp32"]), ids(&["precision=bf16"]));
        assert_eq!(default, fp32, "writing the default changes no id");
        for (a, b) in default.iter().zip(&bf16) {
            assert_ne!(a, b, "a bf16 run must not be taken for the fp32 one");
        }
        // the identity at fp32 is the one without the field (the ids finished runs already have)
        let r = c10(&[]);
        assert!(!stage_identity(&r, Stage::Search, Some(0), "d").contains("precision"));
    }
}
