//! Supervision behaviour, run on tokio's paused clock: back-offs of minutes take
//! microseconds, and the default (production) policy is tested as it is.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use daemonkit::{
    BoxError, BoxFuture, Connectivity, Error, ErrorKind, Monitor, MonitorState, RestartPolicy,
    StatusError, StatusTracker, Supervisor, monitor_fn,
};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// A monitor whose n-th run (0-based) does what `script(n)` says.
fn scripted(
    name: &str,
    script: impl Fn(u32) -> Step + Send + Sync + 'static,
) -> (Arc<dyn Monitor>, Arc<AtomicU32>) {
    let runs = Arc::new(AtomicU32::new(0));
    let counter = runs.clone();
    let monitor = monitor_fn(name, move |cancel: CancellationToken| {
        let step = script(counter.fetch_add(1, Ordering::SeqCst));
        async move {
            match step {
                Step::Crash => Err::<(), BoxError>("boom".into()),
                Step::CrashAfter(d) => {
                    tokio::time::sleep(d).await;
                    Err("late boom".into())
                }
                Step::Panic => panic!("kaboom"),
                Step::Exit => Ok(()),
                Step::WaitCancel => {
                    cancel.cancelled().await;
                    Ok(())
                }
            }
        }
    });
    (monitor, runs)
}

#[derive(Clone, Copy)]
enum Step {
    Crash,
    CrashAfter(Duration),
    Panic,
    Exit,
    WaitCancel,
}

fn fast() -> RestartPolicy {
    RestartPolicy::builder()
        .initial(Duration::from_millis(1))
        .build()
        .unwrap()
}

/// Runs one monitor under its own supervisor until `cancel` is cancelled or the monitor
/// stops by itself (a clean exit), then shuts the supervisor down.
async fn supervise(
    monitor: Arc<dyn Monitor>,
    tracker: StatusTracker,
    policy: RestartPolicy,
    cancel: CancellationToken,
) {
    let stopped = Arc::new(tokio::sync::Notify::new());
    let notify = stopped.clone();
    tracker.on_transition(move |t| {
        if t.status.state == MonitorState::Stopped && t.from != MonitorState::Stopped {
            notify.notify_one();
        }
    });
    let running = Supervisor::builder()
        .policy(policy)
        .tracker(tracker)
        .monitor(monitor)
        .build()
        .unwrap()
        .start(&cancel);
    tokio::select! {
        _ = cancel.cancelled() => {}
        _ = stopped.notified() => {}
    }
    assert!(running.shutdown(Duration::from_secs(3600)).await.is_clean());
}

/// Spawns supervise, waits (in virtual time) until `done` holds, then cancels and joins.
async fn supervise_until(
    monitor: Arc<dyn Monitor>,
    policy: RestartPolicy,
    done: impl Fn(&StatusTracker) -> bool,
) -> StatusTracker {
    let tracker = StatusTracker::new();
    let changed = Arc::new(tokio::sync::Notify::new());
    let notify = changed.clone();
    tracker.on_transition(move |_| notify.notify_one());
    let cancel = CancellationToken::new();
    let task = tokio::spawn(supervise(monitor, tracker.clone(), policy, cancel.clone()));
    // Re-check on every transition; the paused clock jumps straight to the next timer.
    while !done(&tracker) {
        changed.notified().await;
    }
    cancel.cancel();
    task.await.unwrap();
    tracker
}

#[tokio::test(start_paused = true)]
async fn restarts_after_crash() {
    let logs = common::capture();
    let (monitor, runs) = scripted("m", |n| {
        if n == 0 {
            Step::Crash
        } else {
            Step::WaitCancel
        }
    });
    let tracker = supervise_until(monitor, fast(), |t| {
        t.get("m")
            .is_some_and(|s| s.restarts == 1 && s.state == MonitorState::Running)
    })
    .await;
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    assert_eq!(logs.count("MonitorCrash"), 1);
    let crash = &logs.with_reason("MonitorCrash")[0];
    assert_eq!(crash.field("error"), Some("boom"));
    assert_eq!(crash.field("consecutive_crashes"), Some("1"));
    assert_eq!(
        tracker.get("m").unwrap().last_error.as_deref(),
        Some("boom")
    );
}

