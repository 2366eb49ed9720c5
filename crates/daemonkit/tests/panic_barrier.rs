//! The panic barrier: every call the kit makes into user code — a monitor's `run` before
//! and after it returns its future, connectivity checks, sub-task declarations, tracker
//! listeners, probes (alone and inside a `Composite`), prerequisites, task-group closures —
//! turns a panic into a reported failure, with a string and with a non-string payload.

mod common;

use std::panic::panic_any;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use daemonkit::probe::{self, Composite, ProbeError, probe_fn};
use daemonkit::{
    BoxError, BoxFuture, Connectivity, Error, Monitor, MonitorState, Probe, RestartPolicy,
    StatusError, StatusTracker, Supervisor, TaskGroup, monitor_fn,
};
use tokio_util::sync::CancellationToken;

/// The two payloads a panic can carry: a message, or any other value.
#[derive(Clone, Copy, Debug)]
enum Payload {
    Text,
    Value,
}

const PAYLOADS: [Payload; 2] = [Payload::Text, Payload::Value];

fn explode(payload: Payload) -> ! {
    match payload {
        Payload::Text => panic!("kaboom"),
        Payload::Value => panic_any(42_u32),
    }
}

/// What the kit reports for each payload.
fn expected(payload: Payload) -> &'static str {
    match payload {
        Payload::Text => "kaboom",
        Payload::Value => "non-string panic payload",
    }
}

fn fast() -> RestartPolicy {
    RestartPolicy::builder()
        .initial(Duration::from_millis(1))
        .build()
        .unwrap()
}

