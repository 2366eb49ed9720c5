//! `RotatingLog`: the writer of a rotating set, one file per UTC day (and size limit).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::file::absolute_dir;
use crate::log::Inner;
use crate::{Error, Event, Rotation, TornTailRepair};

/// An append-only JSONL event log that moves to a new file each UTC day (and, optionally, at a
/// size limit), with every promise of [`EventLog`](crate::EventLog).
///
/// The file a batch goes to is chosen, by the [`Rotation`] rule, when the batch is written:
/// the leader of a group commit reads the clock, and if the day changed (or the batch would
/// pass the size limit) it opens the next file — created mode 0640, locked, its directory entry
/// synced, a torn tail repaired if it already existed — before writing. A batch is never split,
/// so every acknowledged event is in exactly one file, and the set read in
/// [`list_event_files`](crate::list_event_files) order has each caller's events in the order
/// it logged them. An event's file is the day it was *written*, which may be a sync later
/// than its `ts`.
///
/// [`open`](RotatingLog::open) continues today's file after a restart (the day's
/// highest-numbered one). The old file is closed (and its lock released) as soon as the new one
/// holds a durable batch; nothing needs flushing at rotation, every acknowledged line is durable.
///
/// # Retention
///
/// Prune old files with daemonkit-filepruner over [`Rotation::glob`] and a `%Y%m%d` filename
/// timestamp. The live file is protected twice: the writer holds an exclusive `flock` on it,
/// which the pruner probes and reports as `in_use`, and [`current_path`](RotatingLog::current_path)
/// names it for a pruner's protected list. If it is removed anyway, the next batch notices and
/// recreates it (see [`EventLog`](crate::EventLog#a-removed-or-replaced-file)).
///
/// # Examples
///
/// ```
/// use daemonkit_eventlog::{Event, Level, RotatingLog, Rotation, list_event_files, read_events};
///
/// let dir = tempfile::tempdir()?;
/// let log = RotatingLog::open(dir.path(), Rotation::daily("events")?)?;
/// log.log(&Event::new(Level::Info, "DaemonStarted", "started", "boot-1", "node-3"))?;
///
/// let today = jiff::Timestamp::now().strftime("%Y%m%d").to_string();
/// assert!(log.current_path().ends_with(format!("events-{today}.jsonl")));
///
/// let files = list_event_files(dir.path(), "events")?;
/// assert_eq!(files.len(), 1);
/// assert_eq!(read_events(&files[0].path)?.count(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct RotatingLog {
    inner: Arc<Inner>,
}

impl RotatingLog {
    /// Opens the rotating set `rotation` names in `dir`, continuing today's file (by the
    /// rotation's clock) if it exists.
    ///
    /// `dir` must exist. As [`EventLog::open_append`](crate::EventLog::open_append), a torn
    /// tail of the file continued is cut and saved aside ([`torn_tail_repair`](RotatingLog::torn_tail_repair)).
    /// When today's file is not the set's newest (a restart on a later day, or a clock that went
    /// back), the newest file — the one a power cut may have left torn — is repaired first, so
    /// that no file but the live one ever ends in a partial line.
    ///
    /// # Errors
    ///
    /// [`Error::Locked`] if another log writes today's file; [`Error::Io`] if `dir` cannot be
    /// listed or the file cannot be opened, repaired or synced.
    pub fn open(dir: impl AsRef<Path>, rotation: Rotation) -> Result<RotatingLog, Error> {
        let dir = absolute_dir(dir.as_ref())?;
        let today = rotation.now_day();
        let earlier = rotation.repair_newest_unless(&dir, today)?;
        let (segment, repair) = rotation.open_day(&dir, today)?;
        Ok(RotatingLog {
            inner: Inner::new(dir, Some(rotation), segment, repair.or(earlier)),
        })
    }

    /// The absolute path of the file being written now.
    ///
    /// It changes at rotation: a caller that protects it from pruning should read it again
    /// before each pass (a rotation in between leaves the newer file protected by its lock).
    pub fn current_path(&self) -> PathBuf {
        self.inner.current_path()
    }

    /// The directory of the set, absolute.
    pub fn dir(&self) -> &Path {
        self.inner.dir()
    }

    /// The torn tail [`open`](RotatingLog::open) cut from the file it continued, if any.
    /// (Repairs of files opened later, at rotation, are reported through `tracing`.)
    pub fn torn_tail_repair(&self) -> Option<&TornTailRepair> {
        self.inner.repair()
    }

    /// Appends `event` to the current file and returns once its line is on stable storage.
    ///
    /// # Errors
    ///
    /// As [`EventLog::log`](crate::EventLog::log); a failure to open the next file at rotation
    /// fails the batch with [`Error::Io`] (or [`Error::Locked`]) and is retried by the next one.
    pub fn log(&self, event: &Event) -> Result<(), Error> {
        self.inner.log(event)
    }

    /// Appends `event` from async code; see [`EventLog::log_async`](crate::EventLog::log_async).
    ///
    /// # Errors
    ///
    /// As [`log`](RotatingLog::log), plus [`Error::Runtime`] outside a tokio runtime.
    pub async fn log_async(&self, event: &Event) -> Result<(), Error> {
        Inner::log_async(&self.inner, event).await
    }
}

impl fmt::Debug for RotatingLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RotatingLog")
            .field("dir", &self.inner.dir())
            .field("current_path", &self.current_path())
            .finish_non_exhaustive()
    }
}
