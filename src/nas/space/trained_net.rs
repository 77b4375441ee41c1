//! The network a training stage trains, whichever space its genotype comes from: a DARTS-space cell
//! stacked as `DartsEvalNet` (CIFAR or ImageNet stem, auxiliary head, drop-path), or a
//! ProxylessNAS-space `ProxylessEvalNet`. Also its size for the summary (parameters, MACs).

use std::path::Path;

use anyhow::{Context, Result};
use tch::{nn, Tensor};

use crate::autocast::Amp;
use crate::config::{Experiment, GenotypeChoice, Recipe, SpaceName};
use crate::config::{TrainRecipe, Width};
use crate::nas::space::darts::{self, DartsEvalNet, EvalConfig, Genotype, StemKind};
use crate::nas::space::proxyless::{self, ProxylessEvalNet, ProxylessGenotype};
use crate::nas::space::uniform;
use crate::results::layout;

pub enum EvalNet {
    Darts(DartsEvalNet),
    Proxyless(ProxylessEvalNet),
}

impl EvalNet {
    /// Logits and, where the network has one, the auxiliary head's logits (training mode only).
    pub fn forward_t(&self, x: &Tensor, train: bool) -> (Tensor, Option<Tensor>) {
        match self {
            EvalNet::Darts(n) => n.forward_t(x, train),
            EvalNet::Proxyless(n) => (n.forward_t(x, train), None),
        }
    }

    /// Drop-path probability for the coming epoch (DARTS cells; the ProxylessNAS recipe has none).
    pub fn set_drop_path(&mut self, p: f64) {
        if let EvalNet::Darts(n) = self {
            n.set_drop_path(p);
        }
    }
}

/// A built network with what the summary reports of it.
pub struct Built {
    pub net: EvalNet,
    /// Parameters in millions (auxiliary head excluded).
    pub params_m: f64,
    /// ptflops MACs in millions at 224×224 (ImageNet networks only).
    pub macs_m: Option<f64>,
    /// Width C of a DARTS network (chosen automatically with `channels: auto`).
    pub channels: Option<i64>,
    /// The trained genotype as JSON (written to the run's `genotype.json`).
    pub genotype_json: String,
    /// The precision of the forward passes (`precision` of the experiment).
    pub amp: Amp,
}

impl Built {
    /// [`EvalNet::forward_t`] in the experiment's precision (logits back in fp32).
    pub fn forward_t(&self, x: &Tensor, train: bool) -> (Tensor, Option<Tensor>) {
        let d = x.device();
        let (logits, aux) = self.amp.run(d, || self.net.forward_t(x, train));
        (Amp::fp32(logits), aux.map(Amp::fp32))
    }
}

/// The DARTS evaluation network a (resolved) recipe trains: the ImageNet stem for the ImageNet
/// recipes, and with `channels: auto` the largest even width under the MAC budget (§6.2).
pub fn darts_config(t: &TrainRecipe, genotype: &Genotype, classes: i64) -> Result<EvalConfig> {
    let layers = i64::from(t.layers);
    let stem = match t.recipe {
        Recipe::Cifar => StemKind::Cifar,
        Recipe::ImagenetDarts | Recipe::ImagenetProxyless => StemKind::Imagenet,
    };
    let channels = match t.channels {
        // §6.2: the largest even C in [30, 70) under the MAC budget (ptflops rule, 1000 classes).
        Width::Auto => {
            let c = darts::count::auto_width(genotype, layers, t.max_macs_m)?;
            tracing::info!(channels = c, "automatic width");
            c
        }
        Width::Fixed(c) => i64::from(c),
    };
    Ok(EvalConfig {
        dataset: stem,
        channels,
        layers,
        classes,
        auxiliary: t.auxiliary_weight > 0.0,
        drop_path_prob: t.drop_path,
    })
}

/// The searched genotype's JSON from the search run folder.
fn searched(search_dir: Option<&Path>) -> Result<(String, std::path::PathBuf)> {
    let dir = search_dir.context("a searched genotype needs its search run")?;
    let path = dir.join(layout::GENOTYPE);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading the searched genotype {}", path.display()))?;
    Ok((text, path))
}

