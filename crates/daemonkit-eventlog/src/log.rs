//! The writer: opening a log and appending events durably with group commit.

use std::fmt;
use std::fs::File;
use std::io::{self, Write};
use std::mem;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use crate::file::{
    absolute_dir, check_name, check_prefix, lock, open_log_file, sync_directory_and_ancestors,
};
use crate::repair::{TornTailRepair, repair_torn_tail};
use crate::rotate::{Rotation, RotationCause, SegmentKey, Target};
use crate::{Error, Event, Op};

/// The prefix the Go daemonkit gives per-operation logs: `consensus-<operationId>.jsonl`.
///
/// Pass it to [`EventLog::create_operation`] to write files existing Go deployments expect.
pub const CONSENSUS_PREFIX: &str = "consensus-";

/// An append-only JSONL event log whose [`log`](EventLog::log) returns only once the event is on
/// stable storage.
///
/// Open one with [`EventLog::create_operation`] (a fresh file per operation) or
/// [`EventLog::open_append`] (one file that grows across opens). The handle is cheap to clone and
/// every clone writes the same file; it is `Send + Sync`, so threads share it directly and tasks
/// use [`log_async`](EventLog::log_async). The file is closed when the last clone is dropped.
/// Nothing needs flushing at that point: every acknowledged event is already durable.
///
/// # Durability and group commit
///
/// An event is acknowledged (`log` returns `Ok`) only after its line and newline have been
/// written and `fdatasync`ed, and a newly created file's directory entry has been synced as well.
/// Concurrent callers share syncs: while one caller writes and syncs a batch, the lines of the
/// others queue up; when the sync finishes, one of the waiting callers writes the whole queue
/// with one `write` and one `fdatasync`, and every caller whose line was in it returns. Each
/// caller still returns only after its own line is durable — the guarantee of one sync per event
/// — but a sync serves as many events as arrived while the previous one ran. A caller alone pays
/// exactly one write and one sync, with no hand-off to another thread.
///
/// Lines are never interleaved or split: a batch is written by one caller at a time, with the
/// file opened `O_APPEND`.
///
/// # One writer per file
///
/// Opening takes an exclusive `flock` on the file; a second `EventLog` for the same file, in this
/// process or another, gets [`Error::Locked`] (after about 10 ms of retries: a pruner following
/// the same convention holds a shared lock for the few system calls it takes to judge a file).
/// The lock is also what keeps the live file from being pruned: daemonkit-filepruner skips
/// files a writer holds locked. Torn-tail repair and the roll-back after a failed
/// write both rely on knowing where the last complete line ends, which a second writer would
/// change behind this one's back.
///
/// # A removed or replaced file
///
/// Before writing each batch, and again after syncing it, the writer checks that its path still
/// names the file it holds open (the open file's link count is not 0 and the path's device and
/// inode are the open file's). If an operator's `rm`, a foreign log rotator or a pruner that
/// ignores the lock removed or replaced it, the writer recreates the file (or opens what is now
/// at the path, under the same rules as opening), logs a `tracing` warning with
/// `reason = "EventLogFileReplaced"` and the path, and writes the batch there — so no event is
/// ever acknowledged into an inode no name reaches. A file removed between the write and the
/// sync gets the batch again in the new file; if the old file was renamed rather than removed,
/// those lines are then in both. Events acknowledged before the removal are gone with the file.
///
/// # Errors while writing
///
/// If a write or sync fails (a full disk, an I/O error), every caller in that batch gets
/// [`Error::Io`] and the file is cut back to its last complete line, so no partial line is left
/// for a later write to extend. Logging works again as soon as the cause is gone; if even the
/// cut failed, it is retried before the next write.
///
/// # Examples
///
/// ```
/// use daemonkit_eventlog::{Event, EventLog, Level, read_events};
///
/// let dir = tempfile::tempdir()?;
/// let log = EventLog::open_append(dir.path(), "events.jsonl")?;
/// assert!(log.path().is_absolute());
///
/// std::thread::scope(|s| {
///     for node in 0..4 {
///         let log = &log;
///         s.spawn(move || log.log(&Event::new(Level::Info, "NodeReady", "ready", "op-1", format!("node-{node}"))));
///     }
/// });
/// let count = read_events(log.path())?.filter(|e| e.is_ok()).count();
/// assert_eq!(count, 4);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct EventLog {
    inner: Arc<Inner>,
}

