//! `unas inspect genotype UNAS_PROXYLESS|PROXYLESS_GPU --dataset imagenet [--json]`: the network a
//! published ProxylessNAS-space genotype gives, block by block, with its parameters and ptflops-0.4 MACs.

use anyhow::{bail, Result};
use serde::Serialize;

use super::count;
use super::eval_net::skeleton;
use super::genotype::ProxylessGenotype;
use crate::config::GenotypeChoice;

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

/// Whether `name` is a ProxylessNAS-space genotype name.
pub fn is_proxyless(name: &str) -> bool {
    serde_json::from_value::<GenotypeChoice>(serde_json::Value::String(name.to_owned()))
        .ok()
        .and_then(ProxylessGenotype::from_choice)
        .is_some()
}

pub fn report(name: &str, dataset: &str) -> Result<ProxylessReport> {
    if dataset != "imagenet" {
        bail!("{name} is an ImageNet network of the ProxylessNAS space: use --dataset imagenet");
    }
    let choice: GenotypeChoice =
        serde_json::from_value(serde_json::Value::String(name.to_owned()))?;
    let Some(g) = ProxylessGenotype::from_choice(choice) else {
        bail!("{name} is not a ProxylessNAS-space genotype (UNAS_PROXYLESS, PROXYLESS_GPU)");
    };
    let classes = 1000;
    let macs = count::macs(&g, classes);
    Ok(ProxylessReport {
        genotype: name.to_owned(),
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
pub fn run(name: &str, dataset: &str, json: bool) -> Result<()> {
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
        assert!(is_proxyless("UNAS_PROXYLESS") && is_proxyless("PROXYLESS_GPU"));
        assert!(!is_proxyless("UNAS_CIFAR10") && !is_proxyless("nonsense"));
        let r = report("UNAS_PROXYLESS", "imagenet").unwrap();
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
        assert!(report("UNAS_PROXYLESS", "cifar10").is_err());
    }
}
