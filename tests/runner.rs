//! The runner under real use: a signal stops the whole suite after a checkpoint (and a second one at
//! once), `unas status` says where every job stands, two `reproduce` processes share one results
//! folder without running anything twice, and worker processes keep going when one stage diverges,
//! one fails and one's worker is killed.

mod common;

use std::time::Duration;

use common::*;

const LIMIT: Duration = Duration::from_secs(300);

#[test]
fn a_signal_stops_the_suite_after_a_checkpoint_and_the_next_run_resumes_it() {
    let suite = suite(&[("t-a", tiny("t-a")), ("t-b", tiny("t-b"))]);
    let results = tempfile::tempdir().unwrap();
    let r = results.path();
    let mut child = spawn(reproduce(r, suite.path(), &[]));
    wait_for(&mut child, LIMIT, "the warm-up checkpoint", || {
        dir_of(r, "t-a", "search")
            .is_some_and(|d| d.join("checkpoints/epoch-1/meta.json").is_file())
    });
    signal(child.id(), libc::SIGINT);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", show(&out));
    let search = dir_of(r, "t-a", "search").unwrap();
    let st = status_json(&search);
    assert_eq!(st["state"], "interrupted", "{st}");
    assert!(st["reason"].as_str().unwrap().contains("SIGINT"), "{st}");
    assert_eq!(
        run_dirs(r).len(),
        1,
        "nothing started after the signal: {:?}",
        run_dirs(r)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("run the same command again to resume"),
        "{err}"
    );

    let doc = status_doc(r, suite.path());
    let s = states(&doc);
    assert_eq!(s[0], ("t-a".into(), "search".into(), "interrupted".into()));
    assert!(s[1..].iter().all(|(_, _, st)| st == "pending"), "{s:?}");

    // Run again: the interrupted search resumes from its checkpoint, everything finishes.
    let out = output(reproduce(r, suite.path(), &[]));
    assert!(out.status.success(), "{}", show(&out));
    let log = std::fs::read_to_string(search.join("run.log")).unwrap();
    assert_eq!(starts(&search), 2, "{log}");
    assert!(log.contains("resuming from a checkpoint"), "{log}");
    let doc = status_doc(r, suite.path());
    assert!(states(&doc).iter().all(|(_, _, st)| st == "done"), "{doc}");
    assert_eq!(doc["eta_s"].as_f64(), Some(0.0));
    // The finished runs measured their time: the status of a new seed of the same shape has an ETA.
    let more = tiny("t-a").replace("search: [0]", "search: [0, 1]");
    std::fs::write(suite.path().join("t-a.yaml"), more).unwrap();
    let doc = status_doc(r, suite.path());
    let pending: Vec<&serde_json::Value> = doc["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["state"] == "pending")
        .collect();
    assert_eq!(pending.len(), 2, "{doc}");
    assert!(
        pending[0]["eta_s"].as_f64().unwrap() > 0.0,
        "a new search seed has an ETA from the finished one: {doc}"
    );
}

#[test]
fn a_second_ctrl_c_exits_at_once_and_leaves_a_folder_status_reads() {
    // Wider and with bigger batches than `tiny`, so that a step (and so the checkpoint the first
    // Ctrl-C asks for at its end) outlasts the gap between the two signals.
    let slower = tiny("t-a")
        .replace("channels: 4,", "channels: 16,")
        .replace("batch: 8}", "batch: 24}");
    let suite = suite(&[("t-a", slower)]);
    let results = tempfile::tempdir().unwrap();
    let r = results.path();
    let mut child = spawn(reproduce(r, suite.path(), &[]));
    // started and recorded `running` (run.log says "run start" a moment before status.json is written)
    wait_for(&mut child, LIMIT, "the run's start", || {
        dir_of(r, "t-a", "search")
            .is_some_and(|d| starts(&d) == 1 && d.join("status.json").is_file())
    });
    signal(child.id(), libc::SIGINT);
    // Apart, so the kernel does not merge them into one pending signal, and close together, so that
    // the second arrives while the first one's checkpoint is still to come.
    std::thread::sleep(Duration::from_millis(10));
    signal(child.id(), libc::SIGINT);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", show(&out));
    let search = dir_of(r, "t-a", "search").unwrap();
    assert_eq!(
        status_json(&search)["state"],
        "running",
        "exited at once, without recording an end"
    );
    let doc = status_doc(r, suite.path());
    let job = &doc["jobs"][0];
    assert_eq!(job["state"], "running", "{doc}");
    assert_eq!(job["alive"], false, "its pid is gone: {doc}");
}

#[test]
fn two_reproduce_processes_on_one_folder_run_every_stage_exactly_once() {
    let suite = suite(&[("t-a", tiny("t-a")), ("t-b", tiny("t-b"))]);
    let results = tempfile::tempdir().unwrap();
    let r = results.path();
    let one = spawn(reproduce(r, suite.path(), &[]));
    let two = spawn(reproduce(r, suite.path(), &[]));
    let (one, two) = (
        one.wait_with_output().unwrap(),
        two.wait_with_output().unwrap(),
    );
    // A process that found a search taken blocks its training (exit 1); it is not a failure.
    for o in [&one, &two] {
        assert!(matches!(o.status.code(), Some(0 | 1)), "{}", show(o));
        assert!(
            !String::from_utf8_lossy(&o.stdout).contains("FAILED"),
            "{}",
            show(o)
        );
    }
    // Whatever was blocked in both runs finishes in a third, which starts nothing twice.
    let three = output(reproduce(r, suite.path(), &[]));
    assert!(three.status.success(), "{}", show(&three));
    let dirs = run_dirs(r);
    assert_eq!(dirs.len(), 4, "{dirs:?}");
    for d in &dirs {
        assert_eq!(status_json(d)["state"], "done", "{}", d.display());
        assert_eq!(starts(d), 1, "{} ran once", d.display());
        for t in unas::results::Table::ALL {
            let p = d.join(t.file_name());
            if p.exists() {
                unas::results::parquet::read(&p, t).unwrap();
            }
        }
    }
}

#[test]
fn workers_go_on_past_a_diverged_a_failed_and_a_killed_stage() {
    let suite = suite(&[
        ("t-a", tiny("t-a")),
        ("t-div", diverging("t-div")),
        ("t-kill", tiny("t-kill")),
        ("t-fail", tiny("t-fail")),
    ]);
    let results = tempfile::tempdir().unwrap();
    let r = results.path();
    // t-fail's search cannot write its epochs table: a folder stands where the file goes.
    let doc = status_doc(r, suite.path());
    let fail_dir = doc["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["experiment"] == "t-fail" && j["stage"] == "search")
        .map(|j| std::path::PathBuf::from(j["dir"].as_str().unwrap()))
        .unwrap();
    std::fs::create_dir_all(fail_dir.join("epochs.parquet/in-the-way")).unwrap();
    let mut parent = spawn(reproduce(r, suite.path(), &["--workers", "2"]));
    // Kill t-kill's worker once its search has a checkpoint.
    wait_for(&mut parent, LIMIT, "t-kill's checkpoint", || {
        dir_of(r, "t-kill", "search")
            .is_some_and(|d| d.join("checkpoints/epoch-1/meta.json").is_file())
    });
    let dir = dir_of(r, "t-kill", "search").unwrap();
    let pid: u32 = std::fs::read_to_string(dir.join("lock"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_ne!(pid, parent.id(), "the stage runs in a worker");
    signal(pid, libc::SIGKILL);
    let out = parent.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let doc = status_doc(r, suite.path());
    let s = states(&doc);
    let state = |e: &str, st: &str| s.iter().find(|x| x.0 == e && x.1 == st).unwrap().2.clone();
    assert_eq!(state("t-a", "search"), "done", "{doc}");
    assert_eq!(state("t-a", "train"), "done", "{doc}");
    assert_eq!(state("t-div", "search"), "diverged", "{doc}");
    assert_eq!(state("t-div", "train"), "blocked", "{doc}");
    assert_eq!(state("t-fail", "search"), "failed", "{doc}");
    assert_eq!(state("t-fail", "train"), "blocked", "{doc}");
    assert_eq!(state("t-kill", "search"), "interrupted", "{doc}");
    let killed = doc["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["experiment"] == "t-kill")
        .unwrap();
    assert!(
        killed["reason"]
            .as_str()
            .unwrap()
            .contains(&format!("pid {pid}")),
        "{doc}"
    );
    // The report reads the folder and names each with its reason.
    let rep = output(unas(r, &["report", "--table", "status"]));
    assert!(rep.status.success(), "{}", show(&rep));
    let table = String::from_utf8_lossy(&rep.stdout);
    for word in [
        "diverged",
        "failed",
        "interrupted",
        "epochs.parquet",
        &format!("pid {pid}"),
    ] {
        assert!(table.contains(word), "{word}: {table}");
    }
    // The next reproduce picks the killed stage up from its checkpoint; failed ones stay reported.
    let again = output(reproduce(r, suite.path(), &["--workers", "2"]));
    assert_eq!(again.status.code(), Some(1), "{}", show(&again));
    assert_eq!(status_json(&dir)["state"], "done");
    assert!(std::fs::read_to_string(dir.join("run.log"))
        .unwrap()
        .contains("resuming from a checkpoint"));
    assert_eq!(
        starts(&dir_of(r, "t-div", "search").unwrap()),
        1,
        "a diverged run is not rerun"
    );
}
