//! One run recorder for both loops (search and from-scratch training): the step log, the run's Parquet
//! tables, checkpoints, signal handling and the final writes (genotype, data record, summary).
//!
//! A loop talks to it in this order:
//! - [`Recorder::latest`]: the newest complete checkpoint, to restore from before anything runs;
//! - [`Recorder::open`]: the tables reloaded up to the checkpoint's [`ResumePoint`], the clock continued,
//!   SIGTERM / SIGUSR1 handlers installed;
//! - per step: [`Recorder::signal`] (then [`Recorder::checkpoint`], and [`stop_if_asked`]),
//!   [`Recorder::record`] (each block of steps read goes to the TensorBoard log at once; off a terminal,
//!   a progress line is due every `--progress-every` seconds: the block is read early for its loss);
//! - per epoch: [`Recorder::flush_steps`] before validation, [`Recorder::end_epoch`] with the epoch's row
//!   (and the architecture rows of a search), then [`Recorder::checkpoint`];
//! - once: [`Recorder::finish`].
//!
//! The step log is flushed and the tables written before every checkpoint, so a resumed run ends with
//! exactly the rows of an uninterrupted one (and its TensorBoard log shows exactly those points).

use anyhow::Result;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tch::Tensor;

use crate::results::diverged::Checks;
use crate::results::latency_rows::LatencyRow;
use crate::results::rows::{self, ArchRow, EpochRow, SummaryRow, Term};
use crate::results::{atomic, layout, parquet, Interrupted, Phase, RunDir, Table};
use crate::stage::StageCtx;
use crate::train::checkpoint::{Checkpoints, Loaded, Mark};
use crate::train::metrics::{Board, Clock, ResumePoint, StepInfo, StepLog, TableLog};
use crate::train::signals::{Request, Signals};

/// Steps per device read of the step log.
const STEPS_PER_READ: usize = 20;

/// A loop's checkpoint metadata: where it is, and the wall seconds the run has used (the clock
/// continues from them on resume).
pub trait RunMeta: Serialize + DeserializeOwned + Clone {
    fn wall_s_mut(&mut self) -> &mut f64;
}

/// What a run leaves besides its tables.
pub struct Finish {
    /// The derived (search) or trained genotype, pretty JSON.
    pub genotype_json: String,
    /// `data.json`: what the stage saw of its data (unreadable images skipped, the width chosen).
    pub data_record: serde_json::Value,
    pub summary: SummaryRow,
}

/// The recorder of one run folder.
pub struct Recorder {
    ckpts: Checkpoints,
    steps: StepLog,
    steps_table: TableLog,
    epochs_table: TableLog,
    /// The `arch` table of a search.
    arch_table: Option<TableLog>,
    /// The run's TensorBoard event files.
    board: Board,
    signals: Signals,
    dir: RunDir,
    /// Steps recorded since the `steps` table was last written.
    unwritten: bool,
}

impl Recorder {
    /// The newest complete checkpoint of the run in `dir`, if any.
    pub fn latest<M: DeserializeOwned>(dir: &RunDir) -> Result<Option<Loaded<M>>> {
        Checkpoints::new(dir.file(layout::CHECKPOINTS)).load_latest::<M>()
    }

    /// Opens the run's tables at `at` (rows from there on, left by a killed run, are dropped), the step
    /// log with the clock at `wall_s`, and the signal handlers. `arch`: the run keeps an `arch` table.
    pub fn open(dir: &RunDir, seed: u64, at: ResumePoint, wall_s: f64, arch: bool) -> Result<Self> {
        let table = |t: Table| TableLog::resume(t, dir.table(t), at);
        let epochs_table = table(Table::Epochs)?;
        let steps_table = table(Table::Steps)?;
        let board = Board::open(dir, at, steps_table.frame())?;
        let done = epochs_table.frame().height() as u64;
        if done > 0 {
            tracing::info!(epochs_done = done, "resuming from a checkpoint");
        }
        crate::progress::stage_resumed(done);
        Ok(Recorder {
            ckpts: Checkpoints::new(dir.file(layout::CHECKPOINTS)),
            steps: StepLog::new(seed, STEPS_PER_READ, Clock::start(wall_s)),
            steps_table,
            epochs_table,
            arch_table: if arch {
                Some(table(Table::Arch)?)
            } else {
                None
            },
            board,
            signals: Signals::install()?,
            dir: dir.clone(),
            unwritten: false,
        })
    }

