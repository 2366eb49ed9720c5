//! `daemonctl events …`: work with daemonkit-eventlog JSONL audit files.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use daemonkit_eventlog::{Error, read_events};

/// `daemonctl events` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum EventsCommand {
    /// Check that every line of an event file is a valid event.
    ///
    /// Prints the number of valid events and exits 0 when every line is valid. Otherwise lists
    /// each malformed line as FILE:LINE: PROBLEM, then the counts, and exits 1. Exits 2 when the
    /// file cannot be read.
    Verify {
        /// The JSONL event file, as written by daemonkit-eventlog or the Go daemonkit.
        file: PathBuf,
    },
}

/// Runs an `events` subcommand.
pub fn run(command: EventsCommand) -> ExitCode {
    match command {
        EventsCommand::Verify { file } => verify(&file),
    }
}

/// Exit status of `verify` when some lines are malformed.
const MALFORMED: u8 = 1;
/// Exit status of `verify` when the file cannot be read.
const UNREADABLE: u8 = 2;

fn verify(file: &Path) -> ExitCode {
    let events = match read_events(file) {
        Ok(events) => events,
        Err(err) => return unreadable(&err),
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut valid = 0u64;
    let mut malformed = 0u64;
    for result in events {
        match result {
            Ok(_) => valid += 1,
            Err(err @ Error::MalformedLine { .. }) => {
                malformed += 1;
                // A closed stdout (e.g. piped into `head`) is no reason to stop counting.
                let _ = writeln!(out, "{err}");
            }
            Err(err) => return unreadable(&err),
        }
    }
    if malformed == 0 {
        let _ = writeln!(out, "{}: {}", file.display(), count(valid, "valid event"));
        ExitCode::SUCCESS
    } else {
        let _ = writeln!(
            out,
            "{}: {}, {}",
            file.display(),
            count(valid, "valid event"),
            count(malformed, "malformed line")
        );
        ExitCode::from(MALFORMED)
    }
}

/// `1 valid event`, `2 valid events`.
fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("{n} {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

fn unreadable(err: &Error) -> ExitCode {
    eprintln!("daemonctl: {err}");
    ExitCode::from(UNREADABLE)
}
