//! Faults a results folder survives: SIGKILL at random moments of a search → train (each followed by a
//! re-run) ends with the numbers of an uninterrupted run, and every kill leaves a folder `unas status`
//! and `unas report` read; a full disk and a read-only disk give a clear error naming the path, leave
//! no partial file, and lose nothing already finished.
//!
//! The run killed is [`tiny`]: a search → train of smoke-tier size (3 cells of 4 channels, batches of
//! 8 and 16 synthetic images), so that ten kills and their re-runs stay within a minute or so on the
//! 2-core CI box.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use unas::results::{parquet, Table};

const KILLS: usize = 10;

/// Every Parquet file of every run folder reads whole; no temporary is left but a live writer's.
fn folder_reads(results: &Path, suite: &Path) {
    for d in run_dirs(results) {
        for t in Table::ALL {
            let p = d.join(t.file_name());
            if p.exists() {
                parquet::read(&p, t).unwrap_or_else(|e| panic!("{} torn: {e:#}", p.display()));
            }
        }
    }
    status_doc(results, suite);
    let rep = output(unas(results, &["report", "--table", "status"]));
    assert!(rep.status.success(), "{}", show(&rep));
}

/// A small generator for the kill moments (seeded from the clock; the seed is printed).
fn moments(n: usize, max_ms: u64) -> Vec<u64> {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("kill moments seeded with {seed}");
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            500 + x % max_ms
        })
        .collect()
}

#[test]
fn sigkill_at_random_moments_then_rerun_ends_with_the_uninterrupted_numbers() {
    let suite = suite(&[("t-a", tiny("t-a"))]);
    let a = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let out = output(reproduce(a.path(), suite.path(), &[]));
    assert!(out.status.success(), "{}", show(&out));
    let full_ms = t0.elapsed().as_millis() as u64;

    let b = tempfile::tempdir().unwrap();
    let mut killed = 0;
    for ms in moments(KILLS, full_ms) {
        let mut child = spawn(reproduce(b.path(), suite.path(), &[]));
        let t = Instant::now();
        while t.elapsed() < Duration::from_millis(ms) && child.try_wait().unwrap().is_none() {
            std::thread::sleep(Duration::from_millis(10));
        }
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            killed += 1;
        }
        child.wait().unwrap();
        folder_reads(b.path(), suite.path());
    }
    let out = output(reproduce(b.path(), suite.path(), &[]));
    assert!(out.status.success(), "{}", show(&out));
    eprintln!("{killed} of {KILLS} kills landed in a run");
    let (da, db) = (run_dirs(a.path()), run_dirs(b.path()));
    assert_eq!(da.len(), 2);
    for (x, y) in da.iter().zip(&db) {
        assert_eq!(x.file_name(), y.file_name(), "the same run ids");
        assert_eq!(status_json(y)["state"], "done");
        for t in Table::ALL {
            if x.join(t.file_name()).exists() {
                let (p, q) = (numbers(x, t), numbers(y, t));
                assert!(
                    p.equals_missing(&q),
                    "{} {t:?} differs:\n{p}\n{q}",
                    y.display()
                );
            }
        }
        assert_eq!(
            std::fs::read(x.join("genotype.json")).unwrap(),
            std::fs::read(y.join("genotype.json")).unwrap()
        );
        let temps: Vec<_> = std::fs::read_dir(y)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tmp."))
            .collect();
        assert!(
            temps.is_empty(),
            "temporaries left in {}: {temps:?}",
            y.display()
        );
    }
}

/// A train-only experiment of a published genotype (a few seconds).
fn published(name: &str) -> String {
    format!(
        "name: {name}
dataset: {{name: synthetic, synthetic: {{classes: 4, train: 48, test: 16, seed: 0}}}}
space: {{name: darts, layers: 3, channels: 4, ops: 7}}
train: {{recipe: cifar, genotype: DARTS_V2, epochs: 1, warmup_epochs: 0, batch: 16, channels: 8, layers: 3}}
seeds: {{search: [0], train: [0]}}
device: cpu
"
    )
}

/// A tmpfs mounted at `dir` (root only; `None` where mounting is not allowed).
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(dir.to_path_buf()))
    }
    fn remount_ro(&self) {
        let s = std::process::Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(s.success());
    }
    fn free_bytes(&self) -> u64 {
        let c = std::ffi::CString::new(self.0.to_str().unwrap()).unwrap();
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: statvfs into a zeroed struct with a valid path.
        assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut st) }, 0);
        st.f_bavail as u64 * st.f_frsize as u64
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut v: Vec<_> = walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file() && e.file_name() != "run.log")
        .map(|e| (e.path().to_path_buf(), std::fs::read(e.path()).unwrap()))
        .collect();
    v.sort();
    v
}

fn partial_files(dir: &Path) -> Vec<String> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp"))
        .collect()
}

