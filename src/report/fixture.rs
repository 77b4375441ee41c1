//! Hand-built run folders for the report's tests: written through the same schema, status and
//! provenance types the stages use, with numbers chosen so that every mean, std and N is known.

use std::path::Path;

use polars::prelude::*;

use crate::results::parquet;
use crate::results::provenance::Provenance;
use crate::results::schema::{Col, Table};
use crate::results::{ResultsRoot, State, Status};

/// One cell value of a hand-built row.
#[derive(Clone, Debug)]
pub(crate) enum V {
    S(&'static str),
    Owned(String),
    I(i64),
    F(f64),
    B(bool),
    Null,
}

/// A frame of `table` from rows given by column name (columns left out are null).
pub(crate) fn frame(table: Table, rows: &[Vec<(&str, V)>]) -> DataFrame {
    let cols = table
        .columns()
        .iter()
        .map(|c| {
            let cell = |r: &Vec<(&str, V)>| {
                r.iter()
                    .find(|(n, _)| *n == c.name)
                    .map(|(_, v)| v.clone())
                    .unwrap_or(V::Null)
            };
            let name: PlSmallStr = c.name.into();
            let s = match c.ty {
                Col::Str => Series::new(
                    name,
                    rows.iter()
                        .map(|r| match cell(r) {
                            V::S(s) => Some(s.to_owned()),
                            V::Owned(s) => Some(s),
                            _ => None,
                        })
                        .collect::<Vec<_>>(),
                ),
                Col::I64 => Series::new(
                    name,
                    rows.iter()
                        .map(|r| match cell(r) {
                            V::I(i) => Some(i),
                            _ => None,
                        })
                        .collect::<Vec<_>>(),
                ),
                Col::F64 => Series::new(
                    name,
                    rows.iter()
                        .map(|r| match cell(r) {
                            V::F(f) => Some(f),
                            _ => None,
                        })
                        .collect::<Vec<_>>(),
                ),
                Col::Bool => Series::new(
                    name,
                    rows.iter()
                        .map(|r| match cell(r) {
                            V::B(b) => Some(b),
                            _ => None,
                        })
                        .collect::<Vec<_>>(),
                ),
            };
            s.into_column()
        })
        .collect();
    DataFrame::new(rows.len(), cols).unwrap()
}

/// An experiment config as the runner writes it (the fields the report reads, and a few more).
pub(crate) fn config(
    name: &str,
    estimator: &str,
    protocol: &str,
    genotype: &str,
    search: bool,
) -> String {
    let search = if search {
        format!(
            "search:\n  estimator: {estimator}\n  objective: {{kind: gengap, lambda: 0.5}}\n  epochs: {{warmup: 1, search: 2}}\n"
        )
    } else {
        String::new()
    };
    format!(
        "# resolved from experiments/{name}.yaml (tier paper)\nname: {name}\ndescription: |\n  A *fixture* experiment.\ndataset: {{name: cifar10, root: data/}}\nspace: {{name: darts, layers: 8}}\n{search}train: {{recipe: cifar, genotype: {genotype}}}\nseeds: {{search: [0, 1, 2, 3], train: [0]}}\nprotocol: {protocol}\ndeviations:\n  - \"one GPU, not four\"\n"
    )
}

pub(crate) struct RunSpec<'a> {
    pub experiment: &'a str,
    pub tier: &'a str,
    pub stage: &'a str,
    pub seed: u64,
    pub run_id: &'a str,
    pub config_id: &'a str,
    pub config: &'a str,
    pub state: State,
}

/// Writes a run folder with its status, provenance and config, and returns it.
pub(crate) fn run(root: &Path, r: &RunSpec) -> std::path::PathBuf {
    let dir =
        ResultsRoot(root.to_path_buf()).run_dir(r.experiment, r.tier, r.stage, r.seed, r.run_id);
    std::fs::create_dir_all(dir.path()).unwrap();
    std::fs::write(dir.file("config.yaml"), r.config).unwrap();
    let prov = Provenance {
        unas_version: "0.1.0".into(),
        git_commit: Some("0123456789abcdef".into()),
        git_dirty: Some(false),
        tch_version: "0.24.0".into(),
        libtorch_version: "2.11.0".into(),
        device: "cpu".into(),
        cuda_available: false,
        cuda_device_count: 0,
        cudnn_available: false,
        gpu_name: None,
        host: "fixture".into(),
        cpus: 2,
        experiment: r.experiment.into(),
        tier: r.tier.into(),
        stage: r.stage.into(),
        config_id: r.config_id.into(),
        run_id: r.run_id.into(),
        seed: r.seed,
        deterministic: false,
        started_at: "2026-01-01T00:00:00Z".into(),
        ended_at: Some("2026-01-01T01:00:00Z".into()),
        command_line: vec!["unas".into(), "run".into()],
        data_fingerprint: "f1".into(),
        shape_id: "s1".into(),
        pid: 1,
        threads: 2,
        cuda_runtime_version: Some("13.0".into()),
        cuda_driver_version: None,
        cudnn_version: None,
        gpu_driver: None,
        cudnn_benchmark: Some(true),
        deterministic_algorithms: Some(false),
        cudnn_deterministic: Some(false),
        precision: "fp32".into(),
        missing: Vec::new(),
        world_size: 1,
        rank_backend: None,
        ranks: Vec::new(),
    };
    prov.write(dir.path()).unwrap();
    Status::now(r.state.clone()).write(dir.path()).unwrap();
    dir.path().to_path_buf()
}

