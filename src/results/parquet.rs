//! Writing and reading the run tables: checked against [`super::schema`], written atomically.

use std::fs::File;
use std::path::Path;

use anyhow::{bail, Context, Result};
use polars::prelude::*;

use super::atomic;
use super::schema::Table;

/// Checks that `df` has exactly the table's columns, in order, with the table's types.
pub(crate) fn check(table: Table, df: &DataFrame) -> Result<()> {
    let want = table.columns();
    let got = df.schema();
    if got.len() != want.len() {
        bail!(
            "{:?} table needs {} columns ({}), got {} ({})",
            table,
            want.len(),
            want.iter().map(|c| c.name).collect::<Vec<_>>().join(", "),
            got.len(),
            got.iter_names()
                .map(|n| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    for (c, (name, dtype)) in want.iter().zip(got.iter()) {
        if c.name != name.as_str() {
            bail!(
                "{:?} table: expected column `{}`, got `{}`",
                table,
                c.name,
                name
            );
        }
        let expected = c.ty.dtype();
        if *dtype != expected && *dtype != DataType::Null {
            bail!(
                "{:?} table: column `{}` must be {:?}, got {:?}",
                table,
                c.name,
                expected,
                dtype
            );
        }
    }
    Ok(())
}

/// Writes `df` as the table's Parquet file, atomically.
pub(crate) fn write(path: &Path, table: Table, df: &mut DataFrame) -> Result<()> {
    check(table, df)?;
    // All-null columns are stored with the schema's type so readers see one schema.
    let mut cols = Vec::with_capacity(df.width());
    for (c, col) in table.columns().iter().zip(df.columns()) {
        cols.push(col.cast(&c.ty.dtype())?);
    }
    let mut out = DataFrame::new(df.height(), cols)?;
    atomic::write_with(path, |f| {
        ParquetWriter::new(f)
            .with_compression(ParquetCompression::Zstd(None))
            .finish(&mut out)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    })
}

/// Reads a table and checks its schema.
pub fn read(path: &Path, table: Table) -> Result<DataFrame> {
    let f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let df = ParquetReader::new(f)
        .finish()
        .map_err(anyhow::Error::from)
        .with_context(|| format!("reading {}", path.display()))?;
    check(table, &df)
        .with_context(|| format!("{} does not match the {:?} schema", path.display(), table))?;
    Ok(df)
}

/// An empty frame with the table's schema (a run with nothing to log still has its files).
pub(crate) fn empty(table: Table) -> DataFrame {
    let cols = table
        .columns()
        .iter()
        .map(|c| Series::new_empty(c.name.into(), &c.ty.dtype()).into_column())
        .collect();
    DataFrame::new(0, cols).expect("empty frame")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary_row() -> DataFrame {
        let cols: Vec<polars::prelude::Column> = vec![
            Series::new("experiment".into(), ["c10"]).into_column(),
            Series::new("tier".into(), ["smoke"]).into_column(),
            Series::new("stage".into(), ["train"]).into_column(),
            Series::new("seed".into(), [0i64]).into_column(),
            Series::new("run_id".into(), ["abc"]).into_column(),
            Series::new("upstream_run_id".into(), [None::<&str>]).into_column(),
            Series::new("acc_val_pct".into(), [None::<f64>]).into_column(),
            Series::new("acc_test_top1_pct".into(), [41.5f64]).into_column(),
            Series::new("acc_test_top5_pct".into(), [None::<f64>]).into_column(),
            Series::new("acc_test_best_top1_pct".into(), [42.0f64]).into_column(),
            Series::new("acc_test_best_top5_pct".into(), [None::<f64>]).into_column(),
            Series::new("params_m".into(), [3.3308f64]).into_column(),
            Series::new("macs_m".into(), [None::<f64>]).into_column(),
            Series::new("lat_ms".into(), [None::<f64>]).into_column(),
            Series::new("wall_s".into(), [1.25f64]).into_column(),
            Series::new("deterministic".into(), [true]).into_column(),
        ];
        DataFrame::new(1, cols).unwrap()
    }

    #[test]
    fn a_table_round_trips_through_parquet() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("summary.parquet");
        let mut df = summary_row();
        write(&p, Table::Summary, &mut df).unwrap();
        let back = read(&p, Table::Summary).unwrap();
        assert_eq!(back.height(), 1);
        let acc = back
            .column("acc_test_top1_pct")
            .unwrap()
            .f64()
            .unwrap()
            .get(0);
        assert_eq!(acc, Some(41.5));
        assert_eq!(
            back.column("upstream_run_id").unwrap().dtype(),
            &DataType::String
        );
    }

    #[test]
    fn a_frame_that_breaks_the_schema_is_refused_and_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("summary.parquet");
        let mut df = summary_row().drop("lat_ms").unwrap();
        let err = write(&p, Table::Summary, &mut df).unwrap_err().to_string();
        assert!(err.contains("needs 16 columns"), "{err}");
        assert!(!p.exists());
        let mut wrong_type = summary_row();
        wrong_type
            .replace("seed", Series::new("seed".into(), ["zero"]).into_column())
            .unwrap();
        let err = write(&p, Table::Summary, &mut wrong_type)
            .unwrap_err()
            .to_string();
        assert!(err.contains("column `seed` must be Int64"), "{err}");
    }

    #[test]
    fn empty_tables_have_every_column() {
        for t in Table::ALL {
            let df = empty(t);
            check(t, &df).unwrap();
            assert_eq!(df.height(), 0);
        }
    }
}
