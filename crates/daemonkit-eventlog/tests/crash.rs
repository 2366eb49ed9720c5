//! A writer killed with SIGKILL mid-stream loses no acknowledged event.
//!
//! The test re-runs its own test binary as the child (`crash_child`, ignored in normal runs),
//! which logs from 16 threads and prints `ACK <msg>` on stdout after each `log` returns. The
//! parent kills it at a random moment, reopens the log and checks every acknowledged event.

mod common;

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::path::PathBuf;

use daemonkit_eventlog::{EventLog, read_events};

const DIR_ENV: &str = "DAEMONKIT_EVENTLOG_CRASH_DIR";
const RUN_ENV: &str = "DAEMONKIT_EVENTLOG_CRASH_RUN";
const LOG_NAME: &str = "events.jsonl";
const WRITERS: usize = 16;
const RUNS: usize = 6;

/// The child's role: log until killed, acknowledging each durable event on stdout.
#[test]
#[ignore = "child process of `acknowledged_events_survive_sigkill`, which runs it"]
fn crash_child() {
    let dir = PathBuf::from(
        std::env::var_os(DIR_ENV).expect("run by acknowledged_events_survive_sigkill"),
    );
    let run = std::env::var(RUN_ENV).expect("run by acknowledged_events_survive_sigkill");
    let log = EventLog::open_append(&dir, LOG_NAME).unwrap();
    // Long messages make batches span several pages, so a kill can land inside one write.
    let padding = "x".repeat(2_000);
    std::thread::scope(|s| {
        for w in 0..WRITERS {
            let (log, run, padding) = (&log, &run, &padding);
            s.spawn(move || {
                for i in 0.. {
                    let id = format!("{run}-{w}-{i}");
                    log.log(&common::event(format!("{id} {padding}"))).unwrap();
                    writeln!(std::io::stdout().lock(), "ACK {id}").unwrap();
                }
            });
        }
    });
}

#[test]
fn acknowledged_events_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(LOG_NAME);
    let mut all_acked: Vec<String> = Vec::new();
    let mut torn_runs = 0;
    for run in 0..RUNS {
        all_acked.extend(common::run_child_until_killed(
            "crash_child",
            &[
                (DIR_ENV, dir.path().as_os_str()),
                (RUN_ENV, OsStr::new(&run.to_string())),
            ],
            400,
            3_000,
        ));

        let before = fs::read(&path).unwrap();
        let torn = before.last().is_some_and(|&b| b != b'\n');
        let log = EventLog::open_append(dir.path(), LOG_NAME).unwrap();
        match (torn, log.torn_tail_repair()) {
            (false, None) => {}
            (true, Some(repair)) => {
                torn_runs += 1;
                let kept = repair.kept_len as usize;
                assert_eq!(fs::read(&repair.side_file).unwrap(), before[kept..]);
                assert_eq!(fs::read(&path).unwrap(), before[..kept]);
            }
            (torn, repair) => panic!("run {run}: torn tail {torn}, but repair reported {repair:?}"),
        }
        drop(log);

        let logged: HashSet<String> = read_events(&path)
            .unwrap()
            .map(|e| {
                let msg = e.expect("after reopening, every line is a valid event").msg;
                msg.split(' ').next().unwrap().to_owned()
            })
            .collect();
        for id in &all_acked {
            assert!(
                logged.contains(id),
                "run {run}: acknowledged event {id} is missing"
            );
        }
    }
    eprintln!(
        "{RUNS} kills, {} acknowledged events all present, {torn_runs} torn tails repaired",
        all_acked.len()
    );
}
