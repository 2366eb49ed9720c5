//! A full disk: `log` fails cleanly and works again once space returns.
//!
//! Needs a 64 KiB tmpfs, which only root can mount; elsewhere the test says so and skips.

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
            eprintln!("skipping: cannot mount a small tmpfs (needs root): {why}");
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