#[tokio::test(start_paused = true)]
async fn no_restart_on_cancellation_during_run() {
    let logs = common::capture();
    let (monitor, runs) = scripted("m", |_| Step::WaitCancel);
    let tracker = supervise_until(monitor, fast(), |t| {
        t.get("m").is_some_and(|s| s.state == MonitorState::Running)
    })
    .await;
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(tracker.get("m").unwrap().state, MonitorState::Stopped);
    assert_eq!(logs.count("MonitorStopped"), 1);
    assert_eq!(logs.count("MonitorCrash"), 0);
}

#[tokio::test(start_paused = true)]
async fn cancellation_during_backoff_stops_immediately() {
    let logs = common::capture();
    let (monitor, runs) = scripted("m", |_| Step::Crash);
    let tracker = StatusTracker::new();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(supervise(
        monitor,
        tracker.clone(),
        RestartPolicy::default(),
        cancel.clone(),
    ));
    while !matches!(
        tracker.get("m").map(|s| s.state),
        Some(MonitorState::Backoff(_))
    ) {
        tokio::task::yield_now().await;
    }
    let cancelled_at = Instant::now();
    cancel.cancel();
    task.await.unwrap();
    // The 5 s back-off was not waited out.
    assert!(cancelled_at.elapsed() < Duration::from_secs(1));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(tracker.get("m").unwrap().state, MonitorState::Stopped);
    assert_eq!(logs.count("MonitorStopped"), 1);
}

#[tokio::test(start_paused = true)]
async fn clean_exit_is_not_restarted() {
    let logs = common::capture();
    let (monitor, runs) = scripted("m", |_| Step::Exit);
    let tracker = StatusTracker::new();
    supervise(monitor, tracker.clone(), fast(), CancellationToken::new()).await;
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(tracker.get("m").unwrap().state, MonitorState::Stopped);
    assert_eq!(logs.count("MonitorExited"), 1);
}

