//! The Daemon runner in a real child process (`daemonkit-test-helpers`'s `sd_daemon_child`): real
//! signals, a real sd_notify datagram socket, real socket activation.
#![cfg(feature = "daemon")]

mod common;

use std::io::{Read, Write};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child daemon with a notify socket of its own.
struct Child_ {
    child: Child,
    notify: UnixDatagram,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Child_ {
    fn start(flags: &[&str]) -> Child_ {
        Child_::start_in(tempfile::tempdir().unwrap(), flags, &[])
    }

    /// Starts a child in `dir` (its socket `dir/control.sock`) with extra environment.
    fn start_in(dir: tempfile::TempDir, flags: &[&str], env: &[(&str, &str)]) -> Child_ {
        let notify_path = dir.path().join("notify.sock");
        let notify = UnixDatagram::bind(&notify_path).unwrap();
        notify
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let socket = dir.path().join("control.sock");
        let child = Command::new(common::helper("sd_daemon_child"))
            .arg(&socket)
            .args(flags)
            .env("NOTIFY_SOCKET", &notify_path)
            .env_remove("LISTEN_FDS")
            .env_remove("WATCHDOG_USEC")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Child_ {
            child,
            notify,
            socket,
            _dir: dir,
        }
    }

    /// Receives notify messages until one contains `line`; returns all received.
    fn until(&self, line: &str) -> Vec<String> {
        let mut buf = [0u8; 4096];
        let mut got = Vec::new();
        loop {
            let n = self
                .notify
                .recv(&mut buf)
                .unwrap_or_else(|e| panic!("waiting for {line}: {e}; got {got:?}"));
            let message = String::from_utf8_lossy(&buf[..n]).into_owned();
            let found = message.lines().any(|l| l == line);
            got.push(message);
            if found {
                return got;
            }
        }
    }

    fn signal(&self, signal: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).unwrap();
        rustix::process::kill_process(pid, signal).unwrap();
    }

    /// Waits for exit (at most `limit`) and returns (code, stderr).
    fn finish(mut self, limit: Duration) -> (i32, String) {
        let start = Instant::now();
        while self.child.try_wait().unwrap().is_none() {
            assert!(start.elapsed() < limit, "still running after {limit:?}");
            std::thread::sleep(Duration::from_millis(5));
        }
        let mut stderr = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        (self.child.wait().unwrap().code().unwrap_or(-1), stderr)
    }
}

