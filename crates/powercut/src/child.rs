//! Running a writer in a child process until the power is cut, and collecting what it
//! acknowledged.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::PowerCut;
use crate::error::Error;

/// What a child printed before the power went out and it was killed.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct ChildRun {
    /// Every line the child wrote to stdout: a writer prints a line for each write it
    /// acknowledged, after the acknowledgement.
    pub stdout: Vec<String>,
    /// The last 4 KiB of its stderr, for diagnostics.
    pub stderr_tail: String,
    /// Whether the child finished on its own before the cut.
    pub finished: bool,
}

/// Lines longer than this are cut: a child is trusted no further than it must be.
const MAX_LINE: u64 = 64 * 1024;

/// Runs `command` against the mounted `fs` until the armed cut falls (see
/// [`PowerCut::cut_after`]), the child exits, or `timeout` passes; then cuts the power (if the
/// cut has not fallen yet), kills the child with `SIGKILL` and returns what it printed.
///
/// The power is always off when this returns, so the caller's next step is
/// [`PowerCut::crash`].
///
/// # Errors
///
/// [`Error::Child`] if the child cannot be started, killed or waited for.
pub fn run_until_cut(
    fs: &PowerCut,
    mut command: Command,
    timeout: Duration,
) -> Result<ChildRun, Error> {
    let program = command.get_program().to_string_lossy().into_owned();
    let child_err = |source| Error::Child {
        program: program.clone(),
        source,
    };
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(child_err)?;
    // Both pipes are drained on their own threads, so a chatty child never blocks on a full
    // pipe; they end when the child dies.
    let stdout = child.stdout.take().map(|out| {
        thread::spawn(move || {
            let mut lines = Vec::new();
            let mut reader = BufReader::new(out);
            loop {
                let mut line = Vec::new();
                match (&mut reader).take(MAX_LINE).read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        // A line cut off by the kill has no newline: it was not printed whole.
                        if line.pop() == Some(b'\n') {
                            lines.push(String::from_utf8_lossy(&line).into_owned());
                        }
                    }
                }
            }
            lines
        })
    });
    let stderr = child.stderr.take().map(|mut err| {
        thread::spawn(move || {
            let mut tail = Vec::new();
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = err.read(&mut buf) {
                tail.extend_from_slice(&buf[..n]);
                let excess = tail.len().saturating_sub(4096);
                tail.drain(..excess);
            }
            String::from_utf8_lossy(&tail).into_owned()
        })
    });

    let started = Instant::now();
    let mut finished = false;
    while !fs.is_cut() && started.elapsed() < timeout {
        if child.try_wait().map_err(child_err)?.is_some() {
            finished = true;
            break;
        }
        thread::sleep(Duration::from_micros(200));
    }
    fs.cut_now();
    if !finished {
        // It may have exited meanwhile; killing a zombie is harmless and `wait` reaps it.
        let _ = child.kill();
    }
    child.wait().map_err(child_err)?;
    Ok(ChildRun {
        stdout: stdout.and_then(|t| t.join().ok()).unwrap_or_default(),
        stderr_tail: stderr.and_then(|t| t.join().ok()).unwrap_or_default(),
        finished,
    })
}