    /// Seconds the run has used, over all its resumes.
    pub fn wall_s(&self) -> f64 {
        self.steps.clock().wall_s()
    }

    /// Records a step's terms and finite checks (kept on the device; read every [`STEPS_PER_READ`]
    /// steps, or earlier when a plain progress line is due). A non-finite value fails with
    /// [`crate::results::Diverged`].
    pub fn record(
        &mut self,
        info: StepInfo,
        terms: &[(Term, &Tensor)],
        checks: Checks,
    ) -> Result<()> {
        self.unwritten = true;
        slow_step_for_tests();
        fail_for_tests(&info)?;
        let due = crate::progress::step(info.phase, info.epoch, info.step, info.images);
        self.steps.record(info, terms, checks)?;
        if due {
            self.steps.flush()?;
        }
        self.take_block()?;
        if due {
            let line = crate::progress::line();
            tracing::info!("{line}");
        }
        Ok(())
    }

    /// The rows read since the last call: into the `steps` table (in memory) and the TensorBoard log.
    fn take_block(&mut self) -> Result<()> {
        let rows = self.steps.take_rows();
        if rows.is_empty() {
            return Ok(());
        }
        if let Some(loss) = rows.iter().rev().find_map(|r| r.term(Term::LossTrain)) {
            crate::progress::loss(loss);
        }
        self.board.steps(&rows)?;
        self.steps_table.append(&rows::steps_frame(&rows)?)
    }

    /// A signal that arrived since the last poll: checkpoint, then continue or stop.
    ///
    /// Over ranks, every rank polls here at the same step and they agree (a stop any rank saw stops
    /// all, after rank 0's checkpoint), so no rank leaves while the others wait in a collective.
    pub fn signal(&self) -> Result<Option<Request>> {
        let mine = self.signals.poll();
        let ranks = crate::dist::ranks();
        if ranks.world() == 1 {
            return Ok(mine);
        }
        // [checkpoint-and-continue, checkpoint-and-exit] seen by how many ranks
        let seen = Tensor::from_slice(&[
            f32::from(u8::from(mine == Some(Request::CheckpointAndContinue))),
            f32::from(u8::from(mine == Some(Request::CheckpointAndExit))),
        ]);
        ranks.sum("the ranks' signal poll", &[&seen])?;
        let seen = Vec::<f32>::try_from(&seen)?;
        Ok(if seen[1] > 0.0 {
            Some(Request::CheckpointAndExit)
        } else if seen[0] > 0.0 {
            Some(Request::CheckpointAndContinue)
        } else {
            None
        })
    }

    /// Reads the pending steps and rewrites the `steps` table.
    pub fn flush_steps(&mut self) -> Result<()> {
        self.unwritten = false;
        self.steps.flush()?;
        self.take_block()?;
        self.steps_table.write()
    }

    /// Appends the epoch's row (and a search's architecture rows) and rewrites those tables.
    pub fn end_epoch(&mut self, row: EpochRow, arch: Option<Vec<ArchRow>>) -> Result<()> {
        let line = crate::progress::epoch_done(&row);
        tracing::info!("{line}");
        self.board.epoch(&row, arch.as_deref())?;
        self.epochs_table.append(&rows::epochs_frame(&[row])?)?;
        self.epochs_table.write()?;
        if let (Some(table), Some(arch)) = (self.arch_table.as_mut(), arch) {
            table.append(&rows::arch_frame(&arch)?)?;
            table.write()?;
        }
        Ok(())
    }

    /// A latency search's epoch row, into the TensorBoard log (its table is the latency term's).
    pub fn latency(&mut self, row: &LatencyRow) -> Result<()> {
        self.board.latency(row)
    }

