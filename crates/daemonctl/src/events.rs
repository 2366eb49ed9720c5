//! `daemonctl events …`: verify and tail daemonkit-eventlog JSONL audit files.
//!
//! A daemon's audit trail is a rotating set of files, `<prefix>-YYYYMMDD.jsonl`, possibly
//! with a size suffix (`<prefix>-YYYYMMDD-<n>.jsonl`). Both commands take a directory as
//! well as files: a directory stands for its `*.jsonl` files (`verify`) or for the newest
//! rotating set in it (`tail`), ordered by the date in the name, then the suffix.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use daemonkit_eventlog::{Error, read_events};

use crate::escape;

/// `daemonctl events` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum EventsCommand {
    /// Check that every line of one or more event files is a valid event.
    ///
    /// Lists each malformed line as FILE:LINE: PROBLEM and prints, per file, the number of
    /// valid events (and of malformed lines); with several files, a total line follows.
    /// A directory stands for its *.jsonl files, in name order. Exit code: 0 every line of
    /// every file valid, 1 some line malformed, 2 some file unreadable (each one named on
    /// stderr; the others are still verified).
    Verify {
        /// The JSONL event files or directories, as written by daemonkit-eventlog or the
        /// Go daemonkit, e.g. /var/lib/agent/events-*.jsonl.
        #[arg(required = true, value_name = "FILE|DIR")]
        files: Vec<PathBuf>,
    },
    /// Print the newest events of a file, or of a directory's rotating set of
    /// `<prefix>-YYYYMMDD*.jsonl` files, and with --follow keep printing new ones,
    /// following the switch to a newer file.
    ///
    /// Lines are printed as written (escaped for the terminal), not validated: use
    /// `events verify` for that. A last line without its newline (being written, or torn)
    /// is not printed until it is complete.
    Tail {
        /// The event file, or the directory of a rotating set.
        #[arg(value_name = "FILE|DIR")]
        path: PathBuf,
        /// How many of the newest lines to print first.
        #[arg(short = 'n', long, value_name = "N", default_value_t = 10)]
        lines: usize,
        /// Keep printing lines as they are appended, until interrupted.
        #[arg(short, long)]
        follow: bool,
        /// In a directory holding several sets, the one to show (`events` for
        /// events-20260101.jsonl) [default: the only one].
        #[arg(long, value_name = "PREFIX")]
        prefix: Option<String>,
        /// How often --follow looks for new lines and newer files.
        #[arg(long, value_name = "DURATION", default_value = "250ms", value_parser = crate::parse_duration)]
        interval: Duration,
    },
}

/// Runs an `events` subcommand.
pub fn run(command: EventsCommand) -> ExitCode {
    match command {
        EventsCommand::Verify { files } => verify_all(&files),
        EventsCommand::Tail {
            path,
            lines,
            follow,
            prefix,
            interval,
        } => tail(&path, lines, follow, prefix.as_deref(), interval),
    }
}

/// Exit status when some lines are malformed.
const MALFORMED: u8 = 1;
/// Exit status when a file cannot be read (or bad input).
const UNREADABLE: u8 = 2;

/// The longest line `tail` keeps whole; the rest of a longer one is dropped with a marker,
/// so a hostile file cannot make daemonctl hold it in memory.
const MAX_LINE: usize = 1 << 20;

// ===== verify =====

#[derive(Default)]
struct Counts {
    files: u64,
    valid: u64,
    malformed: u64,
    unreadable: u64,
}

fn verify_all(args: &[PathBuf]) -> ExitCode {
    let mut files = Vec::new();
    let mut totals = Counts::default();
    for arg in args {
        if arg.is_dir() {
            match jsonl_files(arg) {
                Ok(found) if found.is_empty() => {
                    eprintln!(
                        "daemonctl: {}: no *.jsonl files in this directory",
                        escape::path(arg)
                    );
                    totals.unreadable += 1;
                }
                Ok(found) => files.extend(found),
                Err(err) => {
                    eprintln!("daemonctl: cannot list {}: {err}", escape::path(arg));
                    totals.unreadable += 1;
                }
            }
        } else {
            files.push(arg.clone());
        }
    }
    let stdout = io::stdout();
    let mut out = stdout.lock();
    for file in &files {
        totals.files += 1;
        match verify(file, &mut out) {
            Some((valid, malformed)) => {
                totals.valid += valid;
                totals.malformed += malformed;
            }
            None => totals.unreadable += 1,
        }
    }
    if args.len() > 1 || files.len() > 1 {
        let mut total = format!(
            "total: {}, {}",
            count(totals.files, "file"),
            count(totals.valid, "valid event")
        );
        if totals.malformed > 0 {
            total.push_str(&format!(", {}", count(totals.malformed, "malformed line")));
        }
        if totals.unreadable > 0 {
            total.push_str(&format!(", {} unreadable", totals.unreadable));
        }
        let _ = writeln!(out, "{total}");
    }
    let _ = out.flush();
    ExitCode::from(if totals.unreadable > 0 {
        UNREADABLE
    } else if totals.malformed > 0 {
        MALFORMED
    } else {
        0
    })
}

