//! The Prometheus rules in `contrib/prometheus/`: `promtool check rules` accepts them, each
//! alert's promtool unit tests (synthetic series, fires / does not fire at the edges) pass,
//! the rules read only metrics the kit exposes, and a real Prometheus loads them and fires
//! on a real control plane's metrics.
//!
//! promtool and prometheus come from Debian's `prometheus` package (installed by .ci/run).
//! Without it a test prints `SKIPPED:` and passes, unless `DAEMONKIT_REQUIRE_ALL=1`.

mod server_support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use daemonkit::server::ControlPlane;
use daemonkit::{MonitorState, StatusTracker};
use serde_json::Value;
use server_support::{Server, request, sample, socket_dir};

/// The promtool unit-test files, each run by the test named for its alert below.
const TEST_FILES: [&str; 5] = [
    "crash_loop.test.yml",
    "monitor_stopped.test.yml",
    "monitor_unhealthy.test.yml",
    "runtime_stall.test.yml",
    "target_down.test.yml",
];

/// Metrics the rules read that another part of the kit exposes, not the monitors'
/// `/metrics` collector this file scrapes: the runtime stall gauge comes with the stall
/// detector (issue 11).
const EXPOSED_ELSEWHERE: [&str; 1] = ["daemonkit_runtime_stall_seconds_max"];

fn contrib() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../contrib/prometheus")
}

