//! `daemonctl`: the operator's CLI for daemonkit daemons.
//!
//! It trusts nothing it reads: answers from the socket are bounded in size and time,
//! the socket's directory and the server's peer credentials are checked before a byte is
//! believed, and every string from a daemon or a file name is escaped before it reaches
//! the terminal (see `client` and `escape`).
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

mod act;
mod client;
mod escape;
mod events;
mod prune;
mod status;

/// Ask a daemonkit daemon what it is doing, verify and tail its event log, prune
/// retention files.
#[derive(Debug, Parser)]
#[command(
    name = "daemonctl",
    version,
    about,
    after_help = "Exit codes: 0 healthy / success, 1 something is not healthy (or a file is \
                  bad), 2 no trustworthy answer or bad input."
)]
struct Cli {
    /// The daemon's control socket, for the commands that talk to one (also accepted
    /// after the command).
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// The daemon whose default socket to use (also accepted after the command).
    #[arg(long, value_name = "NAME")]
    daemon: Option<String>,
    #[command(subcommand)]
    command: Command,
}

/// How to reach a daemon: the options of every command that talks to one.
#[derive(Debug, Clone, clap::Args)]
struct Conn {
    /// The daemon's control socket [default: $DAEMONCTL_SOCKET, else the --daemon's
    /// default].
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Use the default socket of the daemon NAME, by the rule the daemon itself applies
    /// ($XDG_RUNTIME_DIR/NAME/control.sock, else TMPDIR/NAME-UID/control.sock; else
    /// /run/NAME/control.sock if that exists) [default: $DAEMONCTL_DAEMON, else
    /// daemonkit-demo].
    #[arg(long, value_name = "NAME")]
    daemon: Option<String>,
    /// The largest response body accepted, in bytes; a larger answer is refused (exit 2).
    #[arg(long, value_name = "BYTES", default_value_t = client::DEFAULT_MAX_BODY)]
    max_body: u64,
    /// How long the whole exchange with the daemon may take.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    timeout: Duration,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show every monitor's state as a table, and NOT READY lines for failing
    /// prerequisite probes. Exit code: 0 all running, 1 some monitor degraded, backing off
    /// or stopped, or a probe failing, 2 the daemon could not be asked.
    Status {
        #[command(flatten)]
        conn: Conn,
        /// Output: `table`, `wide` (with the error message), or `json` (the daemon's own
        /// document).
        #[arg(short, long, value_name = "FORMAT", default_value = "table")]
        output: status::Output,
        /// The same as `-o json`.
        #[arg(long)]
        json: bool,
    },
    /// Everything the daemon says about one monitor: state and since, restarts, last
    /// error with reason, message, resolution and since, and any other field it sends.
    /// Exit codes as `status`.
    Describe {
        /// `MONITOR`, or `COMPONENT/MONITOR` for a daemon with components.
        #[arg(value_name = "[COMPONENT/]MONITOR")]
        monitor: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// The status table, refreshed every --interval until Ctrl-C: redrawn in place with
    /// changed cells highlighted on a terminal, one table after another elsewhere.
    Watch {
        #[command(flatten)]
        conn: Conn,
        /// How often to ask.
        #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
        interval: Duration,
        /// Show the error message column too.
        #[arg(long)]
        wide: bool,
    },
    /// Restart one monitor: cancel its run (or back-off) and start it again at once, its
    /// back-off and crash streak reset; the other monitors are untouched. Allowed to root,
    /// the daemon's user and whom the daemon names. Exit 0 done, 1 refused, 2 no answer.
    Restart {
        /// `MONITOR`, or `COMPONENT/MONITOR` for a daemon with components.
        #[arg(value_name = "[COMPONENT/]MONITOR")]
        monitor: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Stop one monitor and keep it stopped until `start` (exit codes as `restart`).
    Stop {
        /// `MONITOR`, or `COMPONENT/MONITOR`.
        #[arg(value_name = "[COMPONENT/]MONITOR")]
        monitor: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Start a stopped monitor (exit codes as `restart`).
    Start {
        /// `MONITOR`, or `COMPONENT/MONITOR`.
        #[arg(value_name = "[COMPONENT/]MONITOR")]
        monitor: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Show the daemon's log filter, or set it (e.g. `debug`, `info,daemonkit=debug`),
    /// optionally only for a while (`--for 10m`, then the previous filter comes back).
    LogLevel {
        /// The new filter; without one, the current filter is shown.
        filter: Option<String>,
        /// Revert to the previous filter after this long.
        #[arg(long = "for", value_name = "DURATION", value_parser = parse_duration)]
        revert_after: Option<Duration>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Check that the daemon answers (liveness). Exit code 0, or 2 when it does not.
    Health {
        #[command(flatten)]
        conn: Conn,
    },
    /// GET a path from the control plane (e.g. a component route) and print it as JSON.
    Get {
        /// The path, starting with '/', e.g. /status or /mycomponent/peers.
        path: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Work with daemonkit-eventlog JSONL audit files.
    Events {
        #[command(subcommand)]
        command: events::EventsCommand,
    },
    /// Prune retention files in a directory (the full rules: `daemonctl prune --help`).
    Prune(prune::PruneArgs),
    /// Print a shell completion script, e.g. `daemonctl completions bash >
    /// /usr/share/bash-completion/completions/daemonctl`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), e.g. `daemonctl man > /usr/share/man/man1/daemonctl.1`.
    Man,
}

/// Parses `50ms`, `5s`, `1m30s` and the like.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let signed: jiff::SignedDuration = text
        .parse()
        .map_err(|e| format!("{text:?} is not a duration like 500ms, 5s or 1m: {e}"))?;
    Duration::try_from(signed).map_err(|_| format!("{text:?} must not be negative"))
}

/// `1s`, `250ms`: a duration as the flags take it.
fn humanize(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// The commands that talk to a daemon (and so take `--socket`).
const SOCKET_COMMANDS: [&str; 9] = [
    "status",
    "describe",
    "watch",
    "restart",
    "stop",
    "start",
    "log-level",
    "health",
    "get",
];

/// The clap definition with the resolved default socket printed in `--help`.
fn command() -> clap::Command {
    let daemon = std::env::var("DAEMONCTL_DAEMON")
        .ok()
        .filter(|d| client::check_daemon_name(d).is_ok())
        .unwrap_or_else(|| client::DEFAULT_DAEMON.to_owned());
    let default = match std::env::var_os("DAEMONCTL_SOCKET") {
        Some(s) if !s.is_empty() => format!("{} (from $DAEMONCTL_SOCKET)", escape::os(&s)),
        _ => format!(
            "{} (the default of {})",
            escape::path(&client::default_socket(&daemon).0),
            escape::text(&daemon)
        ),
    };
    let help = format!("The daemon's control socket [now: {default}]");
    let mut cmd = Cli::command().mut_arg("socket", |a| a.help(help.clone()));
    for name in SOCKET_COMMANDS {
        let help = help.clone();
        cmd = cmd.mut_subcommand(name, |s| s.mut_arg("socket", |a| a.help(help)));
    }
    cmd
}

impl Conn {
    /// Resolves the target: flags after the command win over those before it, `--socket`
    /// over `--daemon`, flags over the environment.
    fn target(
        self,
        top_socket: Option<PathBuf>,
        top_daemon: Option<String>,
    ) -> Result<client::Target, client::Failure> {
        let socket = self.socket.or(top_socket);
        let daemon = self.daemon.or(top_daemon);
        let (socket, computed_private) = match (socket, daemon) {
            (Some(socket), _) => (socket, false),
            (None, Some(daemon)) => {
                client::check_daemon_name(&daemon)?;
                client::default_socket(&daemon)
            }
            (None, None) => match std::env::var_os("DAEMONCTL_SOCKET") {
                Some(s) if !s.is_empty() => (PathBuf::from(s), false),
                _ => {
                    let daemon = std::env::var("DAEMONCTL_DAEMON")
                        .unwrap_or_else(|_| client::DEFAULT_DAEMON.to_owned());
                    client::check_daemon_name(&daemon)?;
                    client::default_socket(&daemon)
                }
            },
        };
        Ok(client::Target {
            socket,
            computed_private,
            max_body: self.max_body,
            timeout: self.timeout,
        })
    }
}

fn main() -> ExitCode {
    let matches = command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(err) => err.exit(),
    };
    let (top_socket, top_daemon) = (cli.socket, cli.daemon);
    let with_target = |conn: Conn, run: &dyn Fn(&client::Target) -> ExitCode| match conn
        .target(top_socket.clone(), top_daemon.clone())
    {
        Ok(target) => run(&target),
        Err(failure) => client::fail(failure),
    };
    let file_command = match &cli.command {
        Command::Events { .. } => Some("events"),
        Command::Prune(_) => Some("prune"),
        Command::Completions { .. } => Some("completions"),
        Command::Man => Some("man"),
        _ => None,
    };
    if let Some(what) = file_command
        && (top_socket.is_some() || top_daemon.is_some())
    {
        eprintln!(
            "daemonctl: --socket and --daemon do nothing with `{what}`, which does not talk to a daemon"
        );
        return ExitCode::from(client::UNREACHABLE);
    }
    match cli.command {
        Command::Status { conn, output, json } => {
            let output = if json { status::Output::Json } else { output };
            with_target(conn, &|t| status::status(t, output))
        }
        Command::Describe { monitor, conn } => {
            with_target(conn, &|t| status::describe(t, &monitor))
        }
        Command::Watch {
            conn,
            interval,
            wide,
        } => with_target(conn, &|t| status::watch(t, interval, wide)),
        Command::Restart { monitor, conn } => {
            with_target(conn, &|t| act::monitor(t, act::Action::Restart, &monitor))
        }
        Command::Stop { monitor, conn } => {
            with_target(conn, &|t| act::monitor(t, act::Action::Stop, &monitor))
        }
        Command::Start { monitor, conn } => {
            with_target(conn, &|t| act::monitor(t, act::Action::Start, &monitor))
        }
        Command::LogLevel {
            filter,
            revert_after,
            conn,
        } => with_target(conn, &|t| {
            act::log_level(t, filter.as_deref(), revert_after)
        }),
        Command::Health { conn } => with_target(conn, &status::health),
        Command::Get { path, conn } => with_target(conn, &|t| status::get_path(t, &path)),
        Command::Events { command } => events::run(command),
        Command::Prune(args) => prune::run(args),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut command(), "daemonctl", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Command::Man => match clap_mangen::Man::new(command()).render(&mut std::io::stdout()) {
            Ok(()) => ExitCode::SUCCESS,
            // A closed stdout (e.g. `| head`): nothing more to say.
            Err(_) => ExitCode::SUCCESS,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cli_definition_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn socket_is_offered_only_where_it_does_something() {
        let cmd = command();
        for sub in cmd.get_subcommands() {
            let has = sub.get_arguments().any(|a| a.get_id() == "socket");
            assert_eq!(
                has,
                SOCKET_COMMANDS.contains(&sub.get_name()),
                "{}",
                sub.get_name()
            );
        }
    }
}
