//! What the kit is held to after each power cut: the ledgers of what writers acknowledged, and
//! the checks of a crashed backing directory against them.
//!
//! Each check returns the problems it found as sentences (empty: nothing lost). A problem is a
//! loss of acknowledged data or a state the protocol promises never to leave.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use daemonkit_eventlog::{StateFile, read_events};

// ===== event log =====

/// What the event log's writers acknowledged across cuts, and what the next open must repair.
///
/// Writers log events whose `operationId` is a per-cut tag, `nodeId` the writer and `msg` a
/// sequence number from 0; each writer logs its next event only after the previous one was
/// acknowledged. So after any cut, the events of one (tag, writer) in the file must be exactly
/// `0, 1, …, m-1` in that order, with `m` at least the number acknowledged and at most one more
/// (the one in flight when the power went out).
#[derive(Debug, Default)]
pub struct EventLogLedger {
    /// Acknowledged events per (tag, writer): sequence numbers `0..n`.
    acked: BTreeMap<(String, String), u64>,
    /// The partial last line a crash left, which the next open must cut and save.
    expected_tail: Option<Vec<u8>>,
    /// A repair the last child reported: the side file's name and the bytes it must hold.
    reported_repair: Option<(String, Vec<u8>)>,
    /// Events acknowledged in all.
    pub events_acked: u64,
    /// Torn tails repaired by an open and verified.
    pub repairs_verified: u64,
}

impl EventLogLedger {
    /// A ledger with nothing acknowledged.
    pub fn new() -> EventLogLedger {
        EventLogLedger::default()
    }

    /// Records a writer's output (`open …` and `ack TAG NODE SEQ` lines) and checks what its
    /// open reported about the torn tail the last crash left.
    pub fn record(&mut self, stdout: &[String]) -> Vec<String> {
        let mut problems = Vec::new();
        for line in stdout {
            let words: Vec<&str> = line.split(' ').collect();
            match words[..] {
                ["ack", tag, node, seq] => {
                    let Ok(seq) = seq.parse::<u64>() else {
                        continue;
                    };
                    let n = self
                        .acked
                        .entry((tag.to_owned(), node.to_owned()))
                        .or_default();
                    if seq != *n {
                        problems.push(format!(
                            "writer {tag}/{node} acknowledged {seq} after {n} acknowledgements"
                        ));
                    }
                    *n = seq + 1;
                    self.events_acked += 1;
                }
                ["open", kept, cut, side] => {
                    let tail = self.expected_tail.take().unwrap_or_default();
                    let cut: u64 = cut.parse().unwrap_or(u64::MAX);
                    if cut != tail.len() as u64 {
                        problems.push(format!(
                            "open cut {cut} bytes (kept {kept}) but the crash left a partial line of {} bytes",
                            tail.len()
                        ));
                    } else if cut > 0 {
                        self.reported_repair = Some((side.to_owned(), tail));
                    }
                }
                _ => {}
            }
        }
        problems
    }

    /// Checks the log at `path` in a crashed backing directory against everything acknowledged.
    pub fn check(&mut self, path: &Path) -> Vec<String> {
        let mut problems = self.check_side_file(path.parent().unwrap_or(Path::new(".")));
        match fs::metadata(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound && self.events_acked == 0 => problems,
            Err(e) => {
                problems.push(format!(
                    "log {}: {e} after {} acknowledged events",
                    path.display(),
                    self.events_acked
                ));
                problems
            }
            Ok(_) => {
                problems.extend(self.check_files(&[path.to_path_buf()]));
                problems
            }
        }
    }

