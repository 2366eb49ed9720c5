//! The writer: opening a log and appending events durably with group commit.

use std::fmt;
use std::io::{self, Write};
use std::mem;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use crate::file::{
    absolute_dir, check_name, check_prefix, lock, open_log_file, sync_directory_and_ancestors,
};
use crate::repair::TornTailRepair;
use crate::rotation::{Rotation, RotationCause, Target};
use crate::segment::{Segment, open_segment};
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
/// Concurrent callers share syncs: their lines queue up, and one of them, the leader, writes the
/// whole queue with one `write` and one `fdatasync`; every caller whose line was in it returns.
/// Each caller still returns only after its own line is durable — the guarantee of one sync per
/// event — but one sync serves every caller logging at the time. A batch is written as soon as
/// it holds a line from each caller recently logging at once, or, if some do not come back,
/// after a short commit delay (as long as the missing callers take to arrive at the rate
/// callers have recently been arriving, between half the last sync and the whole sync, at most
/// 1 ms): the callers one sync releases thereby all land in the next one, instead of splitting
/// into two half-full batches that alternate. A caller alone pays exactly one write and one
/// sync, with no delay and no hand-off to another thread.
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
/// names the file it holds open (an `lstat` of the path gives the open file's device and
/// inode). If an operator's `rm`, a foreign log rotator or a pruner that
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
    /// Callers inside `commit` now (queued, or waiting for their batch). Atomic so that a caller
    /// whose batch is durable returns without taking the state lock again.
    inside: AtomicUsize,
    repair: Option<TornTailRepair>,
}

struct State {
    /// Lines waiting for the next batch.
    queue: Vec<u8>,
    /// The batch `queue` will be written in.
    current: Arc<Batch>,
    /// The callers whose lines are in `queue`, parked until `current` has an outcome; the first
    /// is the one woken to gather the batch when a sync ends (see `write_batch`).
    waiters: Vec<Thread>,
    /// A caller is writing and syncing a batch (without holding the lock).
    writing: bool,
    /// When the queued batch is written even if it is not full: set when it becomes writable
    /// (its first line queued while nobody writes, or the sync before it ended).
    deadline: Instant,
    /// When the queued batch became writable, and how many lines it held then.
    opened: Instant,
    opened_with: usize,
    /// When the last line was queued.
    last_arrival: Instant,
    /// Recent time between two callers' lines arriving while a batch gathers (a moving
    /// average): how fast released callers come back, so how long a gather should last.
    arrival: Duration,
    /// An empty buffer kept for the next batch, so steady logging does not reallocate.
    spare: Vec<u8>,
    /// Lines in `queue`.
    queued: usize,
    /// Recent peak of `Inner::inside`, decaying: how many callers log concurrently, so how many
    /// lines make a batch full.
    peak: usize,
    /// How long the last sync took.
    last_sync: Duration,
}

/// One group commit: the callers whose lines are written by one `write` and one `fdatasync`.
struct Batch {
    /// Set once, by the batch's leader, when the batch is durable or has failed; its callers
    /// read it without the state lock.
    outcome: OnceLock<Result<(), Failure>>,
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

impl State {
    /// The queued batch becomes writable at `now`: its gather starts, and lasts as long as the
    /// callers still expected (the peak less the lines queued) take to arrive at the recent
    /// rate, with a quarter more for slack — at least half the last sync, at most the whole
    /// sync (or 1 ms).
    fn open_gather(&mut self, now: Instant) {
        self.opened = now;
        self.opened_with = self.queued;
        let expected = u32::try_from(self.peak.saturating_sub(self.queued)).unwrap_or(u32::MAX);
        let needed = self.arrival.saturating_mul(expected) * 5 / 4;
        let (least, most) = gather_bounds(self);
        self.deadline = now + needed.clamp(least, most);
    }