/// The seed of a `genotype: random` draw: `train.genotype_seed`, or else the training run's seed.
pub fn draw_seed(t: &TrainRecipe, train_seed: u64) -> u64 {
    t.genotype_seed.unwrap_or(train_seed)
}

/// Builds the network of `t.genotype` (a published one, one drawn uniformly with
/// [`draw_seed`]`(t, train_seed)`, or the search's from `search_dir`) under `vs`.
pub fn build(
    vs: &nn::Path,
    e: &Experiment,
    t: &TrainRecipe,
    search_dir: Option<&Path>,
    classes: i64,
    train_seed: u64,
) -> Result<Built> {
    let mut rng = uniform::stream(draw_seed(t, train_seed), 0);
    match e.space.name {
        SpaceName::Darts => {
            let genotype = match t.genotype {
                GenotypeChoice::Random => uniform::darts(&mut rng, e.space.ops as usize)?,
                GenotypeChoice::Search => {
                    let (text, path) = searched(search_dir)?;
                    let g: Genotype = serde_json::from_str(&text)
                        .with_context(|| format!("parsing {}", path.display()))?;
                    g.validate()?;
                    g
                }
                other => Genotype::from_choice(other)
                    .with_context(|| format!("{other:?} is not a DARTS-space genotype"))?,
            };
            let cfg = darts_config(t, &genotype, classes)?;
            let net = DartsEvalNet::new(vs, &genotype, &cfg)?;
            Ok(Built {
                net: EvalNet::Darts(net),
                params_m: darts::count::params_m(&genotype, &cfg)?,
                macs_m: (cfg.dataset == StemKind::Imagenet)
                    .then(|| darts::count::macs(&genotype, &cfg) as f64 / 1e6),
                channels: Some(cfg.channels),
                genotype_json: serde_json::to_string_pretty(&genotype)?,
                amp: Amp::new(e.precision)?,
            })
        }
        SpaceName::Proxyless => {
            // The evaluation network is trained at width 1.0 (spec §6.3): `space.width_multiplier`
            // sizes the search supernet only.
            let genotype = match t.genotype {
                GenotypeChoice::Random => uniform::proxyless(&mut rng)?,
                GenotypeChoice::Search => {
                    let (text, path) = searched(search_dir)?;
                    serde_json::from_str::<ProxylessGenotype>(&text)
                        .with_context(|| format!("parsing {}", path.display()))?
                }
                other => ProxylessGenotype::from_choice(other)
                    .with_context(|| format!("{other:?} is not a ProxylessNAS-space genotype"))?,
            };
            let net = ProxylessEvalNet::new(vs, &genotype, classes)?;
            Ok(Built {
                net: EvalNet::Proxyless(net),
                params_m: proxyless::count::params(&genotype, classes)? as f64 / 1e6,
                macs_m: Some(proxyless::count::macs(&genotype, classes).total() as f64 / 1e6),
                channels: None,
                genotype_json: serde_json::to_string_pretty(&genotype)?,
                amp: Amp::new(e.precision)?,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Tier;

    /// The genotype `genotype: random` trains for training seed `seed` (with `--set`s applied).
    fn drawn(sets: &[&str], seed: u64) -> String {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        let r = crate::config::load(
            Path::new("experiments/paper/random-c10-darts.yaml"),
            Tier::Smoke,
            &sets,
        )
        .unwrap();
        let e = &r.experiment;
        let t = TrainRecipe::of(e.train.as_ref().unwrap());
        let vs = nn::VarStore::new(tch::Device::Cpu);
        build(&vs.root(), e, &t, None, 10, seed)
            .unwrap()
            .genotype_json
    }

    #[test]
    fn each_training_seed_draws_its_own_architecture_unless_a_genotype_seed_is_given() {
        let (a, b) = (drawn(&[], 0), drawn(&[], 1));
        assert_ne!(a, b, "two training seeds, two architectures");
        assert_eq!(
            a,
            drawn(&[], 0),
            "the same seed draws the same architecture"
        );
        let want = uniform::darts(&mut uniform::stream(5, 0), 7).unwrap();
        for seed in [0, 1] {
            let g: Genotype =
                serde_json::from_str(&drawn(&["train.genotype_seed=5"], seed)).unwrap();
            assert_eq!(
                g, want,
                "genotype_seed 5 fixes the draw for training seed {seed}"
            );
        }
    }
}
