//! The demo's monitors.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use daemonkit::{BoxError, BoxFuture, Connectivity, Monitor, StatusError, monitor_fn};
use daemonkit_filepruner::{FilenameTimestamp, Pattern, Pruner};
use tokio_util::sync::CancellationToken;

/// Healthy the whole time.
pub fn steady() -> Arc<dyn Monitor> {
    monitor_fn("steady", |cancel| async move {
        cancel.cancelled().await;
        Ok(())
    })
}

/// How the `flaky` monitor fails: each mode is one failure the kit must survive and
/// report truthfully.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FlakyMode {
    /// Returns an error `--flaky-after` each start: back-off, restarts, `MonitorDegraded`.
    Error,
    /// Panics inside its future `--flaky-after` each start (`MonitorPanic`, then as a crash).
    Panic,
    /// Panics in `run` itself, before returning its future, at every start.
    PanicEarly,
    /// Never returns and ignores cancellation (async): named at shutdown, exit 1.
    Hang,
    /// Blocks its thread `--flaky-after` after starting: on the demo's one-thread
    /// runtime everything stalls (`/status` cannot answer); SIGTERM still ends the
    /// process within the shutdown timeout plus the margin, with exit 1.
    Block,
}

/// The monitor whose failure mode is `mode`, `after` each start.
pub fn flaky(after: Duration, mode: FlakyMode) -> Arc<dyn Monitor> {
    monitor_fn("flaky", move |cancel: CancellationToken| {
        if mode == FlakyMode::PanicEarly {
            panic!("simulated panic before the run loop's future was built");
        }
        async move {
            match mode {
                FlakyMode::Hang => {
                    // Ignores `cancel` on purpose: the kit must still end the process.
                    std::future::pending::<()>().await;
                    Ok(())
                }
                FlakyMode::Block => {
                    tokio::time::sleep(after).await;
                    // Blocks the runtime's thread on purpose (the mistake the kit's
                    // stall report and shutdown bound exist for).
                    std::thread::sleep(Duration::from_secs(24 * 3600));
                    Ok(())
                }
                _ => {
                    tokio::select! {
                        _ = cancel.cancelled() => Ok(()),
                        _ = tokio::time::sleep(after) => {
                            if mode == FlakyMode::Panic {
                                panic!("simulated panic in the run loop");
                            }
                            Err::<(), BoxError>("simulated failure: lost the upstream session".into())
                        }
                    }
                }
            }
        }
    })
}

/// Alive the whole time, but its (simulated) upstream connection comes and goes.
pub struct Watcher {
    flip_every: Duration,
    failing: AtomicBool,
}

/// A watcher that flips its connectivity every `flip_every`.
pub fn watcher(flip_every: Duration) -> Arc<dyn Monitor> {
    Arc::new(Watcher {
        flip_every,
        failing: AtomicBool::new(false),
    })
}

impl Monitor for Watcher {
    fn name(&self) -> &str {
        "watcher"
    }

    fn run(&self, cancel: CancellationToken) -> BoxFuture<'_, Result<(), BoxError>> {
        Box::pin(async move {
            let mut flips = tokio::time::interval(self.flip_every);
            flips.tick().await;
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    _ = flips.tick() => {
                        self.failing.fetch_xor(true, Ordering::SeqCst);
                    }
                }
            }
        })
    }

    fn connectivity(&self) -> Option<&dyn Connectivity> {
        Some(self)
    }
}

impl Connectivity for Watcher {
    fn check(&self) -> Result<(), StatusError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(StatusError::new(
                "UpstreamUnreachable",
                "dial 127.0.0.1:9 (simulated): connection refused",
            )
            .with_resolution("check that the upstream service is running"));
        }
        Ok(())
    }
}

/// Prunes the event-log directory every `every`: daily files older than `retention`, and
/// never more than `keep` files. The file the event log writes now is never removed: it is
/// passed as protected, and the pruner also skips any file a writer holds locked. A failed
/// pass is a crash (restarted with back-off).
pub fn pruner(
    dir: PathBuf,
    every: Duration,
    retention: Duration,
    keep: usize,
    live: crate::events::LiveFile,
) -> Arc<dyn Monitor> {
    monitor_fn("pruner", move |cancel| {
        let (dir, live) = (dir.clone(), live.clone());
        async move {
            // `events-YYYYMMDD.jsonl`, as the rotating event log names them.
            let pattern = Pattern::new(crate::events::FILE_PATTERN)?;
            let strategy = FilenameTimestamp::new("%Y%m%d", retention)?;
            let base = Pruner::new(strategy);
            let mut ticks = tokio::time::interval(every);
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    _ = ticks.tick() => {}
                }
                // Read again each pass: the live file changes at midnight UTC.
                let pruner = match live.current_path() {
                    Some(path) => base.clone().protect(path),
                    None => base.clone(),
                };
                let (pattern, dir) = (pattern.clone(), dir.clone());
                // Directory scans and unlinks block: keep them off the async workers.
                let report =
                    tokio::task::spawn_blocking(move || pruner.prune(&dir, &pattern, keep))
                        .await??;
                if !report.is_success() {
                    tracing::warn!(
                        reason = "PruneIncomplete",
                        failures = report.failures.len(),
                        "some files could not be pruned"
                    );
                }
            }
        }
    })
}
