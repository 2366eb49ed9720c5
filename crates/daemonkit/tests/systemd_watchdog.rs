//! The systemd watchdog keepalive, against a real datagram socket standing in for systemd.
#![cfg(feature = "systemd")]

mod common;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use daemonkit::Error;
use daemonkit::systemd::notify::Notifier;
use daemonkit::systemd::watchdog::Watchdog;
use tokio::net::UnixDatagram;
use tokio_util::sync::CancellationToken;

/// A datagram socket bound in a fresh temporary directory, as systemd's notify socket.
struct Manager {
    socket: UnixDatagram,
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Manager {
    /// Binds the socket; must be called inside a tokio runtime.
    fn bind() -> Manager {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind the stand-in notify socket");
        Manager {
            socket,
            path,
            _dir: dir,
        }
    }

    fn notifier(&self) -> Notifier {
        Notifier::new(&self.path).expect("a valid notify address")
    }

    /// Waits up to `within` for one datagram.
    async fn recv(&self, within: Duration) -> Option<String> {
        let mut buf = [0u8; 256];
        match tokio::time::timeout(within, self.socket.recv(&mut buf)).await {
            Ok(Ok(n)) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Ok(Err(e)) => panic!("reading the notify socket failed: {e}"),
            Err(_elapsed) => None,
        }
    }

    /// Waits for one datagram; cancel safe.
    async fn recv_one(&self) -> String {
        let mut buf = [0u8; 256];
        let n = self
            .socket
            .recv(&mut buf)
            .await
            .expect("reading the notify socket");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    /// Takes every datagram already queued (stopping once none arrives for 50 ms).
    async fn drain(&self) -> Vec<String> {
        let mut got = Vec::new();
        while let Some(datagram) = self.recv(Duration::from_millis(50)).await {
            got.push(datagram);
        }
        got
    }
}

/// Runs `watchdog` for `window`, then cancels it and returns what arrived meanwhile.
///
/// Datagrams are read while the watchdog runs: the kernel queues only a few
/// (`net.unix.max_dgram_qlen`, 10 by default) before a sender blocks.
async fn pings_during(manager: &Manager, watchdog: Watchdog, window: Duration) -> Vec<String> {
    let cancel = CancellationToken::new();
    let task = tokio::spawn(watchdog.run(cancel.clone()));
    let mut got = Vec::new();
    let deadline = tokio::time::sleep(window);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            () = &mut deadline => break,
            datagram = manager.recv_one() => got.push(datagram),
        }
    }
    cancel.cancel();
    task.await.expect("the watchdog task does not panic");
    got.extend(manager.drain().await);
    got
}

// ===== keepalive schedule =====

