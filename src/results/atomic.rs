//! Never lose a result: every file is written to a temporary sibling, fsynced, and renamed over the
//! target (then the folder is fsynced), so a reader sees the old file or the new one, never half of
//! one. A lock file per run folder keeps two processes off the same run.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

fn temp_sibling(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp.{}", std::process::id()))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Writes through `fill` into a temporary file, then fsync + rename onto `path`.
pub fn write_with(path: &Path, fill: impl FnOnce(&mut File) -> Result<()>) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(dir).with_context(|| format!("creating folder {}", dir.display()))?;
    let tmp = temp_sibling(path);
    let result = (|| -> Result<()> {
        let mut f = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        fill(&mut f)?;
        f.flush()?;
        f.sync_all()
            .with_context(|| format!("fsync {}", tmp.display()))?;
        fs::rename(&tmp, path)
            .with_context(|| format!("renaming {} onto {}", tmp.display(), path.display()))?;
        sync_dir(dir).with_context(|| format!("fsync folder {}", dir.display()))?;
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Atomically replaces `path` with `bytes`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_with(path, |f| {
        f.write_all(bytes)
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    })
}

/// Atomically writes pretty JSON.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    write_atomic(path, text.as_bytes())
}

/// Removes the temporaries of [`write_with`] that a killed process left in `dir` (`.NAME.tmp.PID`
/// whose process is gone). Call it holding the folder's lock.
pub fn remove_stale_temps(dir: &Path) -> Result<usize> {
    let mut removed = 0;
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some((_, pid)) = name.strip_prefix('.').and_then(|n| n.rsplit_once(".tmp.")) else {
            continue;
        };
        match pid.parse::<i32>() {
            Ok(pid) if !process_alive(pid) => {
                fs::remove_file(entry.path())
                    .with_context(|| format!("removing {}", entry.path().display()))?;
                removed += 1;
            }
            _ => {}
        }
    }
    Ok(removed)
}

/// Another live process holds a run folder's lock.
#[derive(Debug, thiserror::Error)]
#[error("{} is being run by process {pid}; wait for it, or stop it (kill {pid}) and run again", dir.display())]
pub struct LockTaken {
    pub dir: PathBuf,
    pub pid: i32,
}

/// An exclusive lock on a run folder: an advisory `flock` on its `lock` file, which holds the owner's
/// pid for `unas status`. The kernel drops the lock when its process dies (killed, machine rebooted),
/// so a dead owner's lock is free at once; a process that finds the lock held reads the owner's pid
/// from the file. Taking the lock never depends on the file's content: two processes that start the
/// same run at the same moment cannot both win (with create-then-write, one once read the other's
/// still empty file as a stale lock and took it over). Released on drop.
#[derive(Debug)]
pub struct RunLock {
    path: PathBuf,
    /// Holds the flock; closed (and so unlocked) after the file is removed.
    _file: File,
}

impl RunLock {
    pub fn acquire(dir: &Path) -> Result<RunLock> {
        fs::create_dir_all(dir)
            .with_context(|| format!("creating run folder {}", dir.display()))?;
        let path = dir.join("lock");
        for _ in 0..3 {
            let mut f = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .with_context(|| format!("creating {}", path.display()))?;
            if !try_flock(&f).with_context(|| format!("locking {}", path.display()))? {
                return Err(LockTaken {
                    dir: dir.to_path_buf(),
                    pid: owner_pid(&path),
                }
                .into());
            }
            // The owner before us may have removed the file between our open and our flock: then
            // we hold a lock on a file nobody else sees, and try again on the path's new file.
            if !same_file(&f, &path) {
                continue;
            }
            let before = fs::read_to_string(&path).unwrap_or_default();
            if !before.trim().is_empty() {
                tracing::warn!(lock = %path.display(), owner = before.trim(), "taking over a stale lock (its process is gone)");
            }
            f.set_len(0)?;
            writeln!(f, "{}", std::process::id())?;
            f.sync_all()?;
            return Ok(RunLock { path, _file: f });
        }
        bail!(
            "could not lock {}: the lock file keeps being replaced",
            dir.display()
        )
    }
}

/// `flock(LOCK_EX | LOCK_NB)`: true if taken, false if another open file holds it.
fn try_flock(f: &File) -> io::Result<bool> {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a file descriptor this File owns; no memory is passed.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(e)
    }
}

/// Whether `path` still names the file `f` has open.
fn same_file(f: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (f.metadata(), fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// The pid the lock's owner wrote (it writes it just after taking the lock: read again briefly while
/// the file is still empty); 0 if none appeared.
fn owner_pid(path: &Path) -> i32 {
    for _ in 0..50 {
        if let Some(pid) = fs::read_to_string(path)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
        {
            return pid;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    0
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Whether process `pid` exists on this machine.
pub fn process_alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill with signal 0 only checks that the process exists and may be signalled.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_whole_file_and_leaves_no_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.json");
        write_atomic(&p, b"first version, long").unwrap();
        write_atomic(&p, b"second").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"second");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn a_failed_write_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.txt");
        write_atomic(&p, b"old").unwrap();
        let r = write_with(&p, |f| {
            f.write_all(b"half")?;
            bail!("disk on fire")
        });
        assert!(r.is_err());
        assert_eq!(fs::read(&p).unwrap(), b"old");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn temporaries_of_dead_processes_are_removed_and_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(".steps.parquet.tmp.999999999"), b"half").unwrap();
        let mine = format!(".status.json.tmp.{}", std::process::id());
        fs::write(dir.path().join(&mine), b"being written").unwrap();
        fs::write(dir.path().join("steps.parquet"), b"whole").unwrap();
        assert_eq!(remove_stale_temps(dir.path()).unwrap(), 1);
        assert!(dir.path().join(&mine).exists());
        assert!(dir.path().join("steps.parquet").exists());
        assert!(!dir.path().join(".steps.parquet.tmp.999999999").exists());
    }

    #[test]
    fn second_lock_on_a_live_run_is_refused_and_a_stale_one_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let first = RunLock::acquire(dir.path()).unwrap();
        let err = RunLock::acquire(dir.path()).unwrap_err().to_string();
        assert!(err.contains("is being run by process"), "{err}");
        drop(first);
        // A lock left by a process that no longer exists.
        fs::write(dir.path().join("lock"), "999999999\n").unwrap();
        let again = RunLock::acquire(dir.path()).unwrap();
        assert_eq!(
            fs::read_to_string(dir.path().join("lock")).unwrap().trim(),
            std::process::id().to_string(),
            "the new owner's pid replaces the dead one's"
        );
        drop(again);
        assert!(!dir.path().join("lock").exists());
    }

    #[test]
    fn of_many_threads_racing_for_one_run_exactly_one_holds_it_at_a_time() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let dir = tempfile::tempdir().unwrap();
        let holders = AtomicUsize::new(0);
        let won = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..50 {
                        if let Ok(lock) = RunLock::acquire(dir.path()) {
                            assert_eq!(holders.fetch_add(1, Ordering::SeqCst), 0, "two holders");
                            won.fetch_add(1, Ordering::SeqCst);
                            std::thread::yield_now();
                            holders.fetch_sub(1, Ordering::SeqCst);
                            drop(lock);
                        }
                    }
                });
            }
        });
        assert!(won.load(Ordering::SeqCst) > 0);
    }
}
