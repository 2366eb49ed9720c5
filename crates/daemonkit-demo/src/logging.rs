//! Where the demo's log records go: JSON lines on stderr, or the journal's native protocol.
//!
//! Under systemd with `StandardError=journal`, JSON on stderr reaches the journal as one
//! opaque `MESSAGE` per line: `journalctl` can only grep it. Through journald's native
//! protocol instead (the `tracing-journald` layer), every field of a record becomes a
//! journal field, so `journalctl -u daemonkit-demo REASON=MonitorDegraded MONITOR=flaky`
//! selects records by field, and levels map to journal priorities (`-p warning`).
//!
//! [`LogFormat::Auto`], the default, picks the journal only when stderr *is* the journal
//! stream systemd set up: systemd puts the stream's `device:inode` in `JOURNAL_STREAM`,
//! and a process whose stderr was redirected (a child that inherited the variable, a
//! shell's `2>file`) sees another inode there, so it keeps writing JSON where its stderr
//! really goes.
//!
//! # Journal fields
//!
//! A record's fields are upper-cased (`reason` → `REASON`, `monitor` → `MONITOR`,
//! `consecutive_crashes` → `CONSECUTIVE_CRASHES`), its message is `MESSAGE`, its level is
//! `PRIORITY` (ERROR 3, WARN 4, INFO 6, DEBUG and TRACE 7), its target is `TARGET`, and
//! `SYSLOG_IDENTIFIER` is `daemonkit-demo`. journald adds the trusted fields
//! (`_SYSTEMD_UNIT`, `_PID`, …) itself.

use std::ffi::OsStr;
use std::os::fd::AsFd;

use std::sync::Mutex;
use tracing_journald::{Priority, PriorityMappings};

use tracing_subscriber::Registry;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::reload;
use tracing_subscriber::util::SubscriberInitExt;

/// The log format asked for with `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// The journal's native protocol when stderr is connected to the journal
    /// (`JOURNAL_STREAM` names stderr's device and inode), JSON lines on stderr otherwise.
    Auto,
    /// JSON lines on stderr, one object per record.
    Json,
    /// The journal's native protocol (`/run/systemd/journal/socket`); JSON on stderr if
    /// the journal cannot be reached.
    Journald,
}

/// The syslog identifier (`SYSLOG_IDENTIFIER=`, `journalctl -t`) of journal records.
const IDENTIFIER: &str = "daemonkit-demo";

/// Levels as syslog priorities with their usual meaning, so `journalctl -p info` shows
/// INFO and above and nothing more. (tracing-journald's default maps INFO to notice and
/// DEBUG to info, which keeps all five levels apart but lets `-p info` show debug records.)
const PRIORITIES: PriorityMappings = PriorityMappings {
    error: Priority::Error,
    warn: Priority::Warning,
    info: Priority::Informational,
    debug: Priority::Debug,
    trace: Priority::Debug,
};

/// Installs the process-wide subscriber for `format`, filtered by `filter`, and returns
/// the handle that changes the filter at run time (`PUT /log-level`, `daemonctl
/// log-level`).
///
/// Never fails: when the journal was asked for (or detected) but cannot be reached, the
/// records go to stderr as JSON and the first one, `reason=JournaldUnavailable`, says why.
/// Call it once, before the first record; a second call leaves the first subscriber.
pub fn install(format: LogFormat, filter: Targets) -> LogLevelHandle {
    let text = Mutex::new(filter.to_string());
    // The filter sits first on the registry, behind a reload layer: changing it swaps
    // one value, with no cost per record beyond the filter itself.
    let (filter, handle) = reload::Layer::new(filter);
    let journal = match format {
        LogFormat::Json => None,
        LogFormat::Auto if !stderr_is_journal() => None,
        LogFormat::Auto | LogFormat::Journald => Some(
            tracing_journald::layer()
                .map(|layer| {
                    // No `F_` prefix: the fields keep their own names (REASON=, MONITOR=),
                    // which are what operators and log pipelines query.
                    layer
                        .with_field_prefix(None)
                        .with_syslog_identifier(IDENTIFIER.to_owned())
                        .with_priority_mappings(PRIORITIES)
                })
                .map_err(|err| err.to_string()),
        ),
    };
    let registry = tracing_subscriber::registry().with(filter);
    match journal {
        Some(Ok(layer)) => {
            let _ = registry.with(layer).try_init();
        }
        Some(Err(error)) => {
            let _ = registry.with(json_layer()).try_init();
            tracing::warn!(
                reason = "JournaldUnavailable",
                error = %error,
                "cannot reach the journal's socket; logging JSON lines on stderr instead"
            );
        }
        None => {
            let _ = registry.with(json_layer()).try_init();
        }
    }
    LogLevelHandle { handle, text }
}

