//! Issue 11, item 8: a task that blocks the runtime's thread is reported — logged as
//! `RuntimeStalled` with its lag, counted, and shown on `/metrics` — instead of stalling
//! everything silently. Real blocking (`std::thread::sleep` inside a task), real timers.

mod server_support;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use daemonkit::server::ControlPlane;
use daemonkit::stall::StallDetector;
use daemonkit::{Daemon, ErrorKind, monitor_fn};
use server_support::{Server, request, sample, socket_dir};
use tokio_util::sync::CancellationToken;

fn detector(interval_ms: u64, threshold_ms: u64) -> StallDetector {
    StallDetector::builder()
        .interval(Duration::from_millis(interval_ms))
        .threshold(Duration::from_millis(threshold_ms))
        .build()
        .expect("a valid stall detector")
}

/// Blocks the runtime's (only) thread for `d` from inside a task, as a careless monitor
/// would.
async fn block_the_runtime(d: Duration) {
    tokio::spawn(async move { std::thread::sleep(d) })
        .await
        .unwrap();
}

/// Lets the detector tick at least once more.
async fn settle(detector: &StallDetector) {
    tokio::time::sleep(detector.interval() * 3).await;
}

#[tokio::test]
async fn a_task_blocking_the_runtime_is_logged_as_runtime_stalled_with_its_lag() {
    let captured = server_support::capture();
    let detector = detector(20, 300);
    let cancel = CancellationToken::new();
    let running = tokio::spawn(detector.clone().run(cancel.clone()));
    settle(&detector).await;

    block_the_runtime(Duration::from_millis(600)).await;
    settle(&detector).await;

    let stats = detector.stats();
    assert_eq!(stats.stalls, 1, "{stats:?}");
    assert!(
        stats.max_lag >= Duration::from_millis(300) && stats.max_lag < Duration::from_secs(5),
        "{stats:?}"
    );
    assert_eq!(stats.last_stall_lag, stats.max_lag);
    let when = stats.last_stall.expect("the time of the stall");
    assert!(jiff::Timestamp::now().duration_since(when).as_secs_f64() < 5.0);

    let logged = captured.with_reason("RuntimeStalled");
    assert_eq!(logged.len(), 1);
    let lag_ms: u64 = logged[0].field("lag_ms").unwrap().parse().unwrap();
    assert!(lag_ms >= 300, "logged lag {lag_ms} ms");
    assert!(
        logged[0]
            .field("resolution")
            .is_some_and(|r| r.contains("spawn_blocking"))
    );

    cancel.cancel();
    running.await.unwrap();
}