#[tokio::test(start_paused = true)]
async fn backoff_doubles_from_five_seconds_up_to_the_cap() {
    let logs = common::capture();
    let (monitor, _runs) = scripted("m", |_| Step::Crash);
    let states = Arc::new(std::sync::Mutex::new(Vec::new()));
    let tracker = StatusTracker::new();
    let seen = states.clone();
    tracker.on_transition(move |t| {
        if let MonitorState::Backoff(_) = t.status.state
            && t.from != t.status.state
        {
            seen.lock().unwrap().push(t.status.state.to_string());
        }
    });
    let cancel = CancellationToken::new();
    let task = tokio::spawn(supervise(
        monitor,
        tracker.clone(),
        RestartPolicy::default(),
        cancel.clone(),
    ));
    while states.lock().unwrap().len() < 8 {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    cancel.cancel();
    task.await.unwrap();
    let want = [
        "backoff:5s",
        "backoff:10s",
        "backoff:20s",
        "backoff:40s",
        "backoff:1m20s",
        "backoff:2m40s",
        "backoff:5m0s",
        "backoff:5m0s",
    ];
    assert_eq!(&states.lock().unwrap()[..8], want);
    let backoffs: Vec<_> = logs
        .with_reason("MonitorCrash")
        .iter()
        .take(8)
        .map(|r| r.field("backoff").unwrap().to_owned())
        .collect();
    assert_eq!(backoffs, want.map(|s| s.trim_start_matches("backoff:")));
}

#[tokio::test(start_paused = true)]
async fn stable_run_resets_backoff_and_streak() {
    let logs = common::capture();
    // Three quick crashes, then a run that lasts the 60 s stable threshold and crashes.
    let (monitor, _runs) = scripted("m", |n| match n {
        0..=2 => Step::Crash,
        3 => Step::CrashAfter(Duration::from_secs(60)),
        _ => Step::WaitCancel,
    });
    supervise_until(monitor, RestartPolicy::default(), |t| {
        t.get("m").is_some_and(|s| s.restarts == 4)
    })
    .await;
    let crashes = logs.with_reason("MonitorCrash");
    let streaks: Vec<_> = crashes
        .iter()
        .map(|r| r.field("consecutive_crashes").unwrap())
        .collect();
    let backoffs: Vec<_> = crashes
        .iter()
        .map(|r| r.field("backoff").unwrap())
        .collect();
    assert_eq!(streaks, ["1", "2", "3", "1"]);
    assert_eq!(backoffs, ["5s", "10s", "20s", "5s"]);
}

#[tokio::test(start_paused = true)]
async fn degraded_is_reported_at_every_fifth_consecutive_crash() {
    let logs = common::capture();
    let (monitor, _runs) = scripted("m", |n| {
        if n < 10 {
            Step::Crash
        } else {
            Step::WaitCancel
        }
    });
    let tracker = supervise_until(monitor, fast(), |t| {
        t.get("m").is_some_and(|s| s.restarts == 10)
    })
    .await;
    let degraded: Vec<_> = logs
        .with_reason("MonitorDegraded")
        .iter()
        .map(|r| r.field("consecutive_crashes").unwrap().to_owned())
        .collect();
    assert_eq!(degraded, ["5", "10"]);
    assert!(
        logs.with_reason("MonitorDegraded")
            .iter()
            .all(|r| r.level == tracing::Level::ERROR)
    );
    // The back-off in force, as the Go daemonkit's record carries it (1 ms doubling).
    let backoffs: Vec<_> = logs
        .with_reason("MonitorDegraded")
        .iter()
        .map(|r| r.field("current_backoff").unwrap().to_owned())
        .collect();
    assert_eq!(backoffs, ["16ms", "512ms"]);
    assert_eq!(tracker.get("m").unwrap().consecutive_crashes, 10);
}

#[tokio::test(start_paused = true)]
async fn a_crash_streaks_error_keeps_its_since_until_the_reason_changes() {
    let (monitor, _runs) = scripted("m", |n| if n < 7 { Step::Crash } else { Step::WaitCancel });
    let tracker = StatusTracker::new();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    tracker.on_transition(move |t| {
        if let Some(error) = &t.status.error {
            record
                .lock()
                .unwrap()
                .push((error.reason.clone(), error.since.unwrap()));
        }
    });
    let cancel = CancellationToken::new();
    let task = tokio::spawn(supervise(monitor, tracker.clone(), fast(), cancel.clone()));
    while tracker.get("m").is_none_or(|s| s.restarts < 7) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    cancel.cancel();
    task.await.unwrap();
    let seen = seen.lock().unwrap();
    let crash: Vec<_> = seen.iter().filter(|(r, _)| r == "MonitorCrash").collect();
    let degraded: Vec<_> = seen
        .iter()
        .filter(|(r, _)| r == "MonitorDegraded")
        .collect();
    // Crashes 1-4 are one `MonitorCrash` condition, 5-7 one `MonitorDegraded` condition.
    assert!(!crash.is_empty() && !degraded.is_empty(), "{seen:?}");
    assert!(
        crash.iter().all(|(_, since)| *since == crash[0].1),
        "{seen:?}"
    );
    assert!(
        degraded.iter().all(|(_, since)| *since == degraded[0].1),
        "{seen:?}"
    );
    assert!(degraded[0].1 > crash[0].1, "{seen:?}");
}

#[tokio::test(start_paused = true)]
async fn degraded_is_not_reported_at_a_crash_after_reset() {
    let logs = common::capture();
    // Four quick crashes, then a stable run's crash: #5 overall, but #1 of a new streak.
    let policy = RestartPolicy::builder()
        .initial(Duration::from_millis(1))
        .stable_after(Duration::from_secs(1))
        .build()
        .unwrap();
    let (monitor, _runs) = scripted("m", |n| match n {
        0..=3 => Step::Crash,
        4 => Step::CrashAfter(Duration::from_secs(2)),
        5..=8 => Step::Crash,
        _ => Step::WaitCancel,
    });
    supervise_until(monitor, policy, |t| {
        t.get("m").is_some_and(|s| s.restarts == 9)
    })
    .await;
    assert_eq!(logs.count("MonitorCrash"), 9);
    let degraded = logs.with_reason("MonitorDegraded");
    // Only the 5th crash of the new streak (the 9th overall) is degraded.
    assert_eq!(degraded.len(), 1);
    assert_eq!(degraded[0].field("consecutive_crashes"), Some("5"));
}

#[tokio::test(start_paused = true)]
async fn panic_becomes_a_restart() {
    let logs = common::capture();
    let (monitor, runs) = scripted("m", |n| {
        if n == 0 {
            Step::Panic
        } else {
            Step::WaitCancel
        }
    });
    let tracker = supervise_until(monitor, fast(), |t| {
        t.get("m")
            .is_some_and(|s| s.restarts == 1 && s.state == MonitorState::Running)
    })
    .await;
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    let panics = logs.with_reason("MonitorPanic");
    assert_eq!(panics.len(), 1);
    assert_eq!(panics[0].field("panic"), Some("kaboom"));
    assert_eq!(logs.count("MonitorCrash"), 1);
    assert_eq!(
        tracker.get("m").unwrap().last_error.as_deref(),
        Some("panic: kaboom")
    );
}

#[tokio::test(start_paused = true)]
async fn heartbeat_is_off_by_default() {
    let logs = common::capture();
    let (monitor, _runs) = scripted("m", |_| Step::WaitCancel);
    let cancel = CancellationToken::new();
    let task = tokio::spawn(supervise(
        monitor,
        StatusTracker::new(),
        RestartPolicy::default(),
        cancel.clone(),
    ));
    tokio::time::sleep(Duration::from_secs(600)).await;
    cancel.cancel();
    task.await.unwrap();
    assert_eq!(logs.count("MonitorStarted"), 1);
    assert_eq!(logs.count("MonitorHeartbeat"), 0);
}

/// A monitor that reports connectivity, failing while `failing` is set.
struct Flapping {
    failing: AtomicBool,
}

impl Monitor for Flapping {
    fn name(&self) -> &str {
        "flapping"
    }
    fn run(&self, cancel: CancellationToken) -> BoxFuture<'_, Result<(), BoxError>> {
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(2500)).await;
            self.failing.store(true, Ordering::SeqCst);
            cancel.cancelled().await;
            Ok(())
        })
    }
    fn connectivity(&self) -> Option<&dyn Connectivity> {
        Some(self)
    }
}

