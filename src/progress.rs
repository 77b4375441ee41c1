//! What a person watching a run sees: indicatif bars (suite → stage → epochs, with the ETA, images/s
//! and the current loss) when stderr is a terminal; when it is not (a log file, CI, Slurm's output),
//! one plain line per epoch and, during an epoch, a plain line at least every `--progress-every`
//! seconds (stage, epoch, step/steps, images/s, the loss last read, ETA), also into `run.log`. The runner opens the suite and each stage; the run recorder reports
//! steps and epochs. Log lines printed meanwhile go through [`suspend`], so bars and logs never mix.
//! The state is per process (one stage runs at a time in a process).

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::results::rows::EpochRow;
use crate::results::Phase;

/// The default of `--progress-every`: seconds between plain progress lines during an epoch.
pub const EVERY_S: u64 = 60;

struct Stage {
    label: String,
    epochs: u64,
    done: u64,
    bar: Option<ProgressBar>,
    images: u64,
    started: Instant,
    /// Epochs this process ran (a resumed stage's earlier epochs do not count towards its speed).
    ran: u64,
    /// Steps this process ran.
    steps_ran: u64,
    /// Steps per epoch, once the loop has said.
    epoch_steps: Option<u64>,
    /// The last step: phase, epoch, step within the phase.
    at: Option<(Phase, u32, u64)>,
    /// The training loss last read from the device.
    loss: Option<f64>,
    /// When the last plain line was printed (or the stage began).
    last_line: Instant,
}

struct State {
    bars: Option<MultiProgress>,
    /// Seconds between plain progress lines.
    every: Duration,
    suite: Option<ProgressBar>,
    stage: Option<Stage>,
}

static STATE: Mutex<State> = Mutex::new(State {
    bars: None,
    every: Duration::from_secs(EVERY_S),
    suite: None,
    stage: None,
});

fn state() -> std::sync::MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Bars when stderr is a terminal (and `UNAS_PLAIN_PROGRESS` is unset), plain lines otherwise.
pub fn init() {
    let tty = std::io::stderr().is_terminal() && std::env::var_os("UNAS_PLAIN_PROGRESS").is_none();
    state().bars = tty.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
}

/// Seconds between plain progress lines during an epoch (`--progress-every`).
pub fn set_every(every: Duration) {
    state().every = every;
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}

/// The suite of `jobs` jobs begins (a bar only on a terminal).
pub fn suite_begin(jobs: u64) {
    let mut st = state();
    if let Some(m) = &st.bars {
        let bar = m.add(ProgressBar::new(jobs));
        bar.set_style(style(
            "suite  [{bar:30}] {pos}/{len} jobs  {elapsed_precise}  {msg}",
        ));
        st.suite = Some(bar);
    }
}

/// One job of the suite ended.
pub fn suite_job_done() {
    if let Some(b) = &state().suite {
        b.inc(1);
    }
}

/// The suite ended: its bars go away.
pub fn suite_end() {
    let mut st = state();
    if let Some(b) = st.suite.take() {
        b.finish_and_clear();
    }
}

/// A stage of `epochs` epochs begins, labelled `label` (experiment, stage, seed).
pub fn stage_begin(label: &str, epochs: u64) {
    let mut st = state();
    let bar = st.bars.as_ref().map(|m| {
        let bar = m.add(ProgressBar::new(epochs));
        bar.set_style(style(
            "{prefix}  [{bar:30}] epoch {pos}/{len}  ETA {eta}  {msg}",
        ));
        bar.set_prefix(label.to_owned());
        bar.enable_steady_tick(Duration::from_millis(500));
        bar
    });
    st.stage = Some(Stage {
        label: label.to_owned(),
        epochs,
        done: 0,
        bar,
        images: 0,
        started: Instant::now(),
        ran: 0,
        steps_ran: 0,
        epoch_steps: None,
        at: None,
        loss: None,
        last_line: Instant::now(),
    });
}

/// The stage resumes with `done` epochs already finished.
pub fn stage_resumed(done: u64) {
    if let Some(s) = state().stage.as_mut() {
        s.done = done;
        if let Some(b) = &s.bar {
            b.set_position(done);
            b.reset_eta();
        }
    }
}

/// An epoch of `steps` steps begins.
pub fn epoch_begin(steps: u64) {
    if let Some(s) = state().stage.as_mut() {
        s.epoch_steps = Some(steps);
    }
}

