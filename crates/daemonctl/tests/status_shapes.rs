//! `daemonctl status` and `describe` on both status shapes: the flat one (one implicit
//! component) and the nested one of a daemon hosting components, served by a fake daemon
//! on a real Unix socket.

mod common;

use common::{Answer, FakeDaemon, daemonctl, run};

/// The nested document in the Go consumer's shape: `components` → `monitors`, and
/// `probe_errors` per component with reason, message, resolution and since.
const NESTED: &str = r#"{"components":{"consensus-node":{"monitors":{"upgrade":{"state":"running"},"migration":{"state":"running","restarts":3,"consecutive_crashes":0,"state_since":"2026-01-01T00:00:00Z"}}},"block-node":{"monitors":{"traffic-shaper":{"state":"stopped"},"upgrade":{"state":"running"}}}},"probe_errors":{"block-node":{"reason":"UpgradeDirOwnershipCheckFailed","message":"/opt/block-node/upgrade is owned by root, not weaver","resolution":"sudo chown weaver /opt/block-node/upgrade","since":"2026-01-01T00:00:00Z"}}}"#;

const NESTED_HEALTHY: &str = r#"{"components":{"consensus-node":{"monitors":{"upgrade":{"state":"running"}}},"block-node":{"monitors":{}}}}"#;

const FLAT: &str = r#"{"db":{"state":"degraded","restarts":2,"consecutive_crashes":0,"state_since":"2026-01-01T00:00:00Z","error":{"reason":"DbDown","message":"connection refused","resolution":"start the database","since":"2026-01-01T00:00:00Z"}},"web":{"state":"running","restarts":0,"consecutive_crashes":0,"state_since":"2026-01-01T00:00:00Z"}}"#;

fn serve(doc: &str) -> (tempfile::TempDir, FakeDaemon) {
    let dir = tempfile::tempdir().unwrap();
    let daemon = FakeDaemon::serve(
        &dir.path().join("control.sock"),
        Answer::Body(200, doc.as_bytes().to_vec()),
    );
    (dir, daemon)
}

fn ctl(daemon: &FakeDaemon, args: &[&str]) -> common::Run {
    let mut cmd = daemonctl();
    cmd.args(args).arg("--socket").arg(&daemon.socket);
    run(cmd)
}

fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

#[test]
fn nested_status_prints_not_ready_lines_then_monitors_by_component_and_exits_1() {
    let (_dir, daemon) = serve(NESTED);
    let out = ctl(&daemon, &["status"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    let stdout = out.stdout();
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].starts_with(
            "[NOT READY] block-node (UpgradeDirOwnershipCheckFailed): /opt/block-node/upgrade \
             is owned by root, not weaver Resolution: sudo chown weaver /opt/block-node/upgrade \
             Since: 2026-01-01T00:00:00Z ("
        ),
        "{stdout}"
    );
    assert_eq!(words(lines[1])[..3], ["COMPONENT", "MONITOR", "STATE"]);
    let rows: Vec<Vec<&str>> = lines[2..].iter().map(|l| words(l)[..3].to_vec()).collect();
    assert_eq!(
        rows,
        [
            ["block-node", "traffic-shaper", "stopped"],
            ["block-node", "upgrade", "running"],
            ["consensus-node", "migration", "running"],
            ["consensus-node", "upgrade", "running"],
        ]
    );
}

#[test]
fn nested_status_exits_1_while_a_probe_fails_even_if_every_monitor_runs() {
    let doc = NESTED.replace(
        r#""traffic-shaper":{"state":"stopped"}"#,
        r#""traffic-shaper":{"state":"running"}"#,
    );
    let (_dir, daemon) = serve(&doc);
    assert_eq!(ctl(&daemon, &["status"]).code, Some(1));
}