impl Connectivity for Flapping {
    fn check(&self) -> Result<(), StatusError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(StatusError::new("UpstreamDown", "dial upstream: refused")
                .with_resolution("check upstream"));
        }
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn heartbeat_carries_uptime_and_health() {
    let logs = common::capture();
    let monitor = Arc::new(Flapping {
        failing: AtomicBool::new(false),
    });
    let policy = RestartPolicy::builder()
        .heartbeat(Duration::from_secs(1))
        .build()
        .unwrap();
    let start = Instant::now();
    let tracker = StatusTracker::new();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(supervise(monitor, tracker.clone(), policy, cancel.clone()));
    tokio::time::sleep_until(start + Duration::from_millis(4500)).await;
    // The status tells the interval and when the last heartbeat was (for `describe`).
    let status = serde_json::to_value(tracker.snapshot()).unwrap();
    assert_eq!(status["flapping"]["heartbeat_every"], "1s", "{status}");
    assert!(status["flapping"]["last_heartbeat"].is_string(), "{status}");
    cancel.cancel();
    task.await.unwrap();
    let beats = logs.with_reason("MonitorHeartbeat");
    assert_eq!(beats.len(), 4, "{beats:?}");
    assert!(beats.iter().all(|b| b.field("monitor") == Some("flapping")));
    assert_eq!(beats[0].field("uptime"), Some("1s"));
    assert_eq!(beats[1].field("healthy"), Some("true"));
    assert_eq!(beats[2].field("healthy"), Some("false"));
    assert_eq!(beats[2].field("connectivity_reason"), Some("UpstreamDown"));
    assert_eq!(
        beats[2].field("connectivity_error"),
        Some("dial upstream: refused")
    );
}

