//! [`StatusTracker`] (the read side, shared) and [`MonitorHandle`] (the write side, one
//! per monitor, owned by whoever runs it).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::ops::Index;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use jiff::Timestamp;
use serde::{Serialize, Serializer};

use super::{MonitorState, MonitorStatus, StatusError, Transition};
use crate::Error;
use crate::panic;

/// A monitor's connectivity check, as the tracker calls it on reads.
pub(crate) type CheckFn = Arc<dyn Fn() -> Result<(), StatusError> + Send + Sync>;
type Listener = Arc<dyn Fn(&Transition) + Send + Sync>;
type Statuses = BTreeMap<Arc<str>, Arc<MonitorStatus>>;

// ===== Snapshot =====

/// Every monitor's status by name, in name order, as returned by
/// [`StatusTracker::snapshot`]. Serialises as the Go daemonkit's `/status` object:
/// `{"<monitor>": {"state": …, "error": {…}}, …}`.
///
/// A newtype so its representation can change without breaking callers: ask it with
/// [`get`](Self::get), [`iter`](Self::iter), [`len`](Self::len) or `snapshot["name"]`.
///
/// # Examples
///
/// ```
/// use daemonkit::{MonitorState, StatusTracker};
///
/// let tracker = StatusTracker::new();
/// let db = tracker.register("db").unwrap();
/// db.set_state(MonitorState::Running);
/// let snapshot = tracker.snapshot();
/// assert_eq!(snapshot.len(), 1);
/// assert_eq!(snapshot["db"].state.to_string(), "running");
/// assert!(snapshot.get("queue").is_none());
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot(pub(super) Arc<Statuses>);

impl Snapshot {
    /// The status of the monitor called `name`; `None` when no such monitor is tracked.
    pub fn get(&self, name: &str) -> Option<&MonitorStatus> {
        self.0.get(name).map(Arc::as_ref)
    }

    /// Every monitor's name and status, in name order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &MonitorStatus)> {
        self.0
            .iter()
            .map(|(name, status)| (name.as_ref(), status.as_ref()))
    }

    /// How many monitors the snapshot holds.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when no monitor is tracked.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Index<&str> for Snapshot {
    type Output = MonitorStatus;

    /// # Panics
    ///
    /// When no monitor is called `name`; use [`Snapshot::get`] to ask instead.
    fn index(&self, name: &str) -> &MonitorStatus {
        match self.get(name) {
            Some(status) => status,
            None => panic!("no monitor called {name:?} in this snapshot"),
        }
    }
}