/// Verifies one file, printing its malformed lines and its count line. `None` when it
/// cannot be read (said on stderr).
fn verify(file: &Path, out: &mut impl Write) -> Option<(u64, u64)> {
    let events = match read_events(file) {
        Ok(events) => events,
        Err(err) => {
            unreadable(&err);
            return None;
        }
    };
    let mut valid = 0u64;
    let mut malformed = 0u64;
    for result in events {
        match result {
            Ok(_) => valid += 1,
            Err(Error::MalformedLine {
                path,
                line,
                problem,
            }) => {
                malformed += 1;
                // A closed stdout (e.g. piped into `head`) is no reason to stop counting.
                let _ = writeln!(
                    out,
                    "{}:{line}: {}",
                    escape::path(&path),
                    escape::text(&problem)
                );
            }
            Err(err) => {
                unreadable(&err);
                return None;
            }
        }
    }
    let shown = escape::path(file);
    if malformed == 0 {
        let _ = writeln!(out, "{shown}: {}", count(valid, "valid event"));
    } else {
        let _ = writeln!(
            out,
            "{shown}: {}, {}",
            count(valid, "valid event"),
            count(malformed, "malformed line")
        );
    }
    Some((valid, malformed))
}

/// `1 valid event`, `2 valid events`.
fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("{n} {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

fn unreadable(err: &Error) {
    eprintln!("daemonctl: {}", escape::text(&err.to_string()));
}

/// The regular `*.jsonl` files of `dir`, in name order.
fn jsonl_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut names: Vec<OsString> = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if name.as_bytes().ends_with(b".jsonl") && entry.file_type()?.is_file() {
            names.push(name);
        }
    }
    names.sort();
    Ok(names.into_iter().map(|n| dir.join(n)).collect())
}

// ===== the rotating set =====

/// Where a file stands in its rotating set: `<prefix>-YYYYMMDD[-<n>][…].jsonl`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct SetKey {
    date: u32,
    part: u64,
    name: Vec<u8>,
}

/// Splits a file name into its set's prefix and its place in the set, or `None` when it
/// does not follow the naming rule. The date is the last `-` followed by eight digits.
fn set_member(name: &[u8]) -> Option<(Vec<u8>, SetKey)> {
    let stem = name.strip_suffix(b".jsonl")?;
    let at = (0..stem.len()).rev().find(|&i| {
        stem[i] == b'-' && stem.len() >= i + 9 && stem[i + 1..i + 9].iter().all(u8::is_ascii_digit)
    })?;
    let date: u32 = std::str::from_utf8(&stem[at + 1..at + 9])
        .ok()?
        .parse()
        .ok()?;
    let rest = &stem[at + 9..];
    let part = match rest {
        [] => 0,
        [b'-', digits @ ..] | [b'.', digits @ ..] => std::str::from_utf8(digits)
            .ok()
            .and_then(|d| d.parse().ok())
            .unwrap_or(u64::MAX),
        _ => u64::MAX,
    };
    Some((
        stem[..at].to_vec(),
        SetKey {
            date,
            part,
            name: name.to_vec(),
        },
    ))
}