/// Runs `monitor` under a supervisor until it has been restarted twice; returns its status.
async fn until_restarted_twice(monitor: Arc<dyn Monitor>) -> daemonkit::MonitorStatus {
    let supervisor = Supervisor::builder()
        .policy(fast())
        .monitor(monitor)
        .build()
        .unwrap();
    let tracker = supervisor.tracker().clone();
    let running = supervisor.start(&CancellationToken::new());
    loop {
        let status = tracker.get("m").unwrap();
        if status.restarts >= 2 {
            assert!(running.shutdown(Duration::from_secs(5)).await.is_clean());
            return status;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_panic_before_run_returns_its_future_is_a_crash_and_restarted() {
    for payload in PAYLOADS {
        let logs = common::capture();
        let runs = Arc::new(AtomicU32::new(0));
        let counter = runs.clone();
        let monitor = monitor_fn("m", move |_cancel| {
            counter.fetch_add(1, Ordering::SeqCst);
            if true {
                explode(payload);
            }
            async { Ok(()) }
        });
        let status = until_restarted_twice(monitor).await;
        assert!(runs.load(Ordering::SeqCst) >= 3, "{payload:?}");
        assert_eq!(
            status.last_error.as_deref(),
            Some(format!("panic: {}", expected(payload)).as_str())
        );
        assert!(logs.count("MonitorPanic") >= 2, "{payload:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_panic_inside_the_future_is_a_crash_and_restarted() {
    for payload in PAYLOADS {
        let monitor = monitor_fn("m", move |_cancel| async move {
            tokio::task::yield_now().await;
            explode(payload)
        });
        let status = until_restarted_twice(monitor).await;
        assert_eq!(
            status.last_error.as_deref(),
            Some(format!("panic: {}", expected(payload)).as_str())
        );
    }
}

struct Reporter {
    payload: Payload,
}

impl Monitor for Reporter {
    fn name(&self) -> &str {
        "m"
    }
    fn run(&self, cancel: CancellationToken) -> BoxFuture<'_, Result<(), BoxError>> {
        Box::pin(async move {
            cancel.cancelled().await;
            Ok(())
        })
    }
    fn connectivity(&self) -> Option<&dyn Connectivity> {
        Some(self)
    }
}

impl Connectivity for Reporter {
    fn check(&self) -> Result<(), StatusError> {
        explode(self.payload)
    }
}

#[tokio::test(start_paused = true)]
async fn a_panicking_connectivity_check_shows_degraded_with_monitor_panic() {
    for payload in PAYLOADS {
        let supervisor = Supervisor::builder()
            .monitor(Arc::new(Reporter { payload }))
            .build()
            .unwrap();
        let tracker = supervisor.tracker().clone();
        let running = supervisor.start(&CancellationToken::new());
        while tracker.get("m").unwrap().state == MonitorState::Stopped {
            tokio::task::yield_now().await;
        }
        // Every read calls the check; every read survives it.
        for _ in 0..3 {
            let status = tracker.get("m").unwrap();
            assert_eq!(status.state, MonitorState::Degraded, "{payload:?}");
            let error = status.error.unwrap();
            assert_eq!(error.reason, "MonitorPanic");
            assert!(
                error.message.contains(expected(payload)),
                "{}",
                error.message
            );
        }
        assert_eq!(tracker.snapshot()["m"].state, MonitorState::Degraded);
        assert!(running.shutdown(Duration::from_secs(1)).await.is_clean());
    }
}

#[test]
fn a_panicking_listener_is_logged_and_the_others_still_run() {
    for payload in PAYLOADS {
        let logs = common::capture();
        let tracker = StatusTracker::new();
        let heard = Arc::new(AtomicU32::new(0));
        tracker.on_transition(move |_| explode(payload));
        let counter = heard.clone();
        tracker.on_transition(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
        });
        let handle = tracker.register("m").unwrap();
        handle.set_state(MonitorState::Running);
        handle.set_state(MonitorState::Stopped);
        assert_eq!(heard.load(Ordering::SeqCst), 2, "{payload:?}");
        assert_eq!(tracker.get("m").unwrap().state, MonitorState::Stopped);
        let panics = logs.with_reason("TrackerListenerPanicked");
        assert_eq!(panics.len(), 2, "{payload:?}");
        assert_eq!(panics[0].field("panic"), Some(expected(payload)));
    }
}

/// A probe that panics in `check` itself, before any future exists.
struct Early(Payload);

impl Probe for Early {
    fn check(&self) -> BoxFuture<'_, Result<(), ProbeError>> {
        explode(self.0)
    }
}

#[tokio::test]
async fn a_probe_panicking_before_or_inside_its_future_fails_with_probe_panicked() {
    for payload in PAYLOADS {
        let err = probe::check_caught(&Early(payload)).await.unwrap_err();
        assert_eq!(err.reason, "ProbePanicked");
        assert!(err.message.contains(expected(payload)), "{}", err.message);

        let late = probe_fn("late", move || async move { explode(payload) });
        let err = probe::check_caught(&late).await.unwrap_err();
        assert_eq!(err.reason, "ProbePanicked");

        // Inside a composite, both are the composite's failure, never an unwind.
        let composite = Composite::new("c").with(Early(payload));
        let err = composite.check().await.unwrap_err();
        assert_eq!(err.reason, "ProbePanicked", "{payload:?}");
        let composite =
            Composite::new("c").with(probe_fn("late", move || async move { explode(payload) }));
        assert_eq!(composite.check().await.unwrap_err().reason, "ProbePanicked");
    }
}

struct PanickingPrerequisite(Payload);

impl Monitor for PanickingPrerequisite {
    fn name(&self) -> &str {
        "m"
    }
    fn run(&self, _cancel: CancellationToken) -> BoxFuture<'_, Result<(), BoxError>> {
        Box::pin(async { Ok(()) })
    }
    fn prerequisite(&self) -> Option<Arc<dyn Probe>> {
        explode(self.0)
    }
}

#[tokio::test]
async fn a_panicking_prerequisite_declaration_is_a_failing_probe() {
    for payload in PAYLOADS {
        let monitors: Vec<Arc<dyn Monitor>> = vec![Arc::new(PanickingPrerequisite(payload))];
        let probe = daemonkit::monitor::prerequisites("c", &monitors).expect("a probe");
        let err = probe.check().await.unwrap_err();
        assert_eq!(err.reason, "ProbePanicked");
        assert!(err.message.contains(expected(payload)), "{}", err.message);
    }
}

#[tokio::test]
async fn a_task_group_closure_panicking_before_its_future_is_the_groups_failure() {
    for payload in PAYLOADS {
        let mut group = TaskGroup::new(&CancellationToken::new());
        group.spawn(
            "eager",
            move |_| -> std::future::Ready<Result<(), BoxError>> { explode(payload) },
        );
        match group.wait().await {
            Err(Error::TaskPanicked { task, message }) => {
                assert_eq!(task, "eager");
                assert_eq!(message, expected(payload));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// A connectivity failure keeps its `since` across reads until it recovers or changes
/// reason; the kit stamps it, the monitor does not have to.
#[tokio::test(start_paused = true)]
async fn a_lasting_failure_keeps_its_since_and_a_change_or_recovery_resets_it() {
    let reason = Arc::new(std::sync::Mutex::new(Some("UpstreamDown")));
    let current = reason.clone();
    let tracker = StatusTracker::new();
    let handle = tracker
        .register_reporting("m", move || match *current.lock().unwrap() {
            Some(reason) => Err(StatusError::new(reason, "no route")),
            None => Ok(()),
        })
        .unwrap();
    handle.set_state(MonitorState::Running);
    let since = |tracker: &StatusTracker| tracker.get("m").unwrap().error.map(|e| e.since.unwrap());

    let first = since(&tracker).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(since(&tracker), Some(first), "two reads a second apart");

    *reason.lock().unwrap() = Some("UpstreamSlow");
    let changed = since(&tracker).unwrap();
    assert!(changed > first, "another reason is a new condition");

    *reason.lock().unwrap() = None;
    assert_eq!(since(&tracker), None);
    std::thread::sleep(Duration::from_millis(5));
    *reason.lock().unwrap() = Some("UpstreamSlow");
    assert!(
        since(&tracker).unwrap() > changed,
        "recovery ends the condition"
    );
}
