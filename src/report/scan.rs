//! Finds every run folder under `results/runs` (walkdir) and reads what the stages wrote about it:
//! `status.json`, `provenance.json`, the resolved `config.yaml` (through a light serde view of its own,
//! so a report never depends on the training layer) and `genotype.json`. Nothing here reads Parquet;
//! [`super::frames`] does, for the runs found here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use walkdir::WalkDir;

use crate::config::{Estimator, ObjectiveKind, Protocol};
use crate::results::layout::{CONFIG, GENOTYPE, PROVENANCE, STATUS};
use crate::results::provenance::Provenance;
use crate::results::{read_state, Damaged, State};

/// The part of a run's resolved `config.yaml` that the report reads. Unknown keys are ignored on
/// purpose: the report must keep reading runs written by older and newer versions of the schema.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct RunConfig {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub dataset: ConfigDataset,
    #[serde(default)]
    pub space: ConfigSpace,
    #[serde(default)]
    pub search: Option<ConfigSearch>,
    #[serde(default)]
    pub train: Option<ConfigTrain>,
    #[serde(default)]
    pub seeds: ConfigSeeds,
    #[serde(default)]
    pub protocol: Protocol,
    #[serde(default)]
    pub deviations: Vec<String>,
    /// The grid of the sweep the run is a variant of (`field.path: [values]`).
    #[serde(default)]
    pub sweep: Option<BTreeMap<String, Vec<serde_json::Value>>>,
    /// The experiment whose `sweep:` made this variant.
    #[serde(default)]
    pub sweep_of: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct ConfigDataset {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub synthetic: Option<ConfigSynthetic>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct ConfigSynthetic {
    #[serde(default)]
    pub like: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct ConfigSpace {
    #[serde(default)]
    pub name: String,
}

#[derive(Clone, Debug, Deserialize)]
pub(crate) struct ConfigSearch {
    pub estimator: Estimator,
    pub objective: ConfigObjective,
    #[serde(default)]
    pub epochs: Option<ConfigSearchEpochs>,
}

#[derive(Clone, Debug, Deserialize)]
pub(crate) struct ConfigSearchEpochs {
    #[serde(default)]
    pub warmup: u32,
}

#[derive(Clone, Debug, Deserialize)]
pub(crate) struct ConfigObjective {
    pub kind: ObjectiveKind,
}

#[derive(Clone, Debug, Deserialize)]
pub(crate) struct ConfigTrain {
    #[serde(default)]
    pub recipe: String,
    #[serde(default = "search_genotype")]
    pub genotype: String,
    /// Every other field of the resolved `train:` section (epochs, widths, drop-path, ...): what two
    /// runs must share to have been trained with the same recipe ([`ConfigTrain::recipe_fields`]).
    #[serde(flatten)]
    pub rest: BTreeMap<String, serde_json::Value>,
}

impl ConfigTrain {
    /// The training recipe as resolved, without what only chooses the architecture
    /// (`genotype_seed`) or how a step is launched (`cuda_graphs`): equal for two runs exactly when
    /// their networks were trained the same way.
    pub(crate) fn recipe_fields(&self) -> BTreeMap<String, serde_json::Value> {
        let mut r = self.rest.clone();
        r.remove("genotype_seed");
        r.remove("cuda_graphs");
        r.insert(
            "recipe".into(),
            serde_json::Value::String(self.recipe.clone()),
        );
        r
    }
}

fn search_genotype() -> String {
    "search".into()
}

#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct ConfigSeeds {
    #[serde(default)]
    pub search: Vec<u64>,
    #[serde(default)]
    pub train: Vec<u64>,
}

impl RunConfig {
    /// True when the trained architecture is the one this experiment's search derives.
    pub(crate) fn trains_searched(&self) -> bool {
        self.train.as_ref().is_some_and(|t| t.genotype == "search")
    }

    /// True when the trained architectures are drawn uniformly from the space (`genotype: random`).
    pub(crate) fn trains_random(&self) -> bool {
        self.train.as_ref().is_some_and(|t| t.genotype == "random")
    }
}

/// One run folder and what it says about itself.
#[derive(Clone, Debug)]
pub(crate) struct Run {
    pub dir: PathBuf,
    pub experiment: String,
    pub tier: String,
    pub stage: String,
    pub seed: u64,
    pub run_id: String,
    pub config_id: String,
    /// What its `status.json` records, or the file of the folder that cannot be read.
    pub state: Result<State, Damaged>,
    pub provenance: Option<Provenance>,
    pub config: Option<RunConfig>,
    /// The resolved config as written (shown on the experiment's page).
    pub config_text: Option<String>,
    pub genotype: Option<serde_json::Value>,
}

impl Run {
    /// Finished, with every file readable.
    pub(crate) fn done(&self) -> bool {
        self.state == Ok(State::Done)
    }

    /// The state's word (`damaged` for a folder with a file that cannot be read).
    pub(crate) fn label(&self) -> &'static str {
        match &self.state {
            Ok(s) => s.label(),
            Err(_) => "damaged",
        }
    }

    /// The reason in words: the recorded one, or the damaged file and the way out.
    pub(crate) fn detail(&self) -> String {
        match &self.state {
            Ok(s) => s.detail(),
            Err(damaged) => damaged.to_string(),
        }
    }

    /// The device the run used, in words (`cpu`, `cuda:0 (NVIDIA H200)`).
    pub(crate) fn device(&self) -> String {
        match &self.provenance {
            Some(p) => match &p.gpu_name {
                Some(g) if !g.is_empty() => format!("{} ({g})", p.device),
                _ => p.device.clone(),
            },
            None => "unknown device".into(),
        }
    }
}