fn rules_file() -> PathBuf {
    contrib().join("daemonkit.rules.yml")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// True when `tool` runs; otherwise prints `SKIPPED:` (or panics under
/// `DAEMONKIT_REQUIRE_ALL=1`) and returns false.
fn have(tool: &str) -> bool {
    let runs = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if runs {
        return true;
    }
    if std::env::var_os("DAEMONKIT_REQUIRE_ALL").is_some_and(|v| v == "1") {
        panic!("{tool} (Debian package prometheus) is missing (DAEMONKIT_REQUIRE_ALL=1)");
    }
    eprintln!("SKIPPED: {tool} (Debian package prometheus) is not installed");
    false
}

/// Runs promtool with `args` from contrib/prometheus and returns its combined output,
/// failing the test if it exits non-zero.
fn promtool(args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(contrib())
        .output()
        .expect("run promtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

/// Runs one promtool unit-test file and checks that promtool ran tests in it.
fn promtool_test(file: &str) {
    if !have("promtool") {
        return;
    }
    let path = format!("tests/{file}");
    let report = promtool(&["test", "rules", &path]);
    assert!(report.contains("SUCCESS"), "{report}");
}

/// The names after `key` at the start of a (trimmed) line, e.g. `- alert: X` → `X`.
fn values_of(text: &str, key: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim_start().trim_start_matches("- ");
            Some(line.strip_prefix(key)?.trim().to_owned())
        })
        .collect()
}

/// Every `daemonkit_…` metric name in `text` (recording rules are `daemonkit:…` and do not
/// match).
fn kit_metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("daemonkit_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

// ===== promtool =====

#[test]
fn promtool_check_rules_accepts_the_rules_file() {
    if !have("promtool") {
        return;
    }
    let report = promtool(&["check", "rules", "daemonkit.rules.yml"]);
    let alerts = values_of(&read(&rules_file()), "alert:").len();
    let records = values_of(&read(&rules_file()), "record:").len();
    assert_eq!((alerts, records), (5, 3));
    assert!(
        report.contains(&format!("SUCCESS: {} rules found", alerts + records)),
        "{report}"
    );
}

/// The example configuration in the user guide is valid and loads the rules beside it.
#[test]
fn promtool_check_config_accepts_the_example_configuration() {
    if !have("promtool") {
        return;
    }
    let report = promtool(&["check", "config", "prometheus.example.yml"]);
    assert!(report.contains("SUCCESS: 1 rule files found"), "{report}");
    assert!(report.contains("SUCCESS: 8 rules found"), "{report}");
}

#[test]
fn unhealthy_monitor_alert_fires_after_ten_unhealthy_minutes_and_not_before() {
    promtool_test("monitor_unhealthy.test.yml");
}

#[test]
fn crash_loop_alert_fires_at_three_restarts_in_fifteen_minutes_or_five_crashes_in_a_row() {
    promtool_test("crash_loop.test.yml");
}

#[test]
fn stopped_monitor_alert_fires_after_five_minutes_and_not_on_shutdown() {
    promtool_test("monitor_stopped.test.yml");
}

#[test]
fn runtime_stall_alert_fires_above_one_second_for_five_minutes() {
    promtool_test("runtime_stall.test.yml");
}

#[test]
fn target_down_alert_fires_after_five_minutes_for_daemonkit_jobs_only() {
    promtool_test("target_down.test.yml");
}

/// A test file added without a test above would never run in CI; an alert without a unit
/// test would have no checked edges nor checked annotations.
#[test]
fn every_test_file_runs_and_every_alert_is_tested() {
    let mut on_disk: Vec<String> = std::fs::read_dir(contrib().join("tests"))
        .expect("read contrib/prometheus/tests")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    assert_eq!(on_disk, TEST_FILES);

    let tests: String = TEST_FILES
        .iter()
        .map(|f| read(&contrib().join("tests").join(f)))
        .collect();
    let tested: BTreeSet<String> = values_of(&tests, "alertname:").into_iter().collect();
    for alert in values_of(&read(&rules_file()), "alert:") {
        assert!(tested.contains(&alert), "no promtool test for {alert}");
        // Every firing expectation checks the annotations, not only the labels.
        assert!(
            tests.contains(&format!(
                "alertname: {alert}\n        exp_alerts:\n          - "
            )),
            "no test expects {alert} to fire"
        );
    }
    let fired = tests
        .matches("exp_alerts:\n          - exp_labels:")
        .count();
    let annotated = tests.matches("exp_annotations:").count();
    assert_eq!(fired, annotated, "a firing expectation without annotations");
}

// ===== the kit's exposition =====

/// A tracker with `flaky` backing off after 3 restarts and `steady` running.
fn tracker() -> (StatusTracker, daemonkit::MonitorHandle) {
    let tracker = StatusTracker::new();
    let flaky = tracker.register("flaky").unwrap();
    flaky.update(|s| {
        s.state = MonitorState::Backoff(Duration::from_secs(80));
        s.consecutive_crashes = 3;
    });
    tracker
        .register("steady")
        .unwrap()
        .set_state(MonitorState::Running);
    (tracker, flaky)
}

#[tokio::test]
async fn backoff_seconds_is_the_current_back_off_and_zero_otherwise() {
    let dir = socket_dir();
    let (tracker, flaky) = tracker();
    let server =
        Server::start(ControlPlane::builder(dir.path().join("control.sock")).metrics(&tracker))
            .await;
    let text = server.get("/metrics").await.text().to_owned();
    assert!(text.contains("# TYPE daemonkit_monitor_backoff_seconds gauge\n"));
    let flaky_series = "daemonkit_monitor_backoff_seconds{monitor=\"flaky\"}";
    assert_eq!(sample(&text, flaky_series), 80.0);
    assert_eq!(
        sample(
            &text,
            "daemonkit_monitor_backoff_seconds{monitor=\"steady\"}"
        ),
        0.0
    );

    // Sub-second back-offs keep their fraction; leaving back-off returns to 0.
    flaky.update(|s| s.state = MonitorState::Backoff(Duration::from_millis(250)));
    let text = server.get("/metrics").await.text().to_owned();
    assert_eq!(sample(&text, flaky_series), 0.25);
    flaky.set_state(MonitorState::Running);
    let text = server.get("/metrics").await.text().to_owned();
    assert_eq!(sample(&text, flaky_series), 0.0);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn the_rules_read_only_metrics_and_labels_the_kit_exposes() {
    let dir = socket_dir();
    let (tracker, _flaky) = tracker();
    let server =
        Server::start(ControlPlane::builder(dir.path().join("control.sock")).metrics(&tracker))
            .await;
    let text = server.get("/metrics").await.text().to_owned();
    server.stop().await.unwrap();

    let exposed: BTreeSet<String> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect();
    let rules = read(&rules_file());
    let read_by_rules = kit_metric_names(&rules);
    // Also a check on the name scan above: these are the series the rules use.
    assert_eq!(
        read_by_rules,
        BTreeSet::from(
            [
                "daemonkit_monitor_backoff_seconds",
                "daemonkit_monitor_consecutive_crashes",
                "daemonkit_monitor_restarts_total",
                "daemonkit_monitor_state",
                "daemonkit_runtime_stall_seconds_max",
            ]
            .map(String::from)
        )
    );
    for name in &read_by_rules {
        if EXPOSED_ELSEWHERE.contains(&name.as_str()) {
            continue;
        }
        assert!(
            exposed.contains(name),
            "the rules read {name}, which /metrics does not expose:\n{text}"
        );
    }
    // The labels the rules select and keep are the ones on the kit's series.
    assert!(text.contains("daemonkit_monitor_state{monitor=\"flaky\",state=\"backoff\"} 1"));
    assert!(rules.contains("$labels.monitor") && rules.contains("state=~\"degraded|backoff\""));
}

// ===== a real Prometheus =====

/// Kills a helper process when the test ends, however it ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    // Released at once; a clash in the small window shows as a start-up failure below.
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET path` on Prometheus' API; `None` while it is not answering yet.
async fn api(web: std::net::SocketAddr, path: &str) -> Option<Value> {
    let mut conn = tokio::net::TcpStream::connect(web).await.ok()?;
    let res = request(&mut conn, "GET", path, &[("Connection", "close")], b"").await;
    (res.status == 200).then(|| res.json())
}

/// Polls `check` on Prometheus' answers to `path` until it returns `Some`.
async fn wait_for<T>(
    prometheus: &mut Killed,
    log: &Path,
    web: std::net::SocketAddr,
    path: &str,
    what: &str,
    check: impl Fn(&Value) -> Option<T>,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(status)) = prometheus.0.try_wait() {
            panic!("prometheus exited ({status}):\n{}", read(log));
        }
        if let Some(found) = api(web, path).await.as_ref().and_then(&check) {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus never showed {what}; its log:\n{}",
            read(log)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The alerts of `name` in an `/api/v1/alerts` answer.
fn alerts<'a>(json: &'a Value, name: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    json["data"]["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(move |a| a["labels"]["alertname"] == name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_loads_the_rules_and_alerts_on_the_kit_s_own_metrics() {
    if !have("prometheus") {
        return;
    }
    let dir = socket_dir();
    let (tracker, flaky) = tracker();
    let server = Server::start(
        ControlPlane::builder(dir.path().join("control.sock"))
            .metrics(&tracker)
            .tcp(([127, 0, 0, 1], 0).into()),
    )
    .await;
    let target = server.tcp.expect("a TCP address");

    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 200ms\n  scrape_timeout: 200ms\n  evaluation_interval: 200ms\n\
             rule_files: ['{}']\n\
             scrape_configs:\n  - job_name: daemonkit-test\n    static_configs:\n      - targets: ['{target}']\n",
            rules_file().display()
        ),
    )
    .unwrap();
    let web: std::net::SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let log = work.path().join("prometheus.log");
    let mut prometheus = Killed(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                work.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={web}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start prometheus"),
    );

    // Both groups loaded, every rule evaluated without error.
    let groups = wait_for(
        &mut prometheus,
        &log,
        web,
        "/api/v1/rules",
        "the rule groups evaluated",
        |json| {
            let groups = json["data"]["groups"].as_array()?;
            let rules: Vec<&Value> = groups
                .iter()
                .flat_map(|g| g["rules"].as_array().into_iter().flatten())
                .collect();
            let evaluated = rules.iter().all(|r| {
                r["lastEvaluation"]
                    .as_str()
                    .is_some_and(|t| !t.starts_with("0001"))
            });
            (evaluated && rules.len() == 8).then(|| json.clone())
        },
    )
    .await;
    for group in groups["data"]["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            assert_eq!(rule["health"], "ok", "{rule}");
        }
    }

    // The first scrape saw `flaky` with 0 restarts; then it crash-loops 3 times.
    wait_for(
        &mut prometheus,
        &log,
        web,
        "/api/v1/query?query=daemonkit_monitor_restarts_total",
        "the restarts counter",
        |json| (!json["data"]["result"].as_array()?.is_empty()).then_some(()),
    )
    .await;
    flaky.update(|s| s.restarts = 3);

    let firing = wait_for(
        &mut prometheus,
        &log,
        web,
        "/api/v1/alerts",
        "DaemonkitMonitorCrashLooping firing",
        |json| {
            alerts(json, "DaemonkitMonitorCrashLooping")
                .find(|a| a["state"] == "firing")
                .cloned()
        },
    )
    .await;
    assert_eq!(firing["labels"]["monitor"], "flaky");
    assert_eq!(firing["labels"]["job"], "daemonkit-test");
    let description = firing["annotations"]["description"].as_str().unwrap();
    assert!(
        description.contains("run `daemonctl describe flaky`")
            && description.contains("on host 127.0.0.1 keeps crashing")
            && description.contains(", 3 crashes in a row."),
        "{description}"
    );

    // `flaky` is unhealthy (pending for 10 minutes); its description, rendered by the real
    // Prometheus from the kit's own series, names the state and the back-off.
    let all = api(web, "/api/v1/alerts").await.expect("the alerts");
    let unhealthy: Vec<&Value> = alerts(&all, "DaemonkitMonitorUnhealthy").collect();
    assert_eq!(unhealthy.len(), 1, "{all}");
    assert_eq!(unhealthy[0]["labels"]["monitor"], "flaky");
    assert_eq!(unhealthy[0]["state"], "pending");
    let description = unhealthy[0]["annotations"]["description"].as_str().unwrap();
    assert!(
        description.contains("(now backoff, next start after a back-off of 1m 20s)"),
        "{description}"
    );
    // Nothing about `steady`, nothing stopped, the target is up, no stall gauge.
    for alert in all["data"]["alerts"].as_array().unwrap() {
        assert_ne!(alert["labels"]["monitor"], "steady", "{alert}");
        let name = alert["labels"]["alertname"].as_str().unwrap();
        assert!(
            matches!(
                name,
                "DaemonkitMonitorCrashLooping" | "DaemonkitMonitorUnhealthy"
            ),
            "{alert}"
        );
    }

    // The daemon goes away: its `up` series is what DaemonkitTargetDown selects.
    server.stop().await.unwrap();
    let down = wait_for(
        &mut prometheus,
        &log,
        web,
        "/api/v1/alerts",
        "DaemonkitTargetDown pending",
        |json| alerts(json, "DaemonkitTargetDown").next().cloned(),
    )
    .await;
    assert_eq!(down["state"], "pending", "{down}");
    assert_eq!(down["labels"]["instance"], target.to_string());
}
