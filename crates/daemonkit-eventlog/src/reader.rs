//! Reading an event file back, line by line.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use crate::{Error, Event, Op};

/// Opens `path` to iterate over its events, one per line.
///
/// Reads files written by this crate or by the Go daemonkit (Go's `\u003c`-style escapes
/// included). A malformed line does not stop the iteration: it yields
/// [`Error::MalformedLine`] with its line number and the lines after it are still read. A last
/// line without its newline — a torn tail — is reported as malformed too. An I/O error yields
/// [`Error::Io`] and ends the iteration.
///
/// A line is valid when it is one JSON object with the keys `ts`, `level`, `reason`, `msg`,
/// `operationId` and `nodeId`, all non-empty strings, `ts` an RFC 3339 timestamp and `level`
/// `"INFO"`, `"WARN"` or `"ERROR"`, plus optionally `metadata`, an object of string values (or
/// `null`) as the Go daemonkit writes since v0.4.0 — and no other key.
///
/// # Errors
///
/// [`Error::Io`] if the file cannot be opened.
///
/// # Examples
///
/// ```
/// use daemonkit_eventlog::{Error, Level, read_events};
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("events.jsonl");
/// std::fs::write(&path, concat!(
///     r#"{"ts":"2026-06-19T12:00:00Z","level":"INFO","reason":"UpgradeStarted","msg":"upgrade \u003cv0.75.0\u003e","operationId":"op-1","nodeId":"node-3"}"#, "\n",
///     "not json\n",
/// ))?;
///
/// let mut events = read_events(&path)?;
/// let first = events.next().unwrap()?;
/// assert_eq!((first.level, first.msg.as_str()), (Level::Info, "upgrade <v0.75.0>"));
/// assert!(matches!(events.next(), Some(Err(Error::MalformedLine { line: 2, .. }))));
/// assert!(events.next().is_none());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn read_events(path: impl AsRef<Path>) -> Result<Events, Error> {
    let path = path.as_ref().to_path_buf();
    let file = File::open(&path).map_err(|source| Error::Io {
        op: Op::Open,
        path: path.clone(),
        source,
    })?;
    Ok(Events {
        reader: BufReader::new(file),
        path,
        line: 0,
        offset: 0,
        buf: Vec::new(),
        done: false,
    })
}

/// Like [`read_events`], starting at byte `offset` of the file — an offset an earlier
/// [`Events::offset`] returned — to read only what was appended since (`tail --follow`).
///
/// Line numbers in errors count from the first line read, as if it were line 1 (the
/// number of lines before `offset` is not known without reading them). An offset inside a
/// line makes that line's rest read as one malformed line.
///
/// # Errors
///
/// [`Error::Io`] if the file cannot be opened or `offset` cannot be sought to.
///
/// # Examples
///
/// ```
/// use daemonkit_eventlog::{Event, EventLog, Level, read_events, read_events_from};
///
/// let dir = tempfile::tempdir()?;
/// let log = EventLog::open_append(dir.path(), "events.jsonl")?;
/// log.log(&Event::new(Level::Info, "First", "first", "op", "node-3"))?;
///
/// let mut events = read_events(log.path())?;
/// assert_eq!(events.by_ref().count(), 1);
/// let seen = events.offset();
///
/// log.log(&Event::new(Level::Info, "Second", "second", "op", "node-3"))?;
/// let new: Vec<_> = read_events_from(log.path(), seen)?.collect::<Result<_, _>>()?;
/// assert_eq!(new.len(), 1);
/// assert_eq!(new[0].reason, "Second");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn read_events_from(path: impl AsRef<Path>, offset: u64) -> Result<Events, Error> {
    use std::io::{Seek, SeekFrom};
    let mut events = read_events(path)?;
    events
        .reader
        .seek(SeekFrom::Start(offset))
        .map_err(|source| Error::Io {
            op: Op::Read,
            path: events.path.clone(),
            source,
        })?;
    events.offset = offset;
    Ok(events)
}

/// An iterator over the events of a file, created by [`read_events`].
///
/// Yields `Ok(event)` per valid line, [`Error::MalformedLine`] per malformed one (and carries
/// on), and at most one [`Error::Io`] (and stops).
#[derive(Debug)]
pub struct Events {
    reader: BufReader<File>,
    path: PathBuf,
    line: u64,
    /// Bytes of the file consumed through the last complete line returned.
    offset: u64,
    buf: Vec<u8>,
    done: bool,
}

impl Events {
    /// The file being read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The byte offset just past the last complete line (newline included) this iterator
    /// has returned: where [`read_events_from`] resumes to read only newer lines. A torn last
    /// line is not counted, so resuming reads it again once it is complete (or cut).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    fn malformed(&self, problem: String) -> Error {
        Error::MalformedLine {
            path: self.path.clone(),
            line: self.line,
            problem,
        }
    }
}

impl Iterator for Events {
    type Item = Result<Event, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        self.buf.clear();
        match self.reader.read_until(b'\n', &mut self.buf) {
            Ok(0) => {
                self.done = true;
                None
            }
            Ok(_) => {
                self.line += 1;
                let Some(line) = self.buf.strip_suffix(b"\n") else {
                    // A torn tail: `offset` stays before it.
                    self.done = true;
                    return Some(Err(self.malformed(
                        "incomplete last line (no newline): a write was cut short; \
                         opening the file as an append log cuts it and saves it in a side file"
                            .to_owned(),
                    )));
                };
                let parsed = Event::parse_line(line);
                self.offset += self.buf.len() as u64;
                Some(parsed.map_err(|problem| self.malformed(problem)))
            }
            Err(source) => {
                self.done = true;
                Some(Err(Error::Io {
                    op: Op::Read,
                    path: self.path.clone(),
                    source,
                }))
            }
        }
    }
}