/// Every run found, sorted by experiment, tier, stage, seed.
#[derive(Clone, Debug, Default)]
pub(crate) struct Scan {
    pub root: PathBuf,
    pub runs: Vec<Run>,
}

/// The folder names `<stage>-seed<seed>-<id>` the layout gives a run (used when provenance is missing).
fn parse_dir_name(dir: &Path) -> (String, u64, String) {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut parts = name.splitn(3, '-');
    let stage = parts.next().unwrap_or("?").to_owned();
    let seed = parts
        .next()
        .and_then(|s| s.strip_prefix("seed"))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let id = parts.next().unwrap_or("?").to_owned();
    (stage, seed, id)
}

/// The run's state; `None` for a folder with no `status.json` yet (not a run).
fn state_of(dir: &Path) -> Option<Result<State, Damaged>> {
    read_state(dir).map(|s| s.map(|s| s.state)).transpose()
}

fn read_run(dir: &Path) -> Option<Run> {
    let state = state_of(dir)?;
    let provenance: Option<Provenance> = std::fs::read_to_string(dir.join(PROVENANCE))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    let config_text = std::fs::read_to_string(dir.join(CONFIG)).ok();
    let config: Option<RunConfig> = config_text
        .as_deref()
        .and_then(|t| serde_saphyr::from_str(t).ok());
    let genotype = std::fs::read_to_string(dir.join(GENOTYPE))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    // The layout is runs/<experiment>/<tier>/<stage>-seed<seed>-<id>; provenance says it better.
    let (stage, seed, short_id) = parse_dir_name(dir);
    let tier_dir = dir.parent();
    let tier = tier_dir
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "?".into());
    let experiment = tier_dir
        .and_then(|p| p.parent())
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "?".into());
    let (experiment, tier, stage, seed, run_id, config_id) = match &provenance {
        Some(p) => (
            p.experiment.clone(),
            p.tier.clone(),
            p.stage.clone(),
            p.seed,
            p.run_id.clone(),
            p.config_id.clone(),
        ),
        None => (experiment, tier, stage, seed, short_id, String::new()),
    };
    Some(Run {
        dir: dir.to_path_buf(),
        experiment,
        tier,
        stage,
        seed,
        run_id,
        config_id,
        state,
        provenance,
        config,
        config_text,
        genotype,
    })
}

