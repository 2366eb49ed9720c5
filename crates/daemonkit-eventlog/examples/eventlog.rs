//! The durable event log: append, rotate by day, survive a torn write, verify.
//!
//! Run it with `cargo run -p daemonkit-eventlog --example eventlog`. It works in a
//! temporary directory and prints each step. `daemonctl events verify FILE…` does the
//! verification part for an operator.

use std::io::Write;

use daemonkit_eventlog::{Event, EventLog, Level, read_events};
use jiff::Timestamp;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let node = "node-3";

    // 1. Append. `log` returns once the line is on stable storage (fsync), so an
    //    acknowledged event survives a power cut.
    let day1: Timestamp = "2026-06-19T23:59:58Z".parse()?;
    let log = EventLog::open_append(dir.path(), &file_for(day1))?;
    for (reason, msg) in [
        ("UpgradeStarted", "begin upgrade to v0.75.0"),
        ("UpgradeStaged", "binaries staged"),
    ] {
        let mut event = Event::new(Level::Info, reason, msg, "upgrade-1", node);
        event.ts = day1;
        log.log(&event)?;
    }
    println!("appended 2 events to {}", log.path().display());

    // 2. Rotate: a file per UTC day. At midnight the writer opens the next day's file
    //    (and retention prunes old ones by the date in their names; see the filepruner
    //    crate's `retention` example). Old files are never written again.
    drop(log);
    let day2: Timestamp = "2026-06-20T00:00:01Z".parse()?;
    let log = EventLog::open_append(dir.path(), &file_for(day2))?;
    let mut done = Event::new(
        Level::Info,
        "UpgradeFinished",
        "upgrade to v0.75.0 done",
        "upgrade-1",
        node,
    );
    done.ts = day2;
    log.log(&done)?;
    println!("rotated to {}", log.path().display());
    drop(log);

    // 3. A writer dies half-way through a line (a crash, not a power cut: the bytes
    //    reached the file). Reopening cuts the partial line, which was never
    //    acknowledged, and keeps it aside for forensics.
    let today = dir.path().join(file_for(day2));
    std::fs::OpenOptions::new()
        .append(true)
        .open(&today)?
        .write_all(br#"{"ts":"2026-06-20T00:00:02Z","lev"#)?;
    let log = EventLog::open_append(dir.path(), &file_for(day2))?;
    let repair = log
        .torn_tail_repair()
        .ok_or("the torn line was not repaired")?;
    println!(
        "cut a torn tail of {} bytes into {}",
        repair.cut_len,
        repair.side_file.display()
    );

    // 4. Verify: every line of every file parses; a malformed line is reported with its
    //    number (what `daemonctl events verify` prints).
    let mut files: Vec<_> = std::fs::read_dir(dir.path())?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    let mut total = 0;
    for file in &files {
        let events = read_events(file)?.collect::<Result<Vec<_>, _>>()?;
        println!("{}: {} events, all valid", file.display(), events.len());
        total += events.len();
    }
    assert_eq!((files.len(), total), (2, 3));
    Ok(())
}

/// `events-YYYYMMDD.jsonl` for the UTC day of `ts`.
fn file_for(ts: Timestamp) -> String {
    format!("events-{}.jsonl", ts.strftime("%Y%m%d"))
}
