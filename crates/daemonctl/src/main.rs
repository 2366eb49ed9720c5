//! `daemonctl`: the operator's CLI for daemonkit daemons.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod events;
mod prune;

/// Ask a daemonkit daemon what it is doing, verify its event log, prune retention files.
#[derive(Debug, Parser)]
#[command(name = "daemonctl", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
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
    match cli.command {
        Command::Events { command } => events::run(command),
        Command::Prune(args) => prune::run(args),
    }
}
