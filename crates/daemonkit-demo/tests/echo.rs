//! The demo's `demo` component on the real binary: `POST /demo/echo` echoes JSON, refuses
//! what it must with JSON errors, and a body that never arrives is cut off by the
//! control plane's body read timeout (`--body-read-timeout`).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const DEMO: &str = env!("CARGO_BIN_EXE_daemonkit-demo");

struct Demo {
    child: Child,
    _dir: tempfile::TempDir,
    socket: PathBuf,
}

impl Demo {
    fn start(args: &[&str]) -> Demo {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("run/control.sock");
        let child = Command::new(DEMO)
            .arg("--socket")
            .arg(&socket)
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .args(args)
            .env_remove("NOTIFY_SOCKET")
            .env_remove("LISTEN_FDS")
            .env_remove("WATCHDOG_USEC")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start daemonkit-demo");
        let demo = Demo {
            child,
            _dir: dir,
            socket,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while UnixStream::connect(&demo.socket).is_err() {
            assert!(Instant::now() < deadline, "the demo never listened");
            std::thread::sleep(Duration::from_millis(20));
        }
        demo
    }

    fn connect(&self) -> UnixStream {
        let conn = UnixStream::connect(&self.socket).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        conn
    }

    /// `POST /demo/echo` with `body`; returns (status, body).
    fn echo(&self, body: &[u8]) -> (u16, String) {
        let mut conn = self.connect();
        let head = format!(
            "POST /demo/echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        conn.write_all(head.as_bytes()).unwrap();
        // A refused body may not be read: the server can answer and close first.
        let _ = conn.write_all(body);
        read_all(&mut conn)
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).unwrap();
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        let _ = self.child.wait();
    }
}

/// Reads a `Connection: close` response to EOF; returns (status, body).
fn read_all(conn: &mut UnixStream) -> (u16, String) {
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw).expect("read the response");
    let text = String::from_utf8(raw).expect("UTF-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("a response head");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    (status, body.to_owned())
}

fn error_of(body: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(body).expect("a JSON error body");
    value["error"].as_str().expect("an error field").to_owned()
}

#[test]
fn echo_returns_the_json_it_was_sent() {
    let demo = Demo::start(&[]);
    let (status, body) = demo.echo(br#"{"hello": "world", "n": [1, 2, 3]}"#);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, "{\"hello\":\"world\",\"n\":[1,2,3]}\n");
}

#[test]
fn echo_refuses_a_body_over_4_kib_and_one_that_is_not_json() {
    let demo = Demo::start(&[]);
    let big = format!("\"{}\"", "x".repeat(5000));
    let (status, body) = demo.echo(big.as_bytes());
    assert_eq!(status, 413, "{body}");
    assert!(error_of(&body).contains("4096"), "{body}");

    let (status, body) = demo.echo(b"{not json");
    assert_eq!(status, 400, "{body}");
    assert!(error_of(&body).contains("not JSON"), "{body}");
}

#[test]
fn a_body_that_never_arrives_is_cut_off_by_the_body_read_timeout() {
    let demo = Demo::start(&["--body-read-timeout", "500ms"]);
    let mut conn = demo.connect();
    let sent = Instant::now();
    conn.write_all(b"POST /demo/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"a\":")
        .unwrap();
    let mut byte = [0u8; 1];
    let n = loop {
        match conn.read(&mut byte) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            read => break read.expect("closed, not timed out"),
        }
    };
    assert_eq!(n, 0, "the connection is closed without a response");
    let after = sent.elapsed();
    assert!(
        after >= Duration::from_millis(450) && after < Duration::from_secs(5),
        "closed after {after:?} with a 500 ms body read timeout"
    );
    // The daemon is unharmed.
    let (status, _) = demo.echo(b"{}");
    assert_eq!(status, 200);
}

#[test]
fn the_demo_refuses_a_zero_body_read_timeout() {
    let out = Command::new(DEMO)
        .args([
            "--socket",
            "/nonexistent/x.sock",
            "--body-read-timeout",
            "0s",
        ])
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(78),
        "a configuration error is exit 78"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("body_read_timeout"), "{stderr}");
}
