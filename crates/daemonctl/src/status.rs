//! `daemonctl status | describe | health | get`: what a daemon says about itself.
//!
//! Two status shapes are understood:
//!
//! - **flat** (one implicit component, the Go seed's `/status`): an object of monitors,
//!   `{"<monitor>": {"state": …, "error": {…}, …}}`;
//! - **nested** (a daemon hosting components, the shape of the Go consumer's operator
//!   CLI): `{"components": {"<component>": {"monitors": {"<monitor>": {…}}}},
//!   "probe_errors": {"<component>": {"reason", "message", "resolution", "since"}}}`.
//!
//! Every string from the daemon is escaped before printing ([`crate::escape`]).

use std::fmt::Write as _;
use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;

use serde_json::{Map, Value};

use crate::client::{self, Failure, OK, Target, UNHEALTHY};
use crate::escape;

/// How `status` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// A table: monitor, state, since, restarts, reason, resolution; on a terminal also
    /// the error message, cut to the terminal's width.
    Table,
    /// The table with the error message column, untruncated.
    Wide,
    /// The daemon's JSON as it sent it (with raw C1 and bidi characters escaped).
    Json,
}

// ===== the document =====

/// One monitor's row: where it lives and what the daemon says about it.
struct Row<'a> {
    component: Option<&'a str>,
    name: &'a str,
    monitor: &'a Value,
}

/// A status document of either shape, borrowed from the parsed JSON.
struct Document<'a> {
    nested: bool,
    rows: Vec<Row<'a>>,
    /// (component, error) per failing prerequisite probe, nested shape only.
    probe_errors: Vec<(&'a str, &'a Value)>,
}

impl<'a> Document<'a> {
    /// Reads either shape, or says why the JSON is neither.
    fn parse(value: &'a Value) -> Result<Document<'a>, String> {
        let Some(top) = value.as_object() else {
            return Err("JSON that is not an object".to_owned());
        };
        if let Some(components) = nested_components(top) {
            let mut rows = Vec::new();
            for (component, body) in components {
                let monitors = body.get("monitors").and_then(Value::as_object);
                for (name, monitor) in monitors.into_iter().flatten() {
                    rows.push(Row {
                        component: Some(component),
                        name,
                        monitor,
                    });
                }
            }
            let probe_errors = top
                .get("probe_errors")
                .and_then(Value::as_object)
                .map(|errors| errors.iter().map(|(c, e)| (c.as_str(), e)).collect())
                .unwrap_or_default();
            return Ok(Document {
                nested: true,
                rows,
                probe_errors,
            });
        }
        let rows = top
            .iter()
            .map(|(name, monitor)| Row {
                component: None,
                name,
                monitor,
            })
            .collect();
        Ok(Document {
            nested: false,
            rows,
            probe_errors: Vec::new(),
        })
    }

    /// Healthy: every monitor running and no prerequisite probe failing.
    fn healthy(&self) -> bool {
        self.probe_errors.is_empty() && self.rows.iter().all(|r| state(r.monitor) == "running")
    }
}

/// The components map when `top` is the nested shape: a `components` object whose
/// entries are objects with a `monitors` object (a flat monitor called `components`
/// has a `state` instead).
fn nested_components(top: &Map<String, Value>) -> Option<&Map<String, Value>> {
    let components = top.get("components")?.as_object()?;
    if components.contains_key("state") {
        return None;
    }
    components
        .values()
        .all(|c| c.get("monitors").is_some_and(Value::is_object))
        .then_some(components)
}

fn str_field<'a>(v: Option<&'a Value>, key: &str) -> &'a str {
    v.and_then(|v| v.get(key))
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn state(monitor: &Value) -> &str {
    str_field(Some(monitor), "state")
}

/// "3m12s ago"-style age of `then`, coarse enough to read at a glance.
fn ago(now: jiff::Timestamp, then: jiff::Timestamp) -> String {
    let secs = now.duration_since(then).as_secs().max(0);
    let text = match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{}s", s / 60, s % 60),
        s if s < 86_400 => format!("{}h{}m", s / 3600, (s / 60) % 60),
        s => format!("{}d{}h", s / 86_400, (s / 3600) % 24),
    };
    format!("{text} ago")
}

