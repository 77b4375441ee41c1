//! `unas run` on an ImageNet folder (JPEGs in `train/<wnid>/`, `val/<wnid>/`), the paths the smoke
//! tier's synthetic stand-in does not take: folder-backed search with one architecture per sub-batch,
//! then the ImageNet-DARTS recipe (ImageNet stem, label smoothing, top-5, MACs), with an unreadable JPEG
//! skipped and counted in the run record.

use std::path::{Path, PathBuf};

use assert_cmd::cargo::CommandCargoExt;
use polars::prelude::*;
use unas::data::imagenet::write_jpeg_folder;
use unas::results::parquet;
use unas::results::Table;

const WNIDS: [&str; 6] = ["n01", "n02", "n03", "n04", "n05", "n06"];

fn experiment(root: &Path) -> String {
    format!(
        r#"name: imagenet-folder
dataset: {{name: imagenet, root: "{}"}}
space: {{name: darts, layers: 3, channels: 4, ops: 5}}
search:
  estimator: rebar
  objective: {{kind: gengap, lambda: 0.5, pair_penalty: 0.2}}
  soften_eps: 0.08
  sampling: per_batch
  sub_batches: 2
  epochs: {{warmup: 1, search: 1}}
  batch: 4
  lr: {{weights: 3.0e-4, arch: 1.0e-3, scale: none}}
train: {{recipe: imagenet_darts, genotype: search, epochs: 1, warmup_epochs: 0, batch: 8, channels: 8, layers: 3}}
seeds: {{search: [0], train: [0]}}
device: cpu
"#,
        root.display()
    )
}

/// The run folder whose summary row is of `phase` (search or train).
fn run_of(results: &Path, phase: &str) -> PathBuf {
    let base = results.join("runs/imagenet-folder/paper");
    std::fs::read_dir(&base)
        .unwrap()
        .map(|d| d.unwrap().path())
        .find(|p| {
            parquet::read(&p.join(Table::Summary.file_name()), Table::Summary)
                .map(|df| col_str(&df, "stage") == [phase])
                .unwrap_or(false)
        })
        .unwrap_or_else(|| panic!("no {phase} run under {}", base.display()))
}

fn col_f64(df: &DataFrame, name: &str) -> Vec<Option<f64>> {
    let ca = df.column(name).unwrap().f64().unwrap().clone();
    (0..ca.len()).map(|i| ca.get(i)).collect()
}

fn col_str(df: &DataFrame, name: &str) -> Vec<String> {
    let ca = df.column(name).unwrap().str().unwrap().clone();
    (0..ca.len())
        .map(|i| ca.get(i).unwrap_or("").to_owned())
        .collect()
}

#[test]
fn an_imagenet_folder_goes_search_then_imagenet_darts_training_and_counts_a_broken_jpeg() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("imagenet");
    write_jpeg_folder(&root.join("train"), &WNIDS, 6, 1).unwrap();
    write_jpeg_folder(&root.join("val"), &WNIDS, 2, 2).unwrap();
    // One training file that is not a JPEG at all.
    std::fs::write(root.join("train/n03/n03_0.JPEG"), b"not a jpeg").unwrap();
    let file = tmp.path().join("imagenet-folder.yaml");
    std::fs::write(&file, experiment(&root)).unwrap();
    let results = tmp.path().join("results");

    let out = std::process::Command::cargo_bin("unas")
        .unwrap()
        .arg("--results")
        .arg(&results)
        .arg("run")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{:?}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Search: 36 images → 32 train / 4 validation (train_portion 0.9); batch 4 → 8 steps an epoch,
    // minus none for the broken file (it only shrinks its batch).
    let search = run_of(&results, "search");
    let steps = parquet::read(&search.join(Table::Steps.file_name()), Table::Steps).unwrap();
    let phases = col_str(&steps, "phase");
    assert_eq!(phases.iter().filter(|p| *p == "warmup").count(), 8);
    assert_eq!(phases.iter().filter(|p| *p == "search").count(), 8);
    let genotype: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(search.join("genotype.json")).unwrap())
            .unwrap();
    let text = genotype.to_string();
    for excluded in ["avg_pool_3x3", "sep_conv_7x7"] {
        assert!(
            !text.contains(excluded),
            "ops: 5 excludes {excluded}: {text}"
        );
    }
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(search.join("data.json")).unwrap()).unwrap();
    let seen = record["unreadable_images"]["train"].as_u64().unwrap()
        + record["unreadable_images"]["validation"].as_u64().unwrap();
    assert!(
        seen >= 1,
        "the broken JPEG is counted by the search: {record}"
    );

    // Training: the searched cell with the ImageNet stem; one epoch over 36 (−1) images.
    let train = run_of(&results, "train");
    let summary = parquet::read(&train.join(Table::Summary.file_name()), Table::Summary).unwrap();
    let top1 = col_f64(&summary, "acc_test_top1_pct")[0].unwrap();
    let top5 = col_f64(&summary, "acc_test_top5_pct")[0].expect("six classes give a top-5");
    assert!(
        (0.0..=100.0).contains(&top1) && top5 >= top1,
        "{top1} {top5}"
    );
    let macs = col_f64(&summary, "macs_m")[0].expect("ImageNet recipes report MACs");
    assert!(macs > 0.0, "{macs}");
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(train.join("data.json")).unwrap()).unwrap();
    assert_eq!(record["unreadable_images"]["train"], 1, "{record}");
    assert_eq!(record["unreadable_images"]["test"], 0, "{record}");
    assert_eq!(record["channels"], 8);
    let train_steps = parquet::read(&train.join(Table::Steps.file_name()), Table::Steps).unwrap();
    // 35 readable images, batch 8, drop_last off → 5 steps.
    assert_eq!(train_steps.height(), 5);
}
