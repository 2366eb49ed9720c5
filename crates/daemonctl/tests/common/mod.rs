//! A fake daemon on a real Unix socket, and a way to run the real daemonctl binary and
//! measure it. Shared by the integration tests (each uses a part of it).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// What the fake daemon answers to every request.
#[derive(Clone)]
pub enum Answer {
    /// A complete response with this status code and body (Content-Length set).
    Body(u16, Vec<u8>),
    /// `Content-Length: 1 GiB`, then zeros for as long as the client reads.
    GiB,
    /// A chunked body that never ends.
    EndlessChunked,
    /// A close-delimited body (no length, no chunking) that never ends.
    EndlessUnframed,
    /// A response head that never ends: header after header.
    EndlessHead,
    /// Reads the request, then says nothing, holding the connection.
    Silent,
    /// Each connection gets the next of these bodies (status 200), round and round.
    Cycle(Vec<Vec<u8>>),
}

/// A fake daemon serving `answer` on `socket` from a thread per connection.
pub struct FakeDaemon {
    pub socket: PathBuf,
}

impl FakeDaemon {
    /// Binds `socket` and serves in the background for the life of the test process.
    pub fn serve(socket: &Path, answer: Answer) -> FakeDaemon {
        let listener = UnixListener::bind(socket).expect("bind the fake daemon's socket");
        let answer = Arc::new(answer);
        thread::spawn(move || {
            for (n, stream) in listener.incoming().enumerate() {
                let Ok(stream) = stream else { return };
                let answer = match &*answer {
                    Answer::Cycle(bodies) => {
                        Arc::new(Answer::Body(200, bodies[n % bodies.len()].clone()))
                    }
                    _ => Arc::clone(&answer),
                };
                thread::spawn(move || serve_one(stream, &answer));
            }
        });
        FakeDaemon {
            socket: socket.to_owned(),
        }
    }
}

fn serve_one(stream: UnixStream, answer: &Answer) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone the stream"));
    // The request head, bounded: a request line and a few headers.
    let mut line = String::new();
    for _ in 0..64 {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) if line == "\r\n" => break,
            Ok(_) => {}
        }
    }
    let mut out = stream;
    let zeros = vec![b'0'; 64 << 10];
    let _ = match answer {
        Answer::Body(code, body) => write!(
            out,
            "HTTP/1.1 {code} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        )
        .and_then(|()| out.write_all(body)),
        Answer::GiB => out
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1073741824\r\n\r\n")
            .and_then(|()| {
                loop {
                    out.write_all(&zeros)?;
                }
            }),
        Answer::EndlessChunked => out
            .write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
            .and_then(|()| {
                loop {
                    write!(out, "{:x}\r\n", zeros.len())?;
                    out.write_all(&zeros)?;
                    out.write_all(b"\r\n")?;
                }
            }),
        Answer::EndlessUnframed => out
            .write_all(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n")
            .and_then(|()| {
                loop {
                    out.write_all(&zeros)?;
                }
            }),
        Answer::EndlessHead => out.write_all(b"HTTP/1.1 200 OK\r\n").and_then(|()| {
            let mut n = 0u64;
            loop {
                n += 1;
                write!(out, "x-filler-{n}: {}\r\n", "y".repeat(100))?;
            }
        }),
        Answer::Cycle(_) => unreachable!("resolved per connection in serve"),
        Answer::Silent => {
            // Hold the connection until the client goes away.
            let mut buf = [0u8; 64];
            while matches!(reader.read(&mut buf), Ok(n) if n > 0) {}
            Ok(())
        }
    };
}

/// What a daemonctl run left behind.
#[derive(Debug)]
pub struct Run {
    /// The exit code (`None` when killed by a signal).
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// The child's peak resident set, in KiB, as the kernel measured it.
    pub max_rss_kib: i64,
    pub elapsed: Duration,
}

impl Run {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// The daemonctl binary.
pub fn daemonctl() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_daemonctl"));
    cmd.env_remove("DAEMONCTL_SOCKET")
        .env_remove("DAEMONCTL_DAEMON")
        .env("NO_COLOR", "1");
    cmd
}

/// Runs `cmd` to completion and measures its peak RSS with `wait4`.
pub fn run(mut cmd: Command) -> Run {
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn daemonctl");
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: `rusage` is plain old data that the kernel fills in; zeroed is a valid
    // value for it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our own child, not yet reaped (the `Child` handle is never waited
    // on); `status` and `usage` are valid for writes for the duration of the call.
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(reaped, pid, "wait4: {}", std::io::Error::last_os_error());
    let elapsed = start.elapsed();
    let status = std::process::ExitStatus::from_raw(status);
    // The `Child` must not be waited on again; dropping it does not wait.
    drop(child);
    Run {
        code: status.code(),
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
        max_rss_kib: usage.ru_maxrss,
        elapsed,
    }
}

/// Whether printed bytes hold anything a terminal would act on: C0 controls other than
/// the newline, DEL, C1 controls, or bidi overrides and isolates.
pub fn has_terminal_controls(bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    text.chars()
        .find(|&c| {
            (c < ' ' && c != '\n')
                || ('\u{7f}'..='\u{9f}').contains(&c)
                || ('\u{202a}'..='\u{202e}').contains(&c)
                || ('\u{2066}'..='\u{2069}').contains(&c)
        })
        .map(|c| format!("U+{:04X} in {text:?}", c as u32))
}

/// Whether the test runs as root (needed to switch uid and to chown).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Prints `SKIPPED: why` and returns true, or panics when DAEMONKIT_REQUIRE_ALL=1.
pub fn skip(why: &str) -> bool {
    if std::env::var_os("DAEMONKIT_REQUIRE_ALL").is_some_and(|v| v == "1") {
        panic!("prerequisite missing (DAEMONKIT_REQUIRE_ALL=1): {why}");
    }
    eprintln!("SKIPPED: {why}");
    true
}
