//! `daemonctl status | health | get`: ask a running daemon over its control socket.

use std::fmt::Write as _;
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::UnixStream;

/// Exit code: every monitor running and healthy (or the request succeeded).
const OK: u8 = 0;
/// Exit code: some monitor is degraded, backing off or stopped.
const UNHEALTHY: u8 = 1;
/// Exit code: the daemon cannot be reached or answered with an error.
const UNREACHABLE: u8 = 2;

/// How long one request may take before daemonctl gives up.
const TIMEOUT: Duration = Duration::from_secs(5);

/// A failure to get an answer, worded for an operator: what happened and what to check.
#[derive(Debug)]
pub struct Failure(String);

/// Sends `GET path` over the Unix socket and returns the status and body.
pub fn get(socket: &Path, path: &str) -> Result<(StatusCode, Bytes), Failure> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure(format!("cannot start the I/O runtime: {e}")))?;
    runtime.block_on(async {
        tokio::time::timeout(TIMEOUT, request(socket, path))
            .await
            .unwrap_or_else(|_| {
                Err(Failure(format!(
                    "the daemon on {} accepted the connection but did not answer within {}s \
                     (is it overloaded or stuck? check its logs)",
                    socket.display(),
                    TIMEOUT.as_secs()
                )))
            })
    })
}

async fn request(socket: &Path, path: &str) -> Result<(StatusCode, Bytes), Failure> {
    let stream = UnixStream::connect(socket)
        .await
        .map_err(|e| connect_failure(socket, &e))?;
    let broken = |e: hyper::Error| {
        Failure(format!(
            "the daemon on {} broke off the exchange: {e} (check its logs)",
            socket.display()
        ))
    };
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(broken)?;
    tokio::spawn(connection);
    let request = Request::get(path)
        .header(hyper::header::HOST, "localhost")
        .body(Empty::<Bytes>::new())
        .map_err(|e| Failure(format!("invalid request path {path:?}: {e}")))?;
    let response = sender.send_request(request).await.map_err(broken)?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(broken)?
        .to_bytes();
    Ok((status, body))
}

fn connect_failure(socket: &Path, err: &io::Error) -> Failure {
    let path = socket.display();
    Failure(match err.kind() {
        io::ErrorKind::ConnectionRefused => {
            format!("no daemon is listening on {path} (connection refused; is it running?)")
        }
        io::ErrorKind::NotFound => format!(
            "no control socket at {path} (is the daemon running? pass --socket or set DAEMONCTL_SOCKET)"
        ),
        io::ErrorKind::PermissionDenied => {
            format!("permission denied on {path} (run as the daemon's user or group, or with sudo)")
        }
        _ => format!("cannot connect to {path}: {err}"),
    })
}

/// Prints a failure as one line on stderr and returns exit code 2.
fn fail(failure: Failure) -> ExitCode {
    eprintln!("daemonctl: {}", failure.0);
    ExitCode::from(UNREACHABLE)
}

/// Parses a JSON body or explains that the daemon answered something else.
fn json(socket: &Path, path: &str, status: StatusCode, body: &[u8]) -> Result<Value, Failure> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        Failure(format!(
            "the daemon on {} answered {path} with something that is not JSON ({e})",
            socket.display()
        ))
    })?;
    if !status.is_success() {
        let detail = value
            .get("error")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| value.to_string());
        return Err(Failure(format!(
            "the daemon on {} answered {path} with {status}: {detail}",
            socket.display()
        )));
    }
    Ok(value)
}

/// `daemonctl health`.
pub fn health(socket: &Path) -> ExitCode {
    let result =
        get(socket, "/health").and_then(|(status, body)| json(socket, "/health", status, &body));
    match result {
        Ok(value) => {
            println!(
                "{}",
                value.get("status").and_then(Value::as_str).unwrap_or("ok")
            );
            ExitCode::from(OK)
        }
        Err(failure) => fail(failure),
    }
}

/// `daemonctl get PATH`: prints the JSON pretty.
pub fn get_path(socket: &Path, path: &str) -> ExitCode {
    if !path.starts_with('/') {
        eprintln!(
            "daemonctl: the path must start with '/', e.g. `daemonctl get /status` (got {path:?})"
        );
        return ExitCode::from(UNREACHABLE);
    }
    let result = get(socket, path).and_then(|(status, body)| json(socket, path, status, &body));
    match result {
        Ok(value) => {
            // Serialising a `Value` cannot fail.
            println!(
                "{}",
                serde_json::to_string_pretty(&value).unwrap_or_default()
            );
            ExitCode::from(OK)
        }
        Err(failure) => fail(failure),
    }
}

