//! Socket activation: sockets passed through LISTEN_FDS, by the real
//! `systemd-socket-activate` and by hand.
#![cfg(feature = "systemd")]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use daemonkit::Error;
use daemonkit::systemd::activation::ListenFds;

fn socket_activate() -> Command {
    let tool = Path::new("/usr/bin/systemd-socket-activate");
    assert!(
        tool.exists(),
        "systemd-socket-activate is missing; install Debian's `systemd` package (.ci/run does)"
    );
    Command::new(tool)
}

/// Kills the child if a test fails before it exits by itself.
struct Reap(Option<Child>);

impl Reap {
    fn wait(mut self) -> Output {
        self.0
            .take()
            .expect("waited once")
            .wait_with_output()
            .expect("wait for the child")
    }
}

impl Drop for Reap {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Connects to `path` once systemd-socket-activate listens there (it binds, which
/// creates the file, and then listens), waiting at most 10 s.
fn connect_when_listening(path: &Path) -> UnixStream {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match UnixStream::connect(path) {
            Ok(conn) => return conn,
            Err(e)
                if Instant::now() < deadline
                    && matches!(
                        e.kind(),
                        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                    ) =>
            {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(e) => panic!("connecting to {}: {e}", path.display()),
        }
    }
}

/// Connects to `path`, sends one line and returns the one-line answer.
fn ask(path: &Path, line: &str) -> String {
    let conn = connect_when_listening(path);
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    writeln!(&conn, "{line}").unwrap();
    let mut answer = String::new();
    BufReader::new(&conn)
        .read_line(&mut answer)
        .expect("the activated service answers");
    answer.trim_end().to_owned()
}

// ===== through systemd-socket-activate =====

#[test]
fn serves_on_the_unix_socket_systemd_passed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("control.sock");
    let child = socket_activate()
        .arg("--listen")
        .arg(&path)
        .arg(common::helper("sd_activation_echo"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start systemd-socket-activate");
    let child = Reap(Some(child));

    // The first connection makes systemd-socket-activate exec the service with the
    // listening socket as fd 3; the connection waits in its backlog until accepted.
    let answer = ask(&path, "hello");
    assert_eq!(answer, format!("name=- path={} echo=hello", path.display()));

    let output = child.wait();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("fds: 1 "), "{stdout}");
}

#[test]
fn finds_a_passed_socket_by_its_fdname() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = dir.path().join("metrics.sock");
    let control = dir.path().join("control.sock");
    let child = socket_activate()
        .arg("--listen")
        .arg(&metrics)
        .arg("--listen")
        .arg(&control)
        .arg("--fdname=metrics:control")
        .arg(common::helper("sd_activation_echo"))
        .args(["--name", "control"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start systemd-socket-activate");
    let child = Reap(Some(child));

    // The service took the second descriptor (fd 4) because of its name.
    let answer = ask(&control, "by name");
    assert_eq!(
        answer,
        format!("name=control path={} echo=by name", control.display())
    );

    let output = child.wait();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("fds: 2 names: metrics:control"), "{stdout}");
}

#[test]
fn passed_sockets_are_claimed_once_per_process() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("control.sock");
    let child = socket_activate()
        .arg("--listen")
        .arg(&path)
        .arg(common::helper("sd_activation_echo"))
        .arg("--report")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start systemd-socket-activate");
    let child = Reap(Some(child));
    let _trigger = connect_when_listening(&path);

    let output = child.wait();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("fds: 1 "), "{stdout}");
    assert!(stdout.contains("claimed again: 0"), "{stdout}");
}

// ===== LISTEN_* set by hand, in a real child process =====

/// Runs sd_activation_echo --report through `sh -c`, with `script` run first; `exec`
/// keeps the shell's pid, so `$$` in the script is the service's pid.
fn report_via_sh(script: &str, configure: impl FnOnce(&mut Command)) -> Output {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(format!(r#"{script} exec "$0" --report"#))
        .arg(common::helper("sd_activation_echo"))
        .env_remove("LISTEN_PID")
        .env_remove("LISTEN_FDS")
        .env_remove("LISTEN_FDNAMES");
    configure(&mut command);
    command.output().expect("run sd_activation_echo through sh")
}

#[test]
fn no_listen_variables_mean_no_sockets() {
    let output = report_via_sh("", |_| {});
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("fds: 0 "));
}

#[test]
fn listen_pid_of_another_process_means_no_sockets() {
    // fd 3 really is open, and LISTEN_FDS covers it, but LISTEN_PID names the shell's
    // parent (this test), as when the variables are inherited.
    let output = report_via_sh(
        "exec 3</dev/null; LISTEN_FDS=1 LISTEN_FDNAMES=control",
        |c| {
            c.env("LISTEN_PID", std::process::id().to_string());
        },
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("fds: 0 "));
}

#[test]
fn passed_descriptor_that_is_not_a_socket_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-socket");
    std::fs::write(&file, b"plain data").unwrap();
    let output = report_via_sh(
        &format!(
            "exec 3<'{}'; LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=control",
            file.display()
        ),
        |_| {},
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("fd 3") && stderr.contains("is a regular file, expected a socket"),
        "{stderr}"
    );
}

