//! `GET /metrics`: the monitors' metrics read from the tracker at scrape time, the
//! daemon's own metrics, and a clean bill of health from `promtool check metrics`.

mod server_support;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use daemonkit::server::ControlPlane;
use daemonkit::{MonitorState, StatusTracker};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use server_support::{Server, sample, socket_dir};

/// A tracker with one monitor in each interesting state.
fn tracker() -> (StatusTracker, daemonkit::MonitorHandle) {
    let tracker = StatusTracker::new();
    let db = tracker.register("db").unwrap();
    db.update(|s| {
        s.state = MonitorState::Running;
        s.restarts = 3;
    });
    tracker.register("queue").unwrap().update(|s| {
        s.state = MonitorState::Backoff(Duration::from_secs(5));
        s.restarts = 7;
        s.consecutive_crashes = 2;
    });
    tracker
        .register("archive")
        .unwrap()
        .set_state(MonitorState::Stopped);
    (tracker, db)
}

async fn scrape(server: &Server) -> String {
    let res = server.get("/metrics").await;
    assert_eq!(res.status, 200);
    assert_eq!(
        res.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    res.text().to_owned()
}

#[tokio::test]
async fn each_monitor_has_its_restarts_crashes_state_and_uptime() {
    let dir = socket_dir();
    let (tracker, _db) = tracker();
    let server =
        Server::start(ControlPlane::builder(dir.path().join("control.sock")).metrics(&tracker))
            .await;
    let text = scrape(&server).await;

    assert!(
        text.contains("# TYPE daemonkit_monitor_restarts_total counter\n"),
        "{text}"
    );
    assert_eq!(
        sample(&text, "daemonkit_monitor_restarts_total{monitor=\"db\"}"),
        3.0
    );
    assert_eq!(
        sample(&text, "daemonkit_monitor_restarts_total{monitor=\"queue\"}"),
        7.0
    );
    assert_eq!(
        sample(
            &text,
            "daemonkit_monitor_restarts_total{monitor=\"archive\"}"
        ),
        0.0
    );

    assert!(text.contains("# TYPE daemonkit_monitor_consecutive_crashes gauge\n"));
    assert_eq!(
        sample(
            &text,
            "daemonkit_monitor_consecutive_crashes{monitor=\"queue\"}"
        ),
        2.0
    );
    assert_eq!(
        sample(
            &text,
            "daemonkit_monitor_consecutive_crashes{monitor=\"db\"}"
        ),
        0.0
    );

    assert!(text.contains("# TYPE daemonkit_monitor_state gauge\n"));
    for (monitor, current) in [
        ("db", "running"),
        ("queue", "backoff"),
        ("archive", "stopped"),
    ] {
        for state in ["running", "degraded", "backoff", "stopped"] {
            let series =
                format!("daemonkit_monitor_state{{monitor=\"{monitor}\",state=\"{state}\"}}");
            let want = if state == current { 1.0 } else { 0.0 };
            assert_eq!(sample(&text, &series), want, "{series}");
        }
    }

    assert!(text.contains("# TYPE daemonkit_monitor_uptime_seconds gauge\n"));
    let uptime = sample(&text, "daemonkit_monitor_uptime_seconds{monitor=\"db\"}");
    assert!((0.0..60.0).contains(&uptime), "db uptime {uptime}");
    assert_eq!(
        sample(&text, "daemonkit_monitor_uptime_seconds{monitor=\"queue\"}"),
        0.0
    );
    assert_eq!(
        sample(
            &text,
            "daemonkit_monitor_uptime_seconds{monitor=\"archive\"}"
        ),
        0.0
    );

    let build = format!(
        "daemonkit_build_info{{version=\"{}\"}}",
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(sample(&text, &build), 1.0);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn metrics_are_read_from_the_tracker_at_scrape_time() {
    let dir = socket_dir();
    let (tracker, db) = tracker();
    let server =
        Server::start(ControlPlane::builder(dir.path().join("control.sock")).metrics(&tracker))
            .await;
    let series = "daemonkit_monitor_restarts_total{monitor=\"db\"}";
    assert_eq!(sample(&scrape(&server).await, series), 3.0);
    db.update(|s| s.restarts = 4);
    tracker
        .register("late")
        .unwrap()
        .set_state(MonitorState::Running);
    let text = scrape(&server).await;
    assert_eq!(sample(&text, series), 4.0);
    assert_eq!(
        sample(
            &text,
            "daemonkit_monitor_state{monitor=\"late\",state=\"running\"}"
        ),
        1.0
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn without_a_tracker_only_the_build_info_is_exposed() {
    let dir = socket_dir();
    let server = Server::start(ControlPlane::builder(dir.path().join("control.sock"))).await;
    let text = scrape(&server).await;
    assert!(text.contains("daemonkit_build_info{"), "{text}");
    assert!(!text.contains("daemonkit_monitor_"), "{text}");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn the_daemon_s_own_metrics_share_the_exposition() {
    let dir = socket_dir();
    let jobs: Counter = Counter::default();
    let mut registry = Registry::with_prefix("backupd");
    registry.register("jobs", "Backup jobs completed", jobs.clone());
    let (tracker, _db) = tracker();
    let server = Server::start(
        ControlPlane::builder(dir.path().join("control.sock"))
            .metrics(&tracker)
            .registry(registry),
    )
    .await;
    jobs.inc_by(2);
    let text = scrape(&server).await;
    assert_eq!(sample(&text, "backupd_jobs_total"), 2.0);
    // The daemon's prefix does not rename the kit's metrics.
    assert_eq!(
        sample(&text, "daemonkit_monitor_restarts_total{monitor=\"db\"}"),
        3.0
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn promtool_check_metrics_reports_no_problems() {
    let dir = socket_dir();
    let jobs: Counter = Counter::default();
    let mut registry = Registry::default();
    registry.register("backupd_jobs", "Backup jobs completed", jobs.clone());
    let (tracker, _db) = tracker();
    let server = Server::start(
        ControlPlane::builder(dir.path().join("control.sock"))
            .metrics(&tracker)
            .registry(registry),
    )
    .await;
    let text = scrape(&server).await;
    server.stop().await.unwrap();

    // Not skipped when missing: CI installs Debian's `prometheus` package, which has it.
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool (apt-get install prometheus)");
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
    assert!(out.status.success(), "promtool failed: {report}\n{text}");
    assert!(
        report.trim().is_empty(),
        "promtool reported problems: {report}\n{text}"
    );
}
