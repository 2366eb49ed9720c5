//! `daemonctl events …`

use std::process::ExitCode;

/// `daemonctl events` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum EventsCommand {}

/// Runs an `events` subcommand.
pub fn run(command: EventsCommand) -> ExitCode {
    match command {}
}