    /// Updates the arrival rate from the batch being taken for writing: the time from its
    /// opening to its last line over the lines that arrived meanwhile (not to the write, which
    /// may have waited out the deadline for a caller that never came).
    fn learn_arrival(&mut self) {
        let arrived = self.queued.saturating_sub(self.opened_with);
        if arrived == 0 || self.peak <= 1 || self.last_arrival < self.opened {
            return;
        }
        let sample = (self.last_arrival - self.opened) / u32::try_from(arrived).unwrap_or(u32::MAX);
        self.arrival = (self.arrival * 7 + sample) / 8;
    }
}

impl Batch {
    fn new() -> Arc<Batch> {
        Arc::new(Batch {
            outcome: OnceLock::new(),
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
                waiters: Vec::new(),
                writing: false,
                deadline: Instant::now(),
                opened: Instant::now(),
                opened_with: 0,
                last_arrival: Instant::now(),
                arrival: Duration::ZERO,
                spare: Vec::new(),
                queued: 0,
                peak: 0,
                last_sync: Duration::ZERO,
            }),
            inside: AtomicUsize::new(0),
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
    ///
    /// # How callers share a sync
    ///
    /// A batch is written by one of its own callers, the leader, while the others sleep
    /// (`thread::park`) until the leader has published the outcome and woken them one by one
    /// (`unpark`): a woken caller reads the outcome without the state lock and returns, so the
    /// wake-ups after a sync do not all queue on one mutex that the leader needs as well.
    ///
    /// Who writes the queued batch, and when:
    /// * the caller whose line makes the batch full (as many lines as callers recently logging
    ///   at once, `peak`) writes it at once, if nobody is writing — so when every caller is
    ///   back, the sync starts with no thread to wake;
    /// * otherwise it is written at its deadline (`State::open_gather`), by the caller that
    ///   waits for the deadline (the commit delay): the callers the last sync
    ///   released have that long to queue their next lines into it, instead of splitting into
    ///   two half-full batches that alternate;
    /// * a leader whose sync ends with a full batch queued writes it too, once, before
    ///   returning (its caller waits at most one more sync), saving the hand-off.
    ///
    /// A lone caller (`peak` 1) is always full: one write and one sync, no waiting, no wake-up.
    fn commit(&self, line: &[u8]) -> Result<(), Error> {
        let inside = self.inside.fetch_add(1, Ordering::Relaxed) + 1;
        let mut state = self.lock_state();
        let now = Instant::now();
        if state.queue.is_empty() && !state.writing {
            state.open_gather(now);
        }
        state.last_arrival = now;
        state.queue.extend_from_slice(line);
        state.queued += 1;
        state.peak = state.peak.max(inside);
        state.waiters.push(thread::current());
        let batch = Arc::clone(&state.current);
        let outcome = self.wait_durable(state, &batch);
        self.inside.fetch_sub(1, Ordering::Relaxed);
        match outcome {
            Ok(()) => Ok(()),
            Err(failure) => Err(failure.to_error()),
        }
    }

    /// Waits until `batch`, which holds the line just queued, has an outcome, leading it when
    /// it is full or due and nobody else is writing.
    fn wait_durable<'a>(
        &'a self,
        mut state: MutexGuard<'a, State>,
        batch: &'a Arc<Batch>,
    ) -> &'a Result<(), Failure> {
        loop {
            if let Some(outcome) = batch.outcome.get() {
                return outcome;
            }
            if !state.writing && Arc::ptr_eq(&state.current, batch) {
                let now = Instant::now();
                if state.queued >= state.peak || now >= state.deadline {
                    self.lead(state);
                    // A leader writes the batch holding its own line first: it has an outcome.
                    if let Some(outcome) = batch.outcome.get() {
                        return outcome;
                    }
                    state = self.lock_state();
                    continue;
                }
                // Gather: wait for the batch to fill (its last caller then leads it) or for its
                // deadline. Only the batch's first caller keeps the deadline (and leads at it);
                // the others sleep until the outcome, so a batch that fills early costs one
                // timer wake-up, not one per caller.
                let gatherer = state
                    .waiters
                    .first()
                    .is_some_and(|first| first.id() == thread::current().id());
                let wait = state.deadline - now;
                drop(state);
                if gatherer {
                    thread::park_timeout(wait);
                } else {
                    thread::park();
                }
            } else {
                // Woken (unparked) when the batch has an outcome, or when the sync before it
                // ended and this caller is to gather it. No wake-up can be lost: the caller is
                // in `waiters` (pushed under the lock with its line), and an `unpark` that
                // comes before the `park` makes the `park` return at once.
                drop(state);
                thread::park();
            }
            // Spurious wake-ups and timeouts land here too: look again, without the lock when
            // the outcome is there.
            if let Some(outcome) = batch.outcome.get() {
                return outcome;
            }
            state = self.lock_state();
        }
    }