impl Serialize for Snapshot {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

// ===== StatusTracker =====

/// A concurrency-safe record of every monitor's status: the read side.
///
/// Cheap to clone (all clones share one record). Whoever runs a monitor
/// [`register`](Self::register)s it and gets the one [`MonitorHandle`] that can write its
/// status; everyone else reads: [`snapshot`](Self::snapshot), [`get`](Self::get),
/// [`on_transition`](Self::on_transition). There is no way to write a status by name, so a
/// mistyped name cannot create a phantom entry.
///
/// A monitor registered with a connectivity check
/// ([`register_reporting`](Self::register_reporting); the
/// [`Supervisor`](crate::Supervisor) does this for monitors whose
/// [`Monitor::connectivity`](crate::Monitor::connectivity) is `Some`) shows as
/// [`MonitorState::Degraded`] while running and failing the check. The tracker keeps the
/// time it first saw a failure's reason as the error's `since`, until the check passes or
/// reports another reason, so every read of a lasting condition shows the same `since`.
///
/// # Examples
///
/// ```
/// use daemonkit::{MonitorState, StatusError, StatusTracker};
///
/// let tracker = StatusTracker::new();
/// let upstream = tracker
///     .register_reporting("upstream", || Err(StatusError::new("UpstreamDown", "no route")))
///     .unwrap();
/// upstream.set_state(MonitorState::Running);
///
/// let first = tracker.get("upstream").unwrap();
/// assert_eq!(first.state, MonitorState::Degraded);
/// let second = tracker.get("upstream").unwrap();
/// assert_eq!(first.error.as_ref().unwrap().since, second.error.as_ref().unwrap().since);
///
/// // One handle per name.
/// assert!(tracker.register("upstream").is_err());
/// ```
#[derive(Clone, Default)]
pub struct StatusTracker {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    state: Mutex<Tracked>,
    listeners: Mutex<Vec<Listener>>,
    /// Bumped, under the `state` lock, by every change to `state`: a registration, an
    /// unregistration, every [`MonitorHandle::update`]. Read without the lock.
    generation: AtomicU64,
}

/// Statuses behind `Arc`s in a `BTreeMap` behind an `Arc`, copied on write: a snapshot
/// shares the map (one reference count, whatever the number of monitors), and the first
/// write after it copies the map's pointers, not the statuses (an update copies a status
/// only while a snapshot still holds it). So readers never pay per monitor between
/// writes, and a run of writes pays one copy per snapshot taken in between. The monitors
/// that report connectivity are kept aside, so the common case costs nothing per monitor.
#[derive(Default)]
struct Tracked {
    statuses: Arc<Statuses>,
    reporters: HashMap<Arc<str>, Arc<Reporter>>,
    /// The trackers of monitors that supervise sub-tasks of their own.
    subtasks: HashMap<Arc<str>, StatusTracker>,
}

/// How deep sub-task trackers nest in a snapshot before the rest is left out (a guard
/// against a tracker that, through its monitors, contains itself).
const MAX_SUBTASK_DEPTH: usize = 8;

impl fmt::Debug for StatusTracker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StatusTracker")
            .field("monitors", &self.inner.tracked().statuses.len())
            .finish()
    }
}

impl Inner {
    /// Marks a change; called with the `state` lock held, so a reader that sees the new
    /// generation and then takes the lock sees the change.
    fn bump(&self) {
        self.generation.fetch_add(1, Ordering::Release);
    }

    fn tracked(&self) -> MutexGuard<'_, Tracked> {
        // Nothing panics while holding this lock (map operations, assignments, and the
        // kit's own `update` closures); if one did, the maps are still structurally
        // sound, so keep serving them.
        self.state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

/// Checks a monitor name: the key of every status report, log record, metric and
/// control-plane path.
pub(crate) fn check_monitor_name(name: &str) -> Result<(), Error> {
    let problem = if name.is_empty() {
        "a monitor name must not be empty"
    } else if name.len() > 128 {
        "a monitor name must be at most 128 bytes long"
    } else if name.trim() != name {
        "a monitor name must not begin or end with white space"
    } else if name.chars().any(|c| c.is_control() || c == '/') {
        "a monitor name must not contain `/` or control characters"
    } else {
        return Ok(());
    };
    Err(Error::InvalidName {
        name: name.to_owned(),
        problem,
    })
}

impl StatusTracker {
    /// An empty tracker.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a monitor called `name`, starting in `stopped` until its first run, and
    /// returns the handle that writes its status.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`] when the name is empty, longer than 128 bytes, has leading
    /// or trailing white space, `/` or a control character, or is registered already.
    pub fn register(&self, name: &str) -> Result<MonitorHandle, Error> {
        self.register_with(name, None, None)
    }

    /// Registers a monitor that reports connectivity: while it runs, `check` is called on
    /// every read (so keep it cheap and non-blocking), and an `Err` shows the monitor as
    /// `degraded` with that error. A panic in `check` shows as a `MonitorPanic` error.
    ///
    /// # Errors
    ///
    /// As [`register`](Self::register).
    pub fn register_reporting(
        &self,
        name: &str,
        check: impl Fn() -> Result<(), StatusError> + Send + Sync + 'static,
    ) -> Result<MonitorHandle, Error> {
        self.register_with(name, Some(Arc::new(check)), None)
    }