impl Drop for Child_ {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn health(socket: &Path) -> String {
    let mut stream = UnixStream::connect(socket).unwrap();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn ready_is_sent_once_the_socket_serves_and_stopping_on_sigterm() {
    let daemon = Child_::start(&[]);
    daemon.until("READY=1");
    assert!(health(&daemon.socket).starts_with("HTTP/1.1 200"));
    daemon.signal(rustix::process::Signal::TERM);
    daemon.until("STOPPING=1");
    let socket = daemon.socket.clone();
    let (code, stderr) = daemon.finish(Duration::from_secs(5));
    assert_eq!(code, 0, "{stderr}");
    assert!(!socket.exists(), "the socket is removed at shutdown");
}

#[test]
fn a_failed_probe_stops_start_up_with_reason_and_resolution() {
    let daemon = Child_::start(&["fail-probe"]);
    let messages = daemon.until("STATUS=start-up probe failed: DataDirNotOwned: /var/lib/demo is owned by root, expected app (resolution: sudo chown app:app /var/lib/demo)");
    assert!(
        !messages.iter().any(|m| m.contains("READY=1")),
        "{messages:?}"
    );
    let socket = daemon.socket.clone();
    let (code, stderr) = daemon.finish(Duration::from_secs(5));
    assert_eq!(code, 69, "{stderr}");
    assert!(
        stderr.contains("start-up probe failed: DataDirNotOwned: /var/lib/demo is owned by root"),
        "{stderr}"
    );
    assert!(
        stderr.contains("resolution: sudo chown app:app /var/lib/demo"),
        "{stderr}"
    );
    assert!(!socket.exists(), "no socket when start-up failed");
}

#[test]
fn a_monitor_that_ignores_cancellation_is_named_and_the_process_still_exits() {
    let daemon = Child_::start(&["stubborn"]);
    daemon.until("READY=1");
    daemon.signal(rustix::process::Signal::TERM);
    let (code, stderr) = daemon.finish(Duration::from_secs(5));
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("\"reason\":\"MonitorShutdownTimeout\""),
        "{stderr}"
    );
    assert!(
        stderr.contains("monitors did not stop within the shutdown timeout: stubborn"),
        "{stderr}"
    );
    assert!(!stderr.contains("worker\n"), "{stderr}");
}

#[test]
fn sighup_runs_the_reload_hook_between_reloading_and_ready() {
    let daemon = Child_::start(&["reload"]);
    daemon.until("READY=1");
    daemon.signal(rustix::process::Signal::HUP);
    let messages = daemon.until("READY=1");
    let reloading = messages
        .iter()
        .find(|m| m.lines().any(|l| l == "RELOADING=1"))
        .unwrap_or_else(|| panic!("no RELOADING=1 in {messages:?}"));
    assert!(
        reloading.lines().any(|l| l.starts_with("MONOTONIC_USEC=")),
        "{reloading}"
    );
    daemon.signal(rustix::process::Signal::TERM);
    let (code, stderr) = daemon.finish(Duration::from_secs(5));
    assert_eq!(code, 0);
    assert!(stderr.contains("\"reason\":\"ReloadHookRan\""), "{stderr}");
}

#[test]
fn serves_the_socket_systemd_passed() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("activated.sock");
    let notify_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // systemd-socket-activate binds the socket and passes it as fd 3 (LISTEN_FDS=1); the
    // daemon's own socket path (an argument) is never bound.
    let own_path = dir.path().join("unused.sock");
    let mut child = Command::new("systemd-socket-activate")
        .arg("--listen")
        .arg(&socket)
        .arg(format!("--setenv=NOTIFY_SOCKET={}", notify_path.display()))
        .arg(common::helper("sd_daemon_child"))
        .arg(&own_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("systemd-socket-activate (Debian package systemd) must be installed");
    // The activator accepts nothing itself: the first connection starts the daemon.
    let start = Instant::now();
    while !socket.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "activator did not bind"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let response = health(&socket);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        !own_path.exists(),
        "the daemon bound its own socket instead of the passed one"
    );
    let mut buf = [0u8; 256];
    let n = notify.recv(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).contains("READY=1"));
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(
        socket.exists(),
        "a passed socket belongs to systemd: not removed"
    );
}

/// SIGTERM to a running child; returns how long it took to exit, its code and stderr.
fn stop_and_time(daemon: Child_) -> (Duration, i32, String) {
    let start = Instant::now();
    daemon.signal(rustix::process::Signal::TERM);
    let (code, stderr) = daemon.finish(Duration::from_secs(10));
    (start.elapsed(), code, stderr)
}

#[test]
fn a_monitor_blocking_the_only_thread_cannot_hold_the_process_past_the_bound() {
    let daemon = Child_::start(&["block"]);
    daemon.until("READY=1");
    // The blocker starts blocking 100 ms after it starts: from then on the runtime
    // (current-thread, as `run_main` builds it) answers nothing and handles no signal.
    std::thread::sleep(Duration::from_millis(300));
    let (took, code, stderr) = stop_and_time(daemon);
    // Shutdown timeout 200 ms + SHUTDOWN_MARGIN 200 ms; before 0.2 the process never
    // exited. The bound below leaves room for a loaded machine, not for a hang.
    assert!(took < Duration::from_secs(2), "took {took:?}: {stderr}");
    assert_eq!(
        code,
        i32::from(daemonkit::Exit::SHUTDOWN_TIMED_OUT),
        "{stderr}"
    );
    assert!(stderr.contains("\"reason\":\"ShutdownForced\""), "{stderr}");
}

#[test]
fn hung_spawn_blocking_work_cannot_hold_the_process_past_the_bound() {
    let daemon = Child_::start(&["hang-blocking"]);
    daemon.until("READY=1");
    let (took, code, stderr) = stop_and_time(daemon);
    assert!(took < Duration::from_secs(2), "took {took:?}: {stderr}");
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("\"reason\":\"MonitorShutdownTimeout\",\"monitor\":\"hung-io\""),
        "{stderr}"
    );
}

