//! Reports rebuilt from what runs wrote (Parquet and JSON under `results/runs`), never from libtorch:
//! `unas report` scans the run folders ([`scan`]), stacks their Parquet tables ([`frames`]),
//! aggregates over seeds with polars ([`aggregate`], [`evidence`]) and writes `results/reports/`
//! ([`write`]): the named tables ([`tables`]) as Markdown, LaTeX ([`latex`]) and CSV, the figures
//! ([`figures`], plotters with the bundled [`font`]) as SVG and 300 dpi PNG, and the HTML notebook
//! pages ([`html`], maud). `unas report` is [`cli`]. Nothing here imports the training, runner or
//! network code, and nothing here does libtorch work.

mod aggregate;
mod baseline;
mod cells;
pub mod cli;
mod evidence;
mod figures;
mod font;
mod frames;
mod html;
mod latex;
mod scan;
mod suite;
mod table;
mod tables;
pub(crate) use crate::text_table;
mod write;

#[cfg(test)]
mod fixture;
#[cfg(test)]
mod tests;