    /// Flushes the step log and saves a checkpoint at `mark` with the loop's `meta` (its clock set to
    /// now) and state tensors.
    pub fn checkpoint<M: RunMeta>(
        &mut self,
        mark: Mark,
        meta: &mut M,
        tensors: &[(String, Tensor)],
    ) -> Result<()> {
        if self.unwritten {
            self.flush_steps()?;
        }
        // every rank is at this step (rank 0's checkpoint is theirs; the others write to their copy)
        crate::dist::ranks().barrier("the barrier before a checkpoint")?;
        *meta.wall_s_mut() = self.wall_s();
        self.ckpts.save(mark, tensors, meta)?;
        Ok(())
    }

    /// The final writes: an empty `arch` table if the search never reached a search epoch, then
    /// `genotype.json`, `data.json` and the summary (last: a run with a summary is complete).
    pub fn finish(mut self, fin: Finish) -> Result<()> {
        tracing::info!(
            seconds = self.board.spent_s(),
            of_wall_s = self.wall_s(),
            "time spent writing TensorBoard events in this process"
        );
        if let Some(table) = self.arch_table.as_mut() {
            if !table.path().exists() {
                table.write()?;
            }
        }
        let unreadable = &fin.data_record["unreadable_images"];
        if unreadable
            .as_object()
            .is_some_and(|m| m.values().any(|v| v.as_u64().unwrap_or(0) > 0))
        {
            tracing::warn!(%unreadable, "unreadable images were skipped");
        }
        let json_file = |v: String| format!("{v}\n").into_bytes();
        atomic::write_atomic(
            &self.dir.file(layout::GENOTYPE),
            &json_file(fin.genotype_json),
        )?;
        atomic::write_atomic(
            &self.dir.file(layout::DATA_RECORD),
            &json_file(serde_json::to_string_pretty(&fin.data_record)?),
        )?;
        parquet::write(
            &self.dir.table(Table::Summary),
            Table::Summary,
            &mut rows::summary_frame(&fin.summary)?,
        )
    }
}

/// The fake slow step of the progress test: `UNAS_TEST_SLOW_STEP_MS` milliseconds of sleep per step.
fn slow_step_for_tests() {
    static MS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let ms = *MS.get_or_init(|| {
        std::env::var("UNAS_TEST_SLOW_STEP_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    });
    if ms > 0 {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}

/// The failing rank of the rank-fault test: `UNAS_TEST_FAIL_RANK=R` makes rank R's first step of the
/// search phase (after the warm-up's checkpoint) fail with an error (a rank that fails, as against
/// one that is killed).
fn fail_for_tests(info: &StepInfo) -> Result<()> {
    static RANK: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();
    let rank = *RANK.get_or_init(|| {
        std::env::var("UNAS_TEST_FAIL_RANK")
            .ok()
            .and_then(|v| v.parse().ok())
    });
    if rank == Some(crate::dist::ranks().rank()) && info.phase == Phase::Search {
        anyhow::bail!(
            "a failure injected for tests (UNAS_TEST_FAIL_RANK) at search step {}",
            info.step
        );
    }
    Ok(())
}

/// After the checkpoint a signal asked for: SIGTERM / SIGINT stops the run with an [`Interrupted`]
/// (recorded as `interrupted`; it resumes from that checkpoint).
pub fn stop_if_asked(req: Request, epoch: u32) -> Result<()> {
    if req == Request::CheckpointAndExit {
        let signal = crate::train::signals::stop_requested()
            .map_or("a signal", |s| s.name())
            .to_owned();
        tracing::warn!(epoch, %signal, "stopped after a checkpoint");
        return Err(Interrupted { signal, epoch }.into());
    }
    Ok(())
}

/// The summary row of a run with its identity filled in and no measurements yet.
pub fn summary_row(ctx: &StageCtx, phase: Phase, wall_s: f64) -> SummaryRow {
    let e = &ctx.resolved.experiment;
    SummaryRow {
        experiment: e.name.clone(),
        tier: ctx.resolved.tier.as_str().into(),
        phase,
        seed: ctx.seed,
        run_id: ctx.run_id.into(),
        upstream_run_id: ctx.upstream.as_ref().map(|(id, _)| id.to_string()),
        acc_val_pct: None,
        acc_test_top1_pct: None,
        acc_test_top5_pct: None,
        acc_test_best_top1_pct: None,
        acc_test_best_top5_pct: None,
        params_m: None,
        macs_m: None,
        lat_ms: None,
        wall_s,
        deterministic: e.deterministic,
    }
}
