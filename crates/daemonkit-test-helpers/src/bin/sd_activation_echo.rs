//! A tiny socket-activated service for the activation tests: takes the Unix listener
//! systemd (or `systemd-socket-activate`) passed, answers one connection and exits.
//!
//! ```text
//! sd_activation_echo [--report] [--name NAME]
//! ```
//!
//! It first prints `fds: <count> names: <a:b:…>` and `claimed again: <count>` (a second
//! `ListenFds::from_env` in the same process must get nothing). With `--report` it stops
//! there. Otherwise it takes the listener named NAME (or the first Unix listener), accepts
//! one connection, reads one line and answers `name=<NAME> path=<socket path> echo=<line>`.
//! Exits 1 with the error on stderr when anything fails.

use std::io::{BufRead, BufReader, Write};

use daemonkit::systemd::activation::ListenFds;

fn main() {
    if let Err(error) = run() {
        eprintln!("sd_activation_echo: {error}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut report_only = false;
    let mut name = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--report" => report_only = true,
            "--name" => name = Some(args.next().ok_or("--name needs a value")?),
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }

    let mut fds = ListenFds::from_env()?;
    println!(
        "fds: {} names: {}",
        fds.len(),
        fds.names().collect::<Vec<_>>().join(":")
    );
    println!("claimed again: {}", ListenFds::from_env()?.len());
    if report_only {
        return Ok(());
    }

    let listener = fds
        .take_unix_listener(name.as_deref())?
        .ok_or("no Unix listener was passed")?;
    let path = listener.local_addr()?;
    let (conn, _) = listener.accept()?;
    let mut line = String::new();
    BufReader::new(&conn).read_line(&mut line)?;
    writeln!(
        &conn,
        "name={} path={} echo={}",
        name.as_deref().unwrap_or("-"),
        path.as_pathname()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        line.trim_end()
    )?;
    Ok(())
}
