//! Random search with weight sharing (`search.estimator: random_ws`, Li & Talwalkar 2019) through the
//! binary, on the tiny synthetic search of the runner's tests: the architecture logits never move
//! (every epoch's `arch` rows are the zero initialisation), the candidates table holds K scored
//! architectures of which exactly the best is marked chosen, and that one is the search's genotype.

mod common;

use common::{dir_of, output, show, suite, tiny, unas};
use polars::prelude::*;
use unas::results::{parquet, Table};

fn f64s(df: &DataFrame, name: &str) -> Vec<f64> {
    df.column(name)
        .unwrap()
        .f64()
        .unwrap()
        .into_no_null_iter()
        .collect()
}

#[test]
fn random_search_keeps_the_logits_uniform_and_returns_its_best_candidate() {
    let text = tiny("rs-ws")
        .replace("estimator: gsm", "estimator: random_ws, candidates: 5")
        .lines()
        .filter(|l| !l.starts_with("train:"))
        .collect::<Vec<_>>()
        .join("\n");
    let dir = suite(&[("rs-ws", text)]);
    let results = tempfile::tempdir().unwrap();
    let file = dir.path().join("rs-ws.yaml").display().to_string();
    let out = output(unas(results.path(), &["run", &file, "--tier", "paper"]));
    assert!(out.status.success(), "{}", show(&out));
    let run = dir_of(results.path(), "rs-ws", "search").expect("the search's folder");

    // The logits never move: every logit of every epoch is the zero initialisation, every
    // probability uniform over its selector's choices.
    let arch = parquet::read(&run.join(Table::Arch.file_name()), Table::Arch).unwrap();
    assert!(arch.height() > 0);
    assert!(f64s(&arch, "logit").iter().all(|&l| l == 0.0), "{arch}");
    let per_selector = arch
        .clone()
        .lazy()
        .group_by([
            col("epoch"),
            col("cell_type"),
            col("node"),
            col("selector"),
            col("key"),
        ])
        .agg([col("prob").min().alias("lo"), col("prob").max().alias("hi")])
        .collect()
        .unwrap();
    for (lo, hi) in f64s(&per_selector, "lo")
        .iter()
        .zip(f64s(&per_selector, "hi"))
    {
        assert!(
            (hi - lo).abs() < 1e-6,
            "a selector is not uniform: {lo} .. {hi}"
        );
    }

    // K candidates; exactly one chosen, the one with the best validation top-1 (ties: lower loss).
    let c = parquet::read(&run.join(Table::Candidates.file_name()), Table::Candidates).unwrap();
    assert_eq!(c.height(), 5);
    let (acc, loss) = (f64s(&c, "acc_val_pct"), f64s(&c, "loss_val"));
    let flags = c.column("chosen").unwrap().bool().unwrap().clone();
    let chosen: Vec<bool> = (0..c.height()).map(|i| flags.get(i).unwrap()).collect();
    assert_eq!(chosen.iter().filter(|&&x| x).count(), 1);
    let i = chosen.iter().position(|&x| x).unwrap();
    for j in 0..acc.len() {
        assert!(
            acc[j] < acc[i] || (acc[j] == acc[i] && loss[j] >= loss[i]),
            "candidate {j} ({}, {}) beats the chosen {i} ({}, {})",
            acc[j],
            loss[j],
            acc[i],
            loss[i]
        );
    }
    let names = c.column("genotype").unwrap().str().unwrap().clone();
    let genotypes: Vec<String> = (0..c.height())
        .map(|i| names.get(i).unwrap().to_owned())
        .collect();
    let returned: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("genotype.json")).unwrap()).unwrap();
    let best: serde_json::Value = serde_json::from_str(&genotypes[i]).unwrap();
    assert_eq!(returned, best, "the search returns its best candidate");
    let distinct: std::collections::BTreeSet<&String> = genotypes.iter().collect();
    assert!(distinct.len() > 1, "the candidates are drawn, not repeated");
}
