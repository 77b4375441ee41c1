//! The run's TensorBoard log: the rows the recorder writes to Parquet, also as TensorBoard scalars
//! (each step-log block, each epoch) and text (the resolved config, each epoch's genotype), in event
//! files in the run folder, so `tensorboard --logdir results/runs` shows every running and finished run.
//!
//! Tags: the official code's (spec §8) where the quantity is the same, ours beside them:
//! - per step: `train/{loss,acc1,lr,arc_lr}`, `meta/{lr,entropy,loss_cov,latency_time}` (official);
//!   `meta/{f_discrete,f_relaxed,pair_penalty,grad_var}`, `train/grad_norm`, `perf/images_per_s`;
//! - per epoch: `train/acc`, `val/{acc,loss}` (official); `train/epoch_loss`, `test/{acc1,acc5}`,
//!   `arch/entropy/<cell type>` and `arch/entropy/<cell type>/<node or block>` (from the `arch` rows),
//!   the text `arch/genotype`; a latency search's `meta/latency_coeff` (official) and
//!   `latency/{sample_ms,sample_pred_ms,mode_ms,mode_pred_ms}` (its `latency` rows); once, the text
//!   `config`.
//!
//! One step axis per run: steps restart in every phase, so a phase's steps are offset by the steps of
//! the phases before it (a search's warm-up steps, then its search steps). An epoch's values sit at its
//! last step. A resumed run writes `SessionLog.START` at its resume step, which makes TensorBoard drop
//! what the killed process wrote from there on; what it keeps is exactly the kept Parquet rows. One
//! window is left: a checkpoint taken after an epoch's last step but before its row (SIGUSR1 during
//! that step), then a kill between the row's events and the next checkpoint: the row sits at the step
//! before the resume step, so the resumed run shows that epoch's values twice.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use polars::prelude::DataFrame;

use crate::results::event_file::{self, EventFile};
use crate::results::latency_rows::LatencyRow;
use crate::results::rows::{ArchRow, EpochRow, StepRow, Term};
use crate::results::{layout, Phase, RunDir};
use crate::train::metrics::ResumePoint;

static ENABLED: AtomicBool = AtomicBool::new(true);

/// Whether runs of this process write event files (`--no-tensorboard` turns them off).
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// The TensorBoard log of one run.
pub struct Board {
    /// `None` when event files are turned off.
    file: Option<EventFile>,
    /// The phase of the last step written and the run-wide step of its step 0.
    phase: Phase,
    offset: u64,
    /// The run-wide step of the next step.
    next: u64,
    /// Time spent building and writing events (for the cost in `BENCHMARKS.md`).
    spent: Duration,
}

/// The scalars among `(tag, value)` pairs that have a value, as the f32 TensorBoard keeps.
fn present<'a>(pairs: impl IntoIterator<Item = (&'a str, Option<f64>)>) -> Vec<(String, f32)> {
    pairs
        .into_iter()
        .filter_map(|(tag, x)| x.map(|x| (tag.to_owned(), x as f32)))
        .collect()
}

/// The tag of a step term.
fn term_tag(t: Term) -> &'static str {
    match t {
        Term::LossTrain => "train/loss",
        Term::AccTrainPct => "train/acc1",
        Term::FDiscrete => "meta/f_discrete",
        Term::FRelaxed => "meta/f_relaxed",
        Term::GenGap => "meta/loss_cov", // |ℓ_va − ℓ_tr|, the official name
        Term::PairPenalty => "meta/pair_penalty",
        Term::EntropyNats => "meta/entropy",
        Term::GradNormWeights => "train/grad_norm",
        Term::GradVarArch => "meta/grad_var",
    }
}

/// The scalars of a step row.
fn step_scalars(r: &StepRow) -> Vec<(String, f32)> {
    let terms = Term::ALL.map(|t| (term_tag(t), r.term(t)));
    present(terms.into_iter().chain([
        ("train/lr", r.lr_weights),
        ("train/arc_lr", r.lr_arch),
        ("meta/lr", r.lr_arch),
        ("meta/latency_time", r.lat_ms),
        ("perf/images_per_s", r.images_per_s),
    ]))
}

