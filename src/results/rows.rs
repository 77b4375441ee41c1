//! The row types of a run's Parquet tables and the frames built from them, checked against the one
//! schema (`results::schema`) before anything reaches disk.

use anyhow::{bail, Context, Result};
use polars::prelude::{Column, DataFrame, IntoColumn, NamedFrom, Series};

use super::parquet;
use super::phase::Phase;
use super::schema::Table;

/// Step terms computed as tensors (read in blocks, never per step).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Term {
    LossTrain,
    AccTrainPct,
    FDiscrete,
    FRelaxed,
    GenGap,
    PairPenalty,
    EntropyNats,
    GradNormWeights,
    GradVarArch,
}

impl Term {
    pub const ALL: [Term; 9] = [
        Term::LossTrain,
        Term::AccTrainPct,
        Term::FDiscrete,
        Term::FRelaxed,
        Term::GenGap,
        Term::PairPenalty,
        Term::EntropyNats,
        Term::GradNormWeights,
        Term::GradVarArch,
    ];

    /// The `steps` column the term fills.
    pub fn column(self) -> &'static str {
        match self {
            Term::LossTrain => "loss_train",
            Term::AccTrainPct => "acc_train_pct",
            Term::FDiscrete => "f_discrete",
            Term::FRelaxed => "f_relaxed",
            Term::GenGap => "gen_gap",
            Term::PairPenalty => "pair_penalty",
            Term::EntropyNats => "entropy_nats",
            Term::GradNormWeights => "grad_norm_weights",
            Term::GradVarArch => "grad_var_arch",
        }
    }

    pub(crate) fn index(self) -> usize {
        Term::ALL.iter().position(|t| *t == self).expect("in ALL")
    }
}

/// One row of the `steps` table.
#[derive(Clone, Debug, PartialEq)]
pub struct StepRow {
    pub phase: Phase,
    pub seed: u64,
    pub epoch: u32,
    pub step: u64,
    /// Indexed like [`Term::ALL`].
    pub terms: [Option<f64>; 9],
    pub lr_weights: Option<f64>,
    pub lr_arch: Option<f64>,
    pub lat_ms: Option<f64>,
    /// Throughput of the block of steps the row was read with (a per-step time is not measurable
    /// without a sync).
    pub images_per_s: Option<f64>,
    pub wall_s: f64,
}

impl StepRow {
    pub fn term(&self, t: Term) -> Option<f64> {
        self.terms[t.index()]
    }
}

/// One row of the `epochs` table.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochRow {
    pub phase: Phase,
    pub seed: u64,
    pub epoch: u32,
    pub loss_train: Option<f64>,
    pub acc_train_pct: Option<f64>,
    pub loss_val: Option<f64>,
    pub acc_val_pct: Option<f64>,
    pub acc_test_top1_pct: Option<f64>,
    pub acc_test_top5_pct: Option<f64>,
    /// Genotype JSON at the end of the epoch (search).
    pub genotype: Option<String>,
    pub wall_s: f64,
}

/// The one row of the `summary` table.
#[derive(Clone, Debug, PartialEq)]
pub struct SummaryRow {
    pub experiment: String,
    pub tier: String,
    /// The run's phase at the end; the `stage` column is its stage (warm-up/search → `search`).
    pub phase: Phase,
    pub seed: u64,
    pub run_id: String,
    pub upstream_run_id: Option<String>,
    pub acc_val_pct: Option<f64>,
    pub acc_test_top1_pct: Option<f64>,
    pub acc_test_top5_pct: Option<f64>,
    /// Best test top-1 over the epochs and the top-5 of that epoch (training).
    pub acc_test_best_top1_pct: Option<f64>,
    pub acc_test_best_top5_pct: Option<f64>,
    pub params_m: Option<f64>,
    pub macs_m: Option<f64>,
    pub lat_ms: Option<f64>,
    pub wall_s: f64,
    pub deterministic: bool,
}

/// What an architecture choice selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChoiceKey {
    Input,
    Op,
}

impl ChoiceKey {
    pub fn as_str(self) -> &'static str {
        match self {
            ChoiceKey::Input => "input",
            ChoiceKey::Op => "op",
        }
    }
}

/// One row of the `arch` table: one choice of one selector at the end of a search epoch.
#[derive(Clone, Debug, PartialEq)]
pub struct ArchRow {
    pub seed: u64,
    pub epoch: u32,
    /// `normal` | `reduce` (DARTS space) or `block` (ProxylessNAS).
    pub cell_type: String,
    pub node: i64,
    pub selector: i64,
    pub key: ChoiceKey,
    pub choice: i64,
    pub choice_name: String,
    pub logit: f64,
    pub prob: f64,
}

