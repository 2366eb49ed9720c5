//! `daemonkit-demo`: a small daemon that shows daemonkit at work.
//!
//! Three monitors show the supervisor's behaviours within seconds: `steady` stays
//! healthy, `flaky` crashes shortly after every start (back-off, `MonitorDegraded`), and
//! `watcher` flips a connectivity error on and off (`degraded`). A fourth, `pruner`,
//! keeps the event-log directory within its retention. The control plane answers on a
//! Unix socket (`daemonctl status`), milestones go to a durable JSONL event log, and logs
//! are JSON lines on stderr, one object per record, each with its `reason`.

mod events;
mod monitors;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use daemonkit::{ControlPlane, Daemon, Exit, RestartPolicy};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// A demo daemon built on daemonkit: supervised monitors that stay up, crash and flap,
/// a control socket, a durable event log and retention pruning.
#[derive(Debug, Parser)]
#[command(name = "daemonkit-demo", version, about)]
struct Args {
    /// The control socket [default: $XDG_RUNTIME_DIR/daemonkit-demo/control.sock, else
    /// TMPDIR/daemonkit-demo-UID/control.sock]. `daemonctl` uses the same default.
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,

    /// Also serve the control plane (with /metrics) over TCP, e.g. 127.0.0.1:9464.
    #[arg(long, value_name = "ADDR")]
    metrics_addr: Option<SocketAddr>,

    /// Where the event log lives [default: TMPDIR/daemonkit-demo-UID/state].
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

    /// How long the `flaky` monitor runs before it crashes.
    #[arg(long, value_name = "DURATION", default_value = "200ms", value_parser = parse_duration)]
    flaky_after: Duration,

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

    /// How long shutdown waits for monitors to stop.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    shutdown_deadline: Duration,
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
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_writer(std::io::stderr)
        .with_max_level(tracing::Level::TRACE)
        .finish()
        .with(log_filter())
        .init();

    // One thread is plenty for a handful of monitors and an operator's requests, starts
    // faster (no worker threads to spawn before READY=1) and keeps the idle RSS down.
    // Blocking work (event-log fsyncs, pruning) still goes to tokio's blocking pool.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("daemonkit-demo: cannot start the tokio runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let exit = runtime.block_on(run(args));
    if !matches!(exit, Exit::Clean) {
        eprintln!("daemonkit-demo: {exit}");
    }
    exit.into()
}

async fn run(args: Args) -> Exit {
    let mut policy = RestartPolicy::builder()
        .initial(args.backoff_initial)
        .cap(args.backoff_cap.max(args.backoff_initial));
    if let Some(every) = args.heartbeat {
        policy = policy.heartbeat(every);
    }
    let policy = match policy.build() {
        Ok(policy) => policy,
        Err(err) => return Exit::Config(err),
    };
    let degraded_every = policy.degraded_every();

    let socket = args
        .socket
        .unwrap_or_else(|| daemonkit::paths::default_socket_path("daemonkit-demo"));
    let state_dir = args
        .state_dir
        .unwrap_or_else(|| daemonkit::paths::user_temp_dir("daemonkit-demo").join("state"));
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
    let daemon = Daemon::builder("daemonkit-demo")
        .policy(policy)
        .control_plane(control_plane)
        .shutdown_deadline(args.shutdown_deadline)
        .monitor(monitors::steady())
        .monitor(monitors::flaky(args.flaky_after))
        .monitor(monitors::watcher(args.flip_every))
        .monitor(monitors::pruner(
            state_dir.clone(),
            args.prune_every,
            args.retention,
            args.keep,
            live.clone(),
        ));

    // Milestones go to the durable event log from a task of their own, so the fsyncs
    // never delay start-up (READY=1) or a supervisor.
    let events = events::EventWriter::start(state_dir, live);
    events.record_degraded_streaks(daemon.tracker(), degraded_every);
    events.daemon_started();

    let exit = daemon.run().await;
    if matches!(exit, Exit::Clean) {
        events.daemon_stopped();
    }
    events.finish().await;
    exit
}