#[test]
fn pings_every_half_interval() {
    let watchdog = Watchdog::new(Duration::from_millis(100), Notifier::disabled()).unwrap();
    assert_eq!(watchdog.interval(), Some(Duration::from_millis(100)));
    assert_eq!(watchdog.ping_every(), Some(Duration::from_millis(50)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_rate_over_a_window_matches_half_the_interval() {
    let manager = Manager::bind();
    let watchdog = Watchdog::new(Duration::from_millis(100), manager.notifier()).unwrap();

    // One ping at once, then one every 50 ms: about 21 in one second. Pinging every whole
    // interval would give about 11, every quarter about 41; the bounds leave room for a
    // loaded machine delaying ticks.
    let pings = pings_during(&manager, watchdog, Duration::from_secs(1)).await;
    assert!(pings.iter().all(|p| p == "WATCHDOG=1"), "{pings:?}");
    assert!(
        (14..=26).contains(&pings.len()),
        "expected about 21 pings in 1 s at a 50 ms cadence, got {}",
        pings.len()
    );
}

#[tokio::test]
async fn first_ping_is_sent_at_once() {
    let manager = Manager::bind();
    // A 10-minute interval: any ping seen within the test comes from the start.
    let watchdog = Watchdog::new(Duration::from_secs(600), manager.notifier()).unwrap();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(watchdog.run(cancel.clone()));

    let first = manager.recv(Duration::from_secs(5)).await;
    cancel.cancel();
    task.await.unwrap();
    assert_eq!(first.as_deref(), Some("WATCHDOG=1"));
}

#[tokio::test]
async fn cancelling_stops_the_pings() {
    let manager = Manager::bind();
    let watchdog = Watchdog::new(Duration::from_millis(40), manager.notifier()).unwrap();
    let before = pings_during(&manager, watchdog, Duration::from_millis(100)).await;
    assert!(!before.is_empty(), "the watchdog pinged while running");

    // Five ping periods after cancellation, nothing more has arrived.
    assert_eq!(manager.recv(Duration::from_millis(100)).await, None);
}

#[tokio::test]
async fn disabled_watchdog_returns_at_once() {
    let never = CancellationToken::new();
    tokio::time::timeout(Duration::from_secs(5), Watchdog::disabled().run(never))
        .await
        .expect("a disabled watchdog returns without being cancelled");
}

#[tokio::test]
async fn watchdog_without_notify_socket_is_not_enabled_and_returns_at_once() {
    let watchdog = Watchdog::new(Duration::from_millis(20), Notifier::disabled()).unwrap();
    assert!(!watchdog.is_enabled());
    tokio::time::timeout(
        Duration::from_secs(5),
        watchdog.run(CancellationToken::new()),
    )
    .await
    .expect("a watchdog with nowhere to ping returns without being cancelled");
}

#[test]
fn zero_interval_is_rejected() {
    let error = Watchdog::new(Duration::ZERO, Notifier::disabled()).unwrap_err();
    assert!(
        matches!(error, Error::InvalidWatchdogInterval { interval, .. } if interval.is_zero()),
        "{error:?}"
    );
}

// ===== is-alive gate =====

#[test]
fn is_alive_false_withholds_every_ping_and_says_why() {
    // A current-thread runtime driven from this thread: the watchdog's events are this
    // thread's.
    let logs = common::capture();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    let pings = runtime.block_on(async {
        let manager = Manager::bind();
        let watchdog = Watchdog::new(Duration::from_millis(40), manager.notifier())
            .unwrap()
            .with_is_alive(|| false);
        pings_during(&manager, watchdog, Duration::from_millis(200)).await
    });

    assert_eq!(pings, Vec::<String>::new());
    let withheld = logs.count("WatchdogWithheld");
    assert!(
        withheld >= 2,
        "expected a WatchdogWithheld warning per withheld ping, got {withheld}"
    );
}

#[tokio::test]
async fn is_alive_gate_resumes_pings_once_alive_again() {
    let manager = Manager::bind();
    let alive = Arc::new(AtomicBool::new(false));
    let watchdog = Watchdog::new(Duration::from_millis(40), manager.notifier())
        .unwrap()
        .with_is_alive({
            let alive = Arc::clone(&alive);
            move || alive.load(Ordering::SeqCst)
        });
    let cancel = CancellationToken::new();
    let task = tokio::spawn(watchdog.run(cancel.clone()));

    assert_eq!(
        manager.recv(Duration::from_millis(150)).await,
        None,
        "no ping while the check fails"
    );
    alive.store(true, Ordering::SeqCst);
    let resumed = manager.recv(Duration::from_secs(5)).await;
    cancel.cancel();
    task.await.unwrap();
    assert_eq!(resumed.as_deref(), Some("WATCHDOG=1"));
}

// ===== WATCHDOG_USEC / WATCHDOG_PID, as values =====

const OWN_PID: u32 = 4242;

#[test]
fn unset_watchdog_usec_means_disabled() {
    let watchdog = Watchdog::from_env_values(None, None, OWN_PID, Notifier::disabled()).unwrap();
    assert_eq!(watchdog.interval(), None);
    let watchdog =
        Watchdog::from_env_values(Some(""), None, OWN_PID, Notifier::disabled()).unwrap();
    assert_eq!(watchdog.interval(), None);
}

#[test]
fn watchdog_usec_sets_the_interval() {
    let watchdog =
        Watchdog::from_env_values(Some("30000000"), None, OWN_PID, Notifier::disabled()).unwrap();
    assert_eq!(watchdog.interval(), Some(Duration::from_secs(30)));
    assert_eq!(watchdog.ping_every(), Some(Duration::from_secs(15)));
}

#[test]
fn watchdog_pid_naming_another_process_disables_the_watchdog() {
    let watchdog =
        Watchdog::from_env_values(Some("30000000"), Some("1"), OWN_PID, Notifier::disabled())
            .unwrap();
    assert_eq!(watchdog.interval(), None);
}

#[test]
fn watchdog_pid_naming_this_process_keeps_the_watchdog() {
    let watchdog = Watchdog::from_env_values(
        Some("30000000"),
        Some("4242"),
        OWN_PID,
        Notifier::disabled(),
    )
    .unwrap();
    assert_eq!(watchdog.interval(), Some(Duration::from_secs(30)));
}

#[test]
fn malformed_watchdog_usec_is_an_error() {
    for value in ["garbage", "0", "-5", "1.5"] {
        let error = Watchdog::from_env_values(Some(value), None, OWN_PID, Notifier::disabled())
            .expect_err(value);
        assert!(
            matches!(&error, Error::InvalidEnv { variable: "WATCHDOG_USEC", value: v, .. } if v == value),
            "{value}: {error:?}"
        );
    }
}

#[test]
fn malformed_watchdog_pid_is_an_error() {
    let error = Watchdog::from_env_values(
        Some("30000000"),
        Some("self"),
        OWN_PID,
        Notifier::disabled(),
    )
    .unwrap_err();
    assert!(
        matches!(
            &error,
            Error::InvalidEnv {
                variable: "WATCHDOG_PID",
                ..
            }
        ),
        "{error:?}"
    );
}

// ===== from_env, through a real child process =====

/// Runs `command` to completion, reading the datagrams it sends to `manager` meanwhile
/// (a sender blocks once a few are queued unread).
async fn run_collecting(manager: &Manager, command: Command) -> (Output, Vec<String>) {
    let child = tokio::process::Command::from(command)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the child");
    let output = child.wait_with_output();
    tokio::pin!(output);
    let mut got = Vec::new();
    let output = loop {
        tokio::select! {
            output = &mut output => break output.expect("wait for the child"),
            datagram = manager.recv_one() => got.push(datagram),
        }
    };
    got.extend(manager.drain().await);
    (output, got)
}

/// Runs sd_notify_child for 300 ms of watchdog time with NOTIFY_SOCKET pointing at
/// `manager` and a 40 ms WATCHDOG_USEC, plus whatever `configure` adds; returns its stdout
/// and the datagrams it sent.
async fn run_child(
    manager: &Manager,
    configure: impl FnOnce(&mut Command),
) -> (String, Vec<String>) {
    let mut command = Command::new(common::helper("sd_notify_child"));
    command
        .args(["--watch-ms", "300"])
        .env("NOTIFY_SOCKET", &manager.path)
        .env("WATCHDOG_USEC", "40000")
        .env_remove("WATCHDOG_PID");
    configure(&mut command);
    let (output, got) = run_collecting(manager, command).await;
    assert!(
        output.status.success(),
        "sd_notify_child failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    (String::from_utf8_lossy(&output.stdout).into_owned(), got)
}

#[tokio::test]
async fn child_with_watchdog_usec_pings() {
    let manager = Manager::bind();
    let (stdout, got) = run_child(&manager, |_| {}).await;

    assert!(
        stdout.contains("watchdog: enabled interval_us=40000"),
        "{stdout}"
    );
    assert_eq!(got.first().map(String::as_str), Some("READY=1"), "{got:?}");
    assert_eq!(
        got.last().map(String::as_str),
        Some("STOPPING=1"),
        "{got:?}"
    );
    let pings = got.iter().filter(|p| *p == "WATCHDOG=1").count();
    assert!(
        pings >= 3,
        "expected pings every 20 ms for 300 ms, got {got:?}"
    );
}

#[tokio::test]
async fn child_ignores_a_watchdog_meant_for_another_process() {
    let manager = Manager::bind();
    // The variables as a watched daemon's child inherits them: WATCHDOG_PID is the parent.
    let parent = std::process::id().to_string();
    let (stdout, got) = run_child(&manager, |c| {
        c.env("WATCHDOG_PID", &parent);
    })
    .await;

    assert!(stdout.contains("watchdog: disabled"), "{stdout}");
    assert_eq!(got, ["READY=1", "STOPPING=1"]);
}

#[tokio::test]
async fn child_named_by_watchdog_pid_pings() {
    let manager = Manager::bind();
    // `exec` keeps the shell's pid, so `$$` is the pid sd_notify_child runs as.
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(r#"WATCHDOG_PID=$$ exec "$0" --watch-ms 300"#)
        .arg(common::helper("sd_notify_child"))
        .env("NOTIFY_SOCKET", &manager.path)
        .env("WATCHDOG_USEC", "40000");
    let (output, got) = run_collecting(&manager, command).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("watchdog: enabled"), "{stdout}");
    assert!(got.iter().any(|p| p == "WATCHDOG=1"), "{got:?}");
}

#[tokio::test]
async fn child_with_malformed_watchdog_usec_fails_with_the_variable_named() {
    let manager = Manager::bind();
    let mut command = Command::new(common::helper("sd_notify_child"));
    command
        .env("NOTIFY_SOCKET", &manager.path)
        .env("WATCHDOG_USEC", "soon")
        .env_remove("WATCHDOG_PID");
    let (output, _) = run_collecting(&manager, command).await;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("WATCHDOG_USEC"), "{stderr}");
}
