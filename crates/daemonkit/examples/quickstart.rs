//! Quick start: one periodic monitor and the control plane, in a daemon that stops
//! cleanly on Ctrl-C or SIGTERM.
//!
//! ```text
//! cargo run --example quickstart
//! daemonctl --daemon quickstart status        # in another terminal
//! curl --unix-socket "$XDG_RUNTIME_DIR/quickstart/control.sock" http://x/status
//! ```
//!
//! The socket is `daemonkit::paths::default_socket_path("quickstart")`, printed at start:
//! `$RUNTIME_DIRECTORY` under systemd, else `$XDG_RUNTIME_DIR/quickstart`, else
//! `/tmp/quickstart-<uid>`; `daemonctl --daemon quickstart` applies the same rule.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use daemonkit::Daemon;
use daemonkit::monitor::every;

fn main() -> ExitCode {
    // Flat JSON records: `"reason":"MonitorStarted"` at the top level, where log
    // pipelines match on it (the default nests the fields under `fields`).
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_writer(std::io::stderr)
        .init();

    // A monitor that does one tick of work every 2 s. Returning `Err` would be a crash:
    // the supervisor restarts it after a back-off.
    let ticks = Arc::new(AtomicU64::new(0));
    let counter = ticks.clone();
    let heartbeat = every("heartbeat", Duration::from_secs(2), move || {
        let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
        async move {
            tracing::info!(reason = "Tick", tick = n, "tick");
            Ok(())
        }
    });

    let daemon = match Daemon::builder("quickstart")
        .monitor(Arc::new(heartbeat))
        .build()
    {
        Ok(daemon) => daemon,
        Err(err) => {
            eprintln!("quickstart: {err}");
            return ExitCode::from(78);
        }
    };
    println!("control socket: {}", daemon.socket_path().display());
    let exit = daemon.run_main();
    println!("{exit} after {} ticks", ticks.load(Ordering::Relaxed));
    exit.into()
}