    pub(crate) fn register_with(
        &self,
        name: &str,
        check: Option<CheckFn>,
        subtasks: Option<StatusTracker>,
    ) -> Result<MonitorHandle, Error> {
        check_monitor_name(name)?;
        if subtasks
            .as_ref()
            .is_some_and(|sub| Arc::ptr_eq(&sub.inner, &self.inner))
        {
            return Err(Error::InvalidName {
                name: name.to_owned(),
                problem: "a monitor's sub-task tracker must not be the tracker it is registered in",
            });
        }
        let mut tracked = self.inner.tracked();
        if tracked.statuses.contains_key(name) {
            return Err(Error::InvalidName {
                name: name.to_owned(),
                problem: "another monitor already has this name",
            });
        }
        let key: Arc<str> = Arc::from(name);
        Arc::make_mut(&mut tracked.statuses).insert(
            key.clone(),
            Arc::new(MonitorStatus::new(MonitorState::Stopped)),
        );
        let reporter = check.map(|check| {
            let reporter = Arc::new(Reporter {
                check,
                seen: Mutex::default(),
                changes: AtomicU64::new(0),
            });
            tracked.reporters.insert(key.clone(), reporter.clone());
            reporter
        });
        if let Some(subtasks) = subtasks {
            tracked.subtasks.insert(key.clone(), subtasks);
        }
        self.inner.bump();
        Ok(MonitorHandle {
            inner: self.inner.clone(),
            name: key,
            reporter,
        })
    }

    /// Forgets a monitor (rolling back a registration that is part of a failed build).
    pub(crate) fn unregister(&self, name: &str) {
        let mut tracked = self.inner.tracked();
        Arc::make_mut(&mut tracked.statuses).remove(name);
        tracked.reporters.remove(name);
        tracked.subtasks.remove(name);
        self.inner.bump();
    }

    /// Calls `listener` after every status change, outside the tracker's lock.
    ///
    /// Listeners run on the task of the monitor that changed: keep them short and
    /// non-blocking (send to a channel for anything slow, such as a durable write). A
    /// panicking listener is logged with reason `TrackerListenerPanicked` and does not
    /// affect the monitor or the other listeners.
    pub fn on_transition(&self, listener: impl Fn(&Transition) + Send + Sync + 'static) {
        self.inner
            .listeners
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .push(Arc::new(listener));
    }

    /// True when a monitor of this name is registered.
    pub fn contains(&self, name: &str) -> bool {
        self.inner.tracked().statuses.contains_key(name)
    }

    /// How many monitors are registered.
    pub fn len(&self) -> usize {
        self.inner.tracked().statuses.len()
    }

    /// True when no monitor is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A copy of every monitor's status, keyed by name, with the connectivity overlay
    /// applied.
    pub fn snapshot(&self) -> Snapshot {
        self.snapshot_at(0)
    }

    fn snapshot_at(&self, depth: usize) -> Snapshot {
        let (mut statuses, reporters, subtasks) = {
            let tracked = self.inner.tracked();
            let reporters: Vec<_> = tracked
                .reporters
                .iter()
                .filter(|(name, _)| {
                    tracked
                        .statuses
                        .get(*name)
                        .is_some_and(|s| s.state == MonitorState::Running)
                })
                .map(|(name, reporter)| (name.clone(), reporter.clone()))
                .collect();
            let subtasks: Vec<_> = if depth < MAX_SUBTASK_DEPTH {
                tracked
                    .subtasks
                    .iter()
                    .map(|(name, sub)| (name.clone(), sub.clone()))
                    .collect()
            } else {
                Vec::new()
            };
            (tracked.statuses.clone(), reporters, subtasks)
        };
        // The monitors' own code runs outside the lock: it may take its own locks. The
        // shared map is copied only when an overlay changes a status.
        for (name, reporter) in reporters {
            if let Some(status) = statuses.get(&name)
                && let Some(degraded) = reporter.overlay(status)
                && let Some(status) = Arc::make_mut(&mut statuses).get_mut(&name)
            {
                *status = degraded;
            }
        }
        for (name, sub) in subtasks {
            if let Some(status) = Arc::make_mut(&mut statuses).get_mut(&name) {
                Arc::make_mut(status).subtasks = Some(sub.snapshot_at(depth + 1));
            }
        }
        Snapshot(statuses)
    }

