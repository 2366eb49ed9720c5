//! `daemonctl restart|stop|start MONITOR` and `daemonctl log-level`: the commands that
//! change a daemon, over its control plane's mutating routes (`/monitors/…`,
//! `/log-level`), which the daemon allows only to root, its own user and the users and
//! groups it names.

use std::process::ExitCode;
use std::time::Duration;

use hyper::body::Bytes;
use hyper::{Method, StatusCode};

use crate::client::{self, Failure, Target};
use crate::escape;

/// A command on one monitor.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Action {
    /// Cancel the monitor's current run (or back-off) and start it again at once, with its
    /// back-off and crash streak reset.
    Restart,
    /// Cancel it and keep it stopped until `start`.
    Stop,
    /// Start a stopped monitor.
    Start,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Restart => "restart",
            Action::Stop => "stop",
            Action::Start => "start",
        }
    }
}

/// `POST /monitors/[COMPONENT/]MONITOR/<action>`. Exit 0 accepted, 1 refused by the daemon
/// (no such monitor, not running, not authorized), 2 no trustworthy answer.
pub fn monitor(target: &Target, action: Action, monitor: &str) -> ExitCode {
    if monitor.is_empty()
        || monitor.split('/').count() > 2
        || monitor.split('/').any(|part| part.is_empty())
    {
        eprintln!(
            "daemonctl: {} is not MONITOR or COMPONENT/MONITOR",
            escape::text(monitor)
        );
        return ExitCode::from(client::UNREACHABLE);
    }
    let path = format!("/monitors/{}/{}", encode_path(monitor), action.as_str());
    match client::send(target, Method::POST, &path, Bytes::new()) {
        Ok((status, body)) => answer(
            status,
            &body,
            &format!("{} {}", action.as_str(), escape::text(monitor)),
        ),
        Err(failure) => client::fail(failure),
    }
}

/// `GET /log-level`, or `PUT /log-level` with `filter` (and `revert_after`).
pub fn log_level(
    target: &Target,
    filter: Option<&str>,
    revert_after: Option<Duration>,
) -> ExitCode {
    let result = match filter {
        None => client::get(target, "/log-level"),
        Some(filter) => {
            let path = match revert_after {
                Some(after) => format!("/log-level?revert_after={}", crate::humanize(after)),
                None => "/log-level".to_owned(),
            };
            client::send(target, Method::PUT, &path, Bytes::from(filter.to_owned()))
        }
    };
    match result {
        Ok((status, body)) => answer(status, &body, "log level"),
        Err(failure) => client::fail(failure),
    }
}

/// Prints the daemon's answer, escaped, and picks the exit code.
fn answer(status: StatusCode, body: &[u8], what: &str) -> ExitCode {
    let value: Result<serde_json::Value, _> = serde_json::from_slice(body);
    let Ok(value) = value else {
        return client::fail(Failure(format!(
            "the daemon answered {what} with {status} and something that is not JSON"
        )));
    };
    if status.is_success() {
        println!("{}", escape::json_value(&value, false));
        return ExitCode::from(client::OK);
    }
    let detail = value
        .get("error")
        .and_then(serde_json::Value::as_str)
        .map(|s| escape::text(s).into_owned())
        .unwrap_or_else(|| escape::json_value(&value, false));
    match status {
        StatusCode::FORBIDDEN
        | StatusCode::NOT_FOUND
        | StatusCode::CONFLICT
        | StatusCode::BAD_REQUEST => {
            eprintln!("daemonctl: {what} refused ({status}): {detail}");
            ExitCode::from(client::UNHEALTHY)
        }
        _ => client::fail(Failure(format!(
            "the daemon answered {what} with {status}: {detail}"
        ))),
    }
}

/// Percent-encodes what a path segment cannot hold as it is (monitor names may contain
/// spaces and other printable characters; `/` separates component and monitor).
fn encode_path(monitor: &str) -> String {
    let mut out = String::with_capacity(monitor.len());
    for b in monitor.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::encode_path;

    #[test]
    fn names_are_percent_encoded_but_the_component_separator_is_kept() {
        assert_eq!(encode_path("core/flaky"), "core/flaky");
        assert_eq!(encode_path("a b?"), "a%20b%3F");
    }
}
