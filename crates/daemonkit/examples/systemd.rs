//! systemd integration: `Type=notify` readiness, the watchdog keepalive, a reload hook
//! and a socket-activated control socket — all from the environment systemd sets, so
//! the same binary runs by hand (everything off) or as a unit (everything on).
//!
//! By hand: `cargo run --example systemd`. As a transient user unit, socket-activated,
//! with a 4 s watchdog:
//!
//! ```text
//! cargo build --example systemd
//! systemd-run --user --unit=dk-systemd -p Type=notify -p WatchdogSec=4s \
//!     -p ExecReload="/bin/kill -HUP \$MAINPID" \
//!     --socket-property=ListenStream=%t/dk-systemd.sock \
//!     "$PWD/target/debug/examples/systemd"
//! curl --unix-socket "$XDG_RUNTIME_DIR/dk-systemd.sock" http://x/health   # starts it
//! systemctl --user status dk-systemd     # "Status: running 1 monitors; …"
//! systemctl --user reload dk-systemd     # RELOADING=1, the hook, READY=1
//! systemctl --user stop dk-systemd       # STOPPING=1, a clean stop
//! ```
//!
//! Without `systemd-run --user` (a container without a user manager),
//! `systemd-socket-activate --listen=/tmp/dk.sock --setenv=WATCHDOG_USEC=4000000
//! target/debug/examples/systemd` passes the socket the same way.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use daemonkit::monitor::every;
use daemonkit::{Daemon, MonitorState};

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_writer(std::io::stderr)
        .init();

    let work = every("work", Duration::from_millis(500), || async { Ok(()) });
    let reloads = Arc::new(AtomicU64::new(0));
    let counter = reloads.clone();
    let builder = Daemon::builder("dk-systemd")
        .monitor(Arc::new(work))
        // SIGHUP (`systemctl reload`): RELOADING=1, this hook, then READY=1.
        .on_reload(move || {
            let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
            async move {
                tracing::info!(
                    reason = "ConfigReloaded",
                    reloads = n,
                    "configuration reloaded"
                );
                Ok(())
            }
        })
        .shutdown_timeout(Duration::from_secs(5));
    // The watchdog keepalive (WATCHDOG=1 every WatchdogSec/2) is sent only while this
    // says the daemon is alive: here, while its monitor is not stuck in back-off.
    let tracker = builder.tracker().clone();
    let builder = builder.watchdog_alive(move || {
        !matches!(
            tracker.get("work").map(|s| s.state),
            Some(MonitorState::Backoff(_))
        )
    });

    // `build` reads NOTIFY_SOCKET, WATCHDOG_USEC/WATCHDOG_PID and LISTEN_FDS; with
    // LISTEN_FDS it serves on the passed socket instead of binding its own.
    match builder.build() {
        Ok(daemon) => {
            eprintln!("control socket: {}", daemon.socket_path().display());
            daemon.run_main().into()
        }
        Err(err) => {
            eprintln!("systemd: {err}");
            ExitCode::from(78)
        }
    }
}