    /// The status of one monitor, with the connectivity overlay applied; `None` when no
    /// monitor of that name is registered.
    pub fn get(&self, name: &str) -> Option<MonitorStatus> {
        let (mut status, reporter, subtasks) = {
            let tracked = self.inner.tracked();
            (
                tracked.statuses.get(name)?.clone(),
                tracked.reporters.get(name).cloned(),
                tracked.subtasks.get(name).cloned(),
            )
        };
        if let Some(degraded) = reporter.and_then(|reporter| reporter.overlay(&status)) {
            status = degraded;
        }
        if let Some(sub) = subtasks {
            Arc::make_mut(&mut status).subtasks = Some(sub.snapshot_at(1));
        }
        Some(Arc::unwrap_or_clone(status))
    }

    /// A counter bumped by every change to the tracker: each registration and each
    /// [`MonitorHandle::update`] (so each [`set_state`](MonitorHandle::set_state)), whether
    /// or not it changed the state. It never goes down; equal readings mean no status was
    /// written in between.
    ///
    /// It does not count what a read computes: the connectivity overlay and sub-task
    /// trackers. To key a cache of the [`snapshot`](Self::snapshot), use
    /// [`version`](Self::version), which accounts for both.
    ///
    /// # Examples
    ///
    /// ```
    /// use daemonkit::{MonitorState, StatusTracker};
    ///
    /// let tracker = StatusTracker::new();
    /// let job = tracker.register("job").unwrap();
    /// let before = tracker.generation();
    /// assert_eq!(tracker.generation(), before, "reads change nothing");
    /// job.set_state(MonitorState::Running);
    /// assert!(tracker.generation() > before);
    /// ```
    pub fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::Acquire)
    }

    /// A version of the [`snapshot`](Self::snapshot): while it returns the same
    /// `Some(v)`, the snapshot is the same, so a document built from it (such as the
    /// serialised `/status` body) can be served again without rebuilding it.
    ///
    /// The version is a sum of counters that only go up, so it moves whenever one of
    /// them does: the tracker's [`generation`](Self::generation) (every write), the
    /// versions of sub-task trackers, and, for each monitor that reports connectivity
    /// ([`register_reporting`](Self::register_reporting)), how many of its reads showed
    /// something other than the read before. That last part is what no write counts: a
    /// running monitor's check can turn it `degraded` without a transition. So
    /// `version` calls each running monitor's check (as a snapshot does), and every
    /// read, by `version`, a snapshot or a heartbeat, counts a changed answer. A
    /// document built after reading version `v` shows answers that are either those `v`
    /// counted or newer ones whose change moved the version past `v`; so a body cached
    /// under `v` is served only while the answers are still those it shows.
    ///
    /// Read the version *before* taking the snapshot it keys: a change in between makes
    /// the snapshot newer than the version, and the next reading differs, so the cached
    /// document is rebuilt rather than served stale. `None` means "do not cache"; the
    /// kit's trackers always give a version today, but a version function may not.
    ///
    /// # Examples
    ///
    /// ```
    /// use daemonkit::{MonitorState, StatusError, StatusTracker};
    ///
    /// let tracker = StatusTracker::new();
    /// let job = tracker.register("job").unwrap();
    /// let v = tracker.version();
    /// assert!(v.is_some());
    /// assert_eq!(tracker.version(), v);
    /// job.set_state(MonitorState::Running);
    /// assert_ne!(tracker.version(), v);
    ///
    /// // A running monitor's connectivity check moves the version when its answer
    /// // changes, and only then.
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// let up = Arc::new(AtomicBool::new(true));
    /// let answer = up.clone();
    /// let link = tracker
    ///     .register_reporting("link", move || match answer.load(Ordering::SeqCst) {
    ///         true => Ok(()),
    ///         false => Err(StatusError::new("LinkDown", "no carrier")),
    ///     })
    ///     .unwrap();
    /// link.set_state(MonitorState::Running);
    /// let healthy = tracker.version();
    /// assert_eq!(tracker.version(), healthy);
    /// up.store(false, Ordering::SeqCst);
    /// let failing = tracker.version();
    /// assert_ne!(failing, healthy);
    /// assert_eq!(tracker.version(), failing, "the same failure, the same since");
    /// ```
    pub fn version(&self) -> Option<u64> {
        self.version_at(0)
    }

    fn version_at(&self, depth: usize) -> Option<u64> {
        let (own, reporters, subtasks) = {
            let tracked = self.inner.tracked();
            let reporters: Vec<_> = tracked
                .reporters
                .iter()
                .map(|(name, reporter)| {
                    let running = tracked
                        .statuses
                        .get(name)
                        .is_some_and(|s| s.state == MonitorState::Running);
                    (reporter.clone(), running)
                })
                .collect();
            let subtasks: Vec<_> = if depth < MAX_SUBTASK_DEPTH {
                tracked.subtasks.values().cloned().collect()
            } else {
                Vec::new()
            };
            (self.generation(), reporters, subtasks)
        };
        // The checks run outside the lock, as on every read. Every reporter's count is
        // in the sum, running or not, so the sum only ever goes up.
        let reads = reporters.iter().fold(0u64, |sum, (reporter, running)| {
            if *running {
                reporter.read();
            }
            sum.wrapping_add(reporter.changes.load(Ordering::Acquire))
        });
        subtasks
            .iter()
            .try_fold(own.wrapping_add(reads), |sum, sub| {
                Some(sum.wrapping_add(sub.version_at(depth + 1)?))
            })
    }

    /// True when at least one monitor is registered and every one is running and healthy.
    pub fn all_healthy(&self) -> bool {
        let snapshot = self.snapshot();
        !snapshot.is_empty() && snapshot.iter().all(|(_, s)| s.is_healthy())
    }
}

