//! Metrics from the loops to the run's Parquet tables (schema: `results::schema`).
//!
//! Reading a GPU scalar is a sync, so a step's metrics stay on the device: [`StepLog::record`] stacks
//! the step's terms into one small tensor and keeps it; every N steps [`StepLog::flush`] concatenates
//! the block and copies it to the host once, turning it into N rows (one per step, as the `steps`
//! table wants). The same read checks every value for NaN/Inf and reports the first one as
//! [`Diverged`], naming its step and term; the loop marks the run `diverged` (detection lags by at
//! most N steps). Per-epoch means accumulate on the device in [`DeviceMean`].
//!
//! [`TableLog`] keeps a table's rows in memory and rewrites its Parquet file atomically (a few MB at
//! our sizes); on resume it reloads the file and drops rows from at or after the checkpoint, so a
//! killed-and-resumed run ends with exactly the rows of an uninterrupted one.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use polars::prelude::{BooleanChunked, Column, DataFrame, DataType, IntoColumn, NamedFrom, Series};
use tch::{Device, Kind, Tensor};

use super::phase::Phase;
use crate::results::schema::Table;
use crate::results::{parquet, State};

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

    fn index(self) -> usize {
        Term::ALL.iter().position(|t| *t == self).expect("in ALL")
    }
}

/// A value went NaN or ±Inf: the run is `diverged` at this step, in this term.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{term} is {value} at {phase} epoch {epoch} step {step}: the run diverged (lower the learning rate, or check the data)")]
pub struct Diverged {
    pub phase: Phase,
    pub epoch: u32,
    pub step: u64,
    pub term: String,
    pub value: f64,
}

impl Diverged {
    /// The run status to write.
    pub fn state(&self) -> State {
        State::Diverged {
            step: self.step,
            term: self.term.clone(),
        }
    }
}

/// Checks host-side values; the first non-finite one is an error naming its term.
pub fn check_finite(
    phase: Phase,
    epoch: u32,
    step: u64,
    values: &[(&str, Option<f64>)],
) -> Result<(), Diverged> {
    for (term, v) in values {
        if let Some(v) = v {
            if !v.is_finite() {
                return Err(Diverged {
                    phase,
                    epoch,
                    step,
                    term: (*term).to_owned(),
                    value: *v,
                });
            }
        }
    }
    Ok(())
}

/// Seconds since the run started, continuing across resumes (`offset_s` = the wall time the run had
/// used when its checkpoint was taken).
#[derive(Clone, Debug)]
pub struct Clock {
    start: Instant,
    offset_s: f64,
}

impl Clock {
    pub fn start(offset_s: f64) -> Clock {
        Clock {
            start: Instant::now(),
            offset_s,
        }
    }

    pub fn wall_s(&self) -> f64 {
        self.offset_s + self.start.elapsed().as_secs_f64()
    }
}