pub(crate) fn write(dir: &Path, table: Table, mut df: DataFrame) {
    parquet::write(&dir.join(table.file_name()), table, &mut df).unwrap();
}

pub(crate) const GENOTYPE: &str = r#"{"normal":[{"inputs":[0,0],"ops":["sep_conv_5x5","skip_connect"]},{"inputs":[0,1],"ops":["skip_connect","dil_conv_3x3"]},{"inputs":[0,1],"ops":["sep_conv_3x3","dil_conv_3x3"]},{"inputs":[1,0],"ops":["sep_conv_3x3","dil_conv_3x3"]}],"normal_concat":[2,3,4,5],"reduce":[{"inputs":[0,0],"ops":["sep_conv_3x3","sep_conv_5x5"]},{"inputs":[1,0],"ops":["skip_connect","sep_conv_3x3"]},{"inputs":[1,0],"ops":["avg_pool_3x3","skip_connect"]},{"inputs":[2,1],"ops":["max_pool_3x3","skip_connect"]}],"reduce_concat":[2,3,4,5]}"#;

/// A finished search: summary, epochs (warm-up 1 + search 2), steps and the arch distribution.
pub(crate) fn search_tables(
    dir: &Path,
    e: &'static str,
    tier: &'static str,
    seed: i64,
    id: &'static str,
    acc_val: f64,
    wall_s: f64,
) {
    write(
        dir,
        Table::Summary,
        frame(
            Table::Summary,
            &[vec![
                ("experiment", V::S(e)),
                ("tier", V::S(tier)),
                ("stage", V::S("search")),
                ("seed", V::I(seed)),
                ("run_id", V::S(id)),
                ("acc_val_pct", V::F(acc_val)),
                ("wall_s", V::F(wall_s)),
                ("deterministic", V::B(false)),
            ]],
        ),
    );
    let epochs: Vec<Vec<(&str, V)>> = [("warmup", 0i64), ("search", 0), ("search", 1)]
        .iter()
        .enumerate()
        .map(|(i, (phase, epoch))| {
            vec![
                ("stage", V::S("search")),
                ("seed", V::I(seed)),
                ("phase", V::S(phase)),
                ("epoch", V::I(*epoch)),
                ("loss_train", V::F(2.0 - 0.3 * i as f64)),
                ("loss_val", V::F(2.1 - 0.2 * i as f64 + 0.01 * seed as f64)),
                ("acc_val_pct", V::F(acc_val - 5.0 + 2.0 * i as f64)),
                ("wall_s", V::F(10.0 * i as f64)),
            ]
        })
        .collect();
    write(dir, Table::Epochs, frame(Table::Epochs, &epochs));
    let steps: Vec<Vec<(&str, V)>> = (0..6)
        .map(|s| {
            vec![
                ("stage", V::S("search")),
                ("seed", V::I(seed)),
                ("phase", V::S("search")),
                ("epoch", V::I(s / 3)),
                ("step", V::I(s)),
                ("grad_var_arch", V::F(0.5 / (1.0 + s as f64))),
                ("wall_s", V::F(s as f64)),
            ]
        })
        .collect();
    write(dir, Table::Steps, frame(Table::Steps, &steps));
    let mut arch = Vec::new();
    for epoch in 0..2i64 {
        for (cell, node) in [("normal", 0i64), ("reduce", 0)] {
            for (key, names) in [
                ("op", ["sep_conv_3x3", "skip_connect"]),
                ("input", ["c_{k-2}", "c_{k-1}"]),
            ] {
                for (c, name) in names.iter().enumerate() {
                    let p = if c == 0 {
                        0.5 + 0.2 * epoch as f64
                    } else {
                        0.5 - 0.2 * epoch as f64
                    };
                    arch.push(vec![
                        ("seed", V::I(seed)),
                        ("epoch", V::I(epoch)),
                        ("cell_type", V::S(cell)),
                        ("node", V::I(node)),
                        ("selector", V::I(0)),
                        ("key", V::S(key)),
                        ("choice", V::I(c as i64)),
                        ("choice_name", V::Owned(name.to_string())),
                        ("logit", V::F(p.ln())),
                        ("prob", V::F(p)),
                    ]);
                }
            }
        }
    }
    write(dir, Table::Arch, frame(Table::Arch, &arch));
    std::fs::write(dir.join("genotype.json"), GENOTYPE).unwrap();
}