    /// Checks the rotating set `<prefix>-YYYYMMDD[-n].jsonl` in `dir` (a crashed backing
    /// directory) against everything acknowledged: its files read in
    /// [`list_event_files`](daemonkit_eventlog::list_event_files) order as one log. Only the
    /// newest file may end in a partial line (the batch the power cut); an older file that does
    /// was left unrepaired by an open after an earlier cut.
    pub fn check_set(&mut self, dir: &Path, prefix: &str) -> Vec<String> {
        let mut problems = self.check_side_file(dir);
        match daemonkit_eventlog::list_event_files(dir, prefix) {
            Ok(files) if files.is_empty() && self.events_acked > 0 => problems.push(format!(
                "no file of the set {prefix}-*.jsonl in {} after {} acknowledged events",
                dir.display(),
                self.events_acked
            )),
            Ok(files) => {
                let paths: Vec<PathBuf> = files.into_iter().map(|f| f.path).collect();
                problems.extend(self.check_files(&paths));
            }
            Err(e) => problems.push(format!("cannot list {}: {e}", dir.display())),
        }
        problems
    }

    /// Checks the side file the last open reported (in `dir`) against the bytes it cut.
    fn check_side_file(&mut self, dir: &Path) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some((side, bytes)) = self.reported_repair.take() {
            match fs::read(dir.join(&side)) {
                Ok(held) if held == bytes => self.repairs_verified += 1,
                Ok(held) => problems.push(format!(
                    "side file {side} holds {} bytes, not the {} cut",
                    held.len(),
                    bytes.len()
                )),
                Err(e) => problems.push(format!("side file {side} reported but unreadable: {e}")),
            }
        }
        problems
    }

    /// Checks `paths`, read in order as one log, against everything acknowledged, and
    /// remembers the newest file's partial last line for the next open.
    fn check_files(&mut self, paths: &[PathBuf]) -> Vec<String> {
        let mut problems = Vec::new();
        let mut seen: BTreeMap<(String, String), u64> = BTreeMap::new();
        self.expected_tail = None;
        for (index, path) in paths.iter().enumerate() {
            let newest = index + 1 == paths.len();
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            let bytes = match fs::read(path) {
                Ok(b) => b,
                Err(e) => {
                    problems.push(format!("log {}: {e}", path.display()));
                    continue;
                }
            };
            let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            if newest {
                self.expected_tail = Some(bytes[complete..].to_vec());
            } else if complete < bytes.len() {
                problems.push(format!(
                    "{name} ends in a partial line of {} bytes, but it is not the newest file: \
                     an open left its torn tail unrepaired",
                    bytes.len() - complete
                ));
            }
            let events = match read_events(path) {
                Ok(events) => events,
                Err(e) => {
                    problems.push(format!("cannot read {}: {e}", path.display()));
                    continue;
                }
            };
            let whole_lines = bytes[..complete].iter().filter(|&&b| b == b'\n').count();
            let mut line = 0usize;
            for event in events {
                line += 1;
                let event = match event {
                    Ok(event) => event,
                    // The partial last line is what the next open repairs; anything else is
                    // damage.
                    Err(_) if line > whole_lines => break,
                    Err(e) => {
                        problems.push(format!("{name} line {line} does not verify: {e}"));
                        continue;
                    }
                };
                let Ok(seq) = event.msg.parse::<u64>() else {
                    problems.push(format!(
                        "{name} line {line}: msg {:?} is not a sequence number",
                        event.msg
                    ));
                    continue;
                };
                let key = (event.operation_id, event.node_id);
                let next = seen.entry(key.clone()).or_default();
                if seq != *next {
                    problems.push(format!(
                        "{name} line {line}: {}/{} event {seq} where {} was due (duplicate, reordered or a gap)",
                        key.0, key.1, *next
                    ));
                }
                *next = seq.max(*next) + 1;
            }
        }
        for ((tag, node), &acked) in &self.acked {
            let present = seen.get(&(tag.clone(), node.clone())).copied().unwrap_or(0);
            if present < acked {
                problems.push(format!(
                    "writer {tag}/{node}: {acked} events acknowledged, only {present} survived"
                ));
            }
        }
        for ((tag, node), &present) in &seen {
            let acked = self
                .acked
                .get(&(tag.clone(), node.clone()))
                .copied()
                .unwrap_or(0);
            if present > acked + 1 {
                problems.push(format!(
                    "writer {tag}/{node}: {present} events in the log, but it logged at most {}",
                    acked + 1
                ));
            }
        }
        problems
    }
}

