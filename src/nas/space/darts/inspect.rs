//! `unas inspect genotype NAME --dataset D [--json]`: the evaluation network a published genotype gives
//! on a dataset, with its width, parameters (M, auxiliary head excluded) and ptflops-0.4 MACs.

use anyhow::{bail, Context, Result};
use serde::Serialize;

use super::count;
use super::eval_net::EvalConfig;
use super::genotype::{Genotype, NodeGene};
use crate::config::{DatasetName, GenotypeChoice};

/// The MAC budget of the automatic ImageNet width (`--max_M_flops 600`, spec §6.2).
pub const IMAGENET_MAX_MACS_M: f64 = 600.0;

/// What `inspect genotype` reports.
#[derive(Debug, Serialize)]
pub struct GenotypeReport {
    pub genotype: String,
    pub dataset: DatasetName,
    pub classes: i64,
    pub channels: i64,
    /// Whether `channels` was chosen by the MAC budget (ImageNet).
    pub auto_width: bool,
    pub layers: i64,
    pub params_m: f64,
    pub macs_m: f64,
    pub cells: Genotype,
}

/// The evaluation network of `name` on `dataset`: CIFAR C = 36, L = 20; ImageNet L = 14 at the largest
/// even C under 600M MACs.
pub fn genotype_report(name: GenotypeChoice, dataset: DatasetName) -> Result<GenotypeReport> {
    let genotype = Genotype::from_choice(name).with_context(|| {
        format!("{name:?} is not a DARTS-space genotype; use UNAS_CIFAR10, UNAS_CIFAR100, UNAS_IMAGENET or DARTS_V2")
    })?;
    let cfg = match dataset {
        DatasetName::Cifar10 => EvalConfig::cifar(10),
        DatasetName::Cifar100 => EvalConfig::cifar(100),
        DatasetName::Imagenet => {
            let c = count::auto_width(&genotype, 14, IMAGENET_MAX_MACS_M)?;
            EvalConfig::imagenet(1000, c)
        }
        DatasetName::Synthetic => {
            bail!(
                "inspect reports the paper's networks: use --dataset cifar10, cifar100 or imagenet"
            )
        }
    };
    Ok(GenotypeReport {
        genotype: serde_json::to_value(name)?
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        dataset,
        classes: cfg.classes,
        channels: cfg.channels,
        auto_width: dataset == DatasetName::Imagenet,
        layers: cfg.layers,
        params_m: count::params_m(&genotype, &cfg)?,
        macs_m: count::macs(&genotype, &cfg) as f64 / 1e6,
        cells: genotype,
    })
}

fn cell_line(nodes: &[NodeGene]) -> String {
    nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            format!(
                "n{}=({} {}, {} {})",
                i + 2,
                n.ops[0],
                n.inputs[0],
                n.ops[1],
                n.inputs[1]
            )
        })
        .collect::<Vec<_>>()
        .join("  ")
}

/// Prints the report as a table, or as JSON with `json`.
pub fn run(name: GenotypeChoice, dataset: DatasetName, json: bool) -> Result<()> {
    let r = genotype_report(name, dataset)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    let width = if r.auto_width {
        format!(
            "{} (largest even C in [30, 70) under {IMAGENET_MAX_MACS_M}M MACs)",
            r.channels
        )
    } else {
        r.channels.to_string()
    };
    let side = if r.dataset == DatasetName::Imagenet {
        224
    } else {
        32
    };
    println!("genotype  {}", r.genotype);
    let dataset = serde_json::to_value(r.dataset)?;
    println!(
        "dataset   {} ({} classes)",
        dataset.as_str().unwrap_or("?"),
        r.classes
    );
    println!("width C   {width}");
    println!("layers    {}", r.layers);
    println!("params    {:.4} M (auxiliary head excluded)", r.params_m);
    println!(
        "MACs      {:.2} M (ptflops-0.4 rules, {side}×{side}, batch 1)",
        r.macs_m
    );
    println!("normal    {}", cell_line(&r.cells.normal));
    println!("reduce    {}", cell_line(&r.cells.reduce));
    Ok(())
}