fn parse_ts(s: &str) -> Option<jiff::Timestamp> {
    s.parse().ok()
}

// ===== the table =====

/// The monitor table of a status document: escaped cells, one row per monitor.
struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
    /// `component/monitor` (or `monitor`) per row, to match rows across redraws.
    keys: Vec<String>,
    state_col: usize,
    since_col: usize,
}

fn table(doc: &Document<'_>, wide: bool, now: jiff::Timestamp) -> Table {
    let mut headers: Vec<&'static str> = Vec::new();
    if doc.nested {
        headers.push("COMPONENT");
    }
    headers.extend(["MONITOR", "STATE", "SINCE", "RESTARTS", "REASON"]);
    if wide {
        headers.push("MESSAGE");
    }
    headers.push("RESOLUTION");
    let state_col = usize::from(doc.nested) + 1;

    let rows: Vec<Vec<String>> = doc
        .rows
        .iter()
        .map(|row| {
            let m = row.monitor;
            let error = m.get("error");
            let since = m
                .get("state_since")
                .or_else(|| error.and_then(|e| e.get("since")))
                .and_then(Value::as_str)
                .and_then(parse_ts)
                .map(|t| ago(now, t))
                .unwrap_or_else(|| "-".to_owned());
            let restarts = m
                .get("restarts")
                .and_then(Value::as_u64)
                .map_or_else(|| "-".to_owned(), |n| n.to_string());
            let cell = |s: &str| {
                if s.is_empty() {
                    "-".to_owned()
                } else {
                    escape::text(s).into_owned()
                }
            };
            let mut cells = Vec::new();
            if doc.nested {
                cells.push(cell(row.component.unwrap_or("")));
            }
            cells.push(cell(row.name));
            cells.push(cell(state(m)));
            cells.push(since);
            cells.push(restarts);
            cells.push(cell(str_field(error, "reason")));
            if wide {
                let message = str_field(error, "message");
                let message = if message.is_empty() {
                    m.get("last_error").and_then(Value::as_str).unwrap_or("")
                } else {
                    message
                };
                cells.push(cell(message));
            }
            cells.push(cell(str_field(error, "resolution")));
            cells
        })
        .collect();
    let keys = doc
        .rows
        .iter()
        .map(|r| match r.component {
            Some(c) => format!("{c}/{}", r.name),
            None => r.name.to_owned(),
        })
        .collect();
    Table {
        headers,
        rows,
        keys,
        state_col,
        since_col: state_col + 1,
    }
}

/// Lays the table out in aligned columns; the state coloured when `colour`, and the
/// cells for which `changed(row, column)` holds in reverse video.
fn format(table: &Table, colour: bool, changed: &dyn Fn(usize, usize) -> bool) -> String {
    let mut widths: Vec<usize> = table.headers.iter().map(|h| h.len()).collect();
    for row in &table.rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: &[String], row: Option<usize>| {
        for (i, (cell, width)) in cells.iter().zip(&widths).enumerate() {
            let mut codes: Vec<&str> = Vec::new();
            if colour && row.is_some() && i == table.state_col {
                codes.push(match cell.as_str() {
                    "running" => "32",
                    "stopped" | "failed" => "31",
                    _ => "33",
                });
            }
            if row.is_some_and(|r| changed(r, i)) {
                codes.push("7");
            }
            if codes.is_empty() {
                out.push_str(cell);
            } else {
                let _ = write!(out, "\x1b[{}m{cell}\x1b[0m", codes.join(";"));
            }
            if i + 1 < cells.len() {
                out.push_str(&" ".repeat(width - cell.chars().count() + 2));
            }
        }
        out.push('\n');
    };
    let header_cells: Vec<String> = table.headers.iter().map(|h| (*h).to_owned()).collect();
    line(&mut out, &header_cells, None);
    for (r, row) in table.rows.iter().enumerate() {
        line(&mut out, row, Some(r));
    }
    out
}

/// The terminal's width in columns, when stdout is a terminal that knows it.
fn terminal_width() -> Option<usize> {
    let size = rustix::termios::tcgetwinsize(io::stdout()).ok()?;
    (size.ws_col > 0).then_some(usize::from(size.ws_col))
}