/// A finished training: summary and two epochs of test accuracy.
#[allow(clippy::too_many_arguments)]
pub(crate) fn train_tables(
    dir: &Path,
    e: &'static str,
    tier: &'static str,
    seed: i64,
    id: &'static str,
    upstream: Option<&'static str>,
    acc_test: f64,
    params_m: f64,
) {
    write(
        dir,
        Table::Summary,
        frame(
            Table::Summary,
            &[vec![
                ("experiment", V::S(e)),
                ("tier", V::S(tier)),
                ("stage", V::S("train")),
                ("seed", V::I(seed)),
                ("run_id", V::S(id)),
                ("upstream_run_id", upstream.map(V::S).unwrap_or(V::Null)),
                ("acc_test_top1_pct", V::F(acc_test)),
                ("params_m", V::F(params_m)),
                ("wall_s", V::F(100.0)),
                ("deterministic", V::B(false)),
            ]],
        ),
    );
    let epochs: Vec<Vec<(&str, V)>> = (0..2i64)
        .map(|ep| {
            vec![
                ("stage", V::S("train")),
                ("seed", V::I(seed)),
                ("phase", V::S("train")),
                ("epoch", V::I(ep)),
                ("loss_train", V::F(1.0)),
                ("acc_train_pct", V::F(acc_test - 5.0 + ep as f64)),
                ("acc_test_top1_pct", V::F(acc_test - 2.0 + 2.0 * ep as f64)),
                ("wall_s", V::F(50.0 * ep as f64)),
            ]
        })
        .collect();
    write(dir, Table::Epochs, frame(Table::Epochs, &epochs));
    std::fs::write(dir.join("genotype.json"), GENOTYPE).unwrap();
}

/// The suite the golden tests read (see `tests.rs` for what each run is there to show).
pub(crate) fn suite(root: &Path) {
    let main = main_experiment(root);
    smoke_copy(root, &main);
    diverged_ablation(root);
    best_of_two(root);
    published_cell(root);
    random_architectures(root);
}

fn main_experiment(root: &Path) -> String {
    let main = config("c10-fixture", "rebar", "mean_over_searches", "search", true);
    let spec = |stage, seed, run_id, state| RunSpec {
        experiment: "c10-fixture",
        tier: "paper",
        stage,
        seed,
        run_id,
        config_id: "cfgmain",
        config: &main,
        state,
    };
    // Searches 0, 1, 2 finish (val 50/60/70 %, 1/2/3 h); search 3 fails, so its training is blocked.
    for (seed, id, acc, wall) in [
        (0, "s0", 50.0, 3600.0),
        (1, "s1", 60.0, 7200.0),
        (2, "s2", 70.0, 10800.0),
    ] {
        let d = run(root, &spec("search", seed, id, State::Done));
        search_tables(&d, "c10-fixture", "paper", seed as i64, id, acc, wall);
    }
    run(
        root,
        &spec(
            "search",
            3,
            "s3",
            State::Failed {
                reason: "out of memory".into(),
            },
        ),
    );
    // Trainings of searches 0 and 1: test error 3 % and 4 %; the one of search 2 is missing.
    for (id, up, acc, params) in [("t0", "s0", 97.0, 3.0), ("t1", "s1", 96.0, 3.2)] {
        let d = run(root, &spec("train", 0, id, State::Done));
        train_tables(&d, "c10-fixture", "paper", 0, id, Some(up), acc, params);
    }
    main
}

fn smoke_copy(root: &Path, main: &str) {
    // The same experiment at the smoke tier: never pooled with the paper-tier numbers.
    let smoke = main.replace("(tier paper)", "(tier smoke)").replace(
        "seeds: {search: [0, 1, 2, 3], train: [0]}",
        "seeds: {search: [0], train: [0]}",
    );
    let s = RunSpec {
        experiment: "c10-fixture",
        tier: "smoke",
        stage: "search",
        seed: 0,
        run_id: "m0",
        config_id: "cfgsmoke",
        config: &smoke,
        state: State::Done,
    };
    let d = run(root, &s);
    search_tables(&d, "c10-fixture", "smoke", 0, "m0", 10.0, 36.0);
    let d = run(
        root,
        &RunSpec {
            stage: "train",
            run_id: "mt0",
            ..s
        },
    );
    train_tables(&d, "c10-fixture", "smoke", 0, "mt0", Some("m0"), 20.0, 0.1);
}

