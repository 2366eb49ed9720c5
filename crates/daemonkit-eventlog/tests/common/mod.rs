//! Helpers shared by the integration tests.
#![allow(dead_code)] // each test file uses a different subset

use std::path::Path;

use daemonkit_eventlog::{Event, Level, read_events};

/// An event with every field set; `msg` tells events apart.
pub fn event(msg: impl Into<String>) -> Event {
    Event::new(
        Level::Info,
        "TestMilestone",
        msg,
        "op-20260619T120000Z",
        "node-3",
    )
}

/// The `msg` of every event in `path`, panicking on any malformed line or I/O error.
pub fn messages(path: &Path) -> Vec<String> {
    read_events(path)
        .expect("open event file")
        .map(|e| e.expect("every line is a valid event").msg)
        .collect()
}

/// A temporary directory on tmpfs (`/dev/shm`) where there is one, else in the usual temp dir.
///
/// For tests about concurrency rather than the disk: on this class of machine a real `fdatasync`
/// takes about 3 ms, and 16,000 events at ~15 per sync would take seconds. tmpfs runs exactly
/// the same code (write, then `fdatasync`), only the sync returns at once.
pub fn fast_tempdir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(dir) = tempfile::tempdir_in(shm)
    {
        return dir;
    }
    tempfile::tempdir().expect("create a temp dir")
}

/// Logs `n` events into `dir/events.jsonl`, then appends `torn` as a crash would leave
/// it; returns the length of the complete part.
pub fn log_then_tear(dir: &std::path::Path, n: usize, torn: &[u8]) -> u64 {
    use std::io::Write;
    let log = daemonkit_eventlog::EventLog::open_append(dir, "events.jsonl").unwrap();
    for i in 0..n {
        log.log(&event(format!("event {i}"))).unwrap();
    }
    let complete = std::fs::metadata(log.path()).unwrap().len();
    drop(log);
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join("events.jsonl"))
        .unwrap();
    file.write_all(torn).unwrap();
    complete
}
