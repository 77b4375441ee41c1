//! Reports rebuilt from what runs wrote (Parquet and JSON under `results/runs`), never from libtorch.
//! Today: the status of every run. Tables, plots and HTML pages arrive with the report issue.

pub mod status;
pub(crate) use crate::text_table;
