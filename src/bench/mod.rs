//! `unas bench search` / `unas bench train`: throughput of the real loops on an experiment (default: the
//! paper's CIFAR-10 search, or the published UNAS CIFAR-10 cell's training, at the smoke tier), run into
//! a temporary results folder. Each figure is quoted as a ratio against a baseline measured in the same
//! process: for the search, its warm-up phase (the weight-only supernet step); for training, a bare
//! forward + backward + SGD step of the same network on a resident random batch of the same shape (the
//! ratio is the loop's efficiency: data, augmentation, logging and checkpoints included).

pub mod reference_names;
pub mod step;
pub mod torch_parity;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::config::{self, Tier};
use crate::results::provenance::peak_rss_mib;
use crate::results::{parquet, ResultsRoot, Table};
use crate::runner::{self, JobEnd};
use crate::text_table::TextTable;

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
    Some(v[v.len() / 2])
}

/// Median images/s per phase, from a run folder's steps table (the first block of each phase is
/// dropped as warm-up of the process when there is more than one).
fn per_phase(dir: &Path) -> Result<Vec<(String, usize, f64)>> {
    let df = parquet::read(&dir.join(Table::Steps.file_name()), Table::Steps)?;
    let phase = df.column("phase")?.str()?.clone();
    let ips = df.column("images_per_s")?.f64()?.clone();
    let mut out: Vec<(String, Vec<f64>)> = Vec::new();
    for i in 0..df.height() {
        let (Some(p), Some(v)) = (phase.get(i), ips.get(i)) else {
            continue;
        };
        match out.iter_mut().find(|(q, _)| q == p) {
            Some((_, vs)) => vs.push(v),
            None => out.push((p.to_owned(), vec![v])),
        }
    }
    Ok(out
        .into_iter()
        .filter_map(|(p, mut v)| {
            v.dedup(); // one value per block of logged steps
            let n = v.len();
            if n > 1 {
                v.remove(0);
            }
            median(v).map(|m| (p, n, m))
        })
        .collect())
}

/// What a bench compares the loop's phases against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Baseline {
    /// The search's own warm-up phase.
    Warmup,
    /// A bare training step of the trained network, timed after the run.
    BareStep,
}

/// Runs `file` at `tier` with `sets` and prints images/s per phase with ratios to `baseline`.
pub fn run(
    file: &Path,
    tier: Tier,
    sets: &[String],
    device: Option<config::DeviceChoice>,
    baseline_kind: Baseline,
) -> Result<()> {
    let r = config::load(file, tier, sets).map_err(|e| anyhow::anyhow!("{e}"))?;
    let dev = crate::device::resolve(device.unwrap_or(r.experiment.device))?;
    let tmp = std::env::temp_dir().join(format!("unas-bench-{}", std::process::id()));
    let root = ResultsRoot(tmp.clone());
    let reports = runner::run_experiment(&r, &root, dev, &runner::Options::default());
    let result = (|| -> Result<()> {
        let mut t = TextTable::new(&[
            "stage",
            "phase",
            "logged blocks",
            "median images/s",
            match baseline_kind {
                Baseline::Warmup => "ratio to warm-up",
                Baseline::BareStep => "ratio to a bare step",
            },
        ]);
        let mut baseline = None;
        let mut search_dir = None;
        let mut rows = Vec::new();
        for rep in &reports {
            if let JobEnd::Failed(why)
            | JobEnd::Unrecorded(why)
            | JobEnd::Taken(why)
            | JobEnd::Blocked(why) = &rep.end
            {
                bail!("{} stage failed: {why}", rep.stage);
            }
            let dir: PathBuf = rep.dir.as_ref().context("run folder")?.path().to_path_buf();
            if rep.stage == "search" {
                search_dir = Some(dir.clone());
            }
            rows.push((rep.stage, per_phase(&dir)?));
        }
        let mut bare = None;
        if baseline_kind == Baseline::BareStep {
            let ips = bare_train_step(&r, search_dir.as_deref(), dev)?;
            baseline = Some(ips);
            bare = Some(ips);
        }
        for (stage, phases) in rows {
            for (phase, n, m) in phases {
                if phase == "warmup" && baseline_kind == Baseline::Warmup {
                    baseline = Some(m);
                }
                let ratio = baseline
                    .map(|b| format!("{:.2}×", m / b))
                    .unwrap_or_default();
                t.push(vec![
                    stage.into(),
                    phase,
                    n.to_string(),
                    format!("{m:.1}"),
                    ratio,
                ]);
            }
        }
        println!(
            "{} at tier {} on {} ({} threads){}",
            r.experiment.name,
            r.tier,
            crate::device::describe(dev),
            tch::get_num_threads(),
            if cfg!(debug_assertions) {
                ", debug build"
            } else {
                ", release build"
            }
        );
        if let Some(b) = bare {
            t.push(vec![
                "train".into(),
                "bare step (baseline)".into(),
                String::new(),
                format!("{b:.1}"),
                "1.00×".into(),
            ]);
        }
        print!("{}", t.render());
        if let Some(m) = peak_rss_mib() {
            println!("peak resident memory of the process: {m:.0} MiB");
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

/// Median images/s of a bare forward + backward + SGD step of the network the experiment's training
/// stage trains (same genotype, network, batch and image size) on a resident random batch.
fn bare_train_step(
    r: &config::Resolved,
    search_dir: Option<&Path>,
    dev: tch::Device,
) -> Result<f64> {
    use crate::config::DatasetName;
    use tch::{nn, nn::OptimizerConfig, Kind, Tensor};

    let e = &r.experiment;
    let t = crate::config::TrainRecipe::of(
        e.train
            .as_ref()
            .context("the experiment has no `train` section")?,
    );
    let classes = match e.dataset.name {
        DatasetName::Cifar10 => 10,
        DatasetName::Cifar100 => 100,
        DatasetName::Imagenet => 1000,
        DatasetName::Synthetic => i64::from(e.dataset.synthetic.classes),
    };
    tch::manual_seed(0);
    let vs = nn::VarStore::new(dev);
    // seed 0: a `genotype: random` experiment is timed on the architecture its seed-0 run trains
    let net = crate::nas::space::trained_net::build(&vs.root(), e, &t, search_dir, classes, 0)?;
    let mut opt = nn::Sgd {
        momentum: t.momentum,
        ..Default::default()
    }
    .build(&vs, t.lr)?;
    let b = i64::from(t.batch);
    let side = e.dataset.shape().side();
    let x = Tensor::randn([b, 3, side, side], (Kind::Float, dev));
    let y = Tensor::randint(classes, [b], (Kind::Int64, dev));
    let aux_w = t.auxiliary_weight;
    let mut times = Vec::new();
    for i in 0..6 {
        let start = std::time::Instant::now();
        let (logits, aux) = net.forward_t(&x, true);
        let mut loss = logits.cross_entropy_for_logits(&y);
        if let Some(aux) = aux {
            loss += aux.cross_entropy_for_logits(&y) * aux_w;
        }
        opt.backward_step(&loss);
        let _ = loss.double_value(&[]); // wait for the device
        if i > 0 {
            times.push(b as f64 / start.elapsed().as_secs_f64());
        }
    }
    median(times).context("no step timed")
}