/// The files of the rotating set in `dir`, oldest first, and the set's prefix.
fn set_files(dir: &Path, prefix: Option<&str>) -> Result<(String, Vec<PathBuf>), String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", escape::path(dir)))?;
    let mut members: Vec<(Vec<u8>, SetKey)> = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot list {}: {e}", escape::path(dir)))?;
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        if let (true, Some(member)) = (is_file, set_member(entry.file_name().as_bytes())) {
            members.push(member);
        }
    }
    let prefix: Vec<u8> = match prefix {
        Some(p) => p.as_bytes().to_vec(),
        None => {
            let mut prefixes: Vec<&Vec<u8>> = members.iter().map(|(p, _)| p).collect();
            prefixes.sort();
            prefixes.dedup();
            match prefixes.as_slice() {
                [] => Vec::new(),
                [one] => (*one).clone(),
                several => {
                    let names: Vec<String> = several.iter().map(|p| escape::bytes(p)).collect();
                    return Err(format!(
                        "{} holds several sets of event files ({}); choose one with --prefix",
                        escape::path(dir),
                        names.join(", ")
                    ));
                }
            }
        }
    };
    let mut keys: Vec<SetKey> = members
        .into_iter()
        .filter(|(p, _)| *p == prefix)
        .map(|(_, k)| k)
        .collect();
    keys.sort();
    let files = keys
        .into_iter()
        .map(|k| dir.join(std::ffi::OsStr::from_bytes(&k.name)))
        .collect();
    Ok((String::from_utf8_lossy(&prefix).into_owned(), files))
}

// ===== tail =====

/// Reads complete lines from `reader`, at most [`MAX_LINE`] bytes of each kept, and only
/// the last `keep` lines. Returns them and how many bytes were consumed (a trailing
/// partial line is not consumed).
fn complete_lines(reader: &mut impl BufRead, keep: usize) -> io::Result<(Vec<Vec<u8>>, u64)> {
    let mut lines = std::collections::VecDeque::new();
    let mut consumed = 0u64;
    let mut current: Vec<u8> = Vec::new();
    let mut current_len = 0u64;
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok((lines.into(), consumed));
        }
        let (take, done) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        let room = MAX_LINE.saturating_sub(current.len());
        current.extend_from_slice(&buf[..take.min(room)]);
        current_len += take as u64;
        reader.consume(take);
        if done {
            if current.last() != Some(&b'\n') {
                current.extend_from_slice(b" [line cut: longer than 1 MiB]\n");
            }
            lines.push_back(std::mem::take(&mut current));
            if lines.len() > keep {
                lines.pop_front();
            }
            consumed += current_len;
            current_len = 0;
        }
    }
}

struct Tailer {
    /// `None` when following a single file.
    dir: Option<PathBuf>,
    prefix: Option<String>,
    file: PathBuf,
    ino: u64,
    offset: u64,
}

fn print_lines(out: &mut impl Write, lines: &[Vec<u8>]) -> io::Result<()> {
    for line in lines {
        let body = line.strip_suffix(b"\n").unwrap_or(line);
        writeln!(out, "{}", escape::bytes(body))?;
    }
    out.flush()
}

fn tail(path: &Path, n: usize, follow: bool, prefix: Option<&str>, interval: Duration) -> ExitCode {
    let fail = |message: String| {
        eprintln!("daemonctl: {message}");
        ExitCode::from(UNREADABLE)
    };
    // Following keeps to the set chosen now, whatever other sets appear later.
    let (dir, prefix, files) = if path.is_dir() {
        match set_files(path, prefix) {
            Ok((found, files)) => (
                Some(path.to_path_buf()),
                prefix
                    .map(str::to_owned)
                    .or((!files.is_empty()).then_some(found)),
                files,
            ),
            Err(message) => return fail(message),
        }
    } else {
        (None, None, vec![path.to_path_buf()])
    };
    // The newest N lines: from the newest file back, until N are found.
    let mut newest: Vec<Vec<u8>> = Vec::new();
    let mut current: Option<(PathBuf, u64, u64)> = None;
    for file in files.iter().rev() {
        if newest.len() >= n && current.is_some() {
            break;
        }
        let wanted = n.saturating_sub(newest.len());
        let (lines, consumed, ino) = match read_from(file, 0, wanted) {
            Ok(read) => read,
            Err(e) => return fail(format!("cannot read {}: {e}", escape::path(file))),
        };
        if current.is_none() {
            current = Some((file.clone(), ino, consumed));
        }
        let mut kept = lines;
        kept.append(&mut newest);
        newest = kept;
    }
    let stdout = io::stdout();
    let mut out = stdout.lock();
    if print_lines(&mut out, &newest).is_err() {
        return ExitCode::SUCCESS;
    }
    if !follow {
        return ExitCode::SUCCESS;
    }
    let (file, ino, offset) = current.unwrap_or_else(|| (PathBuf::new(), 0, 0));
    let mut tailer = Tailer {
        dir,
        prefix,
        file,
        ino,
        offset,
    };
    loop {
        std::thread::sleep(interval);
        match tailer.poll() {
            Ok(lines) => {
                if print_lines(&mut out, &lines).is_err() {
                    // The reader went away (e.g. `| head`): done.
                    return ExitCode::SUCCESS;
                }
            }
            Err(message) => return fail(message),
        }
    }
}

