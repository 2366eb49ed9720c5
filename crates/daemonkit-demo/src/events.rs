//! The demo's milestones, written to a durable `daemonkit-eventlog` rotating log: one file
//! per UTC day, `events-YYYYMMDD.jsonl`, pruned by the `pruner` monitor.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use daemonkit::{MonitorState, StatusTracker};
use daemonkit_eventlog::{Event, Level, RotatingLog, Rotation};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The prefix of the event-log files: `events-YYYYMMDD.jsonl`, one per UTC day.
pub const FILE_PREFIX: &str = "events";

/// The glob of the event-log files (`Rotation::glob` of [`FILE_PREFIX`]).
pub const FILE_PATTERN: &str = "events-*.jsonl";

/// The event log once it is open, shared with the pruner so it never removes the live file.
#[derive(Clone, Default)]
pub struct LiveFile(Arc<OnceLock<RotatingLog>>);

impl LiveFile {
    /// The file being written now, once the log is open.
    pub fn current_path(&self) -> Option<PathBuf> {
        self.0.get().map(RotatingLog::current_path)
    }
}

/// Sends milestones to a task that appends them to the event log, so a durable write
/// (an fsync, milliseconds) never delays start-up or a supervisor.
pub struct EventWriter {
    tx: mpsc::UnboundedSender<Option<Event>>,
    task: JoinHandle<()>,
    operation_id: String,
    node_id: String,
}

impl EventWriter {
    /// Starts the writer task; the log is opened (and the directory created) there, at
    /// the first milestone, so nothing is touched on disk before the daemon is ready, and
    /// published through `live` for the pruner.
    pub fn start(dir: PathBuf, live: LiveFile) -> EventWriter {
        let started = jiff::Timestamp::now();
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(write_all(dir, live, rx));
        let node_id = rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .into_owned();
        EventWriter {
            tx,
            task,
            operation_id: format!(
                "run-{}-{}",
                started.strftime("%Y%m%dT%H%M%SZ"),
                std::process::id()
            ),
            node_id,
        }
    }

    fn send(&self, level: Level, reason: &str, msg: String) {
        let event = Event::new(level, reason, msg, &self.operation_id, &self.node_id);
        // The receiver lives until `finish`; a send can only fail after it gave up on an
        // unusable log, which it has already reported.
        let _ = self.tx.send(Some(event));
    }

    /// Records `DaemonStarted` when called: the daemon's ready hook
    /// ([`Daemon::on_ready`](daemonkit::Daemon::on_ready)), so a daemon that
    /// never got ready (a second instance, a failed probe) writes nothing.
    pub fn on_started(&self) -> impl FnOnce() + Send + 'static {
        let (tx, operation_id, node_id) = (
            self.tx.clone(),
            self.operation_id.clone(),
            self.node_id.clone(),
        );
        move || {
            let msg = format!(
                "daemonkit-demo {} started (pid {})",
                env!("CARGO_PKG_VERSION"),
                std::process::id()
            );
            let event = Event::new(Level::Info, "DaemonStarted", msg, &operation_id, &node_id);
            let _ = tx.send(Some(event));
        }
    }

    /// `DaemonStopped`, at a clean stop.
    pub fn daemon_stopped(&self) {
        self.send(
            Level::Info,
            "DaemonStopped",
            "daemonkit-demo stopped cleanly".to_owned(),
        );
    }

    /// `MonitorDegraded` whenever a monitor's crash streak first reaches `threshold`.
    pub fn record_degraded_streaks(&self, tracker: &StatusTracker, threshold: u32) {
        let (tx, operation_id, node_id) = (
            self.tx.clone(),
            self.operation_id.clone(),
            self.node_id.clone(),
        );
        tracker.on_transition(move |t| {
            let entered_backoff =
                matches!(t.status.state, MonitorState::Backoff(_)) && t.from != t.status.state;
            if entered_backoff && t.status.consecutive_crashes == threshold {
                let msg = format!(
                    "monitor {} crashed {threshold} times in a row: {}",
                    t.monitor,
                    t.status.last_error.as_deref().unwrap_or("unknown error")
                );
                let _ = tx.send(Some(Event::new(
                    Level::Error,
                    "MonitorDegraded",
                    msg,
                    &operation_id,
                    &node_id,
                )));
            }
        });
    }

    /// Waits until every milestone sent so far is durable (or reported as lost).
    pub async fn finish(self) {
        // `None` ends the writer: the tracker's listener holds a sender too, so waiting
        // for the channel to close could wait on whoever still holds the tracker.
        let _ = self.tx.send(None);
        let _ = self.task.await;
    }
}

async fn write_all(dir: PathBuf, live: LiveFile, mut rx: mpsc::UnboundedReceiver<Option<Event>>) {
    let Some(Some(first)) = rx.recv().await else {
        return;
    };
    let opened = {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&dir)?;
            let rotation = Rotation::daily(FILE_PREFIX).map_err(std::io::Error::other)?;
            RotatingLog::open(&dir, rotation).map_err(std::io::Error::other)
        })
        .await
    };
    let log = match opened {
        Ok(Ok(log)) => {
            tracing::info!(reason = "EventLogOpened", path = %log.current_path().display(), "event log opened");
            // Set once, here; nobody else sets it.
            let _ = live.0.set(log.clone());
            log
        }
        Ok(Err(err)) => {
            tracing::error!(reason = "EventLogUnavailable", dir = %dir.display(), error = %err, "cannot open the event log; milestones will not be recorded");
            return;
        }
        Err(err) => {
            tracing::error!(reason = "EventLogUnavailable", error = %err, "event log task failed");
            return;
        }
    };
    let mut next = Some(first);
    while let Some(event) = next {
        if let Err(err) = log.log_async(&event).await {
            tracing::error!(reason = "EventLogWriteFailed", event_reason = %event.reason, error = %err, "milestone not recorded");
        }
        next = rx.recv().await.flatten();
    }
}
