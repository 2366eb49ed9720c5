//! sd_notify: a real datagram socket stands in for systemd and receives the exact payloads.
#![cfg(feature = "systemd")]

mod common;

use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use daemonkit::Error;
use daemonkit::systemd::notify::{Notifier, State};

/// A datagram socket bound in a fresh temporary directory, as systemd's notify socket.
struct Manager {
    socket: UnixDatagram,
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Manager {
    fn bind() -> Manager {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind the stand-in notify socket");
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("set a read timeout");
        Manager {
            socket,
            path,
            _dir: dir,
        }
    }

    fn recv(&self) -> String {
        recv_from(&self.socket)
    }

    fn assert_nothing_queued(&self) {
        assert_nothing_queued(&self.socket);
    }
}

fn recv_from(socket: &UnixDatagram) -> String {
    let mut buf = [0u8; 4096];
    let n = socket.recv(&mut buf).expect("a notification arrives");
    String::from_utf8(buf[..n].to_vec()).expect("notifications are UTF-8")
}

fn assert_nothing_queued(socket: &UnixDatagram) {
    socket.set_nonblocking(true).expect("set non-blocking");
    let mut buf = [0u8; 4096];
    match socket.recv(&mut buf) {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
        Ok(n) => panic!(
            "expected no notification, got {:?}",
            String::from_utf8_lossy(&buf[..n])
        ),
        Err(e) => panic!("reading the notify socket failed: {e}"),
    }
}

/// CLOCK_MONOTONIC in microseconds, read independently of the crate under test.
fn monotonic_usec() -> u64 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    now.tv_sec as u64 * 1_000_000 + now.tv_nsec as u64 / 1_000
}

#[test]
fn ready_sends_exactly_ready_1() {
    let manager = Manager::bind();
    Notifier::new(&manager.path).unwrap().ready().unwrap();
    assert_eq!(manager.recv(), "READY=1");
}

#[test]
fn stopping_sends_exactly_stopping_1() {
    let manager = Manager::bind();
    Notifier::new(&manager.path).unwrap().stopping().unwrap();
    assert_eq!(manager.recv(), "STOPPING=1");
}

#[test]
fn watchdog_sends_exactly_watchdog_1() {
    let manager = Manager::bind();
    Notifier::new(&manager.path).unwrap().watchdog().unwrap();
    assert_eq!(manager.recv(), "WATCHDOG=1");
}

#[test]
fn status_sends_the_text() {
    let manager = Manager::bind();
    Notifier::new(&manager.path)
        .unwrap()
        .status("probing /var/lib/app: 3 of 4 passed")
        .unwrap();
    assert_eq!(manager.recv(), "STATUS=probing /var/lib/app: 3 of 4 passed");
}

#[test]
fn status_text_cannot_forge_other_states_with_newlines() {
    let manager = Manager::bind();
    Notifier::new(&manager.path)
        .unwrap()
        .status("failed\nREADY=1")
        .unwrap();
    assert_eq!(manager.recv(), "STATUS=failed READY=1");
}

#[test]
fn reloading_sends_reloading_1_with_the_current_monotonic_time() {
    let manager = Manager::bind();
    let notifier = Notifier::new(&manager.path).unwrap();

    let before = monotonic_usec();
    notifier.reloading().unwrap();
    let after = monotonic_usec();

    let payload = manager.recv();
    let (first, second) = payload
        .split_once('\n')
        .unwrap_or_else(|| panic!("expected two lines, got {payload:?}"));
    assert_eq!(first, "RELOADING=1");
    let usec: u64 = second
        .strip_prefix("MONOTONIC_USEC=")
        .unwrap_or_else(|| panic!("expected MONOTONIC_USEC=, got {second:?}"))
        .parse()
        .expect("MONOTONIC_USEC is a whole number");
    assert!(
        (before..=after).contains(&usec),
        "MONOTONIC_USEC={usec} is not between {before} and {after}"
    );
}

#[test]
fn extend_timeout_sends_microseconds() {
    let manager = Manager::bind();
    let notifier = Notifier::new(&manager.path).unwrap();
    notifier.extend_timeout(Duration::from_secs(30)).unwrap();
    assert_eq!(manager.recv(), "EXTEND_TIMEOUT_USEC=30000000");
}