#[tokio::test(start_paused = true)]
async fn tracker_shows_a_running_monitor_with_a_connectivity_error_as_degraded() {
    let monitor = Arc::new(Flapping {
        failing: AtomicBool::new(true),
    });
    let tracker = StatusTracker::new();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(supervise(monitor, tracker.clone(), fast(), cancel.clone()));
    while tracker.get("flapping").map(|s| s.state) != Some(MonitorState::Degraded) {
        tokio::task::yield_now().await;
    }
    let snapshot = tracker.snapshot();
    let json = serde_json::to_value(&snapshot).unwrap();
    assert_eq!(json["flapping"]["state"], "degraded");
    assert_eq!(json["flapping"]["error"]["reason"], "UpstreamDown");
    assert_eq!(json["flapping"]["error"]["resolution"], "check upstream");
    cancel.cancel();
    task.await.unwrap();
    assert_eq!(tracker.snapshot()["flapping"].state, MonitorState::Stopped);
}

#[test]
fn a_snapshot_keeps_what_it_saw_while_the_tracker_moves_on() {
    let tracker = StatusTracker::new();
    let a = tracker.register("a").unwrap();
    let link = tracker
        .register_reporting("link", || {
            Err(daemonkit::StatusError::new("LinkDown", "no carrier"))
        })
        .unwrap();
    a.set_state(MonitorState::Running);
    let before = tracker.snapshot();
    let again = tracker.snapshot();

    // Writes after the snapshots: a state change, a heartbeat, a new registration.
    a.set_state(MonitorState::Failed);
    a.heartbeat();
    link.set_state(MonitorState::Running);
    let _b = tracker.register("b").unwrap();

    for snapshot in [&before, &again] {
        assert_eq!(snapshot.len(), 2);
        assert_eq!(snapshot["a"].state, MonitorState::Running);
        assert!(snapshot["a"].last_heartbeat.is_none());
        assert_eq!(snapshot["link"].state, MonitorState::Stopped);
        assert!(snapshot.get("b").is_none());
    }
    let now = tracker.snapshot();
    assert_eq!(now.len(), 3);
    assert_eq!(now["a"].state, MonitorState::Failed);
    assert!(now["a"].last_heartbeat.is_some());
    // The overlay shows in the snapshot that applied it, not in the tracker's record.
    assert_eq!(now["link"].state, MonitorState::Degraded);
    assert_eq!(now["link"].error.as_ref().unwrap().reason, "LinkDown");
    link.set_state(MonitorState::Stopped);
    assert_eq!(now["link"].state, MonitorState::Degraded);
    assert_eq!(tracker.snapshot()["link"].state, MonitorState::Stopped);
    assert!(tracker.snapshot()["link"].error.is_none());
}

#[tokio::test(start_paused = true)]
async fn tracker_json_has_the_go_shape() {
    let (monitor, _runs) = scripted("m", |_| Step::Crash);
    let tracker = StatusTracker::new();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(supervise(
        monitor,
        tracker.clone(),
        RestartPolicy::default(),
        cancel.clone(),
    ));
    while !matches!(
        tracker.get("m").map(|s| s.state),
        Some(MonitorState::Backoff(_))
    ) {
        tokio::task::yield_now().await;
    }
    let json = serde_json::to_value(tracker.snapshot()).unwrap();
    assert_eq!(json["m"]["state"], "backoff:5s");
    assert_eq!(json["m"]["error"]["reason"], "MonitorCrash");
    assert_eq!(json["m"]["consecutive_crashes"], 1);
    cancel.cancel();
    task.await.unwrap();
    let json = serde_json::to_value(tracker.snapshot()).unwrap();
    assert_eq!(json["m"]["state"], "stopped");
    assert!(json["m"].get("error").is_none(), "{json}");
}

