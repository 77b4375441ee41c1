//! Rows of the `candidates` table (schema: [`super::schema`]): the architectures random search with
//! weight sharing drew after its search, their scores with the shared weights, and the one it chose.

use anyhow::Result;
use polars::prelude::*;

use super::rows::{col, frame, to_i64};
use super::Table;

/// One candidate architecture and its score.
#[derive(Clone, Debug, PartialEq)]
pub struct CandidateRow {
    pub seed: u64,
    pub candidate: u32,
    pub genotype: String,
    pub loss_val: f64,
    pub acc_val_pct: f64,
    pub chosen: bool,
}

pub fn candidates_frame(rows: &[CandidateRow]) -> Result<DataFrame> {
    let cols = vec![
        col(
            "seed",
            rows.iter().map(|r| to_i64(r.seed)).collect::<Vec<_>>(),
        ),
        col(
            "candidate",
            rows.iter()
                .map(|r| i64::from(r.candidate))
                .collect::<Vec<_>>(),
        ),
        col(
            "genotype",
            rows.iter().map(|r| r.genotype.clone()).collect::<Vec<_>>(),
        ),
        col(
            "loss_val",
            rows.iter().map(|r| r.loss_val).collect::<Vec<_>>(),
        ),
        col(
            "acc_val_pct",
            rows.iter().map(|r| r.acc_val_pct).collect::<Vec<_>>(),
        ),
        col("chosen", rows.iter().map(|r| r.chosen).collect::<Vec<_>>()),
    ];
    frame(Table::Candidates, rows.len(), cols)
}