// ===== plain lines (the negative controls) =====

/// Checks that every line `TAG SEQ` acknowledged as `ack TAG SEQ` in `stdout` is in the file at
/// `path` as a whole line.
pub fn check_lines(path: &Path, stdout: &[String]) -> Vec<String> {
    let text = fs::read(path).unwrap_or_default();
    // Only whole lines count: a partial last line was not all written.
    let end = text.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let lines: HashSet<&[u8]> = text[..end].split(|&b| b == b'\n').collect();
    stdout
        .iter()
        .filter_map(|line| line.strip_prefix("ack "))
        .filter(|l| !lines.contains(l.as_bytes()))
        .map(|l| format!("acknowledged line {l:?} lost"))
        .collect()
}

// ===== durable state file =====

/// The bytes of generation `generation` of the state file of the state-file tests: its number
/// on the first line, padded to 3 KiB so a torn write can split it.
pub fn state_content(generation: u64) -> Vec<u8> {
    let mut content = format!("generation {generation}\n").into_bytes();
    let fill = format!("{generation:08}").into_bytes();
    while content.len() < 3 * 1024 {
        content.extend_from_slice(&fill);
    }
    content.push(b'\n');
    content
}

/// The generation a state file holds, if it is exactly one whole generation.
pub fn state_generation(content: &[u8]) -> Option<u64> {
    let first = content.split(|&b| b == b'\n').next()?;
    let generation = std::str::from_utf8(first)
        .ok()?
        .strip_prefix("generation ")?
        .parse()
        .ok()?;
    (state_content(generation) == content).then_some(generation)
}

/// Checks the state file at `path` after a crash, as raw bytes (the negative control's writer
/// frames nothing): it must exist and hold exactly one whole generation, the last acknowledged
/// one or the one in flight after it. Returns the problems and the generation found.
pub fn check_state(path: &Path, last_acked: u64) -> (Vec<String>, Option<u64>) {
    match fs::read(path) {
        Err(e) => (vec![format!("state file {}: {e}", path.display())], None),
        Ok(content) => judge_state(&content, last_acked),
    }
}

/// The name of the kit's state file in the state-file scenario's directory.
pub const STATE_FILE_NAME: &str = "state";

/// Checks the kit's [`StateFile`] named [`STATE_FILE_NAME`] in `dir` after a crash, through its
/// own reader: it must be there, intact (framing and checksum), and hold exactly one whole
/// generation, the last acknowledged one or the one in flight after it. Returns the problems
/// and the generation found.
pub fn check_state_file(dir: &Path, last_acked: u64) -> (Vec<String>, Option<u64>) {
    match StateFile::new(dir, STATE_FILE_NAME).and_then(|state| state.read()) {
        Err(e) => (
            vec![format!(
                "state file is neither the old nor the new content: {e}"
            )],
            None,
        ),
        Ok(None) => (
            vec![format!(
                "state file is missing, after generation {last_acked} was acknowledged"
            )],
            None,
        ),
        Ok(Some(content)) => judge_state(&content, last_acked),
    }
}

