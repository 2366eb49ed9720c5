//! A rotating writer killed with SIGKILL, often in the middle of a rotation, loses no
//! acknowledged event, and the next open repairs the file it was writing.
//!
//! The child (`rotating_crash_child`, ignored in normal runs) is this test binary run again. It
//! logs from 8 threads with a clock that moves a day every 20 ms and a size limit of a few
//! events per file, so a switch of files is never more than a few batches away, and prints
//! `ACK <id>` after each `log` returns. The parent kills it at a random moment, 20 times.

mod common;

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::num::NonZeroU64;
use std::path::PathBuf;
use std::time::Instant;

use daemonkit_eventlog::{RotatingLog, Rotation, list_event_files, read_events};

const DIR_ENV: &str = "DAEMONKIT_EVENTLOG_ROTATING_CRASH_DIR";
const RUN_ENV: &str = "DAEMONKIT_EVENTLOG_ROTATING_CRASH_RUN";
const WRITERS: usize = 8;
const RUNS: usize = 20;
/// Each run starts its clock this many days after the previous run's, so runs never share a day.
const DAYS_PER_RUN: i64 = 10_000;
const FIRST_DAY: i64 = 1_000; // days after the Unix epoch
const LIMIT: u64 = 16 * 1024;

fn rotation(clock: impl daemonkit_eventlog::Clock + 'static) -> Rotation {
    Rotation::daily("events")
        .unwrap()
        .max_bytes(NonZeroU64::new(LIMIT).unwrap())
        .clock(clock)
}

/// The child's role: log until killed, acknowledging each durable event on stdout.
#[test]
#[ignore = "child process of `acknowledged_events_survive_sigkill_during_rotation`, which runs it"]
fn rotating_crash_child() {
    let dir = PathBuf::from(std::env::var_os(DIR_ENV).expect("run by the parent test"));
    let run: i64 = std::env::var(RUN_ENV).unwrap().parse().unwrap();
    let started = Instant::now();
    let first_day = FIRST_DAY + run * DAYS_PER_RUN;
    let clock = move || {
        let days = first_day + (started.elapsed().as_millis() / 20) as i64;
        jiff::Timestamp::from_second(days * 86_400).unwrap()
    };
    let log = RotatingLog::open(&dir, rotation(clock)).unwrap();
    // Long lines make a batch span pages, so a kill can land inside one write.
    let padding = "x".repeat(4_000);
    std::thread::scope(|s| {
        for w in 0..WRITERS {
            let (log, padding) = (&log, &padding);
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
fn acknowledged_events_survive_sigkill_during_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let mut all_acked: Vec<String> = Vec::new();
    let (mut torn_runs, mut files_seen) = (0, 0);
    for run in 0..RUNS {
        all_acked.extend(common::run_child_until_killed(
            "rotating_crash_child",
            &[
                (DIR_ENV, dir.path().as_os_str()),
                (RUN_ENV, OsStr::new(&run.to_string())),
            ],
            300,
            3_000,
        ));

        // Only the file being written when the child died can end in a partial line.
        let files = list_event_files(dir.path(), "events").unwrap();
        let newest = files.last().expect("the child created files").clone();
        for file in &files[..files.len() - 1] {
            let bytes = fs::read(&file.path).unwrap();
            assert!(
                bytes.is_empty() || bytes.ends_with(b"\n"),
                "run {run}: {} is torn but is not the newest file",
                file.path.display()
            );
        }
        let torn = fs::read(&newest.path)
            .unwrap()
            .last()
            .is_some_and(|&b| b != b'\n');

        // The next open, on the day the child died in, repairs the file it was writing.
        let day_start = jiff::tz::TimeZone::UTC
            .to_timestamp(newest.day.to_datetime(jiff::civil::Time::midnight()))
            .unwrap();
        let log = RotatingLog::open(dir.path(), rotation(move || day_start)).unwrap();
        assert_eq!(
            log.torn_tail_repair().is_some(),
            torn,
            "run {run}: torn {torn}, repair {:?}",
            log.torn_tail_repair()
        );
        torn_runs += usize::from(torn);
        drop(log);

        // Every file verifies; every acknowledged event is in exactly one of them.
        let mut count: HashMap<String, usize> = HashMap::new();
        let files = list_event_files(dir.path(), "events").unwrap();
        files_seen = files.len();
        for file in &files {
            for event in read_events(&file.path).unwrap() {
                let msg = event
                    .expect("after the repair, every line is a valid event")
                    .msg;
                *count
                    .entry(msg.split(' ').next().unwrap().to_owned())
                    .or_default() += 1;
            }
        }
        for id in &all_acked {
            assert_eq!(
                count.get(id),
                Some(&1),
                "run {run}: acknowledged event {id}"
            );
        }
    }
    assert!(
        files_seen > RUNS,
        "the children rotated ({files_seen} files)"
    );
    eprintln!(
        "{RUNS} kills, {} acknowledged events all present once in {files_seen} files, \
         {torn_runs} torn tails repaired",
        all_acked.len()
    );
}
