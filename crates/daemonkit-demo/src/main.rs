//! `daemonkit-demo`: a small daemon that shows daemonkit at work.
//!
//! Two components. `core`'s three monitors show the supervisor's behaviours within
//! seconds: `steady` stays healthy, `flaky` fails shortly after every start (back-off,
//! `MonitorDegraded`; `--flaky-mode` picks how), and `watcher` flips a connectivity error
//! on and off (`degraded`). `retention`'s `pruner` keeps the event-log directory within
//! its retention, and may wait for a prerequisite an operator fixes at run time
//! (`--require-dir`). The control plane answers on a Unix socket (`daemonctl status`),
//! milestones go to a durable JSONL event log, and logs are JSON lines on stderr (or
//! journald's native fields under systemd), each record with its `reason`.

#![forbid(unsafe_code)]

mod events;
mod logging;
mod monitors;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use daemonkit::probe::WriteTest;
use daemonkit::{Component, ControlPlane, Daemon, Exit, ProbeExt, RestartPolicy};

/// A demo daemon built on daemonkit: supervised monitors that stay up, crash and flap,
/// a control socket, a durable event log and retention pruning.
#[derive(Debug, Parser)]
#[command(name = "daemonkit-demo", version, about)]
struct Args {
    /// The control socket [default: control.sock in $RUNTIME_DIRECTORY, else in
    /// $XDG_RUNTIME_DIR/daemonkit-demo, else in TMPDIR/daemonkit-demo-UID (created 0700)].
    /// `daemonctl` uses the same default.
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,

    /// Also serve the control plane (with /metrics) over TCP, e.g. 127.0.0.1:9464.
    #[arg(long, value_name = "ADDR")]
    metrics_addr: Option<SocketAddr>,

    /// Where the event log lives [default: $STATE_DIRECTORY, else the `state` directory
    /// next to the default socket (created 0700)].
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,

    /// Back-off before the first restart of a crashed monitor; doubles per consecutive
    /// crash up to --backoff-cap. Try 50ms to watch crashes and MonitorDegraded quickly.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    backoff_initial: Duration,

    /// The longest back-off between restarts.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    backoff_cap: Duration,

    /// Log a MonitorHeartbeat record per monitor at this interval (off when not given).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    heartbeat: Option<Duration>,

    /// A directory the `retention` component needs (it must exist and be writable). Until
    /// it does, the daemon serves, `/status` shows the failing prerequisite and
    /// `retention`'s monitor waits; create it and within one --probe-interval it starts.
    #[arg(long, value_name = "PATH")]
    require_dir: Option<PathBuf>,

    /// How often a component's failing prerequisite is checked again.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    probe_interval: Duration,

    /// How long the `flaky` monitor runs before it fails.
    #[arg(long, value_name = "DURATION", default_value = "200ms", value_parser = parse_duration)]
    flaky_after: Duration,

    /// How the `flaky` monitor fails: `error` (returns an error: back-off, restarts),
    /// `panic` (panics in its future), `panic-early` (panics in `run` before returning its
    /// future), `hang` (never returns, ignores cancellation: named at shutdown, exit 1),
    /// `block` (blocks the runtime's only thread: the control socket stops answering, and
    /// SIGTERM still ends the process within --shutdown-timeout plus 200 ms, exit 1).
    #[arg(long, value_name = "MODE", value_enum, default_value_t = monitors::FlakyMode::Error)]
    flaky_mode: monitors::FlakyMode,

    /// How often the `watcher` monitor flips its connectivity error on or off.
    #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = parse_duration)]
    flip_every: Duration,

    /// How often the `pruner` monitor prunes old event-log files in the state directory.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_duration)]
    prune_every: Duration,

    /// Event-log files (one per day, `events-YYYYMMDD.jsonl`) older than this are pruned.
    #[arg(long, value_name = "DURATION", default_value = "168h", value_parser = parse_duration)]
    retention: Duration,

    /// Keep at most this many event-log files, whatever their age.
    #[arg(long, value_name = "N", default_value_t = 30)]
    keep: usize,

    /// How long shutdown waits for monitors to stop. The process exits by this plus
    /// 200 ms after SIGTERM, whatever its monitors do.
    #[arg(long, visible_alias = "shutdown-deadline", value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    shutdown_timeout: Duration,

    /// Where logs go: `json` lines on stderr, the journal's native protocol (`journald`,
    /// every field a journal field: `journalctl REASON=MonitorCrash`), or `auto`: the
    /// journal when stderr is connected to it (`JOURNAL_STREAM`), JSON otherwise.
    #[arg(long, value_name = "FORMAT", value_enum, default_value_t = logging::LogFormat::Auto)]
    log_format: logging::LogFormat,
}

