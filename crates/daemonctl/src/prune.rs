//! `daemonctl prune …`

use std::process::ExitCode;

/// Arguments of `daemonctl prune`.
#[derive(Debug, clap::Args)]
pub struct PruneArgs {}

/// Runs `daemonctl prune`.
pub fn run(_args: PruneArgs) -> ExitCode {
    ExitCode::SUCCESS
}
