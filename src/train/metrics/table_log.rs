//! One table of a run held in memory and rewritten atomically; on resume, the rows from the checkpoint
//! on are dropped so a killed-and-resumed run ends with exactly the rows of an uninterrupted one.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use polars::prelude::{BooleanChunked, DataFrame, DataType, NamedFrom};

use crate::results::rows::to_i64;
use crate::results::schema::Table;
use crate::results::{parquet, Phase};

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
                .map(|i| before(phases[i], steps[i], to_i64(at.step)))
                .collect()
        }
        Table::Epochs | Table::Arch | Table::Latency => {
            let epochs = ints("epoch")?;
            (0..n)
                .map(|i| before(phases[i], epochs[i], i64::from(at.epoch)))
                .collect()
        }
        Table::Summary | Table::LatencyTable | Table::Candidates => vec![false; n],
    };
    Ok(BooleanChunked::new("keep".into(), keep.as_slice()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::rows::{epochs_frame, step_rows, steps_frame, EpochRow};

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
