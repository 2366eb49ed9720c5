//! `monitor::every`: the periodic monitor's documented choices, each as a behaviour.
//!
//! Time is tokio's paused clock: periods of a minute pass instantly and exactly.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use daemonkit::monitor::{FirstTick, OnError, every};
use daemonkit::{MonitorState, RestartPolicy, StatusError, Supervisor};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const PERIOD: Duration = Duration::from_secs(60);

fn counting(
    ticks: &Arc<AtomicU32>,
) -> impl Fn() -> std::future::Ready<Result<(), daemonkit::BoxError>> + Send + Sync + 'static {
    let ticks = ticks.clone();
    move || {
        ticks.fetch_add(1, Ordering::SeqCst);
        std::future::ready(Ok(()))
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn first_tick_runs_immediately_then_every_period() {
    let ticks = Arc::new(AtomicU32::new(0));
    let monitor = every("sweep", PERIOD, counting(&ticks));
    let running = Supervisor::builder()
        .monitor(Arc::new(monitor))
        .build()
        .unwrap()
        .start(&CancellationToken::new());
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(
        ticks.load(Ordering::SeqCst),
        1,
        "the first tick runs at once"
    );
    tokio::time::sleep(PERIOD * 2).await;
    assert_eq!(ticks.load(Ordering::SeqCst), 3, "then one per period");
    assert!(running.shutdown(Duration::from_secs(1)).await.is_clean());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn first_tick_after_period_waits_one_period() {
    let ticks = Arc::new(AtomicU32::new(0));
    let monitor = every("sweep", PERIOD, counting(&ticks)).first_tick(FirstTick::AfterPeriod);
    let running = Supervisor::builder()
        .monitor(Arc::new(monitor))
        .build()
        .unwrap()
        .start(&CancellationToken::new());
    tokio::time::sleep(PERIOD - Duration::from_secs(1)).await;
    assert_eq!(ticks.load(Ordering::SeqCst), 0, "nothing before one period");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(ticks.load(Ordering::SeqCst), 1);
    assert!(running.shutdown(Duration::from_secs(1)).await.is_clean());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn an_overrunning_tick_is_followed_at_once_by_one_tick_never_a_burst_or_an_overlap() {
    let starts = Arc::new(std::sync::Mutex::new(Vec::new()));
    let busy = Arc::new(AtomicBool::new(false));
    let (s, b) = (starts.clone(), busy.clone());
    let monitor = every("slow", PERIOD, move || {
        let (s, b) = (s.clone(), b.clone());
        async move {
            assert!(!b.swap(true, Ordering::SeqCst), "ticks overlap");
            s.lock().unwrap().push(Instant::now());
            tokio::time::sleep(PERIOD * 2 + PERIOD / 2).await; // overruns 2.5 periods
            b.store(false, Ordering::SeqCst);
            Ok(())
        }
    });
    let running = Supervisor::builder()
        .monitor(Arc::new(monitor))
        .build()
        .unwrap()
        .start(&CancellationToken::new());
    tokio::time::sleep(PERIOD * 8).await;
    assert!(running.shutdown(Duration::from_secs(1)).await.is_clean());
    let starts = starts.lock().unwrap();
    assert!(starts.len() >= 2, "{} ticks", starts.len());
    for pair in starts.windows(2) {
        // 2.5 periods of work, then the late tick at once (Delay): no catch-up burst of
        // the two missed ones, and never while the previous runs.
        assert_eq!(pair[1] - pair[0], PERIOD * 2 + PERIOD / 2);
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_failed_tick_is_a_crash_by_default() {
    let policy = RestartPolicy::builder()
        .initial(Duration::from_secs(1))
        .build()
        .unwrap();
    let monitor = every("flaky", PERIOD, || async { Err("disk vanished".into()) });
    let supervisor = Supervisor::builder()
        .policy(policy)
        .monitor(Arc::new(monitor))
        .build()
        .unwrap();
    let tracker = supervisor.tracker().clone();
    let running = supervisor.start(&CancellationToken::new());
    tokio::time::sleep(Duration::from_millis(1)).await;
    let status = &tracker.snapshot()["flaky"];
    assert!(
        matches!(status.state, MonitorState::Backoff(_)),
        "{}",
        status.state
    );
    assert_eq!(status.error.as_ref().unwrap().reason, "MonitorCrash");
    assert_eq!(status.last_error.as_deref(), Some("disk vanished"));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        tracker.snapshot()["flaky"].restarts >= 1,
        "restarted after the back-off"
    );
    assert!(running.shutdown(Duration::from_secs(1)).await.is_clean());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn with_degrade_a_failed_tick_is_degraded_until_a_tick_passes() {
    let captured = common::capture();
    let failing = Arc::new(AtomicBool::new(true));
    let f = failing.clone();
    let monitor = every("disk", PERIOD, move || {
        let failing = f.load(Ordering::SeqCst);
        async move {
            if failing {
                Err(StatusError::new("LowDiskSpace", "2 GiB free, expected 10 GiB").into())
            } else {
                Ok(())
            }
        }
    })
    .on_error(OnError::Degrade);
    let supervisor = Supervisor::builder()
        .monitor(Arc::new(monitor))
        .build()
        .unwrap();
    let tracker = supervisor.tracker().clone();
    let running = supervisor.start(&CancellationToken::new());

    tokio::time::sleep(PERIOD * 3).await; // four failed ticks
    let status = &tracker.snapshot()["disk"];
    assert_eq!(status.state, MonitorState::Degraded);
    let error = status.error.as_ref().unwrap();
    assert_eq!(error.reason, "LowDiskSpace");
    assert_eq!(error.message, "2 GiB free, expected 10 GiB");
    assert_eq!(status.restarts, 0, "degraded, never crashed");
    assert_eq!(
        captured.count("MonitorTickFailed"),
        1,
        "one record per change, not per tick"
    );

    failing.store(false, Ordering::SeqCst);
    tokio::time::sleep(PERIOD).await;
    let status = &tracker.snapshot()["disk"];
    assert_eq!(status.state, MonitorState::Running);
    assert!(status.error.is_none());
    assert_eq!(captured.count("MonitorTickRecovered"), 1);
    assert!(running.shutdown(Duration::from_secs(1)).await.is_clean());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn with_degrade_a_plain_error_is_reported_as_tick_failed() {
    let monitor = every("peer", PERIOD, || async {
        Err("connection refused".into())
    })
    .on_error(OnError::Degrade);
    let supervisor = Supervisor::builder()
        .monitor(Arc::new(monitor))
        .build()
        .unwrap();
    let tracker = supervisor.tracker().clone();
    let running = supervisor.start(&CancellationToken::new());
    tokio::time::sleep(Duration::from_millis(1)).await;
    let error = tracker.snapshot()["peer"].error.clone().unwrap();
    assert_eq!(error.reason, "TickFailed");
    assert_eq!(error.message, "connection refused");
    assert!(running.shutdown(Duration::from_secs(1)).await.is_clean());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn shutdown_drops_a_tick_in_progress_and_stops_cleanly() {
    let monitor = every("stuck", PERIOD, || async {
        std::future::pending::<()>().await;
        Ok(())
    });
    let supervisor = Supervisor::builder()
        .monitor(Arc::new(monitor))
        .build()
        .unwrap();
    let tracker = supervisor.tracker().clone();
    let running = supervisor.start(&CancellationToken::new());
    tokio::time::sleep(Duration::from_millis(1)).await;
    let report = running.shutdown(Duration::from_secs(1)).await;
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(tracker.snapshot()["stuck"].state, MonitorState::Stopped);
}
