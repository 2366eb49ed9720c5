//! disk-guard: a small but complete agent on the kit. It watches the free space of its
//! state directory, reports `degraded` below a warning level, records each crossing of
//! that level in a durable event log (one file a day), prunes those files after 30 days,
//! serves the figures on its control socket, and speaks sd_notify and the watchdog under
//! systemd. Run it with `cargo run --example disk_guard`; then
//! `daemonctl --daemon disk-guard status` and, with the socket it prints,
//! `curl --unix-socket SOCKET http://x/disk/space`.
//!
//! Environment: `DISK_GUARD_WARN_PERCENT` (default 10) is the warning level;
//! `$STATE_DIRECTORY` (systemd's `StateDirectory=`) the state directory, else a private
//! directory of the user's (see `daemonkit::paths`).

use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::get;
use axum::{Json, Router};
use daemonkit::monitor::{OnError, every};
use daemonkit::probe::{FreeSpace, Ownership, ProbeExt, Space, WriteTest};
use daemonkit::{Component, Daemon, Exit, StatusError, paths};
use daemonkit_eventlog::{Event, EventLog, Level};
use daemonkit_filepruner::{FilenameTimestamp, Pattern, Pruner, Retention};

const NAME: &str = "disk-guard";
const PERIOD: Duration = Duration::from_secs(10);
const RETENTION: Duration = Duration::from_secs(30 * 86_400);

/// What the space monitor last saw, shared with the route: the figures and whether they
/// were below the warning level.
#[derive(Default)]
struct Seen {
    space: Option<Space>,
    low: bool,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_writer(std::io::stderr)
        .init();
    match build() {
        Ok(daemon) => {
            println!("control socket: {}", daemon.socket_path().display());
            daemon.run_main().into()
        }
        Err(exit) => {
            eprintln!("{NAME}: {exit}");
            exit.into()
        }
    }
}

fn build() -> Result<Daemon, Exit> {
    let state = paths::state_dir(NAME)?;
    let warn_percent: f64 = std::env::var("DISK_GUARD_WARN_PERCENT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10.0);
    let warn = FreeSpace::min_percent(&state, warn_percent)?;
    let seen = Arc::new(Mutex::new(Seen::default()));

    // The watch: measure once a tick, judge against the warning level. A low disk is a
    // `degraded` report (OnError::Degrade), not a crash: restarting cannot free space.
    let (dir, last) = (state.clone(), seen.clone());
    let space = every("space", PERIOD, move || {
        let (warn, dir, last) = (warn.clone(), dir.clone(), last.clone());
        async move {
            let space = warn.measure().await?;
            let verdict = warn.judge(&space);
            let low = verdict.is_err();
            let crossed = {
                let mut seen = last.lock().unwrap_or_else(|p| p.into_inner());
                let crossed = seen.low != low; // the first tick counts from "not low"
                *seen = Seen {
                    space: Some(space),
                    low,
                };
                crossed
            };
            if crossed {
                record_crossing(&dir, low, &space).await?;
            }
            Ok(verdict?)
        }
    })
    .on_error(OnError::Degrade);

    // Retention: the daily event files older than RETENTION go, checked every hour.
    // (Constant format and pattern: valid, as the crate's own tests show.)
    let strategy = FilenameTimestamp::new("%Y%m%d", RETENTION).expect("a valid format");
    let pattern = Pattern::new("events-*.jsonl").expect("a valid pattern");
    let retention = Retention::builder(Pruner::new(strategy), &state, pattern).build();

    // GET /disk/space: the last figures, for dashboards and `curl`.
    let routes = Router::new().route(
        "/space",
        get(move || {
            let seen = seen.lock().unwrap_or_else(|p| p.into_inner());
            let body = seen.space.map(|s| {
                serde_json::json!({
                    "available_bytes": s.available_bytes(),
                    "total_bytes": s.total_bytes(),
                    "available_percent": s.available_percent(),
                    "low": seen.low,
                })
            });
            async move { Json(body) }
        }),
    );

    // The component's prerequisites, retried in the background until they pass: the
    // state directory is ours, private, and writable.
    let fix = format!("chown \"$(id -un)\" {0} && chmod 0700 {0}", state.display());
    let owned = Ownership::builder(&state)
        .current_user()
        .bits(0o700)
        .build()?;
    let disk = Component::new("disk")
        .monitor(Arc::new(space))
        .monitor(Arc::new(retention))
        .probe(owned.tagged("StateDirNotOwned", fix.clone()))
        .probe(WriteTest::new(&state).tagged("StateDirNotWritable", fix))
        .routes(routes);
    Ok(Daemon::builder(NAME).component(disk).build()?)
}

/// Appends a threshold crossing to today's event file and returns once it is on disk.
async fn record_crossing(
    dir: &std::path::Path,
    low: bool,
    space: &Space,
) -> Result<(), StatusError> {
    let failed = |e: daemonkit_eventlog::Error| StatusError::new("EventLogFailed", e.to_string());
    let today = jiff::Timestamp::now().strftime("%Y%m%d").to_string(); // UTC days
    let log = EventLog::open_append(dir, &format!("events-{today}.jsonl")).map_err(failed)?;
    let (level, reason) = match low {
        true => (Level::Error, "DiskSpaceLow"),
        false => (Level::Info, "DiskSpaceRecovered"),
    };
    let node = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into());
    let event = Event::new(level, reason, space.to_string(), NAME, node);
    log.log_async(&event).await.map_err(failed)
}
