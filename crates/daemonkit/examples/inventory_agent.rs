//! The user guide's quick start (§1), as written there: an inventory agent with two
//! periodic monitors (one reporting `degraded`), background prerequisites and a route.
//! `tests/examples.rs` checks the guide's text is this file. Run it with
//! `cargo run --example inventory_agent`: without /var/lib/inventory-agent it serves,
//! NOT READY, and says why (`daemonctl --daemon inventory-agent status`).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use axum::{Json, Router, routing::get};
use daemonkit::monitor::{OnError, every};
use daemonkit::probe::{FreeSpace, WriteTest};
use daemonkit::{BoxError, Component, Daemon, Exit, ProbeExt, RestartPolicy, StatusError};

const DATA_DIR: &str = "/var/lib/inventory-agent";

async fn scan_hosts() -> Result<(), BoxError> {
    Ok(()) // the real work; an `Err` is a crash, restarted after a back-off
}

/// One look at the upstream database. While it is unreachable the monitor keeps going
/// (no crash) and shows as `degraded` with this error (`OnError::Degrade` below).
async fn check_upstream() -> Result<(), BoxError> {
    match tokio::net::TcpStream::connect("127.0.0.1:5432").await {
        Ok(_) => Ok(()),
        Err(err) => Err(StatusError::new(
            "DatabaseUnreachable",
            format!("connect to 127.0.0.1:5432: {err}"),
        )
        .with_resolution("systemctl start postgresql")
        .into()),
    }
}

fn main() -> ExitCode {
    // Flat records (`"reason":"MonitorCrash"` at the top level, not under `fields`): log
    // pipelines match on `reason`.
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_writer(std::io::stderr)
        .init();
    let exit = daemon().map_or_else(Exit::from, Daemon::run_main);
    if !exit.is_clean() {
        eprintln!("inventory-agent: {exit}"); // reason, message and resolution
    }
    exit.into() // 0, 1, 69, 70, 75 or 78
}

/// Every configuration mistake is found here, before anything runs (exit 78).
fn daemon() -> Result<Daemon, daemonkit::Error> {
    let policy = RestartPolicy::builder()
        .initial(Duration::from_secs(1))
        .cap(Duration::from_secs(60))
        .jitter(0.2)
        .build()?;

    // Periodic monitors: the loop, the cancellation and the tick choices are the kit's
    // (§2a); only the tick is yours. A scan runs at once, then every 30 s.
    let scanner = every("scanner", Duration::from_secs(30), scan_hosts);
    let upstream =
        every("upstream", Duration::from_secs(5), check_upstream).on_error(OnError::Degrade);

    let inventory = Component::new("inventory")
        .monitor(Arc::new(scanner))
        .monitor(Arc::new(upstream))
        // Checked in the background until it passes; the monitors start then.
        .probe(WriteTest::new(DATA_DIR).tagged(
            "DataDirNotWritable",
            "sudo install -d -o inventory -g inventory /var/lib/inventory-agent",
        ))
        .probe(FreeSpace::min_bytes(DATA_DIR, 100 << 20).tagged(
            "DataDiskFull",
            "free space on the filesystem holding /var/lib/inventory-agent",
        ))
        // Answers GET /inventory/hosts on the control socket.
        .routes(Router::new().route(
            "/hosts",
            get(|| async { Json(serde_json::json!({"hosts": 12})) }),
        ));

    Daemon::builder("inventory-agent")
        .policy(policy)
        .component(inventory)
        .on_reload(|| async {
            tracing::info!(reason = "ConfigReloaded", "configuration re-read");
            Ok(())
        })
        .build()
}