/// The writer shared by [`EventLog`] and [`RotatingLog`](crate::RotatingLog): group commit over
/// a [`Segment`] that a leader may switch (rotation, a removed file) between batches.
pub(crate) struct Inner {
    dir: PathBuf,
    /// The path of the file opened first: for an [`EventLog`], its only path.
    first_path: PathBuf,
    /// How a rotating log names and switches its files; `None` for a single-file log.
    rotation: Option<Rotation>,
    /// The file being written. Locked only by the caller that has set `State::writing`, so it is
    /// never contended; it is a mutex only to hand the segment from one leader to the next.
    segment: Mutex<Segment>,
    /// The path of the file being written, for [`RotatingLog::current_path`](crate::RotatingLog::current_path)
    /// (kept apart from `segment`, which is held across a sync).
    current_path: Mutex<PathBuf>,
    state: Mutex<State>,
    /// Signalled when a line is queued, for a leader gathering its batch.
    gathered: Condvar,
    repair: Option<TornTailRepair>,
}

/// One open file of a log and what the writer knows about it.
pub(crate) struct Segment {
    /// Written only by the leader; `&File` is `Write`.
    pub(crate) file: File,
    pub(crate) path: PathBuf,
    /// The file's place in a rotating set; `None` for a single-file log.
    pub(crate) key: Option<SegmentKey>,
    /// The identity of the inode opened, to notice the path being removed or replaced.
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    /// The file's length after its last durable line.
    pub(crate) good_len: u64,
    /// The file may hold bytes past `good_len`: rolling back a failed batch failed too, so the
    /// next batch must first cut the file back.
    pub(crate) dirty: bool,
}

struct State {
    /// Lines waiting for the next batch.
    queue: Vec<u8>,
    /// The batch `queue` will be written in; its callers wait on it.
    current: Arc<Batch>,
    /// A caller is writing and syncing a batch (without holding the lock).
    writing: bool,
    /// An empty buffer kept for the next batch, so steady logging does not reallocate.
    spare: Vec<u8>,
    /// Lines in `queue`.
    queued: usize,
    /// Callers inside `commit` now (queued or waiting for their batch).
    inside: usize,
    /// Recent peak of `inside`, decaying: how many callers log concurrently.
    peak: usize,
    /// How long the last sync took.
    last_sync: Duration,
}

/// One group commit: the callers whose lines are written by one `write` and one `fdatasync`.
struct Batch {
    /// Set once, under the state lock, when the batch is durable or has failed.
    outcome: OnceLock<Result<(), Failure>>,
    /// Callers in this batch wait here (with the state lock).
    done: Condvar,
}

/// Why a batch failed. `io::Error` is not `Clone`, so each caller gets a rebuilt copy.
pub(crate) enum Failure {
    Io {
        op: Op,
        path: PathBuf,
        error: io::Error,
    },
    Locked {
        path: PathBuf,
    },
}

impl Failure {
    pub(crate) fn io(op: Op, path: &Path, error: io::Error) -> Failure {
        Failure::Io {
            op,
            path: path.to_path_buf(),
            error,
        }
    }

    /// A failure from a crate error met while switching files (opening, locking, repairing).
    pub(crate) fn from_error(error: Error) -> Failure {
        match error {
            Error::Io { op, path, source } => Failure::Io {
                op,
                path,
                error: source,
            },
            Error::Locked { path } => Failure::Locked { path },
            // Names are generated from a checked prefix, so nothing else is expected here;
            // keep the message rather than panic.
            other => Failure::Io {
                op: Op::Open,
                path: PathBuf::new(),
                error: io::Error::other(other.to_string()),
            },
        }
    }