/// `daemonctl status [--json]`.
pub fn status(socket: &Path, raw: bool) -> ExitCode {
    let result = get(socket, "/status").and_then(|(status, body)| {
        json(socket, "/status", status, &body).map(|value| (value, body))
    });
    let (value, body) = match result {
        Ok(ok) => ok,
        Err(failure) => return fail(failure),
    };
    let Some(monitors) = value.as_object() else {
        return fail(Failure(format!(
            "the daemon on {} answered /status with JSON that is not an object of monitors",
            socket.display()
        )));
    };
    let healthy = monitors
        .values()
        .all(|m| m.get("state").and_then(Value::as_str) == Some("running"));
    let mut out = io::stdout().lock();
    let printed = if raw {
        out.write_all(&body).and_then(|()| out.write_all(b"\n"))
    } else {
        let colour = io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        out.write_all(table(monitors, colour, jiff::Timestamp::now()).as_bytes())
    };
    if printed.is_err() {
        // stdout closed (e.g. piped into `head`): the exit code still tells the story.
    }
    ExitCode::from(if healthy { OK } else { UNHEALTHY })
}

/// Renders the status table: monitor, state, since, restarts, error reason and resolution.
pub fn table(
    monitors: &serde_json::Map<String, Value>,
    colour: bool,
    now: jiff::Timestamp,
) -> String {
    let headers = [
        "MONITOR",
        "STATE",
        "SINCE",
        "RESTARTS",
        "REASON",
        "RESOLUTION",
    ];
    let rows: Vec<[String; 6]> = monitors
        .iter()
        .map(|(name, m)| {
            let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("").to_owned();
            let error = m.get("error");
            let since = m
                .get("state_since")
                .or_else(|| error.and_then(|e| e.get("since")))
                .and_then(Value::as_str)
                .and_then(|s| s.parse::<jiff::Timestamp>().ok())
                .map(|t| ago(now, t))
                .unwrap_or_else(|| "-".to_owned());
            let restarts = m
                .get("restarts")
                .and_then(Value::as_u64)
                .map_or_else(|| "-".to_owned(), |n| n.to_string());
            let dash = |s: String| if s.is_empty() { "-".to_owned() } else { s };
            [
                name.clone(),
                text(m.get("state")),
                since,
                restarts,
                dash(text(error.and_then(|e| e.get("reason")))),
                dash(text(error.and_then(|e| e.get("resolution")))),
            ]
        })
        .collect();
    let mut widths = headers.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: &[String; 6], state_colour: Option<&str>| {
        for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
            let pad = width - cell.chars().count();
            let last = i == cells.len() - 1;
            match (i, state_colour) {
                (1, Some(code)) => {
                    let _ = write!(out, "\x1b[{code}m{cell}\x1b[0m");
                }
                _ => out.push_str(cell),
            }
            if !last {
                out.push_str(&" ".repeat(pad + 2));
            }
        }
        out.push('\n');
    };
    line(&mut out, &headers.map(str::to_owned), None);
    for row in &rows {
        let code = colour.then(|| match row[1].as_str() {
            "running" => "32",
            "stopped" => "31",
            _ => "33",
        });
        line(&mut out, row, code);
    }
    out
}

/// "3m12s ago"-style age of `then`, coarse enough to read at a glance.
fn ago(now: jiff::Timestamp, then: jiff::Timestamp) -> String {
    let secs = now.duration_since(then).as_secs().max(0);
    let text = match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{}s", s / 60, s % 60),
        s if s < 86_400 => format!("{}h{}m", s / 3600, (s / 60) % 60),
        s => format!("{}d{}h", s / 86_400, (s / 3600) % 24),
    };
    format!("{text} ago")
}

/// The socket daemonctl talks to when neither `--socket` nor `DAEMONCTL_SOCKET` is given:
/// the demo daemon's default.
pub fn default_socket() -> PathBuf {
    daemonkit::paths::default_socket_path("daemonkit-demo")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_lists_each_monitor_with_reason_and_resolution() {
        let status: Value = serde_json::json!({
            "db": {"state": "degraded", "restarts": 2, "state_since": "2026-01-01T00:00:00Z",
                   "error": {"reason": "DbDown", "message": "refused", "resolution": "start db",
                             "since": "2026-01-01T00:00:00Z"}},
            "web": {"state": "running"}
        });
        let now: jiff::Timestamp = "2026-01-01T00:03:12Z".parse().unwrap();
        let text = table(status.as_object().unwrap(), false, now);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("MONITOR"));
        assert!(lines[1].contains("degraded") && lines[1].contains("3m12s ago"));
        assert!(lines[1].contains("DbDown") && lines[1].ends_with("start db"));
        assert!(lines[2].contains("running") && lines[2].contains(" - "));
        assert!(!text.contains('\x1b'));
        assert!(table(status.as_object().unwrap(), true, now).contains("\x1b[33mdegraded"));
    }
}
