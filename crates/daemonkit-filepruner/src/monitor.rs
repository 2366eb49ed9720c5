//! [`Retention`]: a [`Pruner`] as a daemonkit monitor (feature `monitor`).
//!
//! The dependency points from this crate to `daemonkit`, behind a feature, so that
//! both libraries stay usable alone: a program that only prunes (a cron job, `daemonctl
//! prune`) never compiles daemonkit, and daemonkit knows nothing of pruning. Enabling
//! the feature pulls in daemonkit without its default features (no control plane, no
//! systemd), which a daemon using this monitor has anyway.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use daemonkit::monitor::{FirstTick, OnError, Periodic, every};
use daemonkit::{BoxError, BoxFuture, Connectivity, Monitor, StatusError};
use tokio_util::sync::CancellationToken;

use crate::{Pattern, Pruner, Report};

type Tick = Box<dyn Fn() -> BoxFuture<'static, Result<(), BoxError>> + Send + Sync>;

/// A monitor that prunes a directory every period: retention as one line of a daemon.
///
/// Each tick runs one [`Pruner::prune`] pass on tokio's blocking pool (directory scans
/// and unlinks block). The pruner logs each pass itself (`PruneCompleted`). A pass that
/// could not remove some files, or could not read the directory, leaves the monitor
/// running but `degraded` — the next pass tries again — with reason:
///
/// | reason | when |
/// |---|---|
/// | `PruneIncomplete` | some removals failed ([`Report::failures`]); the message names the first |
/// | `PruneFailed` | the directory could not be opened or listed, or the pass panicked |
///
/// A directory that does not exist yet is not a failure ([`Report::dir_missing`]): there
/// is nothing to prune until the daemon writes its first file. Files a writer holds
/// locked (the live event-log file) are left alone by the pruner itself. Ticks run at once and then every period
/// ([`FirstTick::Immediately`]); see [`RetentionBuilder::first_tick`].
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use daemonkit::{MonitorState, Supervisor};
/// use daemonkit_filepruner::{FileSize, Pattern, Pruner, Retention};
/// use tokio_util::sync::CancellationToken;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// std::fs::write(dir.path().join("app-1.log"), vec![0; 2048])?;
/// std::fs::write(dir.path().join("app-2.log"), b"small")?;
///
/// // Log files over 1 KiB go, checked every hour.
/// let retention = Retention::builder(Pruner::new(FileSize::new(1024)), dir.path(), Pattern::new("app-*.log")?)
///     .every(Duration::from_secs(3600))
///     .build();
/// let supervisor = Supervisor::builder().monitor(Arc::new(retention)).build()?;
/// let running = supervisor.start(&CancellationToken::new());
/// while dir.path().join("app-1.log").exists() {
///     tokio::time::sleep(Duration::from_millis(5)).await;
/// }
/// assert!(dir.path().join("app-2.log").exists());
/// assert_eq!(running.tracker().snapshot()["retention"].state, MonitorState::Running);
/// assert!(running.shutdown(Duration::from_secs(1)).await.is_clean());
/// # Ok(())
/// # }
/// ```
pub struct Retention {
    inner: Periodic<Tick>,
}

/// Configures a [`Retention`] monitor; see [`Retention::builder`].
#[must_use = "a builder does nothing until `build` is called"]
pub struct RetentionBuilder {
    name: String,
    pruner: Arc<Pruner>,
    dir: PathBuf,
    pattern: Pattern,
    keep: usize,
    period: Duration,
    first_tick: FirstTick,
}

impl Retention {
    /// A builder for a monitor that prunes the files of `dir` matching `pattern` with
    /// `pruner`. Defaults: name `retention`, no hard cap (`keep` = `usize::MAX`), a pass
    /// every hour, the first at once.
    pub fn builder(pruner: Pruner, dir: impl Into<PathBuf>, pattern: Pattern) -> RetentionBuilder {
        RetentionBuilder {
            name: "retention".to_owned(),
            pruner: Arc::new(pruner),
            dir: dir.into(),
            pattern,
            keep: usize::MAX,
            period: Duration::from_secs(3600),
            first_tick: FirstTick::Immediately,
        }
    }
}

impl RetentionBuilder {
    /// The monitor's name (default `retention`): its key in `/status`, logs and metrics.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Keep at most `keep` of the files the strategy does not prune (the hard cap of
    /// [`Pruner::prune`]; default: no cap).
    pub fn keep(mut self, keep: usize) -> Self {
        self.keep = keep;
        self
    }

    /// How often a pass runs (default 1 h).
    pub fn every(mut self, period: Duration) -> Self {
        self.period = period;
        self
    }

    /// When the first pass runs after each (re)start (default at once).
    pub fn first_tick(mut self, first_tick: FirstTick) -> Self {
        self.first_tick = first_tick;
        self
    }

    /// The monitor. Its name is checked when it is added to a supervisor or daemon.
    pub fn build(self) -> Retention {
        let RetentionBuilder {
            name,
            pruner,
            dir,
            pattern,
            keep,
            period,
            first_tick,
        } = self;
        let tick: Tick = Box::new(move || {
            let (pruner, dir, pattern) = (pruner.clone(), dir.clone(), pattern.clone());
            Box::pin(async move {
                let pass = tokio::task::spawn_blocking(move || pruner.prune(&dir, &pattern, keep));
                let report = match pass.await {
                    Ok(Ok(report)) => report,
                    Ok(Err(err)) => {
                        return Err(StatusError::new("PruneFailed", err.to_string()).into());
                    }
                    Err(join) => {
                        return Err(StatusError::new(
                            "PruneFailed",
                            format!("the prune pass died: {join}"),
                        )
                        .into());
                    }
                };
                judge(&report).map_err(BoxError::from)
            })
        });
        Retention {
            inner: every(name, period, tick)
                .first_tick(first_tick)
                .on_error(OnError::Degrade),
        }
    }
}

/// `Ok` for a pass that removed everything it meant to; else the `PruneIncomplete`
/// error, logged with every failure.
fn judge(report: &Report) -> Result<(), StatusError> {
    let Some(first) = report.failures.first() else {
        return Ok(());
    };
    for failure in &report.failures {
        tracing::warn!(
            reason = "PruneIncomplete",
            dir = %report.dir.display(),
            file = %failure.name.display(),
            error = %failure.error,
            "a file could not be pruned; the next pass tries again"
        );
    }
    Err(StatusError::new(
        "PruneIncomplete",
        format!(
            "{}: {} file(s) could not be removed, the first: {}",
            report.dir.display(),
            report.failures.len(),
            first.error
        ),
    )
    .with_resolution("check the directory's permissions and the files' immutable attributes"))
}

impl fmt::Debug for Retention {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retention")
            .field("inner", &self.inner)
            .finish()
    }
}

impl fmt::Debug for RetentionBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetentionBuilder")
            .field("name", &self.name)
            .field("dir", &self.dir)
            .field("pattern", &self.pattern)
            .field("keep", &self.keep)
            .field("period", &self.period)
            .finish_non_exhaustive()
    }
}

impl Monitor for Retention {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn run(&self, cancel: CancellationToken) -> BoxFuture<'_, Result<(), BoxError>> {
        self.inner.run(cancel)
    }

    fn connectivity(&self) -> Option<&dyn Connectivity> {
        self.inner.connectivity()
    }
}
