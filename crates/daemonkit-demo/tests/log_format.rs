//! `--log-format`: which records go where, decided by `JOURNAL_STREAM` against the real
//! stderr of a real demo process. (The journal side itself is checked under a real
//! systemd and journald in `systemd_e2e.rs`.)

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const DEMO: &str = env!("CARGO_BIN_EXE_daemonkit-demo");

/// A demo whose stderr is a file, so the test knows its device and inode.
struct Run {
    child: Child,
    stderr: std::path::PathBuf,
    dir: tempfile::TempDir,
}

impl Run {
    /// Starts the demo with `args`; `journal_stream` picks what `JOURNAL_STREAM` names:
    /// `Some(true)` its own stderr, `Some(false)` another file, `None` nothing.
    fn start(args: &[&str], journal_stream: Option<bool>) -> Run {
        let dir = tempfile::tempdir().unwrap();
        let stderr = dir.path().join("stderr");
        let other = dir.path().join("other");
        let file = std::fs::File::create(&stderr).unwrap();
        std::fs::write(&other, "").unwrap();
        let mut command = Command::new(DEMO);
        command
            .arg("--socket")
            .arg(dir.path().join("run/control.sock"))
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .args(args)
            .env_remove("NOTIFY_SOCKET")
            .env_remove("LISTEN_FDS")
            .env_remove("WATCHDOG_USEC")
            .env_remove("JOURNAL_STREAM")
            .stdout(Stdio::null())
            .stderr(file);
        if let Some(own) = journal_stream {
            let named = if own { &stderr } else { &other };
            let meta = std::fs::metadata(named).unwrap();
            command.env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()));
        }
        let child = command.spawn().expect("start daemonkit-demo");
        Run { child, stderr, dir }
    }

    /// Waits (at most 10 s) until the control socket exists (start-up is past logging's
    /// choice), stops the demo and returns every stderr line parsed as JSON
    /// (`Value::Null` for a line that is not).
    fn stop_when_serving(mut self) -> Vec<Value> {
        let socket = self.dir.path().join("run/control.sock");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            assert!(
                Instant::now() < deadline,
                "the demo never bound its socket; stderr:\n{}",
                std::fs::read_to_string(&self.stderr).unwrap()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        self.stop();
        read_lines(&self.stderr)
    }

    fn stop(&mut self) {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "{status}");
    }
}

fn read_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or(Value::Null))
        .collect()
}

/// Whether this machine runs journald (then records sent to it leave stderr; without it,
/// the demo falls back to JSON on stderr and says so).
fn journal_socket_exists() -> bool {
    Path::new("/run/systemd/journal/socket").exists()
}

#[test]
fn auto_logs_json_when_journal_stream_names_another_file() {
    let lines = Run::start(&[], Some(false)).stop_when_serving();
    assert!(lines.iter().all(|v| v.is_object()), "{lines:#?}");
    assert!(
        !lines.iter().any(|v| v["reason"] == "JournaldUnavailable"),
        "{lines:#?}"
    );
    assert_eq!(lines[0]["reason"], "DemoStarting", "{lines:#?}");
}

#[test]
fn auto_logs_json_without_journal_stream() {
    let lines = Run::start(&[], None).stop_when_serving();
    assert!(lines.iter().all(|v| v.is_object()), "{lines:#?}");
    assert_eq!(lines[0]["reason"], "DemoStarting", "{lines:#?}");
}

#[test]
fn auto_chooses_the_journal_when_stderr_is_the_journal_stream() {
    let lines = Run::start(&[], Some(true)).stop_when_serving();
    if journal_socket_exists() {
        // Every record went to this machine's journal, none to stderr.
        assert!(
            lines.iter().all(|v| v.get("reason").is_none()),
            "{lines:#?}"
        );
        return;
    }
    // No journald here: the demo says it tried and fell back to JSON on stderr.
    assert_eq!(lines[0]["reason"], "JournaldUnavailable", "{lines:#?}");
    assert_eq!(lines[0]["level"], "WARN");
    assert!(lines[1..].iter().all(|v| v.is_object()), "{lines:#?}");
}

#[test]
fn json_is_kept_when_asked_for_even_on_the_journal_stream() {
    let lines = Run::start(&["--log-format", "json"], Some(true)).stop_when_serving();
    assert!(
        !lines.iter().any(|v| v["reason"] == "JournaldUnavailable"),
        "{lines:#?}"
    );
    assert_eq!(lines[0]["reason"], "DemoStarting", "{lines:#?}");
}

#[test]
fn journald_asked_for_goes_to_the_journal_or_falls_back_to_json_and_says_so() {
    let lines = Run::start(&["--log-format", "journald"], None).stop_when_serving();
    if journal_socket_exists() {
        assert!(
            lines.iter().all(|v| v.get("reason").is_none()),
            "{lines:#?}"
        );
        return;
    }
    assert_eq!(lines[0]["reason"], "JournaldUnavailable", "{lines:#?}");
    assert!(
        lines[0]["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{lines:#?}"
    );
}

#[test]
fn an_unknown_log_format_is_refused() {
    let out = Command::new(DEMO)
        .args(["--log-format", "xml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("auto") && err.contains("journald"), "{err}");
}

#[test]
fn help_lists_the_log_formats() {
    let out = Command::new(DEMO).arg("--help").output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for text in ["--log-format", "auto", "json", "journald", "JOURNAL_STREAM"] {
        assert!(help.contains(text), "{text} missing from --help:\n{help}");
    }
}
