//! `unas inspect genotype UNAS_PROXYLESS|PROXYLESS_GPU --dataset imagenet [--json]`: the network a
//! published ProxylessNAS-space genotype gives, block by block, with its parameters and ptflops-0.4 MACs.

use anyhow::{bail, Result};
use serde::Serialize;

use super::count;
use super::eval_net::skeleton;
use super::genotype::ProxylessGenotype;
use crate::config::{DatasetName, GenotypeChoice};

#[derive(Debug, Serialize)]
pub struct BlockRow {
    pub block: usize,
    pub c_in: i64,
    pub c_out: i64,
    pub stride: i64,
    pub op: String,
}

#[derive(Debug, Serialize)]
pub struct ProxylessReport {
    pub genotype: String,
    pub classes: i64,
    pub params_m: f64,
    pub macs_m: f64,
    pub macs_conv_linear_m: f64,
    pub blocks: Vec<BlockRow>,
}

pub fn report(choice: GenotypeChoice, dataset: DatasetName) -> Result<ProxylessReport> {
    let name = serde_json::to_value(choice)?
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if dataset != DatasetName::Imagenet {
        bail!("{name} is an ImageNet network of the ProxylessNAS space: use --dataset imagenet");
    }
    let Some(g) = ProxylessGenotype::from_choice(choice) else {
        bail!("{name} is not a ProxylessNAS-space genotype (UNAS_PROXYLESS, PROXYLESS_GPU)");
    };
    let classes = 1000;
    let macs = count::macs(&g, classes);
    Ok(ProxylessReport {
        genotype: name,
        classes,
        params_m: count::params(&g, classes)? as f64 / 1e6,
        macs_m: macs.total() as f64 / 1e6,
        macs_conv_linear_m: macs.conv_linear as f64 / 1e6,
        blocks: g
            .blocks()
            .into_iter()
            .zip(skeleton())
            .enumerate()
            .map(|(i, (op, (c_in, c_out, stride)))| BlockRow {
                block: i + 1,
                c_in,
                c_out,
                stride,
                op: op.name(),
            })
            .collect(),
    })
}

/// Prints the report as a table, or as JSON with `json`.
pub fn run(name: GenotypeChoice, dataset: DatasetName, json: bool) -> Result<()> {
    let r = report(name, dataset)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    println!("genotype  {} (ProxylessNAS space, width 1.0)", r.genotype);
    println!("dataset   imagenet ({} classes)", r.classes);
    println!("params    {:.4} M", r.params_m);
    println!(
        "MACs      {:.2} M (ptflops-0.4 rules, 224×224, batch 1; conv + linear {:.2} M)",
        r.macs_m, r.macs_conv_linear_m
    );
    println!("block  in → out  stride  op");
    for b in &r.blocks {
        println!(
            "{:>5}  {:>3} → {:<3}  {:>6}  {}",
            b.block, b.c_in, b.c_out, b.stride, b.op
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_lists_the_skeleton_and_refuses_other_datasets_and_spaces() {
        assert!(report(GenotypeChoice::ProxylessGpu, DatasetName::Imagenet).is_ok());
        assert!(report(GenotypeChoice::UnasCifar10, DatasetName::Imagenet).is_err());
        let r = report(GenotypeChoice::UnasProxyless, DatasetName::Imagenet).unwrap();
        assert_eq!(r.blocks.len(), 21);
        let b13 = &r.blocks[12];
        assert_eq!((b13.c_in, b13.c_out, b13.stride), (112, 128, 1));
        assert_eq!(b13.op, "mic_5x5_e3");
        let strides: Vec<usize> = r
            .blocks
            .iter()
            .filter(|b| b.stride == 2)
            .map(|b| b.block)
            .collect();
        assert_eq!(strides, [1, 5, 9, 17]);
        assert!(report(GenotypeChoice::UnasProxyless, DatasetName::Cifar10).is_err());
    }
}
