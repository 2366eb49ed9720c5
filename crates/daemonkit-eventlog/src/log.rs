//! The writer: opening a log and appending events durably with group commit.

use std::fmt;
use std::fs::File;
use std::io::{self, Write};
use std::mem;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use crate::file::{
    absolute_dir, check_name, check_prefix, lock, open_log_file, sync_directory_and_ancestors,
};
use crate::repair::{TornTailRepair, repair_torn_tail};
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
/// process or another, gets [`Error::Locked`]. Torn-tail repair and the roll-back after a failed
/// write both rely on knowing where the last complete line ends, which a second writer would
/// change behind this one's back.
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

struct Inner {
    path: PathBuf,
    /// Written only by the caller that has set `State::writing`; `&File` is `Write`, so that caller
    /// needs no lock while the write and sync run.
    file: File,
    state: Mutex<State>,
    /// Signalled when a line is queued, for a leader gathering its batch.
    gathered: Condvar,
    repair: Option<TornTailRepair>,
}

struct State {
    /// Lines waiting for the next batch.
    queue: Vec<u8>,
    /// The batch `queue` will be written in; its callers wait on it.
    current: Arc<Batch>,
    /// A caller is writing and syncing a batch (without holding the lock).
    writing: bool,
    /// The file's length after its last durable line.
    good_len: u64,
    /// The file may hold bytes past `good_len`: rolling back a failed batch failed too, so the
    /// next batch must first cut the file back.
    dirty: bool,
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
struct Failure {
    op: Op,
    error: io::Error,
}

impl Batch {
    fn new() -> Arc<Batch> {
        Arc::new(Batch {
            outcome: OnceLock::new(),
            done: Condvar::new(),
        })
    }
}

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
        Ok(EventLog::from_parts(path, file, 0, None))
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
        let path = dir.join(file_name);
        let (file, created) = open_log_file(&path)?;
        lock(&file, &path)?;
        // Synced even when the file existed: its creator may have died before syncing it.
        sync_directory_and_ancestors(&dir)?;
        if created {
            return Ok(EventLog::from_parts(path, file, 0, None));
        }
        let (good_len, repair) = repair_torn_tail(&file, &path, &dir, file_name)?;
        Ok(EventLog::from_parts(path, file, good_len, repair))
    }

    fn from_parts(
        path: PathBuf,
        file: File,
        good_len: u64,
        repair: Option<TornTailRepair>,
    ) -> EventLog {
        EventLog {
            inner: Arc::new(Inner {
                path,
                file,
                state: Mutex::new(State {
                    queue: Vec::new(),
                    current: Batch::new(),
                    writing: false,
                    good_len,
                    dirty: false,
                    spare: Vec::new(),
                    queued: 0,
                    inside: 0,
                    peak: 0,
                    last_sync: Duration::ZERO,
                }),
                gathered: Condvar::new(),
                repair,
            }),
        }
    }

    /// The log file's absolute path.
    pub fn path(&self) -> &Path {
        &self.inner.path
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
        let mut line = Vec::with_capacity(256);
        event.encode_line(&mut line)?;
        self.inner.commit(&line)
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
        let mut line = Vec::with_capacity(256);
        event.encode_line(&mut line)?;
        let runtime_error = |detail: String| Error::Runtime {
            path: self.inner.path.clone(),
            detail,
        };
        let handle = tokio::runtime::Handle::try_current().map_err(|e| {
            runtime_error(format!("log_async must run within a tokio runtime: {e}"))
        })?;
        let inner = Arc::clone(&self.inner);
        handle
            .spawn_blocking(move || inner.commit(&line))
            .await
            .map_err(|e| runtime_error(format!("the blocking write task did not complete: {e}")))?
    }
}

impl fmt::Debug for EventLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventLog")
            .field("path", &self.inner.path)
            .field("torn_tail_repair", &self.inner.repair)
            .finish_non_exhaustive()
    }
}

// ===== impl Inner =====

impl Inner {
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
                    Err(failure) => Err(Error::Io {
                        op: failure.op,
                        path: self.path.clone(),
                        source: clone_io_error(&failure.error),
                    }),
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
        let good_len = state.good_len;
        let dirty = state.dirty;
        drop(state);

        let started = Instant::now();
        let result = self.write_and_sync(&bytes, good_len, dirty);
        let took = started.elapsed();
        let (good_len, dirty) = match &result {
            Ok(()) => (good_len + bytes.len() as u64, false),
            Err(failure) => {
                // Cut off whatever part of the batch reached the file, so a later batch cannot
                // extend a partial line. If this fails as well, the next batch retries it first.
                let rolled_back = self
                    .file
                    .set_len(good_len)
                    .and_then(|()| self.file.sync_data())
                    .is_ok();
                tracing::error!(
                    reason = "EventLogWriteFailed",
                    path = %self.path.display(),
                    op = %failure.op,
                    error = %failure.error,
                    rolled_back,
                    "could not make a batch of events durable; its callers get the error"
                );
                (good_len, !rolled_back)
            }
        };

        bytes.clear();
        let mut state = self.lock_state();
        state.spare = bytes;
        state.good_len = good_len;
        state.dirty = dirty;
        state.writing = false;
        state.last_sync = took;
        // `set` cannot fail: only the leader that took `batch` out of the state sets its outcome.
        let _ = batch.outcome.set(result);
        batch.done.notify_all();
        // Hand the lead to one caller of the next batch, if any is waiting.
        state.current.done.notify_one();
        state
    }

    fn write_and_sync(&self, bytes: &[u8], good_len: u64, dirty: bool) -> Result<(), Failure> {
        let fail = |op| move |error| Failure { op, error };
        if dirty {
            self.file.set_len(good_len).map_err(fail(Op::Truncate))?;
        }
        (&self.file).write_all(bytes).map_err(fail(Op::Write))?;
        self.file.sync_data().map_err(fail(Op::Sync))
    }
}

/// A copy of `e` for one more caller: same OS error code (or kind and message).
fn clone_io_error(e: &io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(e.kind(), e.to_string()),
    }
}