/// What the loop knows about a step on the host, without a sync.
#[derive(Clone, Debug, PartialEq)]
pub struct StepInfo {
    pub phase: Phase,
    pub epoch: u32,
    /// Global step within the phase.
    pub step: u64,
    /// Images the step trained on (for images/s).
    pub images: u64,
    pub lr_weights: Option<f64>,
    pub lr_arch: Option<f64>,
    /// Measured latency of the sampled architecture (ProxylessNAS space), ms.
    pub lat_ms: Option<f64>,
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

struct Pending {
    info: StepInfo,
    wall_s: f64,
    terms: Vec<Term>,
    /// [terms.len()] Double, on the device.
    values: Tensor,
}

/// Per-step metrics, kept on the device and read every `every` steps.
pub struct StepLog {
    seed: u64,
    every: usize,
    clock: Clock,
    block_start_s: f64,
    pending: Vec<Pending>,
    rows: Vec<StepRow>,
}

impl StepLog {
    pub fn new(seed: u64, every: usize, clock: Clock) -> StepLog {
        let block_start_s = clock.wall_s();
        StepLog {
            seed,
            every: every.max(1),
            clock,
            block_start_s,
            pending: Vec::new(),
            rows: Vec::new(),
        }
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Records a step: `terms` are 0-d (or one-element) tensors on any device, kept there. Reads the
    /// block (one sync) when it is full; a non-finite value in it is returned as [`Diverged`].
    pub fn record(&mut self, info: StepInfo, terms: &[(Term, &Tensor)]) -> Result<(), Diverged> {
        let values = if terms.is_empty() {
            Tensor::zeros([0], (Kind::Double, Device::Cpu))
        } else {
            let v: Vec<Tensor> = terms
                .iter()
                .map(|(_, t)| t.detach().to_kind(Kind::Double).reshape([1]))
                .collect();
            Tensor::cat(&v, 0)
        };
        self.pending.push(Pending {
            info,
            wall_s: self.clock.wall_s(),
            terms: terms.iter().map(|(t, _)| *t).collect(),
            values,
        });
        if self.pending.len() >= self.every {
            self.flush()
        } else {
            Ok(())
        }
    }

    /// Reads every pending step into rows with one device→host copy per device. All rows are kept
    /// even when one diverged; the first non-finite value is returned.
    pub fn flush(&mut self) -> Result<(), Diverged> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        let host: Vec<f64> = {
            let on_cpu: Vec<Tensor> = pending
                .iter()
                .map(|p| p.values.to_device(Device::Cpu))
                .collect();
            let all = Tensor::cat(&on_cpu, 0);
            Vec::<f64>::try_from(all).expect("a 1-d Double tensor converts")
        };
        let now = self.clock.wall_s();
        let images: u64 = pending.iter().map(|p| p.info.images).sum();
        let span = now - self.block_start_s;
        let images_per_s = (span > 0.0 && images > 0).then(|| images as f64 / span);
        self.block_start_s = now;

        let mut first_bad: Option<Diverged> = None;
        let mut at = 0;
        for p in pending {
            let mut terms = [None; 9];
            for t in &p.terms {
                let v = host[at];
                at += 1;
                terms[t.index()] = Some(v);
                if !v.is_finite() && first_bad.is_none() {
                    first_bad = Some(Diverged {
                        phase: p.info.phase,
                        epoch: p.info.epoch,
                        step: p.info.step,
                        term: t.column().to_owned(),
                        value: v,
                    });
                }
            }
            self.rows.push(StepRow {
                phase: p.info.phase,
                seed: self.seed,
                epoch: p.info.epoch,
                step: p.info.step,
                terms,
                lr_weights: p.info.lr_weights,
                lr_arch: p.info.lr_arch,
                lat_ms: p.info.lat_ms,
                images_per_s,
                wall_s: p.wall_s,
            });
        }
        match first_bad {
            Some(d) => Err(d),
            None => Ok(()),
        }
    }

    /// The rows read so far (flush first to include pending steps).
    pub fn take_rows(&mut self) -> Vec<StepRow> {
        std::mem::take(&mut self.rows)
    }
}

/// A weighted running mean kept on the device: Σ wᵢxᵢ / Σ wᵢ, read once (an epoch's training loss
/// and accuracy). Its two sums are 0-d Double tensors, saved with a mid-epoch checkpoint.
#[derive(Debug)]
pub struct DeviceMean {
    sum: Tensor,
    weight: Tensor,
}

impl DeviceMean {
    pub fn new(device: Device) -> DeviceMean {
        DeviceMean {
            sum: Tensor::zeros([], (Kind::Double, device)),
            weight: Tensor::zeros([], (Kind::Double, device)),
        }
    }

    /// Adds x with weight w (x a 0-d or one-element tensor, e.g. a batch mean with w = batch size).
    pub fn add(&mut self, x: &Tensor, w: f64) {
        tch::no_grad(|| {
            // Σ wx += w·x;  Σ w += w
            let _ = self
                .sum
                .g_add_(&(x.detach().to_kind(Kind::Double).reshape([]) * w));
            let _ = self.weight.g_add_scalar_(w);
        });
    }

    /// The mean (a sync), `None` before the first value.
    pub fn mean(&self) -> Option<f64> {
        let w = self.weight.double_value(&[]);
        (w > 0.0).then(|| self.sum.double_value(&[]) / w)
    }