pub(crate) fn col<T>(name: &str, values: Vec<T>) -> Column
where
    Series: NamedFrom<Vec<T>, [T]>,
{
    Series::new(name.into(), values).into_column()
}

/// Orders `cols` as the table's schema and checks names and types.
pub(crate) fn frame(table: Table, height: usize, mut cols: Vec<Column>) -> Result<DataFrame> {
    let mut ordered = Vec::with_capacity(cols.len());
    for c in table.columns() {
        let i = cols
            .iter()
            .position(|x| x.name().as_str() == c.name)
            .with_context(|| format!("{table:?} row builder has no column `{}`", c.name))?;
        ordered.push(cols.swap_remove(i).cast(&c.ty.dtype())?);
    }
    if let Some(extra) = cols.first() {
        bail!(
            "{table:?} row builder has a column `{}` the schema does not",
            extra.name()
        );
    }
    let df = DataFrame::new(height, ordered)?;
    parquet::check(table, &df)?;
    Ok(df)
}

pub(crate) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The `steps` table of `rows`.
pub fn steps_frame(rows: &[StepRow]) -> Result<DataFrame> {
    let mut cols = vec![
        col(
            "stage",
            rows.iter().map(|r| r.phase.stage()).collect::<Vec<_>>(),
        ),
        col(
            "seed",
            rows.iter().map(|r| to_i64(r.seed)).collect::<Vec<_>>(),
        ),
        col(
            "phase",
            rows.iter().map(|r| r.phase.as_str()).collect::<Vec<_>>(),
        ),
        col(
            "epoch",
            rows.iter().map(|r| i64::from(r.epoch)).collect::<Vec<_>>(),
        ),
        col(
            "step",
            rows.iter().map(|r| to_i64(r.step)).collect::<Vec<_>>(),
        ),
        col(
            "lr_weights",
            rows.iter().map(|r| r.lr_weights).collect::<Vec<_>>(),
        ),
        col(
            "lr_arch",
            rows.iter().map(|r| r.lr_arch).collect::<Vec<_>>(),
        ),
        col("lat_ms", rows.iter().map(|r| r.lat_ms).collect::<Vec<_>>()),
        col(
            "images_per_s",
            rows.iter().map(|r| r.images_per_s).collect::<Vec<_>>(),
        ),
        col(
            "wall_s",
            rows.iter().map(|r| Some(r.wall_s)).collect::<Vec<_>>(),
        ),
    ];
    for t in Term::ALL {
        cols.push(col(
            t.column(),
            rows.iter().map(|r| r.term(t)).collect::<Vec<_>>(),
        ));
    }
    frame(Table::Steps, rows.len(), cols)
}

/// The `epochs` table of `rows`.
pub fn epochs_frame(rows: &[EpochRow]) -> Result<DataFrame> {
    let f = |g: fn(&EpochRow) -> Option<f64>| rows.iter().map(g).collect::<Vec<_>>();
    let cols = vec![
        col(
            "stage",
            rows.iter().map(|r| r.phase.stage()).collect::<Vec<_>>(),
        ),
        col(
            "seed",
            rows.iter().map(|r| to_i64(r.seed)).collect::<Vec<_>>(),
        ),
        col(
            "phase",
            rows.iter().map(|r| r.phase.as_str()).collect::<Vec<_>>(),
        ),
        col(
            "epoch",
            rows.iter().map(|r| i64::from(r.epoch)).collect::<Vec<_>>(),
        ),
        col("loss_train", f(|r| r.loss_train)),
        col("acc_train_pct", f(|r| r.acc_train_pct)),
        col("loss_val", f(|r| r.loss_val)),
        col("acc_val_pct", f(|r| r.acc_val_pct)),
        col("acc_test_top1_pct", f(|r| r.acc_test_top1_pct)),
        col("acc_test_top5_pct", f(|r| r.acc_test_top5_pct)),
        col(
            "genotype",
            rows.iter().map(|r| r.genotype.clone()).collect::<Vec<_>>(),
        ),
        col("wall_s", f(|r| Some(r.wall_s))),
    ];
    frame(Table::Epochs, rows.len(), cols)
}

