//! The one place that says what every Parquet file of a run holds. Column names carry their unit
//! (`_pct`, `_s`, `_ms`, `_m` for millions, `_nats`); a writer that does not match the schema column for
//! column, in name and type, is refused before anything reaches disk.

use polars::prelude::DataType;

/// A Parquet table of a run folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Table {
    /// One row per optimisation step (search or training).
    Steps,
    /// One row per epoch.
    Epochs,
    /// One row per run: its final numbers.
    Summary,
    /// Architecture distribution per epoch: one row per (cell type, node, selector, key, choice).
    Arch,
    /// Latency search (ProxylessNAS): per epoch, the mode architecture's measured latency and the
    /// device that measured it. Only in the run folders of searches with a latency term.
    Latency,
    /// `unas latency table`: the latency of every (block, op) pair on one device.
    LatencyTable,
    /// Random search with weight sharing: every candidate architecture drawn after the search, its
    /// score with the shared weights, and which one the search returned. Only in the run folders of
    /// `random_ws` searches.
    Candidates,
}

/// Column types used in our tables (nullable unless noted in the doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Col {
    I64,
    F64,
    Str,
    Bool,
}

impl Col {
    pub fn dtype(self) -> DataType {
        match self {
            Col::I64 => DataType::Int64,
            Col::F64 => DataType::Float64,
            Col::Str => DataType::String,
            Col::Bool => DataType::Boolean,
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Column {
    pub name: &'static str,
    pub ty: Col,
    pub doc: &'static str,
}

const fn c(name: &'static str, ty: Col, doc: &'static str) -> Column {
    Column { name, ty, doc }
}

const STEPS: &[Column] = &[
    c("stage", Col::Str, "search | train"),
    c("seed", Col::I64, "seed of the run"),
    c("phase", Col::Str, "warmup | search | train"),
    c("epoch", Col::I64, "0-based epoch"),
    c("step", Col::I64, "global step within the phase"),
    c(
        "loss_train",
        Col::F64,
        "mean training cross-entropy of the weight step",
    ),
    c(
        "acc_train_pct",
        Col::F64,
        "training top-1 of the weight step, %",
    ),
    c(
        "f_discrete",
        Col::F64,
        "mean objective f(b) on the discrete sample",
    ),
    c(
        "f_relaxed",
        Col::F64,
        "mean objective f(ζ) on the relaxed sample",
    ),
    c(
        "gen_gap",
        Col::F64,
        "mean |ℓ_val − ℓ_train| of the gen-gap objective",
    ),
    c("pair_penalty", Col::F64, "mean pair penalty P"),
    c(
        "entropy_nats",
        Col::F64,
        "entropy of the architecture distribution",
    ),
    c("lr_weights", Col::F64, "learning rate of the weights"),
    c(
        "lr_arch",
        Col::F64,
        "learning rate of the architecture logits",
    ),
    c(
        "grad_norm_weights",
        Col::F64,
        "gradient norm of the weights before clipping",
    ),
    c(
        "grad_var_arch",
        Col::F64,
        "running estimate of the architecture-gradient variance",
    ),
    c(
        "lat_ms",
        Col::F64,
        "measured latency of the sampled architecture",
    ),
    c("images_per_s", Col::F64, "throughput of the step"),
    c("wall_s", Col::F64, "seconds since the run started"),
];

const EPOCHS: &[Column] = &[
    c("stage", Col::Str, "search | train"),
    c("seed", Col::I64, "seed of the run"),
    c("phase", Col::Str, "warmup | search | train"),
    c("epoch", Col::I64, "0-based epoch"),
    c("loss_train", Col::F64, "mean training loss over the epoch"),
    c("acc_train_pct", Col::F64, "training top-1, %"),
    c(
        "loss_val",
        Col::F64,
        "validation loss (search: held-out split)",
    ),
    c("acc_val_pct", Col::F64, "validation top-1, %"),
    c(
        "acc_test_top1_pct",
        Col::F64,
        "test top-1, % (training stage)",
    ),
    c("acc_test_top5_pct", Col::F64, "test top-5, % (ImageNet)"),
    c(
        "genotype",
        Col::Str,
        "genotype JSON at the end of the epoch (search)",
    ),
    c("wall_s", Col::F64, "seconds since the run started"),
];

const SUMMARY: &[Column] = &[
    c("experiment", Col::Str, "experiment name"),
    c("tier", Col::Str, "smoke | quick | paper"),
    c("stage", Col::Str, "search | train"),
    c("seed", Col::I64, "seed of the run"),
    c("run_id", Col::Str, "the run's id"),
    c(
        "upstream_run_id",
        Col::Str,
        "the search run whose genotype was trained",
    ),
    c("acc_val_pct", Col::F64, "final validation top-1, %"),
    c("acc_test_top1_pct", Col::F64, "final test top-1, %"),
    c("acc_test_top5_pct", Col::F64, "final test top-5, %"),
    c(
        "acc_test_best_top1_pct",
        Col::F64,
        "best test top-1 over the epochs, % (ImageNet: the epoch `model_best.pt` holds)",
    ),
    c(
        "acc_test_best_top5_pct",
        Col::F64,
        "test top-5 at the epoch of the best top-1, %",
    ),
    c(
        "params_m",
        Col::F64,
        "parameters in millions, auxiliary head excluded",
    ),
    c(
        "macs_m",
        Col::F64,
        "multiply-accumulates in millions (ptflops-0.4 rules)",
    ),
    c("lat_ms", Col::F64, "latency of the final architecture"),
    c("wall_s", Col::F64, "wall-clock seconds of the run"),
    c("deterministic", Col::Bool, "determinism switch of the run"),
];

const ARCH: &[Column] = &[
    c("seed", Col::I64, "seed of the search"),
    c("epoch", Col::I64, "0-based epoch"),
    c(
        "cell_type",
        Col::Str,
        "normal | reduce (DARTS) or block (ProxylessNAS)",
    ),
    c("node", Col::I64, "intermediate node (DARTS) or block index"),
    c("selector", Col::I64, "selector of the node (0 or 1)"),
    c("key", Col::Str, "input | op"),
    c("choice", Col::I64, "index of the choice"),
    c(
        "choice_name",
        Col::Str,
        "name of the choice (op name or input label)",
    ),
    c("logit", Col::F64, "architecture logit a"),
    c("prob", Col::F64, "softmax probability (after softening ε)"),
];

/// The stamp every latency number carries: what measured it.
const DEVICE_STAMP: [Column; 5] = [
    c(
        "device",
        Col::Str,
        "cpu | cuda:N: the device that measured the latency",
    ),
    c("device_name", Col::Str, "GPU or CPU model"),
    c(
        "driver",
        Col::Str,
        "NVIDIA driver version (none on the CPU)",
    ),
    c("libtorch", Col::Str, "libtorch version"),
    c("threads", Col::I64, "libtorch intra-op threads"),
];

const fn with_stamp<const N: usize, const M: usize>(head: [Column; N]) -> [Column; M] {
    let mut out = [c("", Col::Str, ""); M];
    let mut i = 0;
    while i < N {
        out[i] = head[i];
        i += 1;
    }
    let mut j = 0;
    while j < DEVICE_STAMP.len() {
        out[N + j] = DEVICE_STAMP[j];
        j += 1;
    }
    out
}

const LATENCY: [Column; 16] = with_stamp([
    c("seed", Col::I64, "seed of the search"),
    c("phase", Col::Str, "warmup | search"),
    c("epoch", Col::I64, "0-based epoch within the phase"),
    c("global_epoch", Col::I64, "0-based epoch over both phases"),
    c("genotype", Col::Str, "genotype JSON of the mode architecture"),
    c("mode_lat_ms", Col::F64, "measured latency of the mode architecture"),
    c("mode_pred_ms", Col::F64, "the surrogate's prediction for the mode architecture"),
    c("sample_lat_ms", Col::F64, "mean latency of the epoch's sampled architectures (measured, or predicted with `measure: surrogate`)"),
    c("sample_pred_ms", Col::F64, "mean surrogate prediction for the epoch's sampled architectures"),
    c("latency_coeff", Col::F64, "hinge coefficient c_t at the end of the epoch"),
    c("target_ms", Col::F64, "latency target T"),
]);

const LATENCY_TABLE: [Column; 14] = with_stamp([
    c(
        "block",
        Col::I64,
        "0 stem+first, 1..=21 searchable blocks, 22 head+classifier",
    ),
    c("op", Col::Str, "candidate name (or the fixed part's)"),
    c("c_in", Col::I64, "input channels"),
    c("c_out", Col::I64, "output channels"),
    c("stride", Col::I64, "stride of the block"),
    c("side_px", Col::I64, "input side of the block"),
    c("batch", Col::I64, "images per timed forward pass"),
    c(
        "width_multiplier",
        Col::F64,
        "width multiplier of the skeleton",
    ),
    c("lat_ms", Col::F64, "median latency of the op alone"),
]);

const CANDIDATES: &[Column] = &[
    c("seed", Col::I64, "seed of the search"),
    c("candidate", Col::I64, "index k of the uniform draw (0..K)"),
    c("genotype", Col::Str, "genotype JSON of the candidate"),
    c(
        "loss_val",
        Col::F64,
        "mean validation cross-entropy with the shared weights",
    ),
    c(
        "acc_val_pct",
        Col::F64,
        "validation top-1 with the shared weights, % (the score)",
    ),
    c("chosen", Col::Bool, "the best score: the search's genotype"),
];

impl Table {
    pub const ALL: [Table; 4] = [Table::Steps, Table::Epochs, Table::Summary, Table::Arch];
    /// Tables only some runs write (latency and random searches) or only a command writes.
    pub const OPTIONAL: [Table; 3] = [Table::Latency, Table::LatencyTable, Table::Candidates];

    pub fn columns(self) -> &'static [Column] {
        match self {
            Table::Steps => STEPS,
            Table::Epochs => EPOCHS,
            Table::Summary => SUMMARY,
            Table::Arch => ARCH,
            Table::Latency => &LATENCY,
            Table::LatencyTable => &LATENCY_TABLE,
            Table::Candidates => CANDIDATES,
        }
    }

    pub fn file_name(self) -> &'static str {
        match self {
            Table::Steps => "steps.parquet",
            Table::Epochs => "epochs.parquet",
            Table::Summary => "summary.parquet",
            Table::Arch => "arch.parquet",
            Table::Latency => "latency.parquet",
            Table::LatencyTable => "latency_table.parquet",
            Table::Candidates => "candidates.parquet",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_names_are_unique_and_measures_carry_a_unit() {
        let units = ["_pct", "_s", "_ms", "_m", "_nats"];
        let unitless_ok = [
            "stage",
            "seed",
            "phase",
            "epoch",
            "step",
            "experiment",
            "tier",
            "run_id",
            "upstream_run_id",
            "genotype",
            "cell_type",
            "node",
            "selector",
            "key",
            "choice",
            "choice_name",
            "deterministic",
            // dimensionless quantities
            "loss_train",
            "loss_val",
            "f_discrete",
            "f_relaxed",
            "gen_gap",
            "pair_penalty",
            "lr_weights",
            "lr_arch",
            "grad_norm_weights",
            "grad_var_arch",
            "logit",
            "prob",
            "global_epoch",
            "latency_coeff",
            "device",
            "device_name",
            "driver",
            "libtorch",
            "threads",
            "block",
            "op",
            "c_in",
            "c_out",
            "stride",
            "batch",
            "width_multiplier",
            "side_px",
            "candidate",
            "chosen",
        ];
        for t in Table::ALL.into_iter().chain(Table::OPTIONAL) {
            let names: Vec<_> = t.columns().iter().map(|c| c.name).collect();
            let mut sorted = names.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(sorted.len(), names.len(), "{t:?} has a duplicate column");
            for n in names {
                assert!(
                    units.iter().any(|u| n.ends_with(u)) || unitless_ok.contains(&n),
                    "{t:?}.{n}: a measured column needs a unit suffix"
                );
            }
        }
    }
}