    /// Writes the queued batch, publishes its outcome and wakes its callers; then writes the
    /// next batch as well if it is already full (once), or wakes a caller to gather it.
    fn lead(&self, state: MutexGuard<'_, State>) {
        let state = self.write_batch(state, Next::Continue);
        // Judged again under the lock: a caller may have taken the batch meanwhile, or the peak
        // may have grown past it.
        if state.writing || state.queue.is_empty() {
            return;
        }
        if state.queued >= state.peak {
            drop(self.write_batch(state, Next::HandOff));
        } else if let Some(gatherer) = state.waiters.first().cloned() {
            // Not full after all: one of its callers gathers it until its deadline.
            drop(state);
            gatherer.unpark();
        }
    }

    /// Writes and syncs the queued batch without holding the lock, publishes the outcome and
    /// wakes the batch's callers. If lines queued meanwhile, the next batch becomes writable
    /// now (its deadline starts), and one of its callers is woken to gather it — unless it is
    /// already full and `next` says the leader writes it itself. Returns the state locked again.
    fn write_batch<'a>(
        &'a self,
        mut state: MutexGuard<'a, State>,
        next: Next,
    ) -> MutexGuard<'a, State> {
        let spare = mem::take(&mut state.spare);
        let mut bytes = mem::replace(&mut state.queue, spare);
        let batch = mem::replace(&mut state.current, Batch::new());
        let waiters = mem::take(&mut state.waiters);
        state.writing = true;
        state.learn_arrival();
        state.queued = 0;
        // Let the peak decay by an eighth (at least one) per batch, so a burst long gone does
        // not keep delaying batches; it never falls below the callers inside now.
        let inside = self.inside.load(Ordering::Relaxed);
        state.peak = inside.max(decayed(state.peak));
        drop(state);

        let started = Instant::now();
        let result = {
            // Uncontended: only the caller that set `writing` gets here.
            let mut segment = self.segment.lock().unwrap_or_else(PoisonError::into_inner);
            self.write_durable(&mut segment, &bytes)
        };
        let took = started.elapsed();
        // `set` cannot fail: only the leader that took `batch` out of the state sets its outcome.
        let _ = batch.outcome.set(result);

        bytes.clear();
        let mut state = self.lock_state();
        state.spare = bytes;
        state.writing = false;
        state.last_sync = took;
        let mut gatherer = None;
        if !state.queue.is_empty() {
            state.open_gather(Instant::now());
            let full = state.queued >= state.peak;
            if !(full && matches!(next, Next::Continue)) {
                gatherer = state.waiters.first().cloned();
            }
        }
        drop(state);
        // Woken outside the lock: each caller reads the outcome and returns without it. (The
        // leader's own entry is skipped: it is awake.)
        let me = thread::current().id();
        for waiter in waiters.iter().filter(|w| w.id() != me) {
            waiter.unpark();
        }
        if let Some(gatherer) = gatherer {
            gatherer.unpark();
        }
        self.lock_state()
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

/// `peak` after one batch: an eighth less, and at least one less, so that any burst is
/// forgotten within a few batches (an eighth alone, rounded down, stops at 7).
fn decayed(peak: usize) -> usize {
    peak.saturating_sub((peak / 8).max(1))
}