/// JSON lines on stderr, one flat object per record (`reason` and the other fields at the
/// top level beside `timestamp`, `level`, `message` and `target`).
fn json_layer<S>() -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_writer(std::io::stderr)
}

/// Changes the demo's log filter at run time: the control plane's `/log-level` hook.
pub struct LogLevelHandle {
    handle: reload::Handle<Targets, Registry>,
    /// The filter as last set, in the form it was given.
    text: Mutex<String>,
}

impl daemonkit::server::LogLevel for LogLevelHandle {
    fn get(&self) -> String {
        self.text
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone()
    }

    fn set(&self, filter: &str) -> Result<(), String> {
        let targets: Targets = filter.parse().map_err(|err| {
            format!("{filter:?} is not a filter like `debug` or `info,daemonkit=debug`: {err}")
        })?;
        self.handle
            .reload(targets)
            .map_err(|err| format!("cannot change the filter: {err}"))?;
        *self
            .text
            .lock()
            .unwrap_or_else(|poison| poison.into_inner()) = filter.to_owned();
        Ok(())
    }
}

/// Whether this process's stderr is the journal stream systemd connected it to.
fn stderr_is_journal() -> bool {
    is_journal_stream(
        std::io::stderr().as_fd(),
        std::env::var_os("JOURNAL_STREAM").as_deref(),
    )
}

/// Whether `fd` is the stream `journal_stream` (a `JOURNAL_STREAM` value,
/// `<device>:<inode>` in decimal) names. `false` when the value is absent or malformed
/// or `fd` cannot be examined: JSON on stderr is the safe choice.
fn is_journal_stream(fd: impl AsFd, journal_stream: Option<&OsStr>) -> bool {
    let Some((device, inode)) = journal_stream
        .and_then(OsStr::to_str)
        .and_then(|value| value.split_once(':'))
    else {
        return false;
    };
    let (Ok(device), Ok(inode)) = (device.parse::<u64>(), inode.parse::<u64>()) else {
        return false;
    };
    match rustix::fs::fstat(fd) {
        Ok(stat) => stat.st_dev == device && stat.st_ino == inode,
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream_of(file: &std::fs::File) -> String {
        let stat = rustix::fs::fstat(file).unwrap();
        format!("{}:{}", stat.st_dev, stat.st_ino)
    }

    #[test]
    fn the_stream_named_by_journal_stream_is_the_journal() {
        let file = tempfile::tempfile().unwrap();
        let value = stream_of(&file);
        assert!(is_journal_stream(&file, Some(OsStr::new(&value))));
    }

    #[test]
    fn another_file_is_not_the_journal() {
        let journal = tempfile::tempfile().unwrap();
        let redirected = tempfile::tempfile().unwrap();
        let value = stream_of(&journal);
        assert!(!is_journal_stream(&redirected, Some(OsStr::new(&value))));
    }

    #[test]
    fn an_absent_or_malformed_journal_stream_is_not_the_journal() {
        let file = tempfile::tempfile().unwrap();
        let value = stream_of(&file);
        let (device, inode) = value.split_once(':').unwrap();
        for bad in [
            String::new(),
            device.to_owned(),
            format!("{device}:"),
            format!(":{inode}"),
            format!("{device}:{inode}x"),
            format!("{device} :{inode}"),
            format!("-{device}:{inode}"),
        ] {
            assert!(!is_journal_stream(&file, Some(OsStr::new(&bad))), "{bad:?}");
        }
        assert!(!is_journal_stream(&file, None));
    }
}