/// The scalars of an epoch row.
fn epoch_scalars(r: &EpochRow) -> Vec<(String, f32)> {
    present([
        ("train/epoch_loss", r.loss_train),
        ("train/acc", r.acc_train_pct),
        ("val/loss", r.loss_val),
        ("val/acc", r.acc_val_pct),
        ("test/acc1", r.acc_test_top1_pct),
        ("test/acc5", r.acc_test_top5_pct),
    ])
}

/// The scalars of a latency search's epoch row: c_t (official name) and the epoch's mean measured and
/// predicted latency of the sampled architectures, and the mode's.
fn latency_scalars(r: &LatencyRow) -> Vec<(String, f32)> {
    present([
        ("meta/latency_coeff", Some(r.latency_coeff)),
        ("latency/sample_ms", r.sample_lat_ms),
        ("latency/sample_pred_ms", r.sample_pred_ms),
        ("latency/mode_ms", Some(r.mode_lat_ms)),
        ("latency/mode_pred_ms", r.mode_pred_ms),
    ])
}

/// The entropy of the architecture distribution per cell type and per (cell type, node) — a node of a
/// DARTS cell, a block of ProxylessNAS — from an epoch's `arch` rows: H = −Σ_selectors Σ_k p_k ln p_k.
pub fn arch_entropies(rows: &[ArchRow]) -> Vec<(String, f32)> {
    let mut by: BTreeMap<String, f64> = BTreeMap::new();
    for r in rows {
        let h = if r.prob > 0.0 {
            -r.prob * r.prob.ln()
        } else {
            0.0
        };
        *by.entry(format!("arch/entropy/{}", r.cell_type))
            .or_default() += h;
        *by.entry(format!("arch/entropy/{}/{}", r.cell_type, r.node))
            .or_default() += h;
    }
    by.into_iter().map(|(tag, h)| (tag, h as f32)).collect()
}

