//! Components in a real child process (`sd_daemon_child components …`, from `daemonkit-test-helpers`):
//! background prerequisite probes that never crash-loop, their `since`, the nested
//! `/status` document, `/ready`, and monitors that wait for their probe.
#![cfg(feature = "daemon")]

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

struct Daemon {
    child: Child,
    socket: PathBuf,
    dir: tempfile::TempDir,
}

impl Daemon {
    fn start(flags: &[&str]) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("control.sock");
        let flags: Vec<String> = flags
            .iter()
            .map(|f| f.replace("$DIR", &dir.path().display().to_string()))
            .collect();
        let child = Command::new(common::helper("sd_daemon_child"))
            .arg(&socket)
            .arg("components")
            .args(&flags)
            .env_remove("NOTIFY_SOCKET")
            .env_remove("LISTEN_FDS")
            .env_remove("WATCHDOG_USEC")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let daemon = Daemon { child, socket, dir };
        // The socket answers before any probe has run: READY=1 does not wait for probes.
        daemon.wait("the socket to answer", |_| true);
        daemon
    }

    fn get(&self, path: &str) -> (u16, Value) {
        let mut stream = UnixStream::connect(&self.socket).unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let code = response[9..12].parse().unwrap();
        let body = response.split_once("\r\n\r\n").unwrap().1;
        (code, serde_json::from_str(body).unwrap_or(Value::Null))
    }

    /// Polls `/status` until `want` holds (at most 10 s); returns that document.
    fn wait(&self, what: &str, want: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if UnixStream::connect(&self.socket).is_ok() {
                let (_, status) = self.get("/status");
                if want(&status) {
                    return status;
                }
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn since(status: &Value) -> &str {
    status["probe_errors"]["alpha"]["since"]
        .as_str()
        .unwrap_or("")
}

fn state<'a>(status: &'a Value, component: &str, monitor: &str) -> &'a str {
    status["components"][component]["monitors"][monitor]["state"]
        .as_str()
        .unwrap_or("")
}

#[test]
fn a_failing_prerequisite_is_shown_with_a_kept_since_until_it_passes() {
    let daemon = Daemon::start(&["probe-file=$DIR/marker"]);
    let first = daemon.wait("alpha's probe error", |s| !since(s).is_empty());
    let error = &first["probe_errors"]["alpha"];
    assert_eq!(error["reason"], "MarkerMissing", "{first}");
    assert_eq!(error["resolution"], "touch the marker file", "{first}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("does not exist"),
        "{first}"
    );
    // Probe-less beta runs; alpha's monitor waits for its probe.
    assert_eq!(state(&first, "beta", "idle"), "running", "{first}");
    assert_eq!(state(&first, "alpha", "worker"), "stopped", "{first}");

    // Three more rounds (every 100 ms): the same since.
    std::thread::sleep(Duration::from_millis(350));
    let later = daemon.get("/status").1;
    assert_eq!(since(&later), since(&first), "{later}");
    let (code, ready) = daemon.get("/ready");
    assert_eq!(code, 503, "{ready}");
    let named = ready["errors"].as_array().unwrap().iter().any(|e| {
        e["reason"] == "MarkerMissing" && e["message"].as_str().unwrap().contains("alpha")
    });
    assert!(named, "{ready}");

    // Fix the host: within a round the error is gone and alpha's monitor runs.
    std::fs::write(daemon.path("marker"), b"").unwrap();
    let fixed = daemon.wait("alpha to start", |s| {
        state(s, "alpha", "worker") == "running"
    });
    assert!(fixed.get("probe_errors").is_none(), "{fixed}");
    let (code, ready) = daemon.get("/ready");
    assert_eq!(code, 200, "{ready}");

    // A new failure is a new streak: a later since.
    std::fs::remove_file(daemon.path("marker")).unwrap();
    let again = daemon.wait("alpha's probe error again", |s| !since(s).is_empty());
    assert!(since(&again) > since(&first), "{again} vs {first}");
    // Monitors already started keep running through a later probe failure.
    assert_eq!(state(&again, "alpha", "worker"), "running", "{again}");
}

#[test]
fn a_panicking_probe_is_a_probe_failure_and_is_retried() {
    let daemon = Daemon::start(&["probe-panic"]);
    let status = daemon.wait("alpha's probe error", |s| !since(s).is_empty());
    assert_eq!(
        status["probe_errors"]["alpha"]["reason"], "ProbePanicked",
        "{status}"
    );
    assert!(
        status["probe_errors"]["alpha"]["message"]
            .as_str()
            .unwrap()
            .contains("probe exploded"),
        "{status}"
    );
    // The loop lives on: still serving, still the same streak after more rounds.
    std::thread::sleep(Duration::from_millis(250));
    let (code, later) = daemon.get("/status");
    assert_eq!(code, 200);
    assert_eq!(since(&later), since(&status));
}

#[test]
fn a_probe_that_hangs_is_cut_by_its_timeout() {
    let daemon = Daemon::start(&["probe-hang"]);
    let status = daemon.wait("alpha's probe error", |s| !since(s).is_empty());
    assert_eq!(
        status["probe_errors"]["alpha"]["reason"], "ComponentProbeTimeout",
        "{status}"
    );
    assert!(daemon.get("/health").0 == 200);
}

#[test]
fn metrics_carry_the_component_label() {
    let daemon = Daemon::start(&[]);
    daemon.wait("beta running", |s| state(s, "beta", "idle") == "running");
    let mut stream = UnixStream::connect(&daemon.socket).unwrap();
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    assert!(
        text.contains("daemonkit_monitor_restarts_total{component=\"beta\",monitor=\"idle\"} 0"),
        "{text}"
    );
}