#[test]
fn a_second_instance_fails_on_the_socket_before_any_monitor_runs() {
    let first = Child_::start(&[]);
    first.until("READY=1");
    let dir = tempfile::tempdir().unwrap();
    let mut second = Command::new(common::helper("sd_daemon_child"))
        .arg(&first.socket)
        .arg("fail-probe")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("LISTEN_FDS")
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = second.wait().unwrap();
    let mut stderr = String::new();
    second
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(75), "{stderr}");
    assert!(stderr.contains("another process is serving"), "{stderr}");
    // The socket comes before the probes and the monitors: neither ran.
    assert!(!stderr.contains("MonitorStarted"), "{stderr}");
    assert!(!stderr.contains("StartupProbeFailed"), "{stderr}");
    assert!(
        health(&first.socket).starts_with("HTTP/1.1 200"),
        "the first instance still serves"
    );
}

#[test]
fn a_bad_systemd_environment_is_a_configuration_error_before_anything_runs() {
    for (variable, value) in [
        ("WATCHDOG_USEC", "soon"),
        ("NOTIFY_SOCKET", "relative/notify.sock"),
        ("LISTEN_FDS", "lots"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("control.sock");
        // Through a shell, so LISTEN_PID can name the daemon's own pid (`exec` keeps it).
        let child = Command::new("sh")
            .arg("-c")
            .arg("export LISTEN_PID=$$; exec \"$0\" \"$1\"")
            .arg(common::helper("sd_daemon_child"))
            .arg(&socket)
            .env_remove("NOTIFY_SOCKET")
            .env_remove("LISTEN_FDS")
            .env_remove("WATCHDOG_USEC")
            .env(variable, value)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let daemon = Child_ {
            child,
            notify: UnixDatagram::unbound().unwrap(),
            socket: socket.clone(),
            _dir: dir,
        };
        let (code, stderr) = daemon.finish(Duration::from_secs(5));
        assert_eq!(code, 78, "{variable}={value}: {stderr}");
        assert!(stderr.contains("invalid configuration"), "{stderr}");
        assert!(!stderr.contains("MonitorStarted"), "{stderr}");
        assert!(!socket.exists(), "{variable}: nothing touched on disk");
    }
}

#[test]
fn a_panicking_reload_hook_is_a_failed_reload_and_the_daemon_keeps_serving() {
    let daemon = Child_::start(&["reload-panic"]);
    daemon.until("READY=1");
    daemon.signal(rustix::process::Signal::HUP);
    let messages = daemon.until("READY=1");
    assert!(
        messages
            .iter()
            .any(|m| m.lines().any(|l| l == "RELOADING=1")),
        "{messages:?}"
    );
    assert!(health(&daemon.socket).starts_with("HTTP/1.1 200"));
    daemon.signal(rustix::process::Signal::TERM);
    let (code, stderr) = daemon.finish(Duration::from_secs(5));
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("\"reason\":\"ReloadFailed\""), "{stderr}");
    assert!(stderr.contains("non-string panic payload"), "{stderr}");
}

#[test]
fn a_panicking_watchdog_alive_check_withholds_the_keepalive() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Child_::start_in(dir, &["alive-panic"], &[("WATCHDOG_USEC", "100000")]);
    let messages = daemon.until("READY=1");
    // Give the keepalive a few of its 50 ms periods: nothing may come.
    std::thread::sleep(Duration::from_millis(300));
    daemon.notify.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 256];
    let mut later = Vec::new();
    while let Ok(n) = daemon.notify.recv(&mut buf) {
        later.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    let all: Vec<_> = messages.iter().chain(&later).collect();
    assert!(!all.iter().any(|m| m.contains("WATCHDOG=1")), "{all:?}");
    assert!(health(&daemon.socket).starts_with("HTTP/1.1 200"));
    daemon.signal(rustix::process::Signal::TERM);
    let (_, stderr) = daemon.finish(Duration::from_secs(5));
    assert!(
        stderr.contains("\"reason\":\"WatchdogAlivePanicked\""),
        "{stderr}"
    );
}