/// Reads the complete lines of `file` from `offset`: lines, bytes consumed, inode.
fn read_from(file: &Path, offset: u64, keep: usize) -> io::Result<(Vec<Vec<u8>>, u64, u64)> {
    let mut f = File::open(file)?;
    let ino = f.metadata()?.ino();
    f.seek(SeekFrom::Start(offset))?;
    let mut reader = BufReader::new(Read::by_ref(&mut f));
    let (lines, consumed) = complete_lines(&mut reader, keep)?;
    Ok((lines, consumed, ino))
}

impl Tailer {
    /// New complete lines: the rest of the current file, then, when a newer file of the
    /// set exists, its lines (switching to it).
    fn poll(&mut self) -> Result<Vec<Vec<u8>>, String> {
        let mut lines = Vec::new();
        if !self.file.as_os_str().is_empty() {
            lines.extend(self.read_current()?);
        }
        let Some(dir) = &self.dir else {
            return Ok(lines);
        };
        let (prefix, files) = set_files(dir, self.prefix.as_deref())?;
        if !files.is_empty() {
            self.prefix = Some(prefix);
        }
        let newer: Vec<PathBuf> = match files.iter().position(|f| *f == self.file) {
            Some(i) => files[i + 1..].to_vec(),
            None if self.file.as_os_str().is_empty() => files,
            // The current file is gone (pruned): whatever is newest now is next.
            None => files.last().cloned().into_iter().collect(),
        };
        for file in newer {
            self.file = file;
            self.ino = 0;
            self.offset = 0;
            lines.extend(self.read_current()?);
        }
        Ok(lines)
    }

    fn read_current(&mut self) -> Result<Vec<Vec<u8>>, String> {
        let meta = match std::fs::metadata(&self.file) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(format!("cannot read {}: {e}", escape::path(&self.file))),
        };
        if self.ino != 0 && (meta.ino() != self.ino || meta.len() < self.offset) {
            // Replaced or truncated: start it again from the top.
            eprintln!(
                "daemonctl: {} was replaced or truncated; reading it from the start",
                escape::path(&self.file)
            );
            self.offset = 0;
        }
        match read_from(&self.file, self.offset, usize::MAX) {
            Ok((lines, consumed, ino)) => {
                self.ino = ino;
                self.offset += consumed;
                Ok(lines)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(format!("cannot read {}: {e}", escape::path(&self.file))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_members_order_by_date_then_part() {
        let key = |n: &str| set_member(n.as_bytes()).unwrap();
        let (prefix, a) = key("events-20260101.jsonl");
        assert_eq!(prefix, b"events");
        let (_, b) = key("events-20260101-2.jsonl");
        let (_, c) = key("events-20260101-10.jsonl");
        let (_, d) = key("events-20260102.jsonl");
        assert!(a < b && b < c && c < d);
        let (p, _) = key("consensus-node-20260101.jsonl");
        assert_eq!(p, b"consensus-node");
        assert!(set_member(b"events.jsonl").is_none());
        assert!(set_member(b"events-2026.jsonl").is_none());
        assert!(set_member(b"events-20260101.json").is_none());
    }

    #[test]
    fn complete_lines_leave_a_partial_last_line_and_cut_long_ones() {
        let mut data: Vec<u8> = b"one\ntwo\npart".to_vec();
        let (lines, consumed) = complete_lines(&mut &data[..], usize::MAX).unwrap();
        assert_eq!(lines, vec![b"one\n".to_vec(), b"two\n".to_vec()]);
        assert_eq!(consumed, 8);
        data = vec![b'x'; MAX_LINE + 10];
        data.push(b'\n');
        let (lines, consumed) = complete_lines(&mut &data[..], usize::MAX).unwrap();
        assert_eq!(consumed, data.len() as u64);
        assert!(lines[0].len() < MAX_LINE + 64 && lines[0].ends_with(b"1 MiB]\n"));
        let (lines, _) = complete_lines(&mut &b"a\nb\nc\n"[..], 2).unwrap();
        assert_eq!(lines, vec![b"b\n".to_vec(), b"c\n".to_vec()]);
    }
}
