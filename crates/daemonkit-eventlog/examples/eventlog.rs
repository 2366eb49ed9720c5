//! The durable event log: append, rotate by day, survive a torn write, verify.
//!
//! Run it with `cargo run --example eventlog`. It works in a
//! temporary directory, with a clock of its own so midnight comes at once, and prints
//! each step. `daemonctl events verify DIR` does the verification part for an operator.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use daemonkit_eventlog::{Event, Level, RotatingLog, Rotation, list_event_files, read_events};
use jiff::Timestamp;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let now = Arc::new(AtomicI64::new(
        "2026-06-19T23:59:58Z".parse::<Timestamp>()?.as_second(),
    ));
    let clock = {
        let now = Arc::clone(&now);
        move || Timestamp::from_second(now.load(Ordering::SeqCst)).unwrap_or(Timestamp::UNIX_EPOCH)
    };
    let event =
        |level, reason: &str, msg: &str| Event::new(level, reason, msg, "upgrade-1", "node-3");

    // 1. Append. `log` returns once the line is on stable storage (fsync), so an
    //    acknowledged event survives a power cut. Files are `events-YYYYMMDD.jsonl`.
    let log = RotatingLog::open(dir.path(), Rotation::daily("events")?.clock(clock.clone()))?;
    log.log(&event(
        Level::Info,
        "UpgradeStarted",
        "begin upgrade to v0.75.0",
    ))?;
    log.log(&event(Level::Info, "UpgradeStaged", "binaries staged"))?;
    println!("appended 2 events to {}", log.current_path().display());

    // 2. Rotate: the first event after midnight (UTC) goes to the next day's file; the old
    //    file is never written again, and retention prunes it by the date in its name
    //    (see the filepruner crate's `retention` example).
    now.fetch_add(3, Ordering::SeqCst);
    log.log(&event(
        Level::Info,
        "UpgradeFinished",
        "upgrade to v0.75.0 done",
    ))?;
    println!("rotated to {}", log.current_path().display());
    let today = log.current_path();
    drop(log);

    // 3. A writer dies half-way through a line (a crash: the bytes reached the file, the
    //    newline did not). Reopening cuts the partial line, which was never acknowledged,
    //    and keeps it aside for forensics.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&today)?
        .write_all(br#"{"ts":"2026-06-20T00:00:02Z","lev"#)?;
    let log = RotatingLog::open(dir.path(), Rotation::daily("events")?.clock(clock))?;
    let repair = log
        .torn_tail_repair()
        .ok_or("the torn line was not repaired")?;
    println!(
        "cut a torn tail of {} bytes into {}",
        repair.cut_len,
        repair.side_file.display()
    );
    drop(log);

    // 4. Verify: every line of every file of the set parses, oldest file first; a
    //    malformed line is reported with its number (what `daemonctl events verify` prints).
    let files = list_event_files(dir.path(), "events")?;
    let mut total = 0;
    for file in &files {
        let events = read_events(&file.path)?.collect::<Result<Vec<_>, _>>()?;
        println!(
            "{}: {} events, all valid",
            file.path.display(),
            events.len()
        );
        total += events.len();
    }
    assert_eq!((files.len(), total), (2, 3));
    Ok(())
}
