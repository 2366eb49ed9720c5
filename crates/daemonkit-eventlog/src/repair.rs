//! Torn-tail repair: what reopening an append log does about a last line cut short by a crash.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::file::{create_new_file, sync_directory};
use crate::{Error, Op};

/// What [`EventLog::open_append`](crate::EventLog::open_append) did about a torn tail: a last
/// line without its newline, left by a process that died mid-write.
///
/// Such a line was never acknowledged (a line is acknowledged only after it and its newline are on
/// stable storage), so cutting it loses no acknowledged event. The cut bytes are kept in
/// [`side_file`](TornTailRepair::side_file) all the same, for forensics, and the repair is also
/// reported as a `tracing` warning with `reason = "TornTailRepaired"`.
///
/// # Examples
///
/// ```
/// use std::io::Write;
/// use daemonkit_eventlog::{Event, EventLog, Level};
///
/// let dir = tempfile::tempdir()?;
/// let log = EventLog::open_append(dir.path(), "events.jsonl")?;
/// log.log(&Event::new(Level::Info, "DaemonStarted", "started", "boot-1", "node-3"))?;
/// let complete = std::fs::metadata(log.path())?.len();
/// drop(log);
///
/// // A writer dies half-way through a line.
/// let path = dir.path().join("events.jsonl");
/// std::fs::OpenOptions::new().append(true).open(&path)?.write_all(br#"{"ts":"2026-06"#)?;
///
/// let log = EventLog::open_append(dir.path(), "events.jsonl")?;
/// let repair = log.torn_tail_repair().expect("the partial line was cut");
/// assert_eq!((repair.kept_len, repair.cut_len), (complete, 14));
/// assert_eq!(std::fs::read(&repair.side_file)?, br#"{"ts":"2026-06"#);
/// assert_eq!(std::fs::metadata(log.path())?.len(), complete);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TornTailRepair {
    /// The file, next to the log, holding the bytes that were cut: `<log name>.torn-<UTC time>`.
    pub side_file: PathBuf,
    /// The log's length after the repair: the end of its last complete line.
    pub kept_len: u64,
    /// How many bytes were cut (and saved in the side file).
    pub cut_len: u64,
}

/// How far back to read at a time when looking for the last newline.
const SCAN_CHUNK: usize = 64 * 1024;

/// Cuts `file` back to its last complete line if it does not end with a newline.
///
/// The cut bytes are saved (and synced, with their directory) before the log is truncated, so a
/// crash during the repair loses nothing. Returns the log's length after the repair and what was
/// repaired, if anything.
pub(crate) fn repair_torn_tail(
    file: &File,
    path: &Path,
    dir: &Path,
    name: &str,
) -> Result<(u64, Option<TornTailRepair>), Error> {
    let io_err = |op: Op, path: &Path| {
        let path = path.to_path_buf();
        move |source: io::Error| Error::Io { op, path, source }
    };
    let len = file.metadata().map_err(io_err(Op::Read, path))?.len();
    let kept_len = last_line_end(file, len).map_err(io_err(Op::Read, path))?;
    if kept_len == len {
        return Ok((len, None));
    }
    let cut_len = len - kept_len;

    // The side file exists only once it holds every cut byte: if saving them fails (a full
    // disk), it is removed again, so each failed open does not leave an empty side file behind.
    let (side_file, mut side) = create_side_file(dir, name)?;
    let saved = save_tail(file, path, kept_len, cut_len, &mut side, &side_file)
        .and_then(|()| sync_directory(dir));
    if let Err(e) = saved {
        drop(side);
        if std::fs::remove_file(&side_file).is_ok() {
            // Best effort: an entry that comes back after a crash is an empty side file, not a
            // lost event.
            let _ = sync_directory(dir);
        }
        return Err(e);
    }

    file.set_len(kept_len).map_err(io_err(Op::Truncate, path))?;
    file.sync_data().map_err(io_err(Op::Sync, path))?;

    tracing::warn!(
        reason = "TornTailRepaired",
        path = %path.display(),
        side_file = %side_file.display(),
        kept_len,
        cut_len,
        "event log ended in a partial line left by an interrupted write; cut it and saved the bytes in the side file"
    );
    Ok((
        kept_len,
        Some(TornTailRepair {
            side_file,
            kept_len,
            cut_len,
        }),
    ))
}

/// Copies the `cut_len` bytes after `kept_len` of the log into `side` and syncs it.
fn save_tail(
    file: &File,
    path: &Path,
    kept_len: u64,
    cut_len: u64,
    side: &mut File,
    side_file: &Path,
) -> Result<(), Error> {
    let io_err = |op: Op, path: &Path| {
        let path = path.to_path_buf();
        move |source: io::Error| Error::Io { op, path, source }
    };
    let mut reader = file;
    reader
        .seek(SeekFrom::Start(kept_len))
        .map_err(io_err(Op::Read, path))?;
    let copied =
        io::copy(&mut reader.take(cut_len), side).map_err(io_err(Op::SaveTornTail, side_file))?;
    if copied != cut_len {
        // The log shrank under us: someone else is writing it despite the lock.
        return Err(Error::Io {
            op: Op::Read,
            path: path.to_path_buf(),
            source: io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("expected {cut_len} bytes after offset {kept_len}, read {copied}"),
            ),
        });
    }
    side.sync_all().map_err(io_err(Op::SaveTornTail, side_file))
}

/// The offset just past the last `\n` in the first `len` bytes of `file` (0 if there is none).
fn last_line_end(file: &File, len: u64) -> io::Result<u64> {
    let mut buf = vec![0u8; SCAN_CHUNK];
    let mut end = len;
    while end > 0 {
        // Bounded by SCAN_CHUNK, so the cast cannot truncate.
        let n = end.min(SCAN_CHUNK as u64) as usize;
        let start = end - n as u64;
        file.read_exact_at(&mut buf[..n], start)?;
        if let Some(i) = buf[..n].iter().rposition(|&b| b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

/// Creates `<name>.torn-<UTC time>` (with a counter if that exists already) next to the log.
fn create_side_file(dir: &Path, name: &str) -> Result<(PathBuf, File), Error> {
    let dt = TimeZone::UTC.to_datetime(Timestamp::now());
    let stamp = format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}.{:09}Z",
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second(),
        dt.subsec_nanosecond()
    );
    let mut attempt = 0u32;
    loop {
        let side_name = match attempt {
            0 => format!("{name}.torn-{stamp}"),
            n => format!("{name}.torn-{stamp}-{n}"),
        };
        let side_path = dir.join(side_name);
        match create_new_file(&side_path) {
            Ok(file) => return Ok((side_path, file)),
            Err(Error::Io { source, .. })
                if source.kind() == io::ErrorKind::AlreadyExists && attempt < 100 =>
            {
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}
