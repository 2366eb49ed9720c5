//! A host agent shaped like the Go daemonkit's main consumer: two components, each with
//! its own monitors, prerequisites and routes; an audit trail; retained history; a state
//! file that must never tear — and no hand-written probe loop, status composition or
//! state-file code.
//!
//! ```text
//! cargo run --example host_agent      # prints "control socket: PATH"
//! daemonctl --socket PATH status      # consensus-node NOT READY until its upgrade dir exists
//! curl --unix-socket PATH http://x/consensus-node/upgrade
//! ```
//!
//! - `consensus-node`: an `upgrade` monitor that checks for a pending upgrade every
//!   second and records the last version it applied in a durable state file, and a
//!   `migration` monitor; its prerequisite is an upgrade directory owned by this user
//!   and writable (tagged probes with the command that fixes each); a route reports the
//!   upgrade monitor's state.
//! - `block-node`: a `traffic-shaper` monitor, no prerequisite (it starts at once).
//! - `retention`: keeps 365 days and at most 50 of the audit trail's daily files.
//! - The audit trail: `DaemonStarted` and every `MonitorDegraded`, in a daily rotating,
//!   fsync'd JSONL log.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use axum::{Json, Router, routing::get};
use daemonkit::monitor::every;
use daemonkit::probe::{Ownership, ProbeExt, WriteTest};
use daemonkit::{BoxError, Component, Daemon, Exit, MonitorState, StatusTracker, monitor_fn};
use daemonkit_eventlog::{Event, Level, RotatingLog, Rotation, StateFile};
use daemonkit_filepruner::{FilenameTimestamp, Pattern, Pruner, Retention};

const NAME: &str = "host-agent";

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_writer(std::io::stderr)
        .init();
    let state = match daemonkit::paths::state_dir(NAME) {
        Ok(state) => state,
        Err(err) => return fail(err.into()),
    };
    match build(&state) {
        Ok(daemon) => {
            let exit = run(daemon, state);
            if !exit.is_clean() {
                eprintln!("{NAME}: {exit}");
            }
            exit.into()
        }
        Err(err) => fail(err),
    }
}

/// A configuration mistake: exit 78, before anything ran.
fn fail(err: BoxError) -> ExitCode {
    eprintln!("{NAME}: invalid configuration: {err}");
    ExitCode::from(78)
}

/// Every component, checked before anything runs.
fn build(state: &Path) -> Result<Daemon, BoxError> {
    let upgrades = state.join("upgrades");
    let versions = Arc::new(StateFile::new(state, "applied-version.json")?);
    let upgrade = every("upgrade", Duration::from_secs(1), move || {
        let (upgrades, versions) = (upgrades.clone(), versions.clone());
        async move {
            // A pending upgrade is a file named after its version; apply, then record it
            // (temp file, fsync, rename, fsync dir: never torn, never missing).
            let pending = std::fs::read_dir(&upgrades)?
                .flatten()
                .map(|e| e.file_name())
                .max();
            if let Some(version) = pending {
                let version = version.to_string_lossy().into_owned();
                if versions.read_json::<String>()?.as_deref() != Some(&version) {
                    tokio::task::spawn_blocking(move || versions.write_json(&version)).await??;
                }
            }
            Ok(())
        }
    });
    let upgrade_dir = state.join("upgrades");
    let consensus = Component::new("consensus-node")
        .monitor(Arc::new(upgrade))
        .monitor(idle("migration"))
        .probe(
            Ownership::builder(&upgrade_dir)
                .current_user()
                .build()?
                .tagged(
                    "UpgradeDirOwnershipCheckFailed",
                    format!("sudo chown \"$(id -un)\" {}", upgrade_dir.display()),
                ),
        )
        .probe(WriteTest::new(&upgrade_dir).tagged(
            "UpgradeDirNotWritable",
            format!("mkdir -p {0} && chmod u+w {0}", upgrade_dir.display()),
        ));
    let tracker = consensus.tracker().clone();
    let consensus = consensus
        .routes(Router::new().route("/upgrade", get(move || upgrade_state(tracker.clone()))));

    let block = Component::new("block-node").monitor(idle("traffic-shaper"));

    let daily = FilenameTimestamp::new("%Y%m%d", Duration::from_secs(365 * 24 * 3600))?;
    let pattern = Pattern::new("audit-*.jsonl")?;
    let retention = Retention::builder(Pruner::new(daily), state, pattern)
        .keep(50)
        .every(Duration::from_secs(3600))
        .build();

    Ok(Daemon::builder(NAME)
        .probe_interval(Duration::from_secs(2))
        .component(consensus)
        .component(block)
        .component(Component::new("retention").monitor(Arc::new(retention)))
        .build()?)
}

/// Runs the daemon with its audit trail: `DaemonStarted` once ready, `MonitorDegraded`
/// whenever a monitor's crash streak reaches the threshold.
fn run(daemon: Daemon, state: PathBuf) -> Exit {
    daemon.run_main_with(|daemon| async move {
        let audit = match tokio::task::spawn_blocking(move || {
            RotatingLog::open(&state, Rotation::daily("audit")?)
        })
        .await
        {
            Ok(Ok(audit)) => audit,
            Ok(Err(err)) => return audit_failed(err.into()),
            Err(err) => return audit_failed(err.into()),
        };
        println!("control socket: {}", daemon.socket_path().display());
        for component in ["consensus-node", "block-node"] {
            let audit = audit.clone();
            if let Some(tracker) = daemon.component_tracker(component) {
                tracker.on_transition(move |t| {
                    if matches!(t.status.state, MonitorState::Backoff(_))
                        && t.status.consecutive_crashes == 5
                    {
                        record(
                            &audit,
                            Level::Error,
                            "MonitorDegraded",
                            format!("{} keeps crashing", t.monitor),
                        );
                    }
                });
            }
        }
        let started = audit.clone();
        daemon
            .on_ready(move || {
                record(
                    &started,
                    Level::Info,
                    "DaemonStarted",
                    format!("{NAME} started"),
                )
            })
            .run()
            .await
    })
}

fn audit_failed(source: BoxError) -> Exit {
    Exit::Failed(daemonkit::Error::TaskFailed {
        task: "opening the audit log".into(),
        source,
    })
}

/// Appends an audit event off the runtime (an fsync takes milliseconds).
fn record(audit: &RotatingLog, level: Level, reason: &str, message: String) {
    let (audit, event) = (
        audit.clone(),
        Event::new(level, reason, message, NAME, "localhost"),
    );
    tokio::task::spawn_blocking(move || {
        if let Err(err) = audit.log(&event) {
            tracing::error!(reason = "AuditWriteFailed", error = %err, "audit event not recorded");
        }
    });
}

async fn upgrade_state(tracker: StatusTracker) -> Json<serde_json::Value> {
    let state = tracker.get("upgrade").map(|s| s.state.to_string());
    Json(serde_json::json!({ "upgrade": state }))
}

fn idle(name: &str) -> Arc<dyn daemonkit::Monitor> {
    monitor_fn(name, |cancel| async move {
        cancel.cancelled().await;
        Ok(())
    })
}