#[test]
fn extend_timeout_beyond_u32_microseconds_is_sent_whole() {
    let manager = Manager::bind();
    let notifier = Notifier::new(&manager.path).unwrap();
    notifier
        .extend_timeout(Duration::from_secs(3 * 3600))
        .unwrap();
    assert_eq!(manager.recv(), "EXTEND_TIMEOUT_USEC=10800000000");
}

#[test]
fn several_states_travel_in_one_datagram() {
    let manager = Manager::bind();
    Notifier::new(&manager.path)
        .unwrap()
        .notify(&[State::Ready, State::Status("serving")])
        .unwrap();
    assert_eq!(manager.recv(), "READY=1\nSTATUS=serving");
    manager.assert_nothing_queued();
}

#[test]
fn clones_send_to_the_same_socket() {
    let manager = Manager::bind();
    let notifier = Notifier::new(&manager.path).unwrap();
    let clone = notifier.clone();
    notifier.ready().unwrap();
    clone.stopping().unwrap();
    assert_eq!(manager.recv(), "READY=1");
    assert_eq!(manager.recv(), "STOPPING=1");
}

#[test]
fn abstract_address_receives_the_payload() {
    let name = format!("daemonkit-test-notify-{}-abstract", std::process::id());
    let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let socket = UnixDatagram::bind_addr(&addr).expect("bind an abstract datagram socket");
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();

    let notifier = Notifier::new(format!("@{name}")).unwrap();
    assert_eq!(notifier.address(), Some(format!("@{name}").as_str()));
    notifier.ready().unwrap();
    assert_eq!(recv_from(&socket), "READY=1");
}

#[test]
fn empty_address_is_a_disabled_noop() {
    let notifier = Notifier::new("").unwrap();
    assert!(!notifier.is_enabled());
    assert_eq!(notifier.address(), None);
    notifier.ready().unwrap();
    notifier.reloading().unwrap();
    notifier.watchdog().unwrap();
}

#[test]
fn missing_socket_is_an_error_naming_the_socket_and_payload() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nobody-listens.sock");
    let notifier = Notifier::new(&path).unwrap();

    let error = notifier.ready().expect_err("nothing is bound at the path");
    match &error {
        Error::Notify {
            socket,
            payload,
            source,
        } => {
            assert_eq!(Path::new(socket), path);
            assert_eq!(payload, "READY");
            assert_eq!(source.kind(), io::ErrorKind::NotFound);
        }
        other => panic!("expected Error::Notify, got {other:?}"),
    }
    let message = error.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("READY"), "{message}");
}

#[test]
fn relative_address_is_rejected_when_built() {
    let error = Notifier::new("notify.sock").expect_err("relative paths are not addresses");
    assert!(
        matches!(&error, Error::InvalidNotifySocket { address, .. } if address == "notify.sock"),
        "{error:?}"
    );
}

// ===== from_env, through a real child process =====

fn run_child(configure: impl FnOnce(&mut Command)) -> Output {
    let mut command = Command::new(common::helper("sd_notify_child"));
    command
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID");
    configure(&mut command);
    let output = command.output().expect("run sd_notify_child");
    assert!(
        output.status.success(),
        "sd_notify_child failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

#[test]
fn from_env_sends_to_notify_socket() {
    let manager = Manager::bind();
    let output = run_child(|c| {
        c.env("NOTIFY_SOCKET", &manager.path);
    });
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("notify: enabled"), "{stdout}");
    assert_eq!(manager.recv(), "READY=1");
    assert_eq!(manager.recv(), "STOPPING=1");
}

#[test]
fn from_env_reaches_an_abstract_notify_socket() {
    let name = format!("daemonkit-test-notify-{}-child", std::process::id());
    let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let socket = UnixDatagram::bind_addr(&addr).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    run_child(|c| {
        c.env("NOTIFY_SOCKET", format!("@{name}"));
    });
    assert_eq!(recv_from(&socket), "READY=1");
    assert_eq!(recv_from(&socket), "STOPPING=1");
}

#[test]
fn from_env_is_a_noop_when_notify_socket_is_unset() {
    let output = run_child(|_| {});
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("notify: disabled"), "{stdout}");
}

#[test]
fn from_env_is_a_noop_when_notify_socket_is_empty() {
    let output = run_child(|c| {
        c.env("NOTIFY_SOCKET", "");
    });
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("notify: disabled"), "{stdout}");
}