/// Every run folder (a folder with a `status.json`) under `runs`; an absent folder is an empty scan.
pub(crate) fn scan(runs: &Path) -> Scan {
    let mut out = Scan {
        root: runs.to_path_buf(),
        runs: Vec::new(),
    };
    if !runs.is_dir() {
        return out;
    }
    for entry in WalkDir::new(runs)
        .min_depth(1)
        .max_depth(4)
        .into_iter()
        .flatten()
    {
        if entry.file_type().is_file() && entry.file_name() == STATUS {
            if let Some(run) = entry.path().parent().and_then(read_run) {
                out.runs.push(run);
            }
        }
    }
    out.runs.sort_by(|a, b| {
        (&a.experiment, &a.tier, &a.stage, a.seed, &a.run_id).cmp(&(
            &b.experiment,
            &b.tier,
            &b.stage,
            b.seed,
            &b.run_id,
        ))
    });
    out
}

/// The runs of one experiment at one tier with one resolved config: the unit every table row,
/// figure and page is made from. Numbers of different tiers or configs are never pooled.
#[derive(Clone, Debug)]
pub(crate) struct Group {
    pub experiment: String,
    pub tier: String,
    pub config_id: String,
    /// What the row is called: the experiment's name, plus the config id where one experiment ran
    /// with more than one resolved config at the same tier (`--set` overrides).
    pub label: String,
    pub config: RunConfig,
    pub config_text: String,
    pub runs: Vec<Run>,
}

impl Group {
    pub(crate) fn key(&self) -> String {
        format!("{}|{}|{}", self.experiment, self.tier, self.config_id)
    }

    pub(crate) fn stage_runs<'a>(&'a self, stage: &'a str) -> impl Iterator<Item = &'a Run> + 'a {
        self.runs.iter().filter(move |r| r.stage == stage)
    }

    /// The devices its runs used, in words, without repeats.
    pub(crate) fn devices(&self) -> Vec<String> {
        let mut d: Vec<String> = self.runs.iter().map(Run::device).collect();
        d.sort();
        d.dedup();
        d
    }

    pub(crate) fn is_smoke(&self) -> bool {
        self.tier == "smoke"
    }
}

/// Groups the scan into (experiment, tier, config id); groups whose config could not be read are
/// kept with an empty config (their runs still appear in the status table).
pub(crate) fn groups(scan: &Scan) -> Vec<Group> {
    let mut by_key: BTreeMap<(String, String, String), Vec<Run>> = BTreeMap::new();
    for r in &scan.runs {
        by_key
            .entry((r.experiment.clone(), r.tier.clone(), r.config_id.clone()))
            .or_default()
            .push(r.clone());
    }
    let mut configs_per_exp: BTreeMap<(String, String), usize> = BTreeMap::new();
    for (e, t, _) in by_key.keys() {
        *configs_per_exp.entry((e.clone(), t.clone())).or_default() += 1;
    }
    by_key
        .into_iter()
        .map(|((experiment, tier, config_id), runs)| {
            let config = runs
                .iter()
                .find_map(|r| r.config.clone())
                .unwrap_or_else(|| RunConfig {
                    name: experiment.clone(),
                    ..RunConfig::default()
                });
            let config_text = runs
                .iter()
                .find_map(|r| r.config_text.clone())
                .unwrap_or_default();
            let label = if configs_per_exp[&(experiment.clone(), tier.clone())] > 1 {
                format!(
                    "{experiment} (config {})",
                    &config_id[..config_id.len().min(8)]
                )
            } else {
                experiment.clone()
            };
            Group {
                experiment,
                tier,
                config_id,
                label,
                config,
                config_text,
                runs,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_folder_without_provenance_is_named_from_its_path() {
        let (stage, seed, id) =
            parse_dir_name(Path::new("runs/e/smoke/train-seed3-abcdef0123456789"));
        assert_eq!(
            (stage.as_str(), seed, id.as_str()),
            ("train", 3, "abcdef0123456789")
        );
    }
}
