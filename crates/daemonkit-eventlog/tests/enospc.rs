//! A full disk: `log` fails cleanly and works again once space returns.
//!
//! Needs a 64 KiB tmpfs, which only root can mount; elsewhere the tests say `SKIPPED` (or fail
//! under `DAEMONKIT_REQUIRE_ALL=1`).

mod common;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use daemonkit_eventlog::{Error, EventLog, Op};

/// A small tmpfs mounted on a temporary directory, unmounted on drop.
struct SmallTmpfs {
    dir: tempfile::TempDir,
}

impl SmallTmpfs {
    fn mount(size: &str) -> Result<SmallTmpfs, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let output = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !output.status.success() {
            return Err(String::from_utf8_lossy(&output.stderr).trim().to_owned());
        }
        Ok(SmallTmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallTmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// Fills `path` with `len` bytes, taking that much space on the file system.
fn fill(path: &Path, len: usize) -> PathBuf {
    fs::write(path, vec![b'f'; len]).unwrap();
    path.to_path_buf()
}

fn assert_storage_full(result: Result<(), Error>) {
    match result {
        Err(Error::Io { op, source, .. }) => {
            assert!(matches!(op, Op::Write | Op::Sync), "{op:?}");
            assert_eq!(source.kind(), io::ErrorKind::StorageFull, "{source}");
        }
        other => panic!("expected a StorageFull I/O error, got {other:?}"),
    }
}

#[test]
fn a_full_disk_fails_log_leaves_no_partial_line_and_recovers_when_space_returns() {
    let tmpfs = match SmallTmpfs::mount("64k") {
        Ok(tmpfs) => tmpfs,
        Err(why) => {
            common::skip(&format!("cannot mount a small tmpfs (needs root): {why}"));
            return;
        }
    };
    let filler = fill(&tmpfs.path().join("filler"), 16 * 1024);
    let log = EventLog::open_append(tmpfs.path(), "events.jsonl").unwrap();
    let padding = "p".repeat(700);

    let mut logged = Vec::new();
    let failure = loop {
        let msg = format!("{} {padding}", logged.len());
        match log.log(&common::event(msg.clone())) {
            Ok(()) => logged.push(msg),
            Err(e) => break Err(e),
        }
        assert!(logged.len() < 1_000, "the 64 KiB tmpfs never filled up");
    };
    assert_storage_full(failure);
    assert!(!logged.is_empty());
    assert_eq!(
        common::messages(log.path()),
        logged,
        "only whole lines, all acknowledged"
    );

    // Still full: still an error, still no partial line.
    assert_storage_full(log.log(&common::event(format!("again {padding}"))));
    assert_eq!(common::messages(log.path()), logged);

    // Space returns: logging works again, on a clean line boundary.
    fs::remove_file(filler).unwrap();
    log.log(&common::event("after space returned")).unwrap();
    logged.push("after space returned".to_owned());
    assert_eq!(common::messages(log.path()), logged);
}

/// Fills the file system holding `path` to the last byte; returns the filler's path.
fn fill_up(path: &Path) -> PathBuf {
    use std::io::Write;
    let mut file = fs::File::create(path).unwrap();
    let chunk = [b'f'; 1024];
    loop {
        match file.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::StorageFull => break,
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
    path.to_path_buf()
}

fn side_files(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".torn-"))
        .collect()
}

#[test]
fn repairing_a_torn_tail_on_a_full_disk_fails_without_leaving_an_empty_side_file() {
    let tmpfs = match SmallTmpfs::mount("64k") {
        Ok(tmpfs) => tmpfs,
        Err(why) => {
            common::skip(&format!("cannot mount a small tmpfs (needs root): {why}"));
            return;
        }
    };
    let torn = br#"{"ts":"2026-06-19T12:00:00Z","level":"INFO","reason":"Te"#;
    let complete = common::log_then_tear(tmpfs.path(), 3, torn);
    let filler = fill_up(&tmpfs.path().join("filler"));

    for attempt in 0..3 {
        match EventLog::open_append(tmpfs.path(), "events.jsonl") {
            Err(Error::Io { op, source, .. }) => {
                assert_eq!(op, Op::SaveTornTail, "attempt {attempt}");
                assert_eq!(source.kind(), io::ErrorKind::StorageFull, "{source}");
            }
            other => panic!("attempt {attempt}: expected StorageFull, got {other:?}"),
        }
        assert_eq!(
            side_files(tmpfs.path()),
            Vec::<String>::new(),
            "attempt {attempt}"
        );
        // The log is untouched: the torn tail is cut only once it is saved.
        let len = fs::metadata(tmpfs.path().join("events.jsonl"))
            .unwrap()
            .len();
        assert_eq!(len, complete + torn.len() as u64);
    }

    // Space returns: the repair saves the tail in exactly one side file.
    fs::remove_file(filler).unwrap();
    let log = EventLog::open_append(tmpfs.path(), "events.jsonl").unwrap();
    let repair = log
        .torn_tail_repair()
        .expect("repaired once space returned");
    assert_eq!(fs::read(&repair.side_file).unwrap(), torn);
    assert_eq!(side_files(tmpfs.path()).len(), 1);
    assert_eq!(fs::metadata(log.path()).unwrap().len(), complete);
}

#[test]
fn a_rotating_log_on_a_full_disk_fails_cleanly_across_midnight_and_recovers() {
    let tmpfs = match SmallTmpfs::mount("64k") {
        Ok(tmpfs) => tmpfs,
        Err(why) => {
            common::skip(&format!("cannot mount a small tmpfs (needs root): {why}"));
            return;
        }
    };
    let clock = common::TestClock::at("2026-12-03T23:59:00Z");
    let rotation = daemonkit_eventlog::Rotation::daily("events")
        .unwrap()
        .clock(clock.clock());
    let log = daemonkit_eventlog::RotatingLog::open(tmpfs.path(), rotation).unwrap();
    log.log(&common::event("before midnight")).unwrap();
    let filler = fill_up(&tmpfs.path().join("filler"));

    // Full (a line longer than a page needs a new one), then midnight: the batch that would
    // open the new day's file fails as a whole.
    let long = "p".repeat(5_000);
    assert_storage_full(log.log(&common::event(format!("full {long}"))));
    clock.set("2026-12-04T00:00:01Z");
    match log.log(&common::event(format!("full, new day {long}"))) {
        Err(Error::Io { source, .. }) => {
            assert_eq!(source.kind(), io::ErrorKind::StorageFull, "{source}")
        }
        other => panic!("expected StorageFull, got {other:?}"),
    }
    let files = daemonkit_eventlog::list_event_files(tmpfs.path(), "events").unwrap();
    for file in &files {
        // Whatever was created holds only whole, acknowledged lines.
        let bytes = fs::read(&file.path).unwrap();
        assert!(
            bytes.is_empty() || bytes.ends_with(b"\n"),
            "{}",
            file.path.display()
        );
    }
    assert_eq!(common::messages(&files[0].path), ["before midnight"]);

    // Space returns: the next event lands in the new day's file.
    fs::remove_file(filler).unwrap();
    log.log(&common::event("after space returned")).unwrap();
    assert!(log.current_path().ends_with("events-20261204.jsonl"));
    assert_eq!(
        common::messages(&log.current_path()),
        ["after space returned"]
    );
}