#[test]
fn a_full_or_read_only_disk_is_a_clear_error_that_loses_nothing() {
    let base = tempfile::tempdir().unwrap();
    let mnt = base.path().join("disk");
    let Some(disk) = Tmpfs::mount(&mnt, "64m") else {
        eprintln!(
            "SKIPPED LOUDLY: cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN); the full-disk and read-only cases did not run"
        );
        return;
    };
    let suite = suite(&[("t-one", published("t-one")), ("t-two", published("t-two"))]);
    let one = suite.path().join("t-one.yaml").display().to_string();
    let two = suite.path().join("t-two.yaml").display().to_string();
    let results = mnt.join("results");
    let out = output(unas(&results, &["run", &one, "--tier", "paper"]));
    assert!(out.status.success(), "{}", show(&out));
    let finished = snapshot(&results);

    // Full: room for the small records, not for the 3 MB checkpoint.
    let filler = mnt.join("filler");
    let room = 512 * 1024;
    let fill = disk.free_bytes().saturating_sub(room);
    std::fs::write(&filler, vec![0u8; fill as usize]).unwrap();
    let out = output(unas(&results, &["run", &two, "--tier", "paper"]));
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("No space left on device"), "{}", show(&out));
    assert!(
        stdout.contains(results.to_str().unwrap()),
        "names the path: {}",
        show(&out)
    );
    assert!(
        partial_files(&results).is_empty(),
        "{:?}",
        partial_files(&results)
    );
    std::fs::remove_file(&filler).unwrap();
    let again = output(unas(&results, &["run", &one, "--tier", "paper"]));
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("done (already)"),
        "{}",
        show(&again)
    );
    assert_eq!(snapshot(&results)[..finished.len()].len(), finished.len());
    for f in &finished {
        assert_eq!(
            &std::fs::read(&f.0).unwrap(),
            &f.1,
            "{} changed",
            f.0.display()
        );
    }

    // Read-only: the same, and `unas status` still reads the folder.
    disk.remount_ro();
    let out = output(unas(
        &results,
        &["run", &two, "--tier", "paper", "--retry-failed"],
    ));
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("Read-only file system"), "{text}");
    assert!(
        text.contains(results.to_str().unwrap()),
        "names the path: {text}"
    );
    let s = suite.path().display().to_string();
    let st = output(unas(
        &results,
        &["status", "--suite", &s, "--tier", "paper"],
    ));
    assert!(st.status.success(), "{}", show(&st));
    for f in &finished {
        assert_eq!(
            &std::fs::read(&f.0).unwrap(),
            &f.1,
            "{} changed",
            f.0.display()
        );
    }
}

/// The first half of `path`: a file cut short by a disk error.
fn truncate(path: &Path) {
    let bytes = std::fs::read(path).unwrap();
    std::fs::write(path, &bytes[..bytes.len() / 2]).unwrap();
}

/// After `damage` of a finished tiny search → train, `unas run`, `unas status` and `unas report`
/// each name the damaged file and the command that recomputes that one run; the run is never counted
/// done (nor rerun over), and the report uses none of its numbers.
fn damaged_is_said_the_same_way_everywhere(file: &str) {
    let suite = suite(&[("t-d", tiny("t-d"))]);
    let res = tempfile::tempdir().unwrap();
    let out = output(reproduce(res.path(), suite.path(), &[]));
    assert!(out.status.success(), "{}", show(&out));
    let search = dir_of(res.path(), "t-d", "search").unwrap();
    let id = search.file_name().unwrap().to_string_lossy();
    let id = id.rsplit('-').next().unwrap().to_owned();
    truncate(&search.join(file));
    let left = std::fs::read(search.join(file)).unwrap();
    let path = search.join(file).display().to_string();
    let says = |text: &str| {
        assert!(text.contains(&format!("{path} is damaged")), "{text}");
        assert!(
            text.contains(&format!("--tier paper --job {id}`")),
            "{text}"
        );
        assert!(
            !text.contains("results folder is a folder you can write to"),
            "{text}"
        );
    };
    let run = output(reproduce(res.path(), suite.path(), &[]));
    assert!(!run.status.success(), "{}", show(&run));
    says(&show(&run));
    let doc = status_doc(res.path(), suite.path());
    let job = doc["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["stage"] == "search")
        .unwrap()
        .clone();
    assert_eq!(job["state"], "damaged", "{doc}");
    says(job["why"].as_str().unwrap());
    let rep = output(unas(res.path(), &["report", "--table", "status"]));
    assert!(rep.status.success(), "{}", show(&rep));
    let text = show(&rep);
    says(&text);
    assert!(text.contains("1 damaged"), "{text}");
    assert!(!text.contains("unreadable table"), "{text}");
    // the file is still what the disk left: nothing ran over the folder
    assert_eq!(std::fs::read(search.join(file)).unwrap(), left);
}

#[test]
fn a_cut_short_status_json_names_the_file_and_the_rerun_in_run_status_and_report() {
    damaged_is_said_the_same_way_everywhere("status.json");
}

#[test]
fn a_cut_short_table_of_a_finished_run_is_damaged_not_done() {
    damaged_is_said_the_same_way_everywhere("epochs.parquet");
}