/// Text shown as written (the text plugin renders Markdown; indented lines are a code block).
fn verbatim(text: &str) -> String {
    text.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Rows of the phases before `phase` in a kept `steps` table: the run-wide step of `phase`'s step 0
/// (steps are numbered 0, 1, … within a phase).
fn steps_before(steps: &DataFrame, phase: Phase) -> Result<u64> {
    let col = steps.column("phase")?.str()?.clone();
    Ok(col
        .iter()
        .filter(|p| p.and_then(Phase::parse).is_some_and(|p| p < phase))
        .count() as u64)
}

impl Board {
    /// Opens the run's log at `at` with its kept `steps` rows: a new event file, beginning with a
    /// `SessionLog.START` at the resume step when the folder has earlier ones, and the resolved config
    /// when the run starts from step 0.
    pub fn open(dir: &RunDir, at: ResumePoint, steps: &DataFrame) -> Result<Board> {
        let offset = steps_before(steps, at.phase)?;
        let mut board = Board {
            file: None,
            phase: at.phase,
            offset,
            next: offset + at.step,
            spent: Duration::ZERO,
        };
        if !ENABLED.load(Ordering::Relaxed) {
            return Ok(board);
        }
        let t0 = Instant::now();
        let resumed = !event_file::list(dir.path())?.is_empty();
        let mut file = EventFile::create(dir.path(), &crate::results::provenance::host_name())?;
        if resumed {
            file.session_start(board.next);
        }
        if board.next == 0 {
            let path = dir.file(layout::CONFIG);
            if let Ok(config) = std::fs::read_to_string(&path) {
                file.text(0, "config", &verbatim(&config));
            }
        }
        file.flush()
            .with_context(|| format!("starting the TensorBoard log of {}", dir.path().display()))?;
        board.file = Some(file);
        board.spent += t0.elapsed();
        Ok(board)
    }

    /// The run-wide step of `row`, moving to its phase when it begins one.
    fn global_step(&mut self, phase: Phase, step: u64) -> u64 {
        if phase != self.phase {
            self.phase = phase;
            self.offset = self.next;
        }
        let g = self.offset + step;
        self.next = g + 1;
        g
    }

    /// A block of step rows, written now.
    pub fn steps(&mut self, rows: &[StepRow]) -> Result<()> {
        let t0 = Instant::now();
        for r in rows {
            let g = self.global_step(r.phase, r.step);
            if let Some(f) = self.file.as_mut() {
                f.scalars(g, &step_scalars(r));
            }
        }
        self.flush(t0)
    }

    /// An epoch's row (and a search epoch's `arch` rows), at the epoch's last step, written now.
    pub fn epoch(&mut self, row: &EpochRow, arch: Option<&[ArchRow]>) -> Result<()> {
        let t0 = Instant::now();
        let at = self.next.saturating_sub(1);
        if let Some(f) = self.file.as_mut() {
            let mut scalars = epoch_scalars(row);
            scalars.extend(arch.map(arch_entropies).unwrap_or_default());
            f.scalars(at, &scalars);
            if let Some(g) = &row.genotype {
                f.text(at, "arch/genotype", &verbatim(g));
            }
        }
        self.flush(t0)
    }

    /// A latency search's epoch row, at the epoch's last step, written now.
    pub fn latency(&mut self, row: &LatencyRow) -> Result<()> {
        let t0 = Instant::now();
        let at = self.next.saturating_sub(1);
        if let Some(f) = self.file.as_mut() {
            f.scalars(at, &latency_scalars(row));
        }
        self.flush(t0)
    }

    fn flush(&mut self, t0: Instant) -> Result<()> {
        if let Some(f) = self.file.as_mut() {
            f.flush()?;
        }
        self.spent += t0.elapsed();
        Ok(())
    }

    /// Seconds spent building and writing events so far.
    pub fn spent_s(&self) -> f64 {
        self.spent.as_secs_f64()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::event_file::{records, Event, What};
    use crate::results::rows::{step_rows, steps_frame, ChoiceKey};
    use prost::Message;

    /// (step, tag, value) of every scalar, and the START steps, in file order.
    fn read(dir: &std::path::Path) -> (Vec<(i64, String, f32)>, Vec<i64>) {
        let (mut scalars, mut starts) = (Vec::new(), Vec::new());
        for path in event_file::list(dir).unwrap() {
            let bytes = std::fs::read(path).unwrap();
            for r in records(&bytes).unwrap() {
                let ev = Event::decode(r).unwrap();
                match ev.what {
                    Some(What::Summary(s)) => scalars.extend(
                        s.value
                            .iter()
                            .filter_map(|v| Some((ev.step, v.tag.clone(), v.simple_value?))),
                    ),
                    Some(What::SessionLog(_)) => starts.push(ev.step),
                    Some(What::FileVersion(_)) | None => {}
                }
            }
        }
        (scalars, starts)
    }

    fn at(phase: Phase, epoch: u32, step: u64) -> ResumePoint {
        ResumePoint { phase, epoch, step }
    }

    #[test]
    fn phases_share_one_step_axis_and_a_resume_starts_a_session_at_its_step() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = RunDir(tmp.path().to_owned());
        let none = steps_frame(&[]).unwrap();
        let mut b = Board::open(&dir, at(Phase::Warmup, 0, 0), &none).unwrap();
        b.steps(&step_rows(Phase::Warmup, 0..4)).unwrap();
        b.steps(&step_rows(Phase::Search, 0..3)).unwrap();
        let (s, starts) = read(tmp.path());
        let loss: Vec<(i64, f32)> = s
            .iter()
            .filter(|(_, t, _)| t == "train/loss")
            .map(|(g, _, v)| (*g, *v))
            .collect();
        assert_eq!(
            loss.iter().map(|x| x.0).collect::<Vec<_>>(),
            vec![0, 1, 2, 3, 4, 5, 6],
            "search step 0 follows warm-up step 3"
        );
        assert_eq!(
            loss[5].1,
            (1.0f64 * 0.1) as f32,
            "values are the rows' (as f32)"
        );
        assert!(starts.is_empty(), "a fresh run starts no session");

        // Killed; the checkpoint says search resumes at its step 1 (run-wide step 5).
        let mut kept = step_rows(Phase::Warmup, 0..4);
        kept.extend(step_rows(Phase::Search, 0..1));
        let kept = steps_frame(&kept).unwrap();
        let mut b = Board::open(&dir, at(Phase::Search, 0, 1), &kept).unwrap();
        assert_eq!(b.next, 5);
        b.epoch(
            &EpochRow {
                phase: Phase::Search,
                seed: 0,
                epoch: 0,
                loss_train: Some(1.5),
                acc_train_pct: None,
                loss_val: Some(2.0),
                acc_val_pct: Some(50.0),
                acc_test_top1_pct: None,
                acc_test_top5_pct: None,
                genotype: Some("{}".into()),
                wall_s: 0.0,
            },
            None,
        )
        .unwrap();
        let (s, starts) = read(tmp.path());
        assert_eq!(starts, vec![5]);
        let val = s.iter().find(|(_, t, _)| t == "val/acc").unwrap();
        assert_eq!(
            (val.0, val.2),
            (4, 50.0),
            "an epoch's values sit at its last step"
        );
    }

    #[test]
    fn a_latency_epoch_row_sits_at_the_epochs_last_step_under_the_official_coefficient_tag() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = RunDir(tmp.path().to_owned());
        let none = steps_frame(&[]).unwrap();
        let mut b = Board::open(&dir, at(Phase::Warmup, 0, 0), &none).unwrap();
        b.steps(&step_rows(Phase::Search, 0..3)).unwrap();
        let row = LatencyRow {
            seed: 0,
            phase: Phase::Search,
            epoch: 0,
            global_epoch: 0,
            genotype: String::new(),
            mode_lat_ms: 7.5,
            mode_pred_ms: None,
            sample_lat_ms: Some(8.25),
            sample_pred_ms: Some(8.0),
            latency_coeff: 0.01,
            target_ms: 10.0,
            device: String::new(),
            device_name: String::new(),
            driver: String::new(),
            libtorch: String::new(),
            threads: 1,
        };
        b.latency(&row).unwrap();
        let (s, _) = read(tmp.path());
        let got: BTreeMap<&str, (i64, f32)> = s
            .iter()
            .filter(|(_, t, _)| t.starts_with("meta/latency") || t.starts_with("latency/"))
            .map(|(g, t, v)| (t.as_str(), (*g, *v)))
            .collect();
        assert_eq!(
            got,
            BTreeMap::from([
                ("meta/latency_coeff", (2, 0.01f32)),
                ("latency/sample_ms", (2, 8.25)),
                ("latency/sample_pred_ms", (2, 8.0)),
                ("latency/mode_ms", (2, 7.5)),
            ])
        );
    }

    #[test]
    fn entropy_per_cell_type_and_node_sums_the_selectors_entropies() {
        let row = |cell: &str, node: i64, selector: i64, prob: f64| ArchRow {
            seed: 0,
            epoch: 0,
            cell_type: cell.into(),
            node,
            selector,
            key: ChoiceKey::Op,
            choice: 0,
            choice_name: String::new(),
            logit: 0.0,
            prob,
        };
        let rows = [
            row("normal", 0, 0, 0.5),
            row("normal", 0, 0, 0.5),
            row("normal", 1, 1, 1.0),
            row("normal", 1, 1, 0.0),
            row("reduce", 0, 0, 0.25),
        ];
        let h: BTreeMap<String, f32> = arch_entropies(&rows).into_iter().collect();
        let ln2 = std::f64::consts::LN_2;
        assert_eq!(h["arch/entropy/normal"], ln2 as f32);
        assert_eq!(h["arch/entropy/normal/0"], ln2 as f32);
        assert_eq!(h["arch/entropy/normal/1"], 0.0);
        assert_eq!(h["arch/entropy/reduce"], (-0.25 * 0.25f64.ln()) as f32);
    }
}