// ===== Reporter =====

/// A monitor's connectivity check and the memory of when its current failure began.
struct Reporter {
    check: CheckFn,
    seen: Mutex<Seen>,
    /// How many reads showed something other than the read before (a failure, a
    /// recovery, another error): the part of the tracker's version that no write counts.
    changes: AtomicU64,
}

#[derive(Default)]
struct Seen {
    /// The reason of the failure being reported and when it was first seen.
    first_seen: Option<(String, Timestamp)>,
    /// What the last read showed: `None` when healthy.
    shown: Option<StatusError>,
}

impl Reporter {
    /// Calls the check behind the panic barrier; `Some(error)` while failing, with
    /// `since` filled from memory unless the monitor gave its own. Counts a change when
    /// the answer differs from the last read's.
    fn read(&self) -> Option<StatusError> {
        let result = panic::call(|| (self.check)()).unwrap_or_else(|message| {
            tracing::error!(reason = "MonitorPanic", panic = %message, "a connectivity check panicked");
            Err(StatusError::new(
                "MonitorPanic",
                format!("the connectivity check panicked: {message}"),
            ))
        });
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let shown = match result {
            Ok(()) => {
                seen.first_seen = None;
                None
            }
            Err(mut err) => {
                let since = match &seen.first_seen {
                    Some((reason, since)) if *reason == err.reason => *since,
                    _ => {
                        let since = err.since.unwrap_or_else(Timestamp::now);
                        seen.first_seen = Some((err.reason.clone(), since));
                        since
                    }
                };
                err.since.get_or_insert(since);
                Some(err)
            }
        };
        if seen.shown != shown {
            seen.shown.clone_from(&shown);
            // Under the `seen` lock, so counts and answers agree.
            self.changes.fetch_add(1, Ordering::Release);
        }
        shown
    }