    /// The error one caller of the failed batch gets.
    fn to_error(&self) -> Error {
        match self {
            Failure::Io { op, path, error } => Error::Io {
                op: *op,
                path: path.clone(),
                source: clone_io_error(error),
            },
            Failure::Locked { path } => Error::Locked { path: path.clone() },
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.to_error().fmt(f)
    }
}

impl Batch {
    fn new() -> Arc<Batch> {
        Arc::new(Batch {
            outcome: OnceLock::new(),
            done: Condvar::new(),
        })
    }
}

/// How many times one batch is written again after its file was removed under it, before the
/// batch fails: a file removed again at every attempt is a fight the log should report, not win.
const REPLACED_RETRIES: usize = 3;

// ===== impl EventLog =====

impl EventLog {
    /// Creates the per-operation log `<dir>/<prefix><operation_id>.jsonl`, truncating it if it
    /// exists: each run of an operation starts a fresh file.
    ///
    /// `prefix` may be empty; [`CONSENSUS_PREFIX`] names files as the Go daemonkit does. `dir`
    /// must exist. A new file is created mode 0640; the directory and its ancestors are synced so
    /// the file's entry survives a power cut, even in a directory created just before.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`] if `operation_id` is empty, `.` or `..`, absolute, or contains `/` or
    /// NUL (or `prefix` contains `/` or NUL); [`Error::Locked`] if another log has the file open;
    /// [`Error::Io`] if the file cannot be created, truncated or synced.
    ///
    /// # Examples
    ///
    /// ```
    /// use daemonkit_eventlog::{CONSENSUS_PREFIX, EventLog};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let log = EventLog::create_operation(dir.path(), CONSENSUS_PREFIX, "upgrade-20260619T120000Z")?;
    /// assert!(log.path().ends_with("consensus-upgrade-20260619T120000Z.jsonl"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create_operation(
        dir: impl AsRef<Path>,
        prefix: &str,
        operation_id: &str,
    ) -> Result<EventLog, Error> {
        check_prefix(prefix)?;
        check_name("operation id", operation_id)?;
        let dir = absolute_dir(dir.as_ref())?;
        let path = dir.join(format!("{prefix}{operation_id}.jsonl"));
        let (file, created) = open_log_file(&path)?;
        lock(&file, &path)?;
        // Synced even when the file existed: its creator may have died before syncing it.
        sync_directory_and_ancestors(&dir)?;
        if !created {
            // Only after taking the lock, so another writer's file is never cut.
            file.set_len(0).map_err(|source| Error::Io {
                op: Op::Truncate,
                path: path.clone(),
                source,
            })?;
            // Make the truncation durable now, so a crash before the first event cannot bring the
            // previous run's events back into this run's file.
            file.sync_data().map_err(|source| Error::Io {
                op: Op::Sync,
                path: path.clone(),
                source,
            })?;
        }
        let segment = Segment::new(file, path, None, 0)?;
        Ok(EventLog {
            inner: Inner::new(dir, None, segment, None),
        })
    }

    /// Opens (or creates) the append log `<dir>/<file_name>`, which keeps growing across opens.
    ///
    /// If the file ends in a partial line — a writer died mid-write — the partial line is cut
    /// before anything is appended and saved in a side file; see [`TornTailRepair`], returned by
    /// [`torn_tail_repair`](EventLog::torn_tail_repair). `dir` must exist. A new file is created
    /// mode 0640; the directory and its ancestors are synced so the file's entry survives a power
    /// cut, even in a directory created just before (`create_dir_all`).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`] if `file_name` is empty, `.` or `..`, absolute, or contains `/` or
    /// NUL; [`Error::Locked`] if another log has the file open; [`Error::Io`] if the file cannot be
    /// opened, repaired or synced.
    ///
    /// # Examples
    ///
    /// ```
    /// use daemonkit_eventlog::{Event, EventLog, Level};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let event = Event::new(Level::Info, "DaemonStarted", "started", "boot-1", "node-3");
    /// EventLog::open_append(dir.path(), "events.jsonl")?.log(&event)?;
    /// let log = EventLog::open_append(dir.path(), "events.jsonl")?;
    /// log.log(&event)?;
    /// assert!(log.torn_tail_repair().is_none());
    /// assert_eq!(std::fs::read_to_string(log.path())?.lines().count(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open_append(dir: impl AsRef<Path>, file_name: &str) -> Result<EventLog, Error> {
        check_name("file name", file_name)?;
        let dir = absolute_dir(dir.as_ref())?;
        let (segment, repair) = open_segment(&dir, file_name, None)?;
        Ok(EventLog {
            inner: Inner::new(dir, None, segment, repair),
        })
    }

    /// The log file's absolute path.
    pub fn path(&self) -> &Path {
        &self.inner.first_path
    }

    /// The torn tail [`open_append`](EventLog::open_append) cut when it opened this file, if
    /// there was one. Always `None` for a per-operation log, which starts empty.
    pub fn torn_tail_repair(&self) -> Option<&TornTailRepair> {
        self.inner.repair.as_ref()
    }

    /// Appends `event` and returns once its line is on stable storage.
    ///
    /// Blocks the calling thread for about one `fdatasync` (two if a batch was already being
    /// synced when it arrived); concurrent callers share syncs, see [group
    /// commit](EventLog#durability-and-group-commit). From async code use
    /// [`log_async`](EventLog::log_async).
    ///
    /// # Errors
    ///
    /// [`Error::MissingFields`] or [`Error::TimestampOutOfRange`] for an invalid event, which is
    /// not written. [`Error::Io`] if writing or syncing failed: the event is not in the file (it
    /// was cut back to the last complete line), and a later call may succeed.
    pub fn log(&self, event: &Event) -> Result<(), Error> {
        self.inner.log(event)
    }

    /// Appends `event` from async code and resolves once its line is on stable storage.
    ///
    /// The write and sync run on tokio's blocking pool (`spawn_blocking`), where they join the
    /// same group commits as [`log`](EventLog::log); the runtime's worker threads never wait for
    /// the disk. The blocking pool was chosen over a dedicated writer thread so that a lone caller
    /// pays no extra thread hand-off and both APIs share one code path; each event in flight
    /// holds a blocking-pool thread for about one sync.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future does not cancel the write once it has been handed to the blocking
    /// pool: the event may still be logged. Validation errors are returned before that.
    ///
    /// # Errors
    ///
    /// As [`log`](EventLog::log), plus [`Error::Runtime`] when not called within a tokio runtime,
    /// or when the runtime shut down before the write ran.
    pub async fn log_async(&self, event: &Event) -> Result<(), Error> {
        Inner::log_async(&self.inner, event).await
    }
}