#[test]
fn listen_fdnames_with_the_wrong_count_is_an_error() {
    let output = report_via_sh(
        "exec 3</dev/null; LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=control:metrics",
        |_| {},
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("LISTEN_FDNAMES"), "{stderr}");
}

// ===== ListenFds::from_fds, in process =====

fn unix_listener(dir: &Path, name: &str) -> (UnixListener, PathBuf) {
    let path = dir.join(name);
    (UnixListener::bind(&path).unwrap(), path)
}

#[test]
fn first_unix_listener_is_taken_when_no_name_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let (unix, path) = unix_listener(dir.path(), "a.sock");
    let mut fds = ListenFds::from_fds([
        (OwnedFd::from(tcp), "web".to_owned()),
        (OwnedFd::from(unix), "control".to_owned()),
    ])
    .unwrap();

    let listener = fds
        .take_unix_listener(None)
        .unwrap()
        .expect("a Unix listener was passed");
    assert_eq!(
        listener.local_addr().unwrap().as_pathname(),
        Some(path.as_path())
    );
    assert_eq!(fds.names().collect::<Vec<_>>(), ["web"]);
    assert!(fds.take_unix_listener(None).unwrap().is_none());
}

#[test]
fn tcp_listener_is_handed_out_and_serves() {
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = tcp.local_addr().unwrap();
    let mut fds = ListenFds::from_fds([(OwnedFd::from(tcp), "web".to_owned())]).unwrap();

    let listener = fds
        .take_tcp_listener(Some("web"))
        .unwrap()
        .expect("passed above");
    let _client = TcpStream::connect(addr).unwrap();
    let (_conn, _) = listener.accept().expect("the taken listener accepts");
    assert!(fds.is_empty());
}

#[test]
fn a_name_given_to_the_wrong_kind_of_socket_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let datagram = UnixDatagram::bind(dir.path().join("d.sock")).unwrap();
    let mut fds = ListenFds::from_fds([(OwnedFd::from(datagram), "control".to_owned())]).unwrap();

    let error = fds.take_unix_listener(Some("control")).unwrap_err();
    match &error {
        Error::ListenFdKind { name, found, .. } => {
            assert_eq!(name, "control");
            assert_eq!(found, "a Unix datagram socket");
        }
        other => panic!("expected ListenFdKind, got {other:?}"),
    }
    // Unnamed, a datagram socket is simply not a listener.
    assert!(fds.take_unix_listener(None).unwrap().is_none());
}

#[test]
fn a_connected_stream_is_not_a_listener() {
    let (a, _b) = UnixStream::pair().unwrap();
    let mut fds = ListenFds::from_fds([(OwnedFd::from(a), "control".to_owned())]).unwrap();
    let error = fds.take_unix_listener(Some("control")).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("a Unix stream socket that is not listening"),
        "{error}"
    );
}

#[test]
fn unknown_name_gives_none() {
    let dir = tempfile::tempdir().unwrap();
    let (unix, _) = unix_listener(dir.path(), "a.sock");
    let mut fds = ListenFds::from_fds([(OwnedFd::from(unix), "control".to_owned())]).unwrap();
    assert!(fds.take_unix_listener(Some("metrics")).unwrap().is_none());
    assert_eq!(fds.len(), 1);
}

#[test]
fn a_file_is_not_accepted_as_a_passed_socket() {
    let file = tempfile::tempfile().unwrap();
    let error = ListenFds::from_fds([(OwnedFd::from(file), "control".to_owned())]).unwrap_err();
    assert!(
        matches!(&error, Error::ListenFdKind { expected: "a socket", found, .. } if found == "a regular file"),
        "{error:?}"
    );
}

#[test]
fn passed_sockets_are_made_close_on_exec() {
    use rustix::io::FdFlags;
    use rustix::net::{AddressFamily, SocketFlags, SocketType};

    // A socket created without SOCK_CLOEXEC, as an inherited one may be.
    let fd = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::empty(),
        None,
    )
    .unwrap();
    assert!(
        !rustix::io::fcntl_getfd(&fd)
            .unwrap()
            .contains(FdFlags::CLOEXEC)
    );

    let fds = ListenFds::from_fds([(fd, "control".to_owned())]).unwrap();
    let (_, fd) = fds.into_fds().pop().unwrap();
    assert!(
        rustix::io::fcntl_getfd(&fd)
            .unwrap()
            .contains(FdFlags::CLOEXEC)
    );
}
