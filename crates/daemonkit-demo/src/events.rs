//! The demo's milestones, written to a durable `daemonkit-eventlog` append log.

use std::path::PathBuf;

use daemonkit::{MonitorState, StatusTracker};
use daemonkit_eventlog::{Event, EventLog, Level};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The glob of the event-log files, one per day of start: `events-YYYYMMDD.jsonl`.
pub const FILE_PATTERN: &str = "events-*.jsonl";

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
    /// the first milestone, so nothing is touched on disk before the daemon is ready.
    pub fn start(dir: PathBuf) -> EventWriter {
        let started = jiff::Timestamp::now();
        let file_name = format!("events-{}.jsonl", started.strftime("%Y%m%d"));
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(write_all(dir, file_name, rx));
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

async fn write_all(
    dir: PathBuf,
    file_name: String,
    mut rx: mpsc::UnboundedReceiver<Option<Event>>,
) {
    let Some(Some(first)) = rx.recv().await else {
        return;
    };
    let opened = {
        let (dir, file_name) = (dir.clone(), file_name.clone());
        tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&dir)?;
            EventLog::open_append(&dir, &file_name).map_err(std::io::Error::other)
        })
        .await
    };
    let log = match opened {
        Ok(Ok(log)) => {
            tracing::info!(reason = "EventLogOpened", path = %log.path().display(), "event log opened");
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
