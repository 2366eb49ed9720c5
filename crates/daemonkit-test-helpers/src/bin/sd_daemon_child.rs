//! A small daemon on the `Daemon` runner, used by `tests/daemon.rs` as a real child
//! process. Arguments: `SOCKET [fail-probe] [stubborn] [block] [hang-blocking] [reload]`.
//!
//! - `fail-probe`: a start-up probe that fails with a reason and a resolution;
//! - `stubborn`: a monitor that ignores cancellation (shutdown timeout 200 ms);
//! - `block`: a monitor that blocks the runtime's only thread 100 ms after it starts;
//! - `hang-blocking`: a monitor awaiting `spawn_blocking` work that never ends, ignoring
//!   cancellation;
//! - `reload`: a SIGHUP reload hook that logs `ReloadHookRan`;
//! - `reload-panic`: a SIGHUP reload hook that panics with a non-string payload;
//! - `alive-panic`: a watchdog is-alive check that panics;
//! - `components`: two components instead of the implicit one — `alpha` (monitor
//!   `worker`, with a prerequisite probe) and `beta` (monitor `idle`, no probe); probes
//!   are retried every 100 ms and cut after 200 ms. `alpha`'s probe is chosen by
//!   `probe-file=PATH` (passes while PATH exists, else fails with reason `MarkerMissing`),
//!   `probe-panic` (panics before returning its future) or `probe-hang` (never finishes).

use std::process::ExitCode;
use std::time::Duration;

use daemonkit::probe::{Probe, ProbeError, probe_fn};
use daemonkit::{BoxFuture, Component, ControlPlane, Daemon, Exit, ProbeExt, monitor_fn};

/// A probe that panics before it returns its future.
struct Panicking;

impl Probe for Panicking {
    fn check(&self) -> BoxFuture<'_, Result<(), ProbeError>> {
        panic!("probe exploded")
    }
}

fn idle(name: &str) -> std::sync::Arc<dyn daemonkit::Monitor> {
    monitor_fn(name, |cancel| async move {
        cancel.cancelled().await;
        Ok(())
    })
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(socket) = args.first() else {
        eprintln!("usage: sd_daemon_child SOCKET [FLAG…] (see the source)");
        return ExitCode::from(2);
    };
    let has = |flag: &str| args.iter().any(|a| a == flag);

    let mut daemon = Daemon::builder("sd-daemon-child")
        .control_plane(ControlPlane::builder(socket))
        .shutdown_timeout(Duration::from_millis(200));
    if has("components") {
        let mut alpha = Component::new("alpha").monitor(idle("worker"));
        if let Some(path) = args.iter().find_map(|a| a.strip_prefix("probe-file=")) {
            let path = std::path::PathBuf::from(path);
            alpha = alpha.probe(
                probe_fn("marker file", move || {
                    let exists = path.exists();
                    let shown = path.display().to_string();
                    async move {
                        if exists {
                            return Ok(());
                        }
                        Err(ProbeError::failed(format!("{shown} does not exist")))
                    }
                })
                .tagged("MarkerMissing", "touch the marker file"),
            );
        }
        if has("probe-panic") {
            alpha = alpha.probe(Panicking);
        }
        if has("probe-hang") {
            alpha = alpha.probe(probe_fn("hang", std::future::pending));
        }
        daemon = daemon
            .probe_interval(Duration::from_millis(100))
            .probe_timeout(Duration::from_millis(200))
            .component(alpha)
            .component(Component::new("beta").monitor(idle("idle")));
    } else {
        daemon = daemon.monitor(idle("worker"));
    }
    if has("fail-probe") {
        daemon = daemon.startup_probe(
            probe_fn("data dir", || async {
                Err(ProbeError::failed(
                    "/var/lib/demo is owned by root, expected app",
                ))
            })
            .tagged("DataDirNotOwned", "sudo chown app:app /var/lib/demo"),
        );
    }
    if has("stubborn") {
        daemon = daemon.monitor(monitor_fn("stubborn", |_cancel| async {
            std::future::pending::<()>().await;
            Ok(())
        }));
    }
    if has("block") {
        daemon = daemon.monitor(monitor_fn("blocker", |_cancel| async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            tracing::info!(reason = "BlockingNow", "blocking the runtime thread");
            std::thread::sleep(Duration::from_secs(3600));
            Ok(())
        }));
    }
    if has("hang-blocking") {
        daemon = daemon.monitor(monitor_fn("hung-io", |_cancel| async {
            let _ =
                tokio::task::spawn_blocking(|| std::thread::sleep(Duration::from_secs(3600))).await;
            Ok(())
        }));
    }
    if has("reload-panic") {
        daemon = daemon.on_reload(|| async { std::panic::panic_any(7_u8) });
    }
    if has("alive-panic") {
        daemon = daemon.watchdog_alive(|| panic!("is-alive exploded"));
    }
    if has("reload") {
        daemon = daemon.on_reload(|| async {
            tracing::info!(reason = "ReloadHookRan", "reloading");
            Ok(())
        });
    }
    let exit = daemon
        .build()
        .map_or_else(Exit::from, |daemon| daemon.run_main());
    if !exit.is_clean() {
        eprintln!("sd-daemon-child: {exit}");
    }
    exit.into()
}
