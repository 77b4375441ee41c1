//! The Parquet tables of every scanned run, read through the one schema (`results::parquet::read`,
//! which refuses a file that does not match it) and stacked per table, each row tagged with its run's
//! `group` (experiment | tier | config id) and `run_id`, so that every aggregate is a polars group-by.

use std::collections::BTreeMap;

use anyhow::Result;
use polars::prelude::*;

use crate::results::parquet;
use crate::results::schema::Table;

use super::scan::Group;

/// The stacked tables (an absent table is an empty frame with the schema's columns plus the tags).
pub(crate) struct Frames {
    pub summary: DataFrame,
    pub epochs: DataFrame,
    pub steps: DataFrame,
    pub arch: DataFrame,
    /// Files that exist but could not be read, with the reason: shown in the status footnotes.
    pub unreadable: Vec<String>,
}

/// Adds the `group` and `run_id` tags (the summary has its own `run_id`, so only `group` there).
fn tagged(table: Table, df: DataFrame, group: &str, run_id: &str) -> LazyFrame {
    let lf = df.lazy().with_column(lit(group.to_owned()).alias("group"));
    match table {
        Table::Summary => lf,
        _ => lf.with_column(lit(run_id.to_owned()).alias("run_id")),
    }
}

fn empty_tagged(table: Table) -> DataFrame {
    tagged(table, parquet::empty(table), "", "")
        .collect()
        .expect("an empty frame collects")
}

fn stack(table: Table, parts: Vec<LazyFrame>) -> Result<DataFrame> {
    if parts.is_empty() {
        return Ok(empty_tagged(table));
    }
    Ok(concat(parts, UnionArgs::default())?.collect()?)
}

/// Reads every table of every run of `groups`.
pub(crate) fn load(groups: &[Group]) -> Result<Frames> {
    let mut parts: BTreeMap<&'static str, Vec<LazyFrame>> = BTreeMap::new();
    let mut unreadable = Vec::new();
    for g in groups {
        let key = g.key();
        // a damaged run's numbers are not used: its page says which file and the way out
        let readable = g.runs.iter().filter(|r| r.state.is_ok());
        for run in readable {
            for table in Table::ALL {
                let path = run.dir.join(table.file_name());
                if !path.exists() {
                    continue;
                }
                match parquet::read(&path, table) {
                    Ok(df) => parts.entry(table.file_name()).or_default().push(tagged(
                        table,
                        df,
                        &key,
                        &run.run_id,
                    )),
                    Err(e) => unreadable.push(format!("{}: {e:#}", path.display())),
                }
            }
        }
    }
    let mut take = |t: Table| stack(t, parts.remove(t.file_name()).unwrap_or_default());
    Ok(Frames {
        summary: take(Table::Summary)?,
        epochs: take(Table::Epochs)?,
        steps: take(Table::Steps)?,
        arch: take(Table::Arch)?,
        unreadable,
    })
}