#[test]
fn nested_status_without_probe_errors_and_all_running_exits_0() {
    let (_dir, daemon) = serve(NESTED_HEALTHY);
    let out = ctl(&daemon, &["status"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(!out.stdout().contains("NOT READY"));
    assert_eq!(out.stdout().lines().count(), 2);
}

#[test]
fn nested_status_json_is_the_daemons_document() {
    let (_dir, daemon) = serve(NESTED);
    let out = ctl(&daemon, &["status", "-o", "json"]);
    assert_eq!(out.code, Some(1));
    assert_eq!(out.stdout(), format!("{NESTED}\n"));
}

#[test]
fn flat_status_is_unchanged() {
    let (_dir, daemon) = serve(FLAT);
    let out = ctl(&daemon, &["status"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    let stdout = out.stdout();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert_eq!(
        words(lines[0]),
        [
            "MONITOR",
            "STATE",
            "SINCE",
            "RESTARTS",
            "REASON",
            "RESOLUTION"
        ]
    );
    assert_eq!(words(lines[1])[..2], ["db", "degraded"], "{stdout}");
    assert!(
        lines[1].ends_with("  DbDown  start the database"),
        "{stdout}"
    );
    assert!(!stdout.contains("connection refused"));

    // -o wide adds the message; --json is -o json.
    let wide = ctl(&daemon, &["status", "-o", "wide"]).stdout();
    assert!(wide.lines().next().unwrap().contains("MESSAGE"), "{wide}");
    assert!(wide.contains("connection refused"), "{wide}");
    assert_eq!(
        ctl(&daemon, &["status", "--json"]).stdout(),
        format!("{FLAT}\n")
    );
}

#[test]
fn describe_shows_a_component_monitor_with_its_components_probe_error() {
    let (_dir, daemon) = serve(NESTED);
    let out = ctl(&daemon, &["describe", "block-node/upgrade"]);
    assert_eq!(
        out.code,
        Some(1),
        "a failing probe makes it unhealthy: {out:?}"
    );
    let stdout = out.stdout();
    assert!(stdout.starts_with("block-node/upgrade\n"), "{stdout}");
    assert!(stdout.contains("State:"), "{stdout}");
    assert!(stdout.contains("Component NOT READY"), "{stdout}");
    assert!(
        stdout.contains("UpgradeDirOwnershipCheckFailed"),
        "{stdout}"
    );
    assert!(stdout.contains("sudo chown weaver"), "{stdout}");

    let out = ctl(&daemon, &["describe", "consensus-node/migration"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let stdout = out.stdout();
    assert!(
        stdout.contains("running since 2026-01-01T00:00:00Z ("),
        "{stdout}"
    );
    assert!(stdout.contains("Restarts:") && stdout.contains("Consecutive crashes:"));
    assert!(!stdout.contains("NOT READY"), "{stdout}");
}

#[test]
fn describe_finds_a_unique_monitor_without_its_component_and_refuses_an_ambiguous_one() {
    let (_dir, daemon) = serve(NESTED);
    let out = ctl(&daemon, &["describe", "migration"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout().starts_with("consensus-node/migration\n"));

    let out = ctl(&daemon, &["describe", "upgrade"]);
    assert_eq!(out.code, Some(2));
    assert!(
        out.stderr().contains("COMPONENT/MONITOR"),
        "{}",
        out.stderr()
    );

    let out = ctl(&daemon, &["describe", "nope"]);
    assert_eq!(out.code, Some(2));
    assert!(
        out.stderr()
            .contains("it has: block-node/traffic-shaper, block-node/upgrade"),
        "{}",
        out.stderr()
    );
}

#[test]
fn describe_tolerates_missing_fields_and_shows_unknown_ones() {
    let (_dir, daemon) =
        serve(r#"{"lone":{"state":"running","subtasks":{"a":{"state":"running"}}}}"#);
    let out = ctl(&daemon, &["describe", "lone"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(
        out.stdout(),
        "lone\n  State:               running\n  subtasks:            {\"a\":{\"state\":\"running\"}}\n"
    );

    let (_dir, daemon) = serve(FLAT);
    let out = ctl(&daemon, &["describe", "db"]);
    assert_eq!(out.code, Some(1));
    let stdout = out.stdout();
    for field in [
        "Reason:",
        "DbDown",
        "Message:",
        "connection refused",
        "Resolution:",
        "Since:",
    ] {
        assert!(stdout.contains(field), "{field} missing: {stdout}");
    }
}

#[test]
fn on_a_terminal_the_table_gains_the_message_cut_to_the_width() {
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
        && common::skip("`script` (util-linux/bsdutils) is not installed")
    {
        return;
    }
    let long = "x".repeat(300);
    let doc = FLAT.replace("connection refused", &format!("connection refused {long}"));
    let (_dir, daemon) = serve(&doc);
    let inner = format!(
        "stty cols 100 rows 20; {} status --socket {}",
        env!("CARGO_BIN_EXE_daemonctl"),
        daemon.socket.display()
    );
    let out = std::process::Command::new("script")
        .args(["-qefc", &inner, "/dev/null"])
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n");
    let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    assert!(lines[0].contains("MESSAGE"), "{text}");
    assert!(
        lines[1].contains("connection refused xxx") && lines[1].contains('…'),
        "{text}"
    );
    for line in &lines {
        assert!(
            line.chars().count() <= 100,
            "{} columns: {line}",
            line.chars().count()
        );
    }
}