/// What to log, from `RUST_LOG` (`info`, `warn,daemonkit=debug`, …; default `info`).
///
/// `Targets` rather than `EnvFilter`: it needs no regex engine, which keeps about a
/// megabyte of code out of the binary and out of the daemon's resident memory.
fn log_filter() -> tracing_subscriber::filter::Targets {
    let info = tracing_subscriber::filter::Targets::new().with_default(tracing::Level::INFO);
    match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => spec.parse().unwrap_or_else(|err| {
            eprintln!("daemonkit-demo: ignoring RUST_LOG={spec:?} ({err}); logging at info");
            info
        }),
        _ => info,
    }
}

/// Parses `50ms`, `5s`, `1m30s`, `2h` and the like.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let signed: jiff::SignedDuration = text
        .parse()
        .map_err(|e| format!("{text:?} is not a duration like 50ms, 5s or 1m30s: {e}"))?;
    Duration::try_from(signed).map_err(|_| format!("{text:?} must not be negative"))
}

fn main() -> ExitCode {
    let args = Args::parse();
    logging::install(args.log_format, log_filter());
    let exit = run(args);
    if !exit.is_clean() {
        eprintln!("daemonkit-demo: {exit}");
    }
    exit.into()
}

/// Builds the daemon (every configuration mistake is exit 78 here, before anything
/// runs) and runs it on the kit's bounded one-thread runtime: one thread is plenty for a
/// handful of monitors and an operator's requests, starts faster and keeps the idle RSS
/// down; blocking work (event-log fsyncs, pruning) goes to tokio's blocking pool.
fn run(args: Args) -> Exit {
    let mut policy = RestartPolicy::builder()
        .initial(args.backoff_initial)
        .cap(args.backoff_cap.max(args.backoff_initial));
    if let Some(every) = args.heartbeat {
        policy = policy.heartbeat(every);
    }
    let policy = match policy.build() {
        Ok(policy) => policy,
        Err(err) => return Exit::from(err),
    };
    let degraded_every = policy.degraded_every();

    // Defaults from daemonkit::paths: systemd's directories, else private ones (0700,
    // verified) under XDG_RUNTIME_DIR or the temp dir; a planted one is refused.
    let socket = match args.socket {
        Some(socket) => socket,
        None => match daemonkit::paths::runtime_dir("daemonkit-demo") {
            Ok(dir) => dir.join("control.sock"),
            Err(err) => return Exit::Config(err),
        },
    };
    let state_dir = match args.state_dir {
        Some(dir) => dir,
        None => match daemonkit::paths::state_dir("daemonkit-demo") {
            Ok(dir) => dir,
            Err(err) => return Exit::Config(err),
        },
    };
    tracing::info!(
        reason = "DemoStarting",
        socket = %socket.display(),
        state_dir = %state_dir.display(),
        pid = std::process::id(),
        "daemonkit-demo starting"
    );

    // The event log's live file, shared with the pruner so it is never pruned.
    let live = events::LiveFile::default();
    let mut control_plane = ControlPlane::builder(&socket);
    if let Some(addr) = args.metrics_addr {
        control_plane = control_plane.tcp(addr);
    }
    // Two components: `core` (the behaviours) and `retention` (the event log's pruning),
    // which may wait for an operator-fixable prerequisite (--require-dir).
    let core = Component::new("core")
        .monitor(monitors::steady())
        .monitor(monitors::flaky(args.flaky_after, args.flaky_mode))
        .monitor(monitors::watcher(args.flip_every));
    let mut retention = Component::new("retention").monitor(monitors::pruner(
        state_dir.clone(),
        args.prune_every,
        args.retention,
        args.keep,
        live.clone(),
    ));
    if let Some(dir) = &args.require_dir {
        retention = retention.probe(WriteTest::new(dir).tagged(
            "RequiredDirMissing",
            format!(
                "create it, writable by this daemon's user: mkdir -p {} && chown \"$(id -un)\" {}",
                dir.display(),
                dir.display()
            ),
        ));
    }
    let builder = Daemon::builder("daemonkit-demo")
        .policy(policy)
        .control_plane(control_plane)
        .shutdown_timeout(args.shutdown_timeout)
        .probe_interval(args.probe_interval)
        // The demo has no configuration file to re-read; the hook shows where one would
        // be (systemd's `ExecReload=`, SIGHUP: RELOADING=1, the hook, READY=1).
        .on_reload(|| async {
            tracing::info!(reason = "DemoReloaded", "nothing to reload in the demo");
            Ok(())
        })
        .component(core)
        .component(retention);
    let daemon = match builder.build() {
        Ok(daemon) => daemon,
        Err(err) => return Exit::from(err),
    };

    daemon.run_main_with(|daemon| async move {
        // Milestones go to the durable event log from a task of their own, so the fsyncs
        // never delay start-up (READY=1) or a supervisor; the log is opened at the first
        // milestone, once the daemon is ready.
        let events = events::EventWriter::start(state_dir, live);
        if let Some(core) = daemon.component_tracker("core") {
            events.record_degraded_streaks(core, degraded_every);
        }
        let exit = daemon.on_ready(events.on_started()).run().await;
        if exit.is_clean() {
            events.daemon_stopped();
        }
        events.finish().await;
        exit
    })
}