/// What a leader does about a full batch queued during its sync.
#[derive(Clone, Copy)]
enum Next {
    /// Leave it to the leader, which writes it at once.
    Continue,
    /// Wake one of its callers to write it.
    HandOff,
}

/// The bounds of the commit delay (see `State::open_gather`): half the last sync and the
/// whole sync (at most 1 ms); nothing when one caller logs alone.
fn gather_bounds(state: &State) -> (Duration, Duration) {
    if state.peak <= 1 {
        return (Duration::ZERO, Duration::ZERO);
    }
    let most = state.last_sync.min(Duration::from_millis(1));
    (most / 2, most)
}

/// Why the leader switched files.
enum Switch {
    Rotated(RotationCause),
    Replaced(String),
}

/// Whether `segment`'s path no longer names its open file: the path names another inode, or
/// nothing (the file was removed or renamed away).
///
/// One `lstat` of the path answers it: while the log holds the file open its inode cannot be
/// freed and its number reused, so a path that names the same device and inode names this very
/// file, which therefore still has a link. (An `fstat` of the open file for its link count, as
/// earlier versions also did, adds nothing and was dropped: one system call fewer before each
/// write and after each sync.)
fn replaced(segment: &Segment) -> Result<Option<String>, Failure> {
    match std::fs::symlink_metadata(&segment.path) {
        Ok(named) if named.dev() == segment.dev && named.ino() == segment.ino => Ok(None),
        Ok(_) => Ok(Some("the path now names another file".to_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Some(
            "the path names nothing (the file was removed or renamed away)".to_owned(),
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

/// A copy of `e` for one more caller: same OS error code (or kind and message).
fn clone_io_error(e: &io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(e.kind(), e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(peak: usize, last_sync: Duration) -> State {
        let now = Instant::now();
        State {
            queue: Vec::new(),
            current: Batch::new(),
            waiters: Vec::new(),
            writing: false,
            deadline: now,
            opened: now,
            opened_with: 0,
            last_arrival: now,
            arrival: Duration::ZERO,
            spare: Vec::new(),
            queued: 0,
            peak,
            last_sync,
        }
    }

    #[test]
    fn a_gather_lasts_as_long_as_the_missing_callers_take_within_half_a_sync_and_a_sync() {
        let sync = Duration::from_micros(400);
        let mut s = state(16, sync);
        // 10 lines arrived 10 us apart after the batch opened: 10 us per line.
        let opened = Instant::now();
        s.opened = opened;
        s.queued = 10;
        s.last_arrival = opened + Duration::from_micros(100);
        for _ in 0..64 {
            s.learn_arrival();
        }
        assert!(s.arrival.abs_diff(Duration::from_micros(10)) < Duration::from_micros(1));

        // 16 expected at 10 us, plus a quarter: 200 us, inside [200, 400].
        s.queued = 0;
        let now = Instant::now();
        s.open_gather(now);
        assert_eq!(s.deadline - now, Duration::from_micros(200));
        // 64 expected would take 800 us: capped at the sync.
        s.peak = 64;
        s.open_gather(now);
        assert_eq!(s.deadline - now, sync);
        // Only 4 still expected: 50 us, raised to half the sync.
        s.queued = 60;
        s.open_gather(now);
        assert_eq!(s.deadline - now, sync / 2);
        // Alone: no delay.
        let mut alone = state(1, sync);
        alone.open_gather(now);
        assert_eq!(alone.deadline, now);
    }

    #[test]
    fn a_burst_is_forgotten_within_a_few_dozen_batches() {
        let mut peak = 64;
        let mut batches = 0;
        while peak > 1 {
            peak = decayed(peak);
            batches += 1;
        }
        assert!(batches <= 30, "took {batches} batches");
        // An eighth rounded down would stop at 7 and delay every later lone caller.
        assert_eq!(decayed(7), 6);
        assert_eq!(decayed(1), 0);
    }
}