/// Whether `content` is generation `last_acked` or `last_acked + 1`, whole.
fn judge_state(content: &[u8], last_acked: u64) -> (Vec<String>, Option<u64>) {
    match state_generation(content) {
        Some(g) if g == last_acked || g == last_acked + 1 => (Vec::new(), Some(g)),
        Some(g) => (
            vec![format!(
                "state file holds generation {g}, but {last_acked} was acknowledged last"
            )],
            Some(g),
        ),
        None => (
            vec![format!(
                "state file is neither the old nor the new content ({} bytes: torn or empty)",
                content.len()
            )],
            None,
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use daemonkit_eventlog::{Event, EventLog, Level};

    use super::*;

    /// A log holding `events` as (tag, node, seq), written by the real event log.
    fn log_with(events: &[(&str, &str, u64)]) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open_append(dir.path(), "events.jsonl").unwrap();
        for (tag, node, seq) in events {
            log.log(&Event::new(
                Level::Info,
                "PowerCut",
                seq.to_string(),
                *tag,
                *node,
            ))
            .unwrap();
        }
        let path = log.path().to_path_buf();
        (dir, path)
    }

    fn acks(lines: &[&str]) -> Vec<String> {
        lines.iter().map(|l| l.to_string()).collect()
    }

    #[test]
    fn passes_a_log_holding_every_acknowledged_event_and_one_in_flight() {
        let (_dir, path) = log_with(&[("c0", "w0", 0), ("c0", "w0", 1), ("c0", "w1", 0)]);
        let mut ledger = EventLogLedger::new();
        assert!(
            ledger
                .record(&acks(&["open - 0 -", "ack c0 w0 0", "ack c0 w1 0"]))
                .is_empty()
        );
        assert_eq!(ledger.check(&path), Vec::<String>::new());
    }

    #[test]
    fn finds_a_lost_acknowledged_event() {
        let (_dir, path) = log_with(&[("c0", "w0", 0)]);
        let mut ledger = EventLogLedger::new();
        ledger.record(&acks(&["ack c0 w0 0", "ack c0 w0 1"]));
        let problems = ledger.check(&path);
        assert!(
            problems
                .iter()
                .any(|p| p.contains("2 events acknowledged, only 1")),
            "{problems:?}"
        );
    }

    #[test]
    fn finds_a_duplicated_event_and_a_damaged_line() {
        let (_dir, path) = log_with(&[("c0", "w0", 0)]);
        let line = fs::read(&path).unwrap();
        let mut f = fs::OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&line).unwrap();
        f.write_all(b"{\"ts\":garbage}\n").unwrap();
        let mut ledger = EventLogLedger::new();
        ledger.record(&acks(&["ack c0 w0 0"]));
        let problems = ledger.check(&path);
        assert!(
            problems.iter().any(|p| p.contains("duplicate")),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p.contains("does not verify")),
            "{problems:?}"
        );
    }

    #[test]
    fn holds_the_next_open_to_the_torn_tail_the_crash_left() {
        let (_dir, path) = log_with(&[("c0", "w0", 0)]);
        fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"ts\":\"20")
            .unwrap();
        let mut ledger = EventLogLedger::new();
        ledger.record(&acks(&["ack c0 w0 0"]));
        assert!(ledger.check(&path).is_empty(), "a torn tail is not a loss");
        // The next open says it cut 3 bytes: the crash left 9.
        let problems = ledger.record(&acks(&["open 200 3 events.jsonl.torn-x"]));
        assert!(
            problems
                .iter()
                .any(|p| p.contains("partial line of 9 bytes")),
            "{problems:?}"
        );
    }

    #[test]
    fn holds_the_side_file_to_exactly_the_cut_bytes() {
        let (dir, path) = log_with(&[("c0", "w0", 0)]);
        fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"ts\"")
            .unwrap();
        let mut ledger = EventLogLedger::new();
        ledger.record(&acks(&["ack c0 w0 0"]));
        ledger.check(&path);
        assert!(ledger.record(&acks(&["open 200 5 side"])).is_empty());
        fs::write(dir.path().join("side"), b"{\"t").unwrap();
        let problems = ledger.check(&path);
        assert!(
            problems
                .iter()
                .any(|p| p.contains("side file side holds 3 bytes")),
            "{problems:?}"
        );
    }

    /// A rotating set in a temp dir: `per_day` events of writer c0/w0 on each of `days` days.
    fn set_with(days: u64, per_day: u64) -> tempfile::TempDir {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicI64, Ordering};
        let dir = tempfile::tempdir().unwrap();
        let day = Arc::new(AtomicI64::new(0));
        let clock = {
            let day = Arc::clone(&day);
            move || {
                jiff::Timestamp::from_second(1_767_225_600 + 86_400 * day.load(Ordering::SeqCst))
                    .unwrap()
            }
        };
        let rotation = daemonkit_eventlog::Rotation::daily("events")
            .unwrap()
            .clock(clock);
        let log = daemonkit_eventlog::RotatingLog::open(dir.path(), rotation).unwrap();
        for seq in 0..days * per_day {
            day.store((seq / per_day) as i64, Ordering::SeqCst);
            log.log(&Event::new(
                Level::Info,
                "PowerCut",
                seq.to_string(),
                "c0",
                "w0",
            ))
            .unwrap();
        }
        dir
    }

    #[test]
    fn reads_a_rotating_set_as_one_log_in_file_order() {
        let dir = set_with(3, 2);
        let mut ledger = EventLogLedger::new();
        let acked: Vec<String> = (0..6).map(|n| format!("ack c0 w0 {n}")).collect();
        ledger.record(&acked);
        assert_eq!(ledger.check_set(dir.path(), "events"), Vec::<String>::new());
        // One event more than was acknowledged and in flight is not a loss; two more is.
        let mut ledger = EventLogLedger::new();
        ledger.record(&acked[..4]);
        let problems = ledger.check_set(dir.path(), "events");
        assert!(
            problems.iter().any(|p| p.contains("6 events in the log")),
            "{problems:?}"
        );
    }

    #[test]
    fn finds_a_torn_tail_left_in_a_file_that_is_not_the_newest() {
        let dir = set_with(2, 2);
        let oldest = daemonkit_eventlog::list_event_files(dir.path(), "events").unwrap()[0]
            .path
            .clone();
        fs::OpenOptions::new()
            .append(true)
            .open(&oldest)
            .unwrap()
            .write_all(b"{\"ts\"")
            .unwrap();
        let mut ledger = EventLogLedger::new();
        ledger.record(&acks(&["ack c0 w0 0", "ack c0 w0 1", "ack c0 w0 2"]));
        let problems = ledger.check_set(dir.path(), "events");
        assert!(
            problems.iter().any(|p| p.contains("not the newest file")),
            "{problems:?}"
        );
    }

    #[test]
    fn state_file_must_be_one_whole_generation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        fs::write(&path, state_content(4)).unwrap();
        assert_eq!(check_state(&path, 3), (vec![], Some(4)));
        assert_eq!(check_state(&path, 4), (vec![], Some(4)));
        assert_eq!(check_state(&path, 5).0.len(), 1);
        fs::write(&path, &state_content(4)[..512]).unwrap();
        assert!(check_state(&path, 4).0[0].contains("neither the old nor the new"));
        fs::remove_file(&path).unwrap();
        assert_eq!(check_state(&path, 4).0.len(), 1);
    }

    #[test]
    fn the_kits_state_file_must_be_there_intact_and_one_whole_generation() {
        let dir = tempfile::tempdir().unwrap();
        let missing = check_state_file(dir.path(), 0).0;
        assert!(missing[0].contains("missing"), "{missing:?}");
        let state = StateFile::new(dir.path(), STATE_FILE_NAME).unwrap();
        state.write(&state_content(4)).unwrap();
        assert_eq!(check_state_file(dir.path(), 3), (vec![], Some(4)));
        assert_eq!(check_state_file(dir.path(), 4), (vec![], Some(4)));
        assert_eq!(check_state_file(dir.path(), 5).0.len(), 1);
        // Framed but not a generation: the check is about content, not only framing.
        state.write(b"generation 4\n").unwrap();
        assert!(check_state_file(dir.path(), 4).0[0].contains("neither the old nor the new"));
        // Torn: the reader's own error is the problem.
        let framed = fs::read(state.path()).unwrap();
        fs::write(state.path(), &framed[..framed.len() - 1]).unwrap();
        let torn = check_state_file(dir.path(), 4).0;
        assert!(torn[0].contains("torn"), "{torn:?}");
    }
}
