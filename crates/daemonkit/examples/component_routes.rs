//! Components and their routes: a daemon made of named components, each with its own
//! monitors, its own prerequisite and its own HTTP routes on the control socket, under
//! `/<component>/`.
//!
//! ```text
//! cargo run --example component_routes        # prints "control socket: PATH"
//! S=PATH
//! curl --unix-socket "$S" http://x/inventory/items     # {"items":…}
//! curl --unix-socket "$S" http://x/status              # both components, nested
//! curl --unix-socket "$S" http://x/ready               # 503 until the spool directory exists
//! ```
//!
//! The `spool` component's prerequisite is a directory that does not exist: the daemon
//! still starts and serves; `/ready` answers 503 naming it (`SpoolMissing`, with the
//! command that fixes it) and `spool`'s monitor waits. Create the directory and within
//! the probe interval (5 s here) the monitor starts — no restart of the process.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::routing::get;
use daemonkit::monitor::every;
use daemonkit::probe::{ProbeExt, WriteTest};
use daemonkit::{Component, Daemon, monitor_fn};

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_writer(std::io::stderr)
        .init();

    // `inventory`: a scan every second, and a route that reads what it found.
    let items = Arc::new(AtomicU64::new(0));
    let found = items.clone();
    let scanner = every("scanner", Duration::from_secs(1), move || {
        found.fetch_add(3, Ordering::Relaxed);
        async { Ok(()) }
    });
    let routes = Router::new().route(
        "/items",
        get(move || {
            let n = items.load(Ordering::Relaxed);
            async move { Json(serde_json::json!({ "items": n })) }
        }),
    );
    let inventory = Component::new("inventory")
        .monitor(Arc::new(scanner))
        .routes(routes);

    // `spool`: waits for a directory an operator creates at run time.
    let spool_dir = std::env::temp_dir().join("daemonkit-component-routes-spool");
    let spool = Component::new("spool")
        .monitor(monitor_fn("sender", |cancel| async move {
            cancel.cancelled().await;
            Ok(())
        }))
        .probe(
            WriteTest::new(&spool_dir)
                .tagged("SpoolMissing", format!("mkdir -p {}", spool_dir.display())),
        );

    let daemon = Daemon::builder("component-routes")
        .component(inventory)
        .component(spool)
        .probe_interval(Duration::from_secs(5))
        .build();
    match daemon {
        Ok(daemon) => {
            println!("control socket: {}", daemon.socket_path().display());
            daemon.run_main().into()
        }
        Err(err) => {
            eprintln!("component_routes: {err}");
            ExitCode::from(78)
        }
    }
}
