//! `daemonctl watch`: on a real pseudo-terminal (under `script`) and on a pipe, against a
//! fake daemon whose status changes between requests; stopped with SIGINT.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Answer, FakeDaemon, skip};

fn changing_daemon() -> (tempfile::TempDir, FakeDaemon) {
    let dir = tempfile::tempdir().unwrap();
    let running =
        br#"{"db":{"state":"running","restarts":0},"web":{"state":"running","restarts":0}}"#;
    let degraded = br#"{"db":{"state":"degraded","restarts":0,"error":{"reason":"DbDown","message":"m","since":"2026-01-01T00:00:00Z"}},"web":{"state":"running","restarts":0}}"#;
    let daemon = FakeDaemon::serve(
        &dir.path().join("control.sock"),
        Answer::Cycle(vec![running.to_vec(), degraded.to_vec()]),
    );
    (dir, daemon)
}

#[test]
fn on_a_terminal_it_redraws_highlights_changes_and_restores_the_cursor_on_sigint() {
    if Command::new("script").arg("--version").output().is_err()
        && skip("`script` (util-linux/bsdutils) is not installed")
    {
        return;
    }
    if Command::new("timeout").arg("--version").output().is_err()
        && skip("`timeout` (coreutils) is not installed")
    {
        return;
    }
    let (_dir, daemon) = changing_daemon();
    let inner = format!(
        "timeout --preserve-status -s INT 1 {} watch --interval 100ms --socket {}",
        env!("CARGO_BIN_EXE_daemonctl"),
        daemon.socket.display()
    );
    let out = Command::new("script")
        .args(["-qefc", &inner, "/dev/null"])
        .env("NO_COLOR", "1")
        .env("TERM", "xterm")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.starts_with("\x1b[?25l"),
        "cursor not hidden first: {text:?}"
    );
    assert!(
        text.trim_end().ends_with("\x1b[?25h"),
        "cursor not restored: {text:?}"
    );
    assert!(
        text.matches("\x1b[H\x1b[2J").count() >= 3,
        "not redrawn: {text:?}"
    );
    // db flips running <-> degraded: the changed state cell is in reverse video.
    assert!(text.contains("\x1b[7mdegraded\x1b[0m"), "{text:?}");
    assert!(text.contains("\x1b[7mrunning\x1b[0m"), "{text:?}");
    // web never changes: never highlighted.
    assert!(!text.contains("\x1b[7mweb"), "{text:?}");
}

#[test]
fn on_a_pipe_it_prints_one_plain_table_per_interval_and_exits_0_on_sigint() {
    let (_dir, daemon) = changing_daemon();
    let mut child = common::daemonctl()
        .args(["watch", "--interval", "50ms", "--socket"])
        .arg(&daemon.socket)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(400));
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::INT,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "watch did not stop on SIGINT");
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut text = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    assert_eq!(status.code(), Some(0), "{text}");
    assert!(!text.contains('\x1b'), "{text:?}");
    let tables = text.matches("Every 50ms: daemonctl status on").count();
    assert!(tables >= 3, "{text}");
    assert_eq!(text.matches("MONITOR").count(), tables, "{text}");
    assert!(
        text.contains("degraded") && text.contains("DbDown"),
        "{text}"
    );
}

#[test]
fn a_daemon_that_goes_away_is_reported_in_place_of_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = common::daemonctl()
        .args(["watch", "--interval", "50ms", "--socket"])
        .arg(dir.path().join("absent.sock"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    let mut text = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(text.contains("daemonctl: no control socket at"), "{text}");
}