#[test]
fn invalid_policies_are_rejected_naming_the_field() {
    let cases = [
        (RestartPolicy::builder().initial(Duration::ZERO), "initial"),
        (
            RestartPolicy::builder()
                .initial(Duration::from_secs(10))
                .cap(Duration::from_secs(1)),
            "cap",
        ),
        (RestartPolicy::builder().multiplier(0.9), "multiplier"),
        (RestartPolicy::builder().multiplier(f64::NAN), "multiplier"),
        (RestartPolicy::builder().degraded_every(0), "degraded_every"),
        (RestartPolicy::builder().jitter(1.5), "jitter"),
        (
            RestartPolicy::builder().heartbeat(Duration::ZERO),
            "heartbeat",
        ),
    ];
    for (builder, field) in cases {
        match builder.build() {
            Err(Error::InvalidPolicy { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: expected InvalidPolicy, got {other:?}"),
        }
    }
    assert_eq!(
        RestartPolicy::builder().build().unwrap(),
        RestartPolicy::default()
    );
}

#[tokio::test(start_paused = true)]
async fn jittered_backoffs_stay_within_bounds() {
    let policy = RestartPolicy::builder().jitter(0.5).build().unwrap();
    let starts = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = starts.clone();
    let monitor = monitor_fn("m", move |cancel: CancellationToken| {
        let mut starts = seen.lock().unwrap();
        starts.push(Instant::now());
        let crash = starts.len() <= 6;
        async move {
            if crash {
                return Err::<(), BoxError>("boom".into());
            }
            cancel.cancelled().await;
            Ok(())
        }
    });
    supervise_until(monitor, policy.clone(), |t| {
        t.get("m").is_some_and(|s| s.restarts == 6)
    })
    .await;
    let starts = starts.lock().unwrap();
    let waits: Vec<Duration> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(waits.len(), 6);
    for (i, wait) in waits.iter().enumerate() {
        let full = policy.delay_for(i as u32 + 1);
        // Virtual time advances in whole milliseconds.
        assert!(
            *wait + Duration::from_millis(1) >= full / 2
                && *wait <= full + Duration::from_millis(1),
            "{i}: {wait:?} vs {full:?}"
        );
    }
    assert!(
        waits
            .iter()
            .enumerate()
            .any(|(i, w)| *w + Duration::from_millis(2) < policy.delay_for(i as u32 + 1)),
        "jitter changed nothing: {waits:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn supervisor_rejects_empty_and_duplicate_names() {
    let build = |names: &[&str]| {
        names
            .iter()
            .fold(Supervisor::builder().policy(fast()), |b, name| {
                b.monitor(scripted(name, |_| Step::Exit).0)
            })
            .build()
    };
    for bad in ["", " padded", "a/b", "bell\u{7}"] {
        let err = build(&[bad]).unwrap_err();
        assert!(matches!(err, Error::InvalidName { .. }), "{err}");
        assert_eq!(err.kind(), ErrorKind::Config);
    }
    let err = build(&["a", "a"]).unwrap_err();
    assert!(err.to_string().contains("already"), "{err}");
    assert!(build(&["a", "b"]).is_ok());
}

#[tokio::test(start_paused = true)]
async fn shutdown_names_monitors_that_ignore_cancellation() {
    let logs = common::capture();
    let supervisor = Supervisor::builder()
        .policy(fast())
        .monitor(scripted("polite", |_| Step::WaitCancel).0)
        .monitor(monitor_fn("stubborn", |_cancel| async {
            std::future::pending::<()>().await;
            Ok(())
        }))
        .build()
        .unwrap();
    let tracker = supervisor.tracker().clone();
    let running = supervisor.start(&CancellationToken::new());
    tokio::time::sleep(Duration::from_millis(10)).await;
    // `shutdown` cancels by itself: nobody cancelled a token here.
    let report = running.shutdown(Duration::from_secs(10)).await;
    assert_eq!(report.late, ["stubborn"]);
    assert_eq!(logs.count("MonitorShutdownTimeout"), 1);
    assert_eq!(tracker.get("polite").unwrap().state, MonitorState::Stopped);
}

/// An operator's restart of one monitor resets its streak and back-off at once and leaves
/// the other monitors untouched; stop keeps it stopped until start.
#[tokio::test(start_paused = true)]
async fn restart_stop_and_start_one_monitor_without_touching_the_others() {
    use daemonkit::supervisor::{Command, Refused};
    let logs = common::capture();
    // `flaky` crashes at once on every run; its back-off grows to minutes.
    let (flaky, flaky_runs) = scripted("flaky", |_| Step::Crash);
    let (steady, steady_runs) = scripted("steady", |_| Step::WaitCancel);
    let supervisor = Supervisor::builder()
        .policy(
            RestartPolicy::builder()
                .initial(Duration::from_secs(60))
                .build()
                .unwrap(),
        )
        .monitor(flaky)
        .monitor(steady)
        .build()
        .unwrap();
    let control = supervisor.control("flaky").unwrap();
    assert_eq!(
        control.send(Command::Restart, "uid 0"),
        Err(Refused::NotSupervised)
    );
    let tracker = supervisor.tracker().clone();
    let running = supervisor.start(&CancellationToken::new());
    async fn until(tracker: &StatusTracker, want: impl Fn(&daemonkit::MonitorStatus) -> bool) {
        while !tracker.get("flaky").is_some_and(|s| want(&s)) {
            tokio::task::yield_now().await;
        }
    }
    until(&tracker, |s| matches!(s.state, MonitorState::Backoff(_))).await;
    let steady_since = tracker.get("steady").unwrap().state_since;

    // Restart: no waiting out the 60 s back-off, streak reset, run again at once.
    control.send(Command::Restart, "uid 1000").unwrap();
    until(&tracker, |_| flaky_runs.load(Ordering::SeqCst) >= 2).await;
    until(&tracker, |s| s.consecutive_crashes == 1).await;
    assert_eq!(logs.count("MonitorRestartRequested"), 1);
    assert_eq!(
        logs.with_reason("MonitorRestartRequested")[0].field("by"),
        Some("uid 1000")
    );

    // Stop: stays stopped; start brings it back.
    control.send(Command::Stop, "uid 0").unwrap();
    until(&tracker, |s| s.state == MonitorState::Stopped).await;
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(tracker.get("flaky").unwrap().state, MonitorState::Stopped);
    let runs = flaky_runs.load(Ordering::SeqCst);
    control.send(Command::Start, "uid 0").unwrap();
    until(&tracker, |_| flaky_runs.load(Ordering::SeqCst) > runs).await;

    // `steady` never noticed.
    let steady = tracker.get("steady").unwrap();
    assert_eq!(steady.state, MonitorState::Running);
    assert_eq!(steady.state_since, steady_since);
    assert_eq!(steady.restarts, 0);
    assert_eq!(steady_runs.load(Ordering::SeqCst), 1);
    assert!(running.shutdown(Duration::from_secs(5)).await.is_clean());
}

/// A monitor that supervises sub-tasks of its own (one loop per peer, say) shows their
/// states under it in the status, not only in its logs.
#[tokio::test(start_paused = true)]
async fn sub_tasks_appear_under_their_monitor() {
    struct Shaper {
        subtasks: StatusTracker,
    }
    impl Monitor for Shaper {
        fn name(&self) -> &str {
            "traffic-shaper"
        }
        fn run(&self, cancel: CancellationToken) -> BoxFuture<'_, Result<(), BoxError>> {
            Box::pin(async move {
                let (peer_a, _) = scripted("peer-a", |_| Step::WaitCancel);
                let (peer_b, _) = scripted("peer-b", |_| Step::Crash);
                let running = Supervisor::builder()
                    .policy(
                        RestartPolicy::builder()
                            .initial(Duration::from_secs(60))
                            .build()?,
                    )
                    .tracker(self.subtasks.clone())
                    .monitor(peer_a)
                    .monitor(peer_b)
                    .build()?
                    .start(&cancel);
                cancel.cancelled().await;
                running.shutdown(Duration::from_secs(5)).await;
                Ok(())
            })
        }
        fn subtasks(&self) -> Option<&StatusTracker> {
            Some(&self.subtasks)
        }
    }
    let supervisor = Supervisor::builder()
        .monitor(Arc::new(Shaper {
            subtasks: StatusTracker::new(),
        }))
        .build()
        .unwrap();
    let tracker = supervisor.tracker().clone();
    let running = supervisor.start(&CancellationToken::new());
    let json = loop {
        let json = serde_json::to_value(tracker.snapshot()).unwrap();
        if json["traffic-shaper"]["subtasks"]["peer-b"]["state"] == "backoff:1m0s" {
            break json;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    assert_eq!(json["traffic-shaper"]["state"], "running");
    assert_eq!(
        json["traffic-shaper"]["subtasks"]["peer-a"]["state"],
        "running"
    );
    assert_eq!(
        json["traffic-shaper"]["subtasks"]["peer-b"]["error"]["reason"],
        "MonitorCrash"
    );
    assert!(running.shutdown(Duration::from_secs(5)).await.is_clean());
}
