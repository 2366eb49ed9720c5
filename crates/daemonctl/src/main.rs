//! `daemonctl`: the operator's CLI for daemonkit daemons.

use std::process::ExitCode;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

mod control;
mod events;
mod prune;

/// Ask a daemonkit daemon what it is doing, verify its event log, prune retention files.
#[derive(Debug, Parser)]
#[command(name = "daemonctl", version, about)]
struct Cli {
    /// The daemon's control socket [default: $DAEMONCTL_SOCKET, else the demo's default path].
    #[arg(long, global = true, value_name = "PATH", env = "DAEMONCTL_SOCKET")]
    socket: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show every monitor's state as a table. Exit code: 0 all running, 1 some monitor
    /// degraded, backing off or stopped, 2 the daemon could not be asked.
    Status {
        /// Print the daemon's raw JSON instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Check that the daemon answers (liveness). Exit code 0, or 2 when it does not.
    Health,
    /// GET a path from the control plane (e.g. a component route) and print it as JSON.
    Get {
        /// The path, starting with '/', e.g. /status or /mycomponent/peers.
        path: String,
    },
    /// Work with daemonkit-eventlog JSONL audit files.
    Events {
        #[command(subcommand)]
        command: events::EventsCommand,
    },
    /// Prune retention files in a directory (see `daemonctl prune --help`).
    Prune(prune::PruneArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let socket = || cli.socket.clone().unwrap_or_else(control::default_socket);
    match cli.command {
        Command::Status { json } => control::status(&socket(), json),
        Command::Health => control::health(&socket()),
        Command::Get { ref path } => control::get_path(&socket(), path),
        Command::Events { command } => events::run(command),
        Command::Prune(args) => prune::run(args),
    }
}
