//! Where results live. One folder per run (a stage of one experiment at one seed):
//!
//! ```text
//! results/runs/<experiment>/<tier>/<stage>-seed<seed>-<run id, 16 hex>/
//!     config.yaml       the resolved experiment that ran (tier and overrides applied)
//!     provenance.json   git commit, versions, device, host, command line, seed
//!     status.json       running | done | failed (reason) | diverged (step, term) | interrupted (reason)
//!     run.log           the run's log: starts, ends, one line per epoch, progress lines, warnings (appended)
//!     events.out.tfevents.*  TensorBoard event files, one per process (results::event_file)
//!     steps.parquet     one row per optimisation step          (schema: results::schema)
//!     epochs.parquet    one row per epoch
//!     summary.parquet   one row: the run's final numbers
//!     arch.parquet      architecture probabilities per epoch (search)
//!     genotype.json     the derived (search) or trained architecture
//!     model_best.pt     ImageNet training: the weights of the epoch with the best top-1
//!     checkpoints/      resumable state
//!     lock              pid of the process running it
//! results/reports/      tables, plots, HTML pages (rebuilt from runs/ by `unas report`)
//! ```

use std::path::{Path, PathBuf};

pub const CONFIG: &str = "config.yaml";
pub const PROVENANCE: &str = "provenance.json";
pub const STATUS: &str = "status.json";
pub const GENOTYPE: &str = "genotype.json";
pub const CHECKPOINTS: &str = "checkpoints";
/// ImageNet training: the weights of the best top-1 epoch (the official `model_best.pth.tar`).
pub const MODEL_BEST: &str = "model_best.pt";
/// What a stage saw of its data: unreadable images skipped, the width it chose.
pub const DATA_RECORD: &str = "data.json";

/// The results root (`--results`, `UNAS_RESULTS`, or `results/`).
#[derive(Clone, Debug)]
pub struct ResultsRoot(pub PathBuf);

impl ResultsRoot {
    pub fn runs(&self) -> PathBuf {
        self.0.join("runs")
    }

    pub fn reports(&self) -> PathBuf {
        self.0.join("reports")
    }

    /// The folder of one run.
    pub fn run_dir(
        &self,
        experiment: &str,
        tier: &str,
        stage: &str,
        seed: u64,
        run_id: &str,
    ) -> RunDir {
        let short = &run_id[..run_id.len().min(16)];
        RunDir(
            self.runs()
                .join(experiment)
                .join(tier)
                .join(format!("{stage}-seed{seed}-{short}")),
        )
    }
}

/// One run's folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunDir(pub PathBuf);

impl RunDir {
    pub fn path(&self) -> &Path {
        &self.0
    }
    pub fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
    pub fn table(&self, t: super::schema::Table) -> PathBuf {
        self.0.join(t.file_name())
    }
}