    pub fn reset(&mut self) {
        let _ = self.sum.zero_();
        let _ = self.weight.zero_();
    }

    pub fn state_tensors(&self, prefix: &str) -> Vec<(String, Tensor)> {
        vec![
            (format!("{prefix}/sum"), self.sum.shallow_clone()),
            (format!("{prefix}/weight"), self.weight.shallow_clone()),
        ]
    }

    pub fn load_state_tensors(
        &mut self,
        prefix: &str,
        saved: &std::collections::BTreeMap<String, Tensor>,
    ) -> Result<()> {
        for (name, dst) in [("sum", &mut self.sum), ("weight", &mut self.weight)] {
            let k = format!("{prefix}/{name}");
            let src = saved
                .get(&k)
                .with_context(|| format!("the checkpoint has no `{k}`"))?;
            *dst = src.to_kind(Kind::Double).to_device(dst.device()).copy();
        }
        Ok(())
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

fn col<T>(name: &str, values: Vec<T>) -> Column
where
    Series: NamedFrom<Vec<T>, [T]>,
{
    Series::new(name.into(), values).into_column()
}

/// Orders `cols` as the table's schema and checks names and types.
fn frame(table: Table, height: usize, mut cols: Vec<Column>) -> Result<DataFrame> {
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

fn u(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The `steps` table of `rows`.
pub fn steps_frame(rows: &[StepRow]) -> Result<DataFrame> {
    let mut cols = vec![
        col(
            "stage",
            rows.iter().map(|r| r.phase.stage()).collect::<Vec<_>>(),
        ),
        col("seed", rows.iter().map(|r| u(r.seed)).collect::<Vec<_>>()),
        col(
            "phase",
            rows.iter().map(|r| r.phase.as_str()).collect::<Vec<_>>(),
        ),
        col(
            "epoch",
            rows.iter().map(|r| i64::from(r.epoch)).collect::<Vec<_>>(),
        ),
        col("step", rows.iter().map(|r| u(r.step)).collect::<Vec<_>>()),
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
        col("seed", rows.iter().map(|r| u(r.seed)).collect::<Vec<_>>()),
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
        col("seed", vec![u(r.seed)]),
        col("run_id", vec![r.run_id.clone()]),
        col("upstream_run_id", vec![r.upstream_run_id.clone()]),
        col("acc_val_pct", vec![r.acc_val_pct]),
        col("acc_test_top1_pct", vec![r.acc_test_top1_pct]),
        col("acc_test_top5_pct", vec![r.acc_test_top5_pct]),
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
        col("seed", rows.iter().map(|r| u(r.seed)).collect::<Vec<_>>()),
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

/// Where a resumed run picks up: the first epoch not complete and the first step not done (global
/// within `phase`), as its checkpoint says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResumePoint {
    pub phase: Phase,
    pub epoch: u32,
    pub step: u64,
}

/// One table of a run, held in memory and rewritten atomically on [`TableLog::write`].
pub struct TableLog {
    table: Table,
    path: PathBuf,
    df: DataFrame,
}

impl TableLog {
    /// An empty table that will be written to `path`.
    pub fn new(table: Table, path: impl Into<PathBuf>) -> TableLog {
        TableLog {
            table,
            path: path.into(),
            df: parquet::empty(table),
        }
    }

    /// Reloads the table a killed run left (if any) and keeps only the rows from before `at`:
    /// steps (phase, step) < (at.phase, at.step); epochs (phase, epoch) < (at.phase, at.epoch); arch
    /// rows (search epochs) epoch < at.epoch while searching, none during warm-up; the summary none.
    pub fn resume(table: Table, path: impl Into<PathBuf>, at: ResumePoint) -> Result<TableLog> {
        let mut log = TableLog::new(table, path);
        if !log.path.exists() {
            return Ok(log);
        }
        let df = parquet::read(&log.path, table)?;
        let keep = keep_mask(table, &df, at)
            .with_context(|| format!("resuming {}", log.path.display()))?;
        log.df = df.filter(&keep)?;
        Ok(log)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn frame(&self) -> &DataFrame {
        &self.df
    }

    /// Appends rows built by one of the `*_frame` functions.
    pub fn append(&mut self, rows: &DataFrame) -> Result<()> {
        parquet::check(self.table, rows)?;
        // Cast all-null columns to the schema's type so the frames stack.
        let mut cols = Vec::with_capacity(rows.width());
        for (c, col) in self.table.columns().iter().zip(rows.columns()) {
            cols.push(col.cast(&c.ty.dtype())?);
        }
        let rows = DataFrame::new(rows.height(), cols)?;
        self.df.vstack_mut(&rows)?;
        Ok(())
    }

    /// Rewrites the Parquet file atomically.
    pub fn write(&mut self) -> Result<()> {
        self.df.rechunk_mut();
        parquet::write(&self.path, self.table, &mut self.df)
    }
}

fn keep_mask(table: Table, df: &DataFrame, at: ResumePoint) -> Result<BooleanChunked> {
    let n = df.height();
    let phases: Vec<Option<Phase>> = if df.get_column_names().iter().any(|c| c.as_str() == "phase")
    {
        df.column("phase")?
            .str()?
            .iter()
            .map(|p| p.and_then(Phase::parse))
            .collect()
    } else {
        vec![Some(Phase::Search); n]
    };
    let ints = |name: &str| -> Result<Vec<Option<i64>>> {
        Ok(df
            .column(name)?
            .cast(&DataType::Int64)?
            .i64()?
            .iter()
            .collect())
    };
    let before = |phase: Option<Phase>, pos: Option<i64>, limit: i64| match phase {
        Some(p) if p < at.phase => true,
        Some(p) if p == at.phase => pos.is_some_and(|x| x < limit),
        _ => false,
    };
    let keep: Vec<bool> = match table {
        Table::Steps => {
            let steps = ints("step")?;
            (0..n)
                .map(|i| before(phases[i], steps[i], u(at.step)))
                .collect()
        }
        Table::Epochs | Table::Arch => {
            let epochs = ints("epoch")?;
            (0..n)
                .map(|i| before(phases[i], epochs[i], i64::from(at.epoch)))
                .collect()
        }
        Table::Summary => vec![false; n],
    };
    Ok(BooleanChunked::new("keep".into(), keep.as_slice()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(phase: Phase, epoch: u32, step: u64) -> StepInfo {
        StepInfo {
            phase,
            epoch,
            step,
            images: 32,
            lr_weights: Some(1e-3),
            lr_arch: None,
            lat_ms: None,
        }
    }

    #[test]
    fn steps_are_read_in_blocks_and_keep_every_value_exactly() {
        let mut log = StepLog::new(0, 3, Clock::start(0.0));
        let losses = [2.3025123456789, 2.1, 1.9876543210123];
        for (s, l) in losses.iter().enumerate() {
            let loss = Tensor::from(*l);
            let acc = Tensor::from(12.5f32);
            log.record(
                info(Phase::Search, 0, s as u64),
                &[(Term::LossTrain, &loss), (Term::AccTrainPct, &acc)],
            )
            .unwrap();
            if s < 2 {
                assert!(
                    log.take_rows().is_empty(),
                    "nothing is read before the block is full"
                );
            }
        }
        let rows = log.take_rows();
        assert_eq!(rows.len(), 3);
        for (r, l) in rows.iter().zip(losses) {
            assert_eq!(r.term(Term::LossTrain), Some(l));
            assert_eq!(r.term(Term::AccTrainPct), Some(12.5));
            assert_eq!(r.term(Term::FDiscrete), None);
            assert_eq!(r.lr_weights, Some(1e-3));
        }
        assert_eq!(
            rows.iter().map(|r| r.step).collect::<Vec<_>>(),
            vec![0, 1, 2]
        );
    }

    #[test]
    fn a_non_finite_term_is_reported_with_its_step_and_name() {
        let mut log = StepLog::new(0, 10, Clock::start(0.0));
        let ok = Tensor::from(1.0);
        let bad = Tensor::from(f64::NAN);
        log.record(info(Phase::Search, 2, 40), &[(Term::FRelaxed, &ok)])
            .unwrap();
        log.record(
            info(Phase::Search, 2, 41),
            &[(Term::FDiscrete, &ok), (Term::FRelaxed, &bad)],
        )
        .unwrap();
        let err = log.flush().unwrap_err();
        assert_eq!((err.step, err.term.as_str()), (41, "f_relaxed"));
        assert_eq!(
            err.state(),
            State::Diverged {
                step: 41,
                term: "f_relaxed".into()
            }
        );
        assert_eq!(
            log.take_rows().len(),
            2,
            "rows up to the divergence are kept"
        );
        let host = check_finite(Phase::Train, 1, 7, &[("lat_ms", Some(f64::INFINITY))]);
        assert_eq!(host.unwrap_err().term, "lat_ms");
    }

    #[test]
    fn device_mean_is_the_weighted_mean_and_survives_save_and_load() {
        let mut m = DeviceMean::new(Device::Cpu);
        assert_eq!(m.mean(), None);
        m.add(&Tensor::from(1.0f32), 3.0);
        m.add(&Tensor::from(3.0f32), 1.0);
        assert_eq!(m.mean(), Some(1.5));
        let saved: std::collections::BTreeMap<_, _> = m
            .state_tensors("epoch_loss")
            .into_iter()
            .map(|(k, t)| (k, t.copy()))
            .collect();
        let mut back = DeviceMean::new(Device::Cpu);
        back.load_state_tensors("epoch_loss", &saved).unwrap();
        assert_eq!(back.mean(), Some(1.5));
        back.reset();
        assert_eq!(back.mean(), None);
    }

    fn step_rows(phase: Phase, steps: std::ops::Range<u64>) -> Vec<StepRow> {
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

    #[test]
    fn appended_rows_reach_parquet_and_a_resume_drops_rows_from_the_checkpoint_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("steps.parquet");
        let mut log = TableLog::new(Table::Steps, &path);
        log.append(&steps_frame(&step_rows(Phase::Warmup, 0..20)).unwrap())
            .unwrap();
        log.write().unwrap();
        log.append(&steps_frame(&step_rows(Phase::Search, 0..25)).unwrap())
            .unwrap();
        log.write().unwrap();
        assert_eq!(parquet::read(&path, Table::Steps).unwrap().height(), 45);

        // Killed after search step 24; the checkpoint says search resumes at step 20.
        let at = ResumePoint {
            phase: Phase::Search,
            epoch: 2,
            step: 20,
        };
        let resumed = TableLog::resume(Table::Steps, &path, at).unwrap();
        let df = resumed.frame();
        assert_eq!(df.height(), 40, "20 warm-up rows + search steps 0..20");
        let last = df.column("step").unwrap().i64().unwrap().get(39);
        assert_eq!(last, Some(19));
        let loss = df.column("loss_train").unwrap().f64().unwrap().get(39);
        assert_eq!(loss, Some(19.0 * 0.1), "values come back bit for bit");

        // Epoch rows: epochs before the resume epoch stay.
        let epochs: Vec<EpochRow> = (0..3)
            .map(|e| EpochRow {
                phase: Phase::Search,
                seed: 1,
                epoch: e,
                loss_train: Some(1.0),
                acc_train_pct: None,
                loss_val: None,
                acc_val_pct: None,
                acc_test_top1_pct: None,
                acc_test_top5_pct: None,
                genotype: None,
                wall_s: 0.0,
            })
            .collect();
        let epath = dir.path().join("epochs.parquet");
        let mut elog = TableLog::new(Table::Epochs, &epath);
        elog.append(&epochs_frame(&epochs).unwrap()).unwrap();
        elog.write().unwrap();
        let eback = TableLog::resume(Table::Epochs, &epath, at).unwrap();
        assert_eq!(eback.frame().height(), 2);
        // A table that was never written resumes empty.
        let none = TableLog::resume(Table::Arch, dir.path().join("arch.parquet"), at).unwrap();
        assert_eq!(none.frame().height(), 0);
    }
}