#[tokio::test]
async fn a_runtime_doing_ordinary_async_work_reports_no_stall() {
    let captured = server_support::capture();
    let detector = detector(10, 500);
    let cancel = CancellationToken::new();
    let running = tokio::spawn(detector.clone().run(cancel.clone()));
    // Busy but cooperative: many short tasks that yield.
    let mut tasks = Vec::new();
    for _ in 0..100 {
        tasks.push(tokio::spawn(async {
            for _ in 0..50 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let stats = detector.stats();
    assert_eq!(stats.stalls, 0, "{stats:?}");
    assert!(stats.last_stall.is_none());
    assert!(stats.max_lag < Duration::from_millis(500), "{stats:?}");
    assert_eq!(captured.count("RuntimeStalled"), 0);
    cancel.cancel();
    running.await.unwrap();
}

#[tokio::test]
async fn a_blocked_runtime_is_counted_once_per_stall_not_once_per_missed_tick() {
    let detector = detector(10, 200);
    let cancel = CancellationToken::new();
    let running = tokio::spawn(detector.clone().run(cancel.clone()));
    settle(&detector).await;
    // 50 ticks' worth of blocking, twice.
    block_the_runtime(Duration::from_millis(500)).await;
    settle(&detector).await;
    block_the_runtime(Duration::from_millis(500)).await;
    settle(&detector).await;
    assert_eq!(detector.stats().stalls, 2, "{:?}", detector.stats());
    cancel.cancel();
    running.await.unwrap();
}

#[tokio::test]
async fn the_recent_maximum_falls_back_after_two_windows_the_all_time_one_stays() {
    let detector = StallDetector::builder()
        .interval(Duration::from_millis(10))
        .threshold(Duration::from_millis(200))
        .window(Duration::from_millis(500))
        .build()
        .unwrap();
    let cancel = CancellationToken::new();
    let running = tokio::spawn(detector.clone().run(cancel.clone()));
    settle(&detector).await;
    block_the_runtime(Duration::from_millis(400)).await;
    settle(&detector).await;
    let stats = detector.stats();
    assert!(
        stats.recent_max_lag >= Duration::from_millis(200),
        "{stats:?}"
    );
    assert_eq!(stats.recent_max_lag, stats.max_lag);

    // Two windows later the stall has left the recent figure (so an alert on the gauge
    // resolves), not the all-time one nor the count.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let later = detector.stats();
    assert!(
        later.recent_max_lag < Duration::from_millis(200),
        "{later:?}"
    );
    assert_eq!(later.max_lag, stats.max_lag);
    assert_eq!(later.stalls, 1);
    cancel.cancel();
    running.await.unwrap();
}

#[test]
fn a_zero_interval_threshold_or_window_is_refused() {
    for builder in [
        StallDetector::builder().interval(Duration::ZERO),
        StallDetector::builder().threshold(Duration::ZERO),
        StallDetector::builder().window(Duration::ZERO),
    ] {
        let err = builder.build().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(
            err.to_string().contains("must be longer than zero"),
            "{err}"
        );
    }
    let defaults = StallDetector::new();
    assert_eq!(defaults.threshold(), Duration::from_secs(1));
    assert_eq!(defaults.interval(), Duration::from_millis(100));
}

#[test]
fn the_stats_serialise_with_seconds_and_an_rfc3339_time() {
    let stats = StallDetector::new().stats();
    let json = serde_json::to_value(stats).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "max_lag_seconds": 0.0,
            "recent_max_lag_seconds": 0.0,
            "stalls": 0,
            "last_stall": null,
            "last_stall_lag_seconds": 0.0,
            "threshold_seconds": 1.0,
        })
    );
}

#[tokio::test]
async fn metrics_show_the_largest_stall_and_the_stall_count() {
    let dir = socket_dir();
    let detector = detector(20, 300);
    let cancel = CancellationToken::new();
    let running = tokio::spawn(detector.clone().run(cancel.clone()));
    let server = Server::start(
        ControlPlane::builder(dir.path().join("control.sock")).stall_detector(&detector),
    )
    .await;

    let before = server.get("/metrics").await.text().to_owned();
    assert_eq!(sample(&before, "daemonkit_runtime_stalls_total"), 0.0);
    assert!(sample(&before, "daemonkit_runtime_stall_seconds_max") < 0.3);

    settle(&detector).await;
    block_the_runtime(Duration::from_millis(600)).await;
    settle(&detector).await;
    let after = server.get("/metrics").await.text().to_owned();
    assert_eq!(sample(&after, "daemonkit_runtime_stalls_total"), 1.0);
    let max = sample(&after, "daemonkit_runtime_stall_seconds_max");
    assert!((0.3..5.0).contains(&max), "stall max {max}");
    promtool_check(&after);

    server.stop().await.unwrap();
    cancel.cancel();
    running.await.unwrap();
}

/// `promtool check metrics` on `text`: skipped (or, under DAEMONKIT_REQUIRE_ALL=1, failed)
/// when promtool is missing.
fn promtool_check(text: &str) {
    let spawned = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut promtool = match spawned {
        Ok(child) => child,
        Err(e) => {
            if std::env::var_os("DAEMONKIT_REQUIRE_ALL").is_some_and(|v| v == "1") {
                panic!("promtool is required (apt-get install prometheus): {e}");
            }
            eprintln!("SKIPPED: promtool check: promtool not installed ({e})");
            return;
        }
    };
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && report.trim().is_empty(),
        "promtool: {report}\n{text}"
    );
}

/// The `Daemon` runner runs a detector with the default 1 s threshold: a monitor that
/// blocks the runtime's thread for 1.5 s shows on the daemon's `/metrics` and through
/// `Daemon::stall_detector`.
#[tokio::test]
async fn the_daemon_runner_reports_a_monitor_that_blocks_its_thread() {
    let captured = server_support::capture();
    let dir = socket_dir();
    let socket = dir.path().join("control.sock");
    let blocker = monitor_fn("blocker", |cancel| async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        // The mistake the detector exists for: blocking code in an async monitor.
        std::thread::sleep(Duration::from_millis(1500));
        cancel.cancelled().await;
        Ok(())
    });
    let daemon = Daemon::builder("stalltest")
        .control_plane(ControlPlane::builder(&socket))
        .monitor(blocker)
        .build()
        .expect("a valid daemon");
    let detector = daemon.stall_detector().clone();
    assert_eq!(detector.threshold(), Duration::from_secs(1));
    let running = tokio::spawn(daemon.run());

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while detector.stats().stalls == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no stall reported: {:?}",
            detector.stats()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stats = detector.stats();
    assert!(stats.max_lag >= Duration::from_secs(1), "{stats:?}");
    assert_eq!(captured.count("RuntimeStalled"), 1);

    let mut conn = tokio::net::UnixStream::connect(&socket).await.unwrap();
    let res = request(&mut conn, "GET", "/metrics", &[], b"").await;
    let text = String::from_utf8(res.body).unwrap();
    assert_eq!(sample(&text, "daemonkit_runtime_stalls_total"), 1.0);
    assert!(sample(&text, "daemonkit_runtime_stall_seconds_max") >= 1.0);

    // Stop it as systemd would.
    rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::TERM)
        .unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("the daemon stops on SIGTERM")
        .unwrap();
    assert!(exit.is_clean(), "{exit}");
}
