//! `run.log` in every run folder: the tracing log of the process while it runs that stage (what the
//! progress bars showed, one line per epoch, plus every warning), appended across resumes, so a
//! folder's log tells each start, stop and resume. The process has one current run at a time
//! ([`attach`]); the subscriber's run-log layer writes through [`RunLogWriter`] into it.
//!
//! A log is the one file written in place rather than by temp + rename: each event is one `write`
//! to a file opened with `O_APPEND`, so a kill can at worst cut its last line; nothing reads it back
//! but people (and tests counting starts).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::sync::Mutex;

use anyhow::{Context, Result};

pub const RUN_LOG: &str = "run.log";

static CURRENT: Mutex<Option<File>> = Mutex::new(None);

/// Detaches the run's log when dropped.
#[must_use]
pub struct Attached(());

impl Drop for Attached {
    fn drop(&mut self) {
        if let Ok(mut cur) = CURRENT.lock() {
            if let Some(f) = cur.take() {
                let _ = f.sync_all();
            }
        }
    }
}

/// Makes `dir/run.log` the log of what follows, until the guard drops.
pub fn attach(dir: &Path) -> Result<Attached> {
    let path = dir.join(RUN_LOG);
    let f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    *CURRENT.lock().expect("run log") = Some(f);
    Ok(Attached(()))
}

/// The subscriber's writer into the current run's log (nothing when no run is attached).
#[derive(Clone, Copy, Debug, Default)]
pub struct RunLogWriter;

/// One event's bytes, written in one call when dropped.
pub struct Line(Vec<u8>);

impl Write for Line {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        if let Ok(mut cur) = CURRENT.lock() {
            if let Some(f) = cur.as_mut() {
                let _ = f.write_all(&self.0);
            }
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for RunLogWriter {
    type Writer = Line;
    fn make_writer(&'a self) -> Line {
        Line(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::fmt::MakeWriter;

    #[test]
    fn lines_go_to_the_attached_run_only() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let w = RunLogWriter;
        writeln!(w.make_writer(), "before any run").unwrap();
        {
            let _g = attach(a.path()).unwrap();
            writeln!(w.make_writer(), "one").unwrap();
        }
        writeln!(w.make_writer(), "between").unwrap();
        {
            let _g = attach(b.path()).unwrap();
            writeln!(w.make_writer(), "two").unwrap();
        }
        {
            let _g = attach(a.path()).unwrap();
            writeln!(w.make_writer(), "three").unwrap();
        }
        let read = |d: &Path| std::fs::read_to_string(d.join(RUN_LOG)).unwrap();
        assert_eq!(read(a.path()), "one\nthree\n");
        assert_eq!(read(b.path()), "two\n");
    }
}
