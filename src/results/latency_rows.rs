//! Rows of the latency tables (schema: [`super::schema`]): a latency search's per-epoch row and
//! `unas latency table`'s per-(block, op) row, each with the stamp of the device that measured it.

use anyhow::Result;
use polars::prelude::*;
use serde::{Deserialize, Serialize};

use super::rows::{col, frame, to_i64};
use super::{Phase, Table};

/// One epoch of a latency search.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LatencyRow {
    pub seed: u64,
    pub phase: Phase,
    pub epoch: u32,
    pub global_epoch: u32,
    pub genotype: String,
    pub mode_lat_ms: f64,
    pub mode_pred_ms: Option<f64>,
    pub sample_lat_ms: Option<f64>,
    pub sample_pred_ms: Option<f64>,
    pub latency_coeff: f64,
    pub target_ms: f64,
    pub device: String,
    pub device_name: String,
    pub driver: String,
    pub libtorch: String,
    pub threads: i64,
}

/// One (block, op) pair of a latency table.
#[derive(Clone, Debug, PartialEq)]
pub struct LatencyTableRow {
    pub block: i64,
    pub op: String,
    pub c_in: i64,
    pub c_out: i64,
    pub stride: i64,
    pub side_px: i64,
    pub batch: i64,
    pub width_multiplier: f64,
    pub lat_ms: f64,
    pub device: String,
    pub device_name: String,
    pub driver: String,
    pub libtorch: String,
    pub threads: i64,
}

macro_rules! cols {
    ($rows:expr; $($name:ident => $f:expr),* $(,)?) => {
        vec![$(col(stringify!($name), $rows.iter().map($f).collect::<Vec<_>>())),*]
    };
}

pub fn latency_frame(rows: &[LatencyRow]) -> Result<DataFrame> {
    let cols = cols![rows;
        seed => |r: &LatencyRow| to_i64(r.seed),
        phase => |r: &LatencyRow| r.phase.as_str(),
        epoch => |r: &LatencyRow| i64::from(r.epoch),
        global_epoch => |r: &LatencyRow| i64::from(r.global_epoch),
        genotype => |r: &LatencyRow| r.genotype.clone(),
        mode_lat_ms => |r: &LatencyRow| r.mode_lat_ms,
        mode_pred_ms => |r: &LatencyRow| r.mode_pred_ms,
        sample_lat_ms => |r: &LatencyRow| r.sample_lat_ms,
        sample_pred_ms => |r: &LatencyRow| r.sample_pred_ms,
        latency_coeff => |r: &LatencyRow| r.latency_coeff,
        target_ms => |r: &LatencyRow| r.target_ms,
        device => |r: &LatencyRow| r.device.clone(),
        device_name => |r: &LatencyRow| r.device_name.clone(),
        driver => |r: &LatencyRow| r.driver.clone(),
        libtorch => |r: &LatencyRow| r.libtorch.clone(),
        threads => |r: &LatencyRow| r.threads,
    ];
    frame(Table::Latency, rows.len(), cols)
}

pub fn latency_table_frame(rows: &[LatencyTableRow]) -> Result<DataFrame> {
    let cols = cols![rows;
        block => |r: &LatencyTableRow| r.block,
        op => |r: &LatencyTableRow| r.op.clone(),
        c_in => |r: &LatencyTableRow| r.c_in,
        c_out => |r: &LatencyTableRow| r.c_out,
        stride => |r: &LatencyTableRow| r.stride,
        side_px => |r: &LatencyTableRow| r.side_px,
        batch => |r: &LatencyTableRow| r.batch,
        width_multiplier => |r: &LatencyTableRow| r.width_multiplier,
        lat_ms => |r: &LatencyTableRow| r.lat_ms,
        device => |r: &LatencyTableRow| r.device.clone(),
        device_name => |r: &LatencyTableRow| r.device_name.clone(),
        driver => |r: &LatencyTableRow| r.driver.clone(),
        libtorch => |r: &LatencyTableRow| r.libtorch.clone(),
        threads => |r: &LatencyTableRow| r.threads,
    ];
    frame(Table::LatencyTable, rows.len(), cols)
}
