//! Restart intensity: "more than N crashes within T" marks a monitor failed
//! (`MonitorGaveUp`); the daemon carries on without it, or ends with exit code 70.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use daemonkit::status::monitors_ready;
use daemonkit::{ControlPlane, Daemon, Exit, MonitorState, RestartPolicy, Supervisor, monitor_fn};
use tokio_util::sync::CancellationToken;

/// A monitor that crashes on every run, counting its runs.
fn crasher(runs: &Arc<AtomicU32>) -> Arc<dyn daemonkit::Monitor> {
    let runs = runs.clone();
    monitor_fn("crasher", move |_cancel| {
        runs.fetch_add(1, Ordering::SeqCst);
        async { Err("segment checksum mismatch".into()) }
    })
}

fn policy(max: u32, within: Duration, initial: Duration) -> RestartPolicy {
    RestartPolicy::builder()
        .initial(initial)
        .multiplier(1.0)
        .give_up_after(max, within)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_monitor_crashing_more_than_n_times_within_the_window_is_marked_failed() {
    let captured = common::capture();
    let runs = Arc::new(AtomicU32::new(0));
    let supervisor = Supervisor::builder()
        .policy(policy(2, Duration::from_secs(60), Duration::from_secs(1)))
        .monitor(crasher(&runs))
        .build()
        .unwrap();
    let tracker = supervisor.tracker().clone();
    let running = supervisor.start(&CancellationToken::new());
    tokio::time::sleep(Duration::from_secs(30)).await;

    assert_eq!(
        runs.load(Ordering::SeqCst),
        3,
        "2 crashes allowed, the 3rd is final"
    );
    let status = &tracker.snapshot()["crasher"];
    assert_eq!(status.state, MonitorState::Failed);
    assert_eq!(status.state.to_string(), "failed");
    assert_eq!(status.restarts, 2);
    let error = status.error.as_ref().unwrap();
    assert_eq!(error.reason, "MonitorGaveUp");
    assert_eq!(
        error.message,
        "more than 2 crashes within 1m0s, the last: segment checksum mismatch"
    );
    assert!(!error.resolution.is_empty());
    assert_eq!(captured.count("MonitorGaveUp"), 1);

    // `/ready` names it with that reason.
    let not_ready = monitors_ready(&tracker).unwrap_err();
    assert_eq!(not_ready[0].reason, "MonitorGaveUp");
    assert!(
        not_ready[0]
            .message
            .starts_with("monitor crasher: more than 2 crashes")
    );

    // A failed monitor has nothing left to stop.
    assert!(running.shutdown(Duration::from_secs(1)).await.is_clean());
    assert_eq!(tracker.snapshot()["crasher"].state, MonitorState::Failed);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn crashes_spread_wider_than_the_window_never_give_up() {
    let runs = Arc::new(AtomicU32::new(0));
    // One crash allowed per 5 s; the back-off alone spaces crashes 10 s apart.
    let supervisor = Supervisor::builder()
        .policy(policy(1, Duration::from_secs(5), Duration::from_secs(10)))
        .monitor(crasher(&runs))
        .build()
        .unwrap();
    let tracker = supervisor.tracker().clone();
    let running = supervisor.start(&CancellationToken::new());
    tokio::time::sleep(Duration::from_secs(105)).await;
    assert!(
        runs.load(Ordering::SeqCst) >= 10,
        "{} runs",
        runs.load(Ordering::SeqCst)
    );
    assert!(matches!(
        tracker.snapshot()["crasher"].state,
        MonitorState::Backoff(_)
    ));
    assert!(running.shutdown(Duration::from_secs(1)).await.is_clean());
}

#[test]
fn a_zero_window_is_rejected_when_the_policy_is_built() {
    let err = RestartPolicy::builder()
        .give_up_after(3, Duration::ZERO)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("give_up_after"), "{err}");
}

fn daemon(dir: &tempfile::TempDir, runs: &Arc<AtomicU32>) -> daemonkit::DaemonBuilder {
    Daemon::builder("intensity")
        .control_plane(ControlPlane::builder(dir.path().join("control.sock")))
        .notifier(daemonkit::systemd::Notifier::disabled())
        .policy(policy(
            1,
            Duration::from_secs(60),
            Duration::from_millis(10),
        ))
        .shutdown_timeout(Duration::from_secs(2))
        .monitor(crasher(runs))
        .monitor(monitor_fn("steady", |cancel| async move {
            cancel.cancelled().await;
            Ok(())
        }))
}

#[tokio::test(flavor = "current_thread")]
async fn a_daemon_built_to_exit_on_give_up_stops_with_code_70() {
    let dir = tempfile::tempdir().unwrap();
    let runs = Arc::new(AtomicU32::new(0));
    let daemon = daemon(&dir, &runs).exit_on_give_up().build().unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(10), daemon.run())
        .await
        .expect("the daemon ends by itself");
    assert!(
        matches!(&exit, Exit::MonitorGaveUp(m) if m == "crasher"),
        "{exit:?}"
    );
    assert_eq!(exit.code(), 70);
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "current_thread")]
async fn by_default_a_daemon_carries_on_without_the_failed_monitor() {
    let dir = tempfile::tempdir().unwrap();
    let runs = Arc::new(AtomicU32::new(0));
    let builder = daemon(&dir, &runs);
    let tracker = builder.tracker().clone();
    let daemon = builder.build().unwrap();
    let run = tokio::spawn(daemon.run());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tracker.get("crasher").map(|s| s.state) != Some(MonitorState::Failed) {
        assert!(tokio::time::Instant::now() < deadline, "never gave up");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!run.is_finished(), "the daemon carries on");
    assert_eq!(tracker.snapshot()["steady"].state, MonitorState::Running);
    run.abort();
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn an_operators_start_runs_a_failed_monitor_again_with_a_fresh_window() {
    let runs = Arc::new(AtomicU32::new(0));
    let supervisor = Supervisor::builder()
        .policy(policy(1, Duration::from_secs(60), Duration::from_secs(1)))
        .monitor(crasher(&runs))
        .build()
        .unwrap();
    let control = supervisor.control("crasher").unwrap();
    let tracker = supervisor.tracker().clone();
    let running = supervisor.start(&CancellationToken::new());
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(tracker.snapshot()["crasher"].state, MonitorState::Failed);
    assert_eq!(runs.load(Ordering::SeqCst), 2);

    // Failed stays failed (no restart on its own) until an operator starts it.
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    control
        .send(daemonkit::supervisor::Command::Start, "uid 0")
        .unwrap();
    tokio::time::sleep(Duration::from_secs(10)).await;
    // A fresh window: one crash allowed again, the second is final again.
    assert_eq!(runs.load(Ordering::SeqCst), 4);
    assert_eq!(tracker.snapshot()["crasher"].state, MonitorState::Failed);
    assert!(running.shutdown(Duration::from_secs(1)).await.is_clean());
}