/// Cuts the MESSAGE cells (with `…`) so every line fits in `width` columns, keeping at
/// least 10 characters of each message.
fn fit_message(table: &mut Table, width: usize) {
    let Some(col) = table.headers.iter().position(|h| *h == "MESSAGE") else {
        return;
    };
    let widths: Vec<usize> = (0..table.headers.len())
        .map(|c| {
            table
                .rows
                .iter()
                .map(|r| r[c].chars().count())
                .chain([table.headers[c].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let others: usize = widths
        .iter()
        .enumerate()
        .filter(|(c, _)| *c != col)
        .map(|(_, w)| w + 2)
        .sum();
    let room = width.saturating_sub(others).max(10);
    for row in &mut table.rows {
        if row[col].chars().count() > room {
            row[col] = row[col].chars().take(room - 1).collect::<String>() + "…";
        }
    }
}

/// Renders the status: NOT READY lines for failing prerequisite probes, then a table of
/// monitors (grouped by component in the nested shape). Every cell is escaped.
fn render(doc: &Document<'_>, wide: bool, colour: bool, now: jiff::Timestamp) -> String {
    let mut out = not_ready_lines(doc, now);
    out.push_str(&format(&table(doc, wide, now), colour, &|_, _| false));
    out
}

fn not_ready_lines(doc: &Document<'_>, now: jiff::Timestamp) -> String {
    let mut out = String::new();
    for (component, error) in &doc.probe_errors {
        out.push_str(&not_ready_line(component, error, now));
        out.push('\n');
    }
    out
}

/// `[NOT READY] consensus-node (UpgradeDirOwnershipCheckFailed): message. Resolution: fix.
/// Since: 2026-…Z (5m0s ago)`, every part escaped.
fn not_ready_line(component: &str, error: &Value, now: jiff::Timestamp) -> String {
    let reason = str_field(Some(error), "reason");
    let mut line = format!("[NOT READY] {}", escape::text(component));
    if !reason.is_empty() {
        let _ = write!(line, " ({})", escape::text(reason));
    }
    let message = str_field(Some(error), "message");
    let _ = write!(
        line,
        ": {}",
        if message.is_empty() {
            "prerequisite probe failing".into()
        } else {
            escape::text(message)
        }
    );
    let resolution = str_field(Some(error), "resolution");
    if !resolution.is_empty() {
        let _ = write!(line, " Resolution: {}", escape::text(resolution));
    }
    let since = str_field(Some(error), "since");
    if !since.is_empty() {
        let _ = write!(line, " Since: {}", escape::text(since));
        if let Some(t) = parse_ts(since) {
            let _ = write!(line, " ({})", ago(now, t));
        }
    }
    line
}

// ===== commands =====

fn fetch_status(target: &Target) -> Result<(Value, hyper::body::Bytes), Failure> {
    let (status, body) = client::get(target, "/status")?;
    let value = client::json(target, "/status", status, &body)?;
    Ok((value, body))
}

/// `daemonctl status [-o table|wide|json]`.
pub fn status(target: &Target, output: Output) -> ExitCode {
    let (value, body) = match fetch_status(target) {
        Ok(ok) => ok,
        Err(failure) => return client::fail(failure),
    };
    let doc = match Document::parse(&value) {
        Ok(doc) => doc,
        Err(what) => {
            return client::fail(Failure(format!(
                "the daemon on {} answered /status with {what}, not a status document",
                escape::path(&target.socket)
            )));
        }
    };
    let mut out = io::stdout().lock();
    let printed = match output {
        Output::Json => out
            .write_all(&escape::json_body(&body))
            .and_then(|()| out.write_all(b"\n")),
        Output::Table | Output::Wide => {
            let tty = io::stdout().is_terminal();
            let colour = tty && std::env::var_os("NO_COLOR").is_none();
            let now = jiff::Timestamp::now();
            let text = match (output, tty.then(terminal_width).flatten()) {
                // On a terminal the table gains the message, cut to fit the width.
                (Output::Table, Some(width)) => {
                    let mut table = table(&doc, true, now);
                    fit_message(&mut table, width);
                    not_ready_lines(&doc, now) + &format(&table, colour, &|_, _| false)
                }
                _ => render(&doc, output == Output::Wide, colour, now),
            };
            out.write_all(text.as_bytes())
        }
    };
    // A closed stdout (e.g. piped into `head`) changes nothing: the exit code tells.
    drop(printed);
    ExitCode::from(if doc.healthy() { OK } else { UNHEALTHY })
}

/// `daemonctl describe [COMPONENT/]MONITOR`: everything the daemon says about one monitor.
pub fn describe(target: &Target, wanted: &str) -> ExitCode {
    let value = match fetch_status(target) {
        Ok((value, _)) => value,
        Err(failure) => return client::fail(failure),
    };
    let doc = match Document::parse(&value) {
        Ok(doc) => doc,
        Err(what) => {
            return client::fail(Failure(format!(
                "the daemon on {} answered /status with {what}, not a status document",
                escape::path(&target.socket)
            )));
        }
    };
    let row = match find(&doc, wanted) {
        Ok(row) => row,
        Err(failure) => return client::fail(failure),
    };
    let probe_error = row
        .component
        .and_then(|c| doc.probe_errors.iter().find(|(pc, _)| *pc == c))
        .map(|(_, e)| *e);
    print!(
        "{}",
        describe_text(row, probe_error, jiff::Timestamp::now())
    );
    let healthy = probe_error.is_none() && state(row.monitor) == "running";
    ExitCode::from(if healthy { OK } else { UNHEALTHY })
}

/// Finds `MONITOR` (flat, or unique across components) or `COMPONENT/MONITOR`.
fn find<'d, 'a>(doc: &'d Document<'a>, wanted: &str) -> Result<&'d Row<'a>, Failure> {
    let exact: Vec<&Row<'_>> = doc
        .rows
        .iter()
        .filter(|r| match (r.component, wanted.split_once('/')) {
            (Some(c), Some((wc, wm))) => c == wc && r.name == wm,
            (None, _) | (Some(_), None) => r.name == wanted,
        })
        .collect();
    match exact.as_slice() {
        [one] => Ok(one),
        [] => {
            let known: Vec<String> = doc
                .rows
                .iter()
                .map(|r| match r.component {
                    Some(c) => escape::text(&format!("{c}/{}", r.name)).into_owned(),
                    None => escape::text(r.name).into_owned(),
                })
                .collect();
            Err(Failure(format!(
                "the daemon has no monitor \"{}\"; it has: {}",
                escape::text(wanted),
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            )))
        }
        _ => Err(Failure(format!(
            "several components have a monitor \"{}\"; name it as COMPONENT/MONITOR",
            escape::text(wanted)
        ))),
    }
}

/// The `describe` text: known fields by label (those present), then any others.
fn describe_text(row: &Row<'_>, probe_error: Option<&Value>, now: jiff::Timestamp) -> String {
    let m = row.monitor;
    let mut out = String::new();
    let title = match row.component {
        Some(c) => format!("{c}/{}", row.name),
        None => row.name.to_owned(),
    };
    let _ = writeln!(out, "{}", escape::text(&title));
    let field = |out: &mut String, label: &str, value: String| {
        let _ = writeln!(out, "  {:<21}{value}", format!("{label}:"));
    };
    let when = |s: &str| match parse_ts(s) {
        Some(t) => format!("{} ({})", escape::text(s), ago(now, t)),
        None => escape::text(s).into_owned(),
    };
    let mut known = vec!["state", "state_since", "error"];
    if let Some(s) = m.get("state").and_then(Value::as_str) {
        let since = m.get("state_since").and_then(Value::as_str);
        let text = match since {
            Some(since) => format!("{} since {}", escape::text(s), when(since)),
            None => escape::text(s).into_owned(),
        };
        field(&mut out, "State", text);
    }
    let simple = [
        ("restarts", "Restarts"),
        ("consecutive_crashes", "Consecutive crashes"),
        ("backoff", "Back-off"),
        ("next_start", "Next start"),
        ("heartbeat_interval", "Heartbeat interval"),
        ("last_heartbeat", "Last heartbeat"),
        ("last_error", "Last crash error"),
    ];
    for (key, label) in simple {
        known.push(key);
        if let Some(v) = m.get(key) {
            let text = match v {
                Value::String(s) => when(s),
                other => escape::json_value(other, false),
            };
            field(&mut out, label, text);
        }
    }
    if let Some(error) = m.get("error").filter(|e| !e.is_null()) {
        let _ = writeln!(out, "  Error:");
        error_fields(&mut out, error, &when);
    }
    if let Some(c) = m.get("connectivity") {
        known.push("connectivity");
        field(&mut out, "Connectivity", escape::json_value(c, false));
    }
    if let Some(obj) = m.as_object() {
        for (key, value) in obj.iter().filter(|(k, _)| !known.contains(&k.as_str())) {
            field(
                &mut out,
                &escape::text(key),
                match value {
                    Value::String(s) => escape::text(s).into_owned(),
                    other => escape::json_value(other, false),
                },
            );
        }
    }
    if let Some(error) = probe_error {
        let _ = writeln!(
            out,
            "  Component NOT READY (prerequisite probe failing; its monitors may not run):"
        );
        error_fields(&mut out, error, &when);
    }
    out
}

fn error_fields(out: &mut String, error: &Value, when: &dyn Fn(&str) -> String) {
    for (key, label) in [
        ("reason", "Reason"),
        ("message", "Message"),
        ("resolution", "Resolution"),
        ("since", "Since"),
    ] {
        if let Some(s) = error.get(key).and_then(Value::as_str) {
            let text = if key == "since" {
                when(s)
            } else {
                escape::text(s).into_owned()
            };
            let _ = writeln!(out, "    {:<19}{text}", format!("{label}:"));
        }
    }
}

/// `daemonctl watch`: the status table, again every `interval`, until SIGINT or SIGTERM.
///
/// On a terminal the table is redrawn in place (cursor hidden, restored on exit) and the
/// cells that changed since the previous draw are shown in reverse video (the SINCE column,
/// which changes every second, excepted). Elsewhere (a pipe, a file) each table is printed
/// after the previous one under a time line, without any escape sequence. A failed request
/// shows its one-line reason in place of the table and watching goes on: a daemon being
/// restarted is exactly what one watches. Exit code 0 on SIGINT/SIGTERM.
pub fn watch(target: &Target, interval: std::time::Duration, wide: bool) -> ExitCode {
    use tokio::signal::unix::{SignalKind, signal};
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return client::fail(Failure(format!("cannot start the I/O runtime: {e}"))),
    };
    let tty = io::stdout().is_terminal();
    let colour = tty && std::env::var_os("NO_COLOR").is_none();
    let result: io::Result<()> = runtime.block_on(async {
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        let mut out = io::stdout();
        if tty {
            // Hide the cursor while redrawing; shown again below, whatever ends the loop.
            out.write_all(b"\x1b[?25l")?;
        }
        let mut previous: std::collections::HashMap<String, Vec<String>> = Default::default();
        let drawn: io::Result<()> = async {
            loop {
                let fetched = tokio::select! {
                    fetched = client::get_async(target, "/status") => fetched,
                    _ = interrupt.recv() => return Ok(()),
                    _ = terminate.recv() => return Ok(()),
                };
                let now = jiff::Timestamp::now();
                let mut frame = format!(
                    "Every {}: daemonctl status on {}    {}\n\n",
                    crate::humanize(interval),
                    escape::path(&target.socket),
                    now.strftime("%Y-%m-%dT%H:%M:%SZ")
                );
                let parsed = fetched
                    .and_then(|(status, body)| client::json(target, "/status", status, &body));
                match parsed {
                    Ok(value) => match Document::parse(&value) {
                        Ok(doc) => {
                            let table = table(&doc, wide, now);
                            frame.push_str(&not_ready_lines(&doc, now));
                            let changed = |r: usize, c: usize| {
                                tty && c != table.since_col
                                    && previous
                                        .get(&table.keys[r])
                                        .is_some_and(|old| old.get(c) != table.rows[r].get(c))
                            };
                            frame.push_str(&format(&table, colour, &changed));
                            previous = table
                                .keys
                                .iter()
                                .cloned()
                                .zip(table.rows.iter().cloned())
                                .collect();
                        }
                        Err(what) => {
                            let _ = writeln!(frame, "daemonctl: /status answered with {what}");
                        }
                    },
                    Err(failure) => {
                        let _ = writeln!(frame, "daemonctl: {}", failure.0);
                    }
                }
                if tty {
                    out.write_all(b"\x1b[H\x1b[2J")?;
                } else {
                    frame.push('\n');
                }
                out.write_all(frame.as_bytes())?;
                out.flush()?;
                tokio::select! {
                    () = tokio::time::sleep(interval) => {}
                    _ = interrupt.recv() => return Ok(()),
                    _ = terminate.recv() => return Ok(()),
                }
            }
        }
        .await;
        if tty {
            out.write_all(b"\x1b[?25h\n")?;
            out.flush()?;
        }
        drawn
    });
    match result {
        Ok(()) => ExitCode::from(OK),
        // stdout closed (e.g. `| head`): the reader is done with us.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::from(OK),
        Err(e) => client::fail(Failure(format!("watch stopped: {e}"))),
    }
}

/// `daemonctl health`.
pub fn health(target: &Target) -> ExitCode {
    let result = client::get(target, "/health")
        .and_then(|(status, body)| client::json(target, "/health", status, &body));
    match result {
        Ok(value) => {
            let status = value.get("status").and_then(Value::as_str).unwrap_or("ok");
            println!("{}", escape::text(status));
            ExitCode::from(OK)
        }
        Err(failure) => client::fail(failure),
    }
}

/// `daemonctl get PATH`: prints the JSON pretty (raw C1 and bidi characters escaped).
pub fn get_path(target: &Target, path: &str) -> ExitCode {
    if !path.starts_with('/') {
        return client::fail(Failure(format!(
            "the path must start with '/', e.g. `daemonctl get /status` (got \"{}\")",
            escape::text(path)
        )));
    }
    let result = client::get(target, path)
        .and_then(|(status, body)| client::json(target, path, status, &body));
    match result {
        Ok(value) => {
            println!("{}", escape::json_value(&value, true));
            ExitCode::from(OK)
        }
        Err(failure) => client::fail(failure),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> jiff::Timestamp {
        "2026-01-01T00:03:12Z".parse().unwrap()
    }

    #[test]
    fn table_lists_each_monitor_with_reason_and_resolution() {
        let status: Value = serde_json::json!({
            "db": {"state": "degraded", "restarts": 2, "state_since": "2026-01-01T00:00:00Z",
                   "error": {"reason": "DbDown", "message": "refused", "resolution": "start db",
                             "since": "2026-01-01T00:00:00Z"}},
            "web": {"state": "running"}
        });
        let doc = Document::parse(&status).unwrap();
        assert!(!doc.nested && !doc.healthy());
        let text = render(&doc, false, false, now());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("MONITOR"));
        assert!(lines[1].contains("degraded") && lines[1].contains("3m12s ago"));
        assert!(lines[1].contains("DbDown") && lines[1].ends_with("start db"));
        assert!(!lines[1].contains("refused"));
        assert!(lines[2].contains("running") && lines[2].contains(" - "));
        assert!(!text.contains('\x1b'));
        assert!(render(&doc, false, true, now()).contains("\x1b[33mdegraded"));
        assert!(render(&doc, true, false, now()).contains("refused"));
    }

    #[test]
    fn nested_documents_group_by_component_and_list_probe_errors() {
        let status: Value = serde_json::json!({
            "components": {
                "consensus-node": {"monitors": {"upgrade": {"state": "running"}}},
                "block-node": {"monitors": {}}
            },
            "probe_errors": {"block-node": {"reason": "DirMissing", "message": "no /data",
                "resolution": "mkdir /data", "since": "2026-01-01T00:00:00Z"}}
        });
        let doc = Document::parse(&status).unwrap();
        assert!(doc.nested && !doc.healthy());
        let text = render(&doc, false, false, now());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "[NOT READY] block-node (DirMissing): no /data Resolution: mkdir /data \
             Since: 2026-01-01T00:00:00Z (3m12s ago)"
        );
        let words = |l: &str| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(words(lines[1])[..3], ["COMPONENT", "MONITOR", "STATE"]);
        assert_eq!(
            words(lines[2])[..3],
            ["consensus-node", "upgrade", "running"]
        );
        assert_eq!(lines.len(), 3);
    }

    #[test]
    fn a_flat_monitor_called_components_is_not_the_nested_shape() {
        let status: Value = serde_json::json!({"components": {"state": "running"}});
        assert!(!Document::parse(&status).unwrap().nested);
    }
}