    /// A running monitor that fails its check, shown as degraded with the error; `None`
    /// when the check leaves the status as it is.
    fn overlay(&self, status: &Arc<MonitorStatus>) -> Option<Arc<MonitorStatus>> {
        if status.state != MonitorState::Running {
            return None;
        }
        let err = self.read()?;
        let mut degraded = MonitorStatus::clone(status);
        degraded.state = MonitorState::Degraded;
        degraded.error = Some(err);
        Some(Arc::new(degraded))
    }
}

// ===== MonitorHandle =====

/// The write side of one monitor's status: returned once by
/// [`StatusTracker::register`], held by whoever runs the monitor (the
/// [`Supervisor`](crate::Supervisor), or your own loop for sub-tasks).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use daemonkit::{MonitorState, StatusTracker};
///
/// let tracker = StatusTracker::new();
/// let job = tracker.register("job").unwrap();
/// job.set_state(MonitorState::Backoff(Duration::from_secs(5)));
/// assert_eq!(tracker.snapshot()["job"].state.to_string(), "backoff:5s");
/// ```
pub struct MonitorHandle {
    inner: Arc<Inner>,
    name: Arc<str>,
    reporter: Option<Arc<Reporter>>,
}

impl fmt::Debug for MonitorHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MonitorHandle")
            .field("name", &self.name)
            .field("reports_connectivity", &self.reporter.is_some())
            .finish()
    }
}

impl MonitorHandle {
    /// The monitor's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn shared_name(&self) -> &Arc<str> {
        &self.name
    }

    /// Sets the monitor's state, clearing the error unless the new state is a back-off.
    pub fn set_state(&self, state: MonitorState) {
        self.update(|status| {
            if !matches!(state, MonitorState::Backoff(_)) {
                status.error = None;
                status.next_start = None;
            }
            status.state = state;
        });
    }

    /// Records a heartbeat: `last_heartbeat` becomes now. Not a transition, so the
    /// listeners are not told (a heartbeat every second of every monitor would drown
    /// them); readers see it at their next read.
    pub fn heartbeat(&self) {
        let mut tracked = self.inner.tracked();
        if let Some(shared) = Arc::make_mut(&mut tracked.statuses).get_mut(&self.name) {
            Arc::make_mut(shared).last_heartbeat = Some(Timestamp::now());
            self.inner.bump();
        }
    }

    /// Applies `change` to the monitor's status, stamps `state_since` when the state
    /// changed, and tells the listeners.
    ///
    /// `change` runs under the tracker's lock: keep it to plain assignments.
    pub fn update(&self, change: impl FnOnce(&mut MonitorStatus)) {
        let transition = {
            let mut tracked = self.inner.tracked();
            // The entry exists: it was inserted at registration and is never removed.
            let Some(shared) = Arc::make_mut(&mut tracked.statuses).get_mut(&self.name) else {
                return;
            };
            // Copies the status only if a snapshot still holds the current one.
            let status = Arc::make_mut(shared);
            let before = status.state;
            change(status);
            if status.state != before {
                status.state_since = Timestamp::now();
            }
            self.inner.bump();
            Transition {
                monitor: self.name.clone(),
                from: before,
                status: shared.clone(),
            }
        };
        // Listeners run outside the lock so one may read the tracker without deadlocking.
        let listeners = self
            .inner
            .listeners
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone();
        for listener in listeners {
            if let Err(message) = panic::call(|| listener(&transition)) {
                tracing::error!(
                    reason = "TrackerListenerPanicked",
                    monitor = %self.name,
                    panic = %message,
                    "a status-transition listener panicked; the monitor is unaffected"
                );
            }
        }
    }

    /// The monitor's connectivity right now: `None` when it does not report any,
    /// `Some(Ok(()))` when healthy, `Some(Err(error))` (with a remembered `since`) when
    /// failing.
    pub fn connectivity(&self) -> Option<Result<(), StatusError>> {
        self.reporter
            .as_ref()
            .map(|reporter| reporter.read().map_or(Ok(()), Err))
    }
}