fn diverged_ablation(root: &Path) {
    // An estimator ablation whose only search diverged.
    let rein = config(
        "c10-fixture-reinforce",
        "reinforce",
        "mean_over_searches",
        "search",
        true,
    )
    .replace(
        "seeds: {search: [0, 1, 2, 3], train: [0]}",
        "seeds: {search: [0], train: [0]}",
    );
    run(
        root,
        &RunSpec {
            experiment: "c10-fixture-reinforce",
            tier: "paper",
            stage: "search",
            seed: 0,
            run_id: "r0",
            config_id: "cfgrein",
            config: &rein,
            state: State::Diverged {
                step: 17,
                term: "f_relaxed".into(),
            },
        },
    );
}

fn best_of_two(root: &Path) {
    // Best-of-2 by validation: search 1 has the higher val. acc (90 > 80) but the worse test error
    // (5 % against 1 %); the table must report 5.00.
    let best = config(
        "c10-fixture-best",
        "rebar",
        "best_of_searches_by_val",
        "search",
        true,
    )
    .replace(
        "seeds: {search: [0, 1, 2, 3], train: [0]}",
        "seeds: {search: [0, 1], train: [0]}",
    );
    for (seed, id, acc_val, tid, acc_test) in [
        (0u64, "b0", 80.0, "bt0", 99.0),
        (1, "b1", 90.0, "bt1", 95.0),
    ] {
        let b = RunSpec {
            experiment: "c10-fixture-best",
            tier: "paper",
            stage: "search",
            seed,
            run_id: id,
            config_id: "cfgbest",
            config: &best,
            state: State::Done,
        };
        let d = run(root, &b);
        search_tables(
            &d,
            "c10-fixture-best",
            "paper",
            seed as i64,
            id,
            acc_val,
            60.0,
        );
        let d = run(
            root,
            &RunSpec {
                stage: "train",
                seed: 0,
                run_id: tid,
                ..b
            },
        );
        train_tables(
            &d,
            "c10-fixture-best",
            "paper",
            0,
            tid,
            Some(id),
            acc_test,
            3.0,
        );
    }
}

fn published_cell(root: &Path) {
    // A published cell trained by us.
    let published = config(
        "eval-fixture-cifar10",
        "rebar",
        "mean_over_searches",
        "UNAS_CIFAR10",
        false,
    )
    .replace(
        "seeds: {search: [0, 1, 2, 3], train: [0]}",
        "seeds: {search: [0], train: [0, 1]}",
    );
    for (seed, id, acc) in [(0u64, "p0", 97.5), (1, "p1", 97.0)] {
        let d = run(
            root,
            &RunSpec {
                experiment: "eval-fixture-cifar10",
                tier: "paper",
                stage: "train",
                seed,
                run_id: id,
                config_id: "cfgpub",
                config: &published,
                state: State::Done,
            },
        );
        train_tables(
            &d,
            "eval-fixture-cifar10",
            "paper",
            seed as i64,
            id,
            None,
            acc,
            3.3308,
        );
    }
}

fn random_architectures(root: &Path) {
    // Two random architectures of the cifar recipe at the paper tier: test accuracy 90 % and 92 %,
    // mean 91 %, the baseline of every paper-tier CIFAR-10 row. A third, trained with another
    // recipe (drop-path 0.3) at 10 %, must never enter that mean; and none ran at the smoke tier, so
    // the smoke row's RI stays blank.
    let random = config(
        "random-fixture-c10",
        "rebar",
        "mean_over_searches",
        "random",
        false,
    )
    .replace(
        "seeds: {search: [0, 1, 2, 3], train: [0]}",
        "seeds: {search: [0], train: [0, 1]}",
    );
    let other_recipe = random
        .replace("name: random-fixture-c10", "name: random-fixture-c10-dp3")
        .replace("genotype: random}", "genotype: random, drop_path: 0.3}")
        .replace("train: [0, 1]}", "train: [0]}");
    for (e, cfg, cid, seed, id, acc) in [
        ("random-fixture-c10", &random, "cfgrand", 0u64, "q0", 90.0),
        ("random-fixture-c10", &random, "cfgrand", 1, "q1", 92.0),
        (
            "random-fixture-c10-dp3",
            &other_recipe,
            "cfgrand3",
            0,
            "q2",
            10.0,
        ),
    ] {
        let d = run(
            root,
            &RunSpec {
                experiment: e,
                tier: "paper",
                stage: "train",
                seed,
                run_id: id,
                config_id: cid,
                config: cfg,
                state: State::Done,
            },
        );
        train_tables(
            &d,
            e,
            "paper",
            seed as i64,
            id,
            None,
            acc,
            2.0 + seed as f64,
        );
    }
}

/// A reference file with one published number for the `cifar10` table.
pub(crate) const REFERENCE: &str = "entries:\n  - {table: cifar10, method: \"DARTS (2nd order)\", metric: test_error_pct, stat: mean, value: 2.76, std: 0.09, runs: 10, source: \"quark0/darts README\"}\n";