/// Step `step` (within `phase`) of `epoch`, of `images` images, ran. True when a plain progress line
/// is due (off a terminal, `--progress-every` seconds after the last one): read the loss, then
/// [`line`].
pub fn step(phase: Phase, epoch: u32, step: u64, images: u64) -> bool {
    let mut st = state();
    let (plain, every) = (st.bars.is_none(), st.every);
    let Some(s) = st.stage.as_mut() else {
        return false;
    };
    s.images += images;
    s.steps_ran += 1;
    s.at = Some((phase, epoch, step));
    plain && s.last_line.elapsed() >= every
}

/// The training loss last read.
pub fn loss(loss: f64) {
    if let Some(s) = state().stage.as_mut() {
        s.loss = Some(loss);
    }
}

fn format_eta(secs: f64) -> String {
    humantime::format_duration(Duration::from_secs(secs.max(0.0) as u64)).to_string()
}

/// The plain progress line of the last step, printed to stderr (off a terminal) and returned, for the
/// run's log: `<label>: <phase> epoch E, step S/N  X images/s  loss L  ETA T`.
pub fn line() -> String {
    let mut st = state();
    let plain = st.bars.is_none();
    let Some(s) = st.stage.as_mut() else {
        return String::new();
    };
    s.last_line = Instant::now();
    let Some((phase, epoch, step)) = s.at else {
        return String::new();
    };
    // steps restart in every phase and every epoch has the same number: its position is step mod N
    let (pos, of, eta) = match s.epoch_steps.filter(|n| *n > 0) {
        Some(n) => {
            let per_step = s.started.elapsed().as_secs_f64() / s.steps_ran.max(1) as f64;
            let left_epochs = s.epochs.saturating_sub(s.done + 1);
            let left = left_epochs * n + n.saturating_sub(step % n + 1);
            (
                step % n + 1,
                n.to_string(),
                format_eta(per_step * left as f64),
            )
        }
        None => (step + 1, "?".into(), "?".into()),
    };
    let loss = s.loss.map_or("-".into(), |l| format!("{l:.4}"));
    let line = format!(
        "{}: {phase} epoch {epoch}, step {pos}/{of}  {:.0} images/s  loss {loss}  ETA {eta}",
        s.label,
        speed(s)
    );
    if plain {
        eprintln!("{line}");
    }
    line
}

fn speed(s: &Stage) -> f64 {
    s.images as f64 / s.started.elapsed().as_secs_f64().max(1e-9)
}

/// An epoch ended with `row`: the bar moves (or a plain line is printed). Returns the line, for the
/// run's log.
pub fn epoch_done(row: &EpochRow) -> String {
    let mut st = state();
    let Some(s) = st.stage.as_mut() else {
        return String::new();
    };
    s.done += 1;
    s.ran += 1;
    let per_epoch = s.started.elapsed().as_secs_f64() / s.ran as f64;
    let eta = Duration::from_secs_f64(per_epoch * s.epochs.saturating_sub(s.done) as f64);
    let mut parts = vec![format!("{} {}", row.phase.as_str(), row.epoch)];
    if let Some(l) = row.loss_train {
        parts.push(format!("loss {l:.4}"));
    }
    if let Some(a) = row.acc_val_pct.or(row.acc_test_top1_pct) {
        parts.push(format!("acc {a:.1}%"));
    }
    parts.push(format!("{:.0} images/s", speed(s)));
    let msg = parts.join("  ");
    let line = format!(
        "{}: epoch {}/{}  {msg}  ETA {}",
        s.label,
        s.done,
        s.epochs,
        humantime::format_duration(Duration::from_secs(eta.as_secs()))
    );
    match &s.bar {
        Some(b) => {
            b.set_position(s.done);
            b.set_message(msg);
        }
        None => eprintln!("{line}"),
    }
    line
}

/// The stage ended: its bar goes away.
pub fn stage_end() {
    if let Some(s) = state().stage.take() {
        if let Some(b) = s.bar {
            b.finish_and_clear();
        }
    }
}

/// Runs `f` (which prints to stderr) with the bars hidden.
pub fn suspend<R>(f: impl FnOnce() -> R) -> R {
    let bars = state().bars.clone();
    match bars {
        Some(m) => m.suspend(f),
        None => f(),
    }
}

/// The stderr writer of the log: lines printed with the bars suspended.
#[derive(Clone, Copy, Debug, Default)]
pub struct StderrWriter;

/// One event's bytes, printed in one go when dropped.
pub struct Line(Vec<u8>);

impl std::io::Write for Line {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        let bytes = std::mem::take(&mut self.0);
        suspend(|| {
            use std::io::Write;
            let _ = std::io::stderr().write_all(&bytes);
        });
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for StderrWriter {
    type Writer = Line;
    fn make_writer(&'a self) -> Line {
        Line(Vec::new())
    }
}