impl fmt::Debug for EventLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventLog")
            .field("path", &self.inner.first_path)
            .field("torn_tail_repair", &self.inner.repair)
            .finish_non_exhaustive()
    }
}

// ===== impl Inner =====

impl Inner {
    pub(crate) fn new(
        dir: PathBuf,
        rotation: Option<Rotation>,
        segment: Segment,
        repair: Option<TornTailRepair>,
    ) -> Arc<Inner> {
        Arc::new(Inner {
            dir,
            first_path: segment.path.clone(),
            rotation,
            current_path: Mutex::new(segment.path.clone()),
            segment: Mutex::new(segment),
            state: Mutex::new(State {
                queue: Vec::new(),
                current: Batch::new(),
                writing: false,
                spare: Vec::new(),
                queued: 0,
                inside: 0,
                peak: 0,
                last_sync: Duration::ZERO,
            }),
            gathered: Condvar::new(),
            repair,
        })
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn repair(&self) -> Option<&TornTailRepair> {
        self.repair.as_ref()
    }

    pub(crate) fn current_path(&self) -> PathBuf {
        self.current_path
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn log(&self, event: &Event) -> Result<(), Error> {
        let mut line = Vec::with_capacity(256);
        event.encode_line(&mut line)?;
        self.commit(&line)
    }

    pub(crate) async fn log_async(this: &Arc<Inner>, event: &Event) -> Result<(), Error> {
        let mut line = Vec::with_capacity(256);
        event.encode_line(&mut line)?;
        let runtime_error = |detail: String| Error::Runtime {
            path: this.current_path(),
            detail,
        };
        let handle = tokio::runtime::Handle::try_current().map_err(|e| {
            runtime_error(format!("log_async must run within a tokio runtime: {e}"))
        })?;
        let inner = Arc::clone(this);
        handle
            .spawn_blocking(move || inner.commit(&line))
            .await
            .map_err(|e| runtime_error(format!("the blocking write task did not complete: {e}")))?
    }

    fn lock_state(&self) -> MutexGuard<'_, State> {
        // The lock is held only for queue and flag updates that cannot panic half-way (I/O runs
        // without it), so a poisoned state is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `line` and returns once the batch holding it is durable (or has failed).
    fn commit(&self, line: &[u8]) -> Result<(), Error> {
        let mut state = self.lock_state();
        state.queue.extend_from_slice(line);
        state.queued += 1;
        state.inside += 1;
        state.peak = state.peak.max(state.inside);
        self.gathered.notify_one();
        self.wait_durable(state)
    }

    /// Waits until the batch holding the line just queued is durable, leading it when
    /// nobody else is writing.
    fn wait_durable<'a>(&'a self, mut state: MutexGuard<'a, State>) -> Result<(), Error> {
        let batch = Arc::clone(&state.current);
        let mut led = false;
        loop {
            if let Some(outcome) = batch.outcome.get() {
                // A leader whose line is durable writes the batch that queued up during its
                // sync before returning, once: the next sync starts at once instead of after
                // a waiter has been woken and scheduled, which on a fast disk is as long as
                // the sync itself. Its caller waits at most one more sync.
                if led && !state.writing && !state.queue.is_empty() {
                    state = self.write_batch(state);
                }
                state.inside -= 1;
                return match outcome {
                    Ok(()) => Ok(()),
                    Err(failure) => Err(failure.to_error()),
                };
            }
            // Lead when nobody is writing and our line is still queued. A leader only ever writes
            // the batch holding its own line, so it returns as soon as that line is durable.
            if !state.writing && Arc::ptr_eq(&state.current, &batch) {
                state = self.gather(state);
                if !state.writing && Arc::ptr_eq(&state.current, &batch) {
                    state = self.write_batch(state);
                    led = true;
                }
                continue;
            }
            // No wake-up can be lost: the leader sets the outcome and notifies under the lock we
            // release atomically here.
            state = batch
                .done
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Commit delay: when callers have recently been logging concurrently and fewer are
    /// queued, wait up to a quarter of a sync for the callers the last sync released to
    /// queue their next lines, so they share this sync instead of alternating between two
    /// half-full ones. A lone caller never waits (the peak is 1).
    fn gather<'a>(&'a self, state: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        if state.peak <= 1 || state.queued >= state.peak {
            return state;
        }
        let wait = (state.last_sync / 4).min(Duration::from_millis(1));
        let (state, _) = self
            .gathered
            .wait_timeout_while(state, wait, |s| s.queued < s.peak)
            .unwrap_or_else(PoisonError::into_inner);
        state
    }

    /// Writes and syncs the queued batch without holding the lock, then publishes the outcome.
    fn write_batch<'a>(&'a self, mut state: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        let spare = mem::take(&mut state.spare);
        let mut bytes = mem::replace(&mut state.queue, spare);
        let batch = mem::replace(&mut state.current, Batch::new());
        state.writing = true;
        state.queued = 0;
        // Let the peak decay, so a burst long gone does not keep delaying batches.
        state.peak = state.inside.max(state.peak - state.peak / 8);
        drop(state);

        let started = Instant::now();
        let result = {
            // Uncontended: only the caller that set `writing` gets here.
            let mut segment = self.segment.lock().unwrap_or_else(PoisonError::into_inner);
            self.write_durable(&mut segment, &bytes)
        };
        let took = started.elapsed();

        bytes.clear();
        let mut state = self.lock_state();
        state.spare = bytes;
        state.writing = false;
        state.last_sync = took;
        // `set` cannot fail: only the leader that took `batch` out of the state sets its outcome.
        let _ = batch.outcome.set(result);
        batch.done.notify_all();
        // Hand the lead to one caller of the next batch, if any is waiting.
        state.current.done.notify_one();
        state
    }

    /// Makes `bytes` durable in the file the log should write now: switches files first when
    /// the rotation rule says so, and recreates the file when its path was removed or replaced,
    /// before the write and again after the sync, so a batch is never acknowledged into an
    /// inode no name reaches.
    fn write_durable(&self, segment: &mut Segment, bytes: &[u8]) -> Result<(), Failure> {
        if let Some(rotation) = &self.rotation
            && let Some((target, cause)) =
                rotation.next_target(segment.key, segment.good_len, bytes.len() as u64)
        {
            let opened = match target {
                Target::Day(day) => rotation.open_day(&self.dir, day),
                Target::Key(key) => {
                    open_segment(&self.dir, &rotation.file_name(key.day, key.seq), Some(key))
                }
            };
            let (next, _repair) = opened.map_err(Failure::from_error)?;
            self.switch(segment, next, Switch::Rotated(cause));
        }
        let mut attempt = 0;
        loop {
            if let Some(why) = replaced(segment)? {
                let name = segment
                    .path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let (next, _repair) =
                    open_segment(&self.dir, &name, segment.key).map_err(Failure::from_error)?;
                self.switch(segment, next, Switch::Replaced(why));
            }
            append(segment, bytes)?;
            // A removal between the check above and the sync sent the batch to an unlinked
            // inode: write it again, into the recreated file.
            match replaced(segment)? {
                None => return Ok(()),
                Some(why) if attempt >= REPLACED_RETRIES => {
                    return Err(Failure::io(
                        Op::Stat,
                        &segment.path,
                        io::Error::other(format!(
                            "the file was removed or replaced {} times while one batch was \
                             written ({why}); giving up on this batch",
                            attempt + 1
                        )),
                    ));
                }
                Some(_) => attempt += 1,
            }
        }
    }

    /// Puts `next` in place of the current file, which is closed (its lines are all durable).
    fn switch(&self, segment: &mut Segment, next: Segment, why: Switch) {
        match &why {
            Switch::Rotated(cause) => tracing::info!(
                reason = "EventLogRotated",
                from = %segment.path.display(),
                to = %next.path.display(),
                cause = cause.as_str(),
                "event log switched to its next file"
            ),
            Switch::Replaced(detail) => tracing::warn!(
                reason = "EventLogFileReplaced",
                path = %next.path.display(),
                detail = %detail,
                resolution = "do not remove or rotate a live event-log file by hand; prune with \
                              a pruner that skips locked files",
                "the event-log file was removed or replaced while open; recreated it and \
                 carried on (events acknowledged before are in the removed file)"
            ),
        }
        *self
            .current_path
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = next.path.clone();
        // The old file closes here, releasing its lock; every line in it is already durable.
        *segment = next;
    }
}

/// Why the leader switched files.
enum Switch {
    Rotated(RotationCause),
    Replaced(String),
}

/// Whether `segment`'s path no longer names its open file: the file was unlinked (link count 0)
/// or the path now names another inode (or nothing).
fn replaced(segment: &Segment) -> Result<Option<String>, Failure> {
    let open = segment
        .file
        .metadata()
        .map_err(|e| Failure::io(Op::Stat, &segment.path, e))?;
    if open.nlink() == 0 {
        return Ok(Some("the open file was unlinked (link count 0)".to_owned()));
    }
    match std::fs::symlink_metadata(&segment.path) {
        Ok(named) if named.dev() == segment.dev && named.ino() == segment.ino => Ok(None),
        Ok(_) => Ok(Some("the path now names another file".to_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Some(
            "the path names nothing (the file was renamed away)".to_owned(),
        )),
        Err(e) => Err(Failure::io(Op::Stat, &segment.path, e)),
    }
}

/// Writes and syncs `bytes` at the end of `segment`; on failure cuts the file back to its last
/// complete line, so a later batch cannot extend a partial line.
fn append(segment: &mut Segment, bytes: &[u8]) -> Result<(), Failure> {
    let file = &segment.file;
    let result = (|| {
        if segment.dirty {
            file.set_len(segment.good_len)
                .map_err(|e| (Op::Truncate, e))?;
        }
        (&*file).write_all(bytes).map_err(|e| (Op::Write, e))?;
        file.sync_data().map_err(|e| (Op::Sync, e))
    })();
    match result {
        Ok(()) => {
            segment.good_len += bytes.len() as u64;
            segment.dirty = false;
            Ok(())
        }
        Err((op, error)) => {
            // If this fails as well, the next batch retries it first.
            let rolled_back = file
                .set_len(segment.good_len)
                .and_then(|()| file.sync_data())
                .is_ok();
            segment.dirty = !rolled_back;
            tracing::error!(
                reason = "EventLogWriteFailed",
                path = %segment.path.display(),
                op = %op,
                error = %error,
                rolled_back,
                "could not make a batch of events durable; its callers get the error"
            );
            Err(Failure::io(op, &segment.path, error))
        }
    }
}

// ===== impl Segment =====

impl Segment {
    pub(crate) fn new(
        file: File,
        path: PathBuf,
        key: Option<SegmentKey>,
        good_len: u64,
    ) -> Result<Segment, Error> {
        let meta = file.metadata().map_err(|source| Error::Io {
            op: Op::Stat,
            path: path.clone(),
            source,
        })?;
        Ok(Segment {
            file,
            path,
            key,
            dev: meta.dev(),
            ino: meta.ino(),
            good_len,
            dirty: false,
        })
    }
}

/// Opens (creating if needed) `<dir>/<name>` as an append segment: locked, its directory entry
/// synced, a torn tail repaired.
pub(crate) fn open_segment(
    dir: &Path,
    name: &str,
    key: Option<SegmentKey>,
) -> Result<(Segment, Option<TornTailRepair>), Error> {
    let path = dir.join(name);
    let (file, created) = open_log_file(&path)?;
    lock(&file, &path)?;
    // Synced even when the file existed: its creator may have died before syncing it; and
    // with its ancestors, which a power cut could otherwise take away with it.
    sync_directory_and_ancestors(dir)?;
    let (good_len, repair) = if created {
        (0, None)
    } else {
        repair_torn_tail(&file, &path, dir, name)?
    };
    Ok((Segment::new(file, path, key, good_len)?, repair))
}

/// A copy of `e` for one more caller: same OS error code (or kind and message).
fn clone_io_error(e: &io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(e.kind(), e.to_string()),
    }
}
