//! Retention never takes the live event-log file: the demo run with the most aggressive
//! settings (`--retention 1s --prune-every 1s --keep 0`) for 3 s still has its live file, still
//! writes it, and holds no descriptor of a deleted file.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

const DEMO: &str = env!("CARGO_BIN_EXE_daemonkit-demo");

/// The demo as a child process, killed if a test fails before stopping it.
struct Demo(Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The event-log files in `state`, sorted.
fn event_files(state: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(state)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("events-") && n.ends_with(".jsonl"))
        .collect();
    names.sort();
    names
}

/// Descriptors of `pid` that point at a deleted file.
fn deleted_fds(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .map(|target| target.to_string_lossy().into_owned())
        .filter(|target| target.ends_with(" (deleted)"))
        .collect()
}

#[test]
fn keep_zero_and_one_second_retention_never_prune_the_live_file() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    // Old files the pruner must remove, so the test sees it working.
    for name in ["events-20200101.jsonl", "events-20200102.jsonl"] {
        std::fs::write(state.join(name), "").unwrap();
    }
    let mut child = Command::new(DEMO)
        .arg("--socket")
        .arg(dir.path().join("run/control.sock"))
        .arg("--state-dir")
        .arg(&state)
        .args(["--retention", "1s", "--prune-every", "1s", "--keep", "0"])
        .args(["--backoff-initial", "50ms", "--flaky-after", "20ms"])
        .env_remove("NOTIFY_SOCKET")
        .env_remove("LISTEN_FDS")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start daemonkit-demo");
    let stderr = child.stderr.take().unwrap();
    let demo = Demo(child);
    let (tx, records) = mpsc::channel::<Value>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Ok(value) = serde_json::from_str(&line)
                && tx.send(value).is_err()
            {
                return;
            }
        }
    });

    // Three seconds: at least two prune passes after the log opened.
    let until = Instant::now() + Duration::from_secs(3);
    let mut passes = Vec::new();
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        match records.recv_timeout(left) {
            Ok(v) if v["reason"] == "PruneCompleted" => passes.push(v),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    assert!(passes.len() >= 2, "prune passes: {passes:?}");
    // Both old files go, in one pass or two (the log's open may hold the newest of them
    // for a moment while it checks it for a torn tail: `in_use`, removed next pass).
    let removed: u64 = passes.iter().filter_map(|p| p["removed"].as_u64()).sum();
    assert_eq!(removed, 2, "the old files were pruned: {passes:?}");

    // The live file is there, is today's (or, across midnight, the day it opened), and it is
    // the one the process holds.
    let files = event_files(&state);
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].starts_with("events-20"), "{files:?}");
    assert_eq!(deleted_fds(demo.0.id()), Vec::<String>::new());

    // And the milestones keep landing in it: a clean stop writes DaemonStopped there.
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(demo.0.id() as i32).unwrap(),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let mut demo = demo;
    assert!(demo.0.wait().unwrap().success());
    let text = std::fs::read_to_string(state.join(&files[0])).unwrap();
    let reasons: Vec<String> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["reason"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(reasons.first().map(String::as_str), Some("DaemonStarted"));
    assert_eq!(reasons.last().map(String::as_str), Some("DaemonStopped"));
}