/// The `summary` table (one row).
pub fn summary_frame(r: &SummaryRow) -> Result<DataFrame> {
    let cols = vec![
        col("experiment", vec![r.experiment.clone()]),
        col("tier", vec![r.tier.clone()]),
        col("stage", vec![r.phase.stage()]),
        col("seed", vec![to_i64(r.seed)]),
        col("run_id", vec![r.run_id.clone()]),
        col("upstream_run_id", vec![r.upstream_run_id.clone()]),
        col("acc_val_pct", vec![r.acc_val_pct]),
        col("acc_test_top1_pct", vec![r.acc_test_top1_pct]),
        col("acc_test_top5_pct", vec![r.acc_test_top5_pct]),
        col("acc_test_best_top1_pct", vec![r.acc_test_best_top1_pct]),
        col("acc_test_best_top5_pct", vec![r.acc_test_best_top5_pct]),
        col("params_m", vec![r.params_m]),
        col("macs_m", vec![r.macs_m]),
        col("lat_ms", vec![r.lat_ms]),
        col("wall_s", vec![r.wall_s]),
        col("deterministic", vec![r.deterministic]),
    ];
    frame(Table::Summary, 1, cols)
}

/// The `arch` table of `rows`.
pub fn arch_frame(rows: &[ArchRow]) -> Result<DataFrame> {
    let cols = vec![
        col(
            "seed",
            rows.iter().map(|r| to_i64(r.seed)).collect::<Vec<_>>(),
        ),
        col(
            "epoch",
            rows.iter().map(|r| i64::from(r.epoch)).collect::<Vec<_>>(),
        ),
        col(
            "cell_type",
            rows.iter().map(|r| r.cell_type.clone()).collect::<Vec<_>>(),
        ),
        col("node", rows.iter().map(|r| r.node).collect::<Vec<_>>()),
        col(
            "selector",
            rows.iter().map(|r| r.selector).collect::<Vec<_>>(),
        ),
        col(
            "key",
            rows.iter().map(|r| r.key.as_str()).collect::<Vec<_>>(),
        ),
        col("choice", rows.iter().map(|r| r.choice).collect::<Vec<_>>()),
        col(
            "choice_name",
            rows.iter()
                .map(|r| r.choice_name.clone())
                .collect::<Vec<_>>(),
        ),
        col("logit", rows.iter().map(|r| r.logit).collect::<Vec<_>>()),
        col("prob", rows.iter().map(|r| r.prob).collect::<Vec<_>>()),
    ];
    frame(Table::Arch, rows.len(), cols)
}

/// Step rows 0.1·s of loss for tests of the writers and of resume truncation.
#[cfg(test)]
pub(crate) fn step_rows(phase: Phase, steps: std::ops::Range<u64>) -> Vec<StepRow> {
    steps
        .map(|s| StepRow {
            phase,
            seed: 1,
            epoch: (s / 10) as u32,
            step: s,
            terms: [
                Some(s as f64 * 0.1),
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                None,
            ],
            lr_weights: Some(0.5),
            lr_arch: None,
            lat_ms: None,
            images_per_s: Some(100.0),
            wall_s: s as f64,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_builder_matches_its_schema_exactly() {
        parquet::check(
            Table::Steps,
            &steps_frame(&step_rows(Phase::Warmup, 0..3)).unwrap(),
        )
        .unwrap();
        let epoch = EpochRow {
            phase: Phase::Search,
            seed: 0,
            epoch: 4,
            loss_train: Some(1.0),
            acc_train_pct: Some(50.0),
            loss_val: None,
            acc_val_pct: None,
            acc_test_top1_pct: None,
            acc_test_top5_pct: None,
            genotype: Some("{}".into()),
            wall_s: 3.0,
        };
        parquet::check(Table::Epochs, &epochs_frame(&[epoch]).unwrap()).unwrap();
        let summary = SummaryRow {
            experiment: "c10".into(),
            tier: "smoke".into(),
            phase: Phase::Train,
            seed: 0,
            run_id: "abc".into(),
            upstream_run_id: None,
            acc_val_pct: None,
            acc_test_top1_pct: Some(40.0),
            acc_test_top5_pct: None,
            acc_test_best_top1_pct: Some(41.0),
            acc_test_best_top5_pct: None,
            params_m: Some(0.1),
            macs_m: None,
            lat_ms: None,
            wall_s: 9.0,
            deterministic: true,
        };
        let df = summary_frame(&summary).unwrap();
        parquet::check(Table::Summary, &df).unwrap();
        assert_eq!(
            df.column("stage").unwrap().str().unwrap().get(0),
            Some("train")
        );
        let arch = ArchRow {
            seed: 0,
            epoch: 0,
            cell_type: "normal".into(),
            node: 2,
            selector: 1,
            key: ChoiceKey::Op,
            choice: 3,
            choice_name: "dil_conv_3x3".into(),
            logit: 0.25,
            prob: 1.0 / 7.0,
        };
        parquet::check(Table::Arch, &arch_frame(&[arch]).unwrap()).unwrap();
        // Empty batches too (a run killed before its first read).
        parquet::check(Table::Steps, &steps_frame(&[]).unwrap()).unwrap();
    }
}
