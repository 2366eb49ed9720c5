//! Start-up probes: prerequisites checked before any monitor starts, each failure with a
//! `reason` an alert can match and a `resolution` an operator can paste. This example's
//! data directory does not exist, so it exits at once with code 69 (`EX_UNAVAILABLE`).
//!
//! ```text
//! cargo run --example probes; echo "exit code $?"
//! ```
//!
//! `DaemonBuilder::startup_probe` is for what the process truly cannot run without: a
//! failure ends it, and under `Restart=always` systemd restarts it in a loop. For
//! something an operator fixes while the daemon runs, give the probe to a component
//! (`Component::probe`): it is retried in the background and shown in `/ready` instead
//! (see the `component_routes` example).

use std::process::ExitCode;

use daemonkit::probe::{FreeSpace, ProbeExt, WriteTest};
use daemonkit::{Daemon, monitor_fn};

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_writer(std::io::stderr)
        .init();

    let data = std::env::temp_dir().join("daemonkit-probes-example/data");
    let builder = Daemon::builder("probes-example")
        .monitor(monitor_fn("worker", |cancel| async move {
            cancel.cancelled().await;
            Ok(())
        }))
        // Tagged: the operator reads this reason and this command, not a bare errno.
        .startup_probe(WriteTest::new(&data).tagged(
            "DataDirNotWritable",
            format!(
                "mkdir -p {} && chown \"$(id -un)\" {}",
                data.display(),
                data.display()
            ),
        ))
        .startup_probe(
            FreeSpace::min_bytes(std::env::temp_dir(), 1024 * 1024).tagged(
                "DataDiskFull",
                "free space on the data volume (logs? old snapshots?)",
            ),
        );
    let exit = match builder.build() {
        Ok(daemon) => daemon.run_main(),
        Err(err) => err.into(),
    };
    // "start-up probe failed: DataDirNotWritable: …" then "resolution: mkdir -p …"
    eprintln!("{exit}");
    exit.into()
}
