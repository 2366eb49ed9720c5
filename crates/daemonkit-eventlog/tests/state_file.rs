//! The durable state file: what it writes, what it refuses to read, and what it refuses to follow.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::time::Duration;

use daemonkit_eventlog::{Error, Op, StateFile, StateFileProblem};
use serde::{Deserialize, Serialize};

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Progress {
    height: u64,
    step: String,
}

fn problem(err: Error) -> (std::path::PathBuf, StateFileProblem) {
    match err {
        Error::CorruptStateFile { path, problem } => (path, problem),
        other => panic!("expected a corrupt state file, got {other:?}"),
    }
}

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_missing_file_reads_as_none() {
    let dir = tempfile::tempdir().unwrap();
    let state = StateFile::new(dir.path(), "state").unwrap();
    assert_eq!(state.read().unwrap(), None);
    assert_eq!(state.read_json::<Progress>().unwrap(), None);
}

#[test]
fn reads_back_what_it_wrote_and_leaves_no_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let state = StateFile::new(dir.path(), "state").unwrap();
    state.write(b"first").unwrap();
    state.write(b"").unwrap();
    assert_eq!(state.read().unwrap(), Some(Vec::new()));
    let binary: Vec<u8> = (0..=255).collect();
    state.write(&binary).unwrap();
    assert_eq!(state.read().unwrap(), Some(binary));
    assert_eq!(names(dir.path()), ["state"]);
    assert_eq!(
        state.path(),
        std::path::absolute(dir.path()).unwrap().join("state")
    );
}

#[test]
fn json_round_trips_and_the_file_is_readable_by_eye() {
    let dir = tempfile::tempdir().unwrap();
    let state = StateFile::new(dir.path(), "upgrade.json").unwrap();
    let progress = Progress {
        height: 12_345,
        step: "migrate".into(),
    };
    state.write_json(&progress).unwrap();
    assert_eq!(state.read_json::<Progress>().unwrap(), Some(progress));
    let text = fs::read_to_string(state.path()).unwrap();
    let (header, json) = text.split_once('\n').unwrap();
    assert!(
        header.starts_with("daemonkit-state/1 length=34 crc32c="),
        "{header}"
    );
    assert_eq!(json, "{\"height\":12345,\"step\":\"migrate\"}\n");
}

#[test]
fn a_torn_file_is_corrupt_not_missing() {
    let dir = tempfile::tempdir().unwrap();
    let state = StateFile::new(dir.path(), "state").unwrap();
    state.write(&[b'x'; 1000]).unwrap();
    let whole = fs::read(state.path()).unwrap();
    fs::write(state.path(), &whole[..whole.len() - 10]).unwrap();
    let err = state.read().unwrap_err();
    let message = err.to_string();
    assert_eq!(
        problem(err),
        (
            state.path().to_path_buf(),
            StateFileProblem::Truncated {
                expected: 1000,
                found: 990
            }
        )
    );
    assert!(
        message.contains(&state.path().display().to_string()),
        "{message}"
    );
    assert!(message.contains("torn"), "{message}");
}

/// Whether a problem is the one expected.
type Expect = fn(&StateFileProblem) -> bool;

#[test]
fn every_kind_of_damage_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let state = StateFile::new(dir.path(), "state").unwrap();
    state.write(b"{\"height\":1}").unwrap();
    let whole = fs::read(state.path()).unwrap();

    let mut flipped = whole.clone();
    *flipped.last_mut().unwrap() ^= 0x20;
    let mut appended = whole.clone();
    appended.extend_from_slice(b"garbage");
    let cases: [(&[u8], Expect); 5] = [
        (b"", |p| *p == StateFileProblem::Empty),
        (b"{\"height\":1}", |p| *p == StateFileProblem::MissingHeader),
        (b"daemonkit-state/1 length=x\n{}", |p| {
            *p == StateFileProblem::MalformedHeader
        }),
        (&flipped, |p| {
            matches!(p, StateFileProblem::ChecksumMismatch { .. })
        }),
        (&appended, |p| {
            *p == StateFileProblem::TrailingBytes {
                expected: 12,
                found: 19,
            }
        }),
    ];
    for (bytes, expected) in cases {
        fs::write(state.path(), bytes).unwrap();
        let (path, found) = problem(state.read().unwrap_err());
        assert_eq!(path, state.path());
        assert!(
            expected(&found),
            "{:?}: {found:?}",
            String::from_utf8_lossy(bytes)
        );
    }
    // And a whole write repairs it.
    state.write(b"ok").unwrap();
    assert_eq!(state.read().unwrap(), Some(b"ok".to_vec()));
}

#[test]
fn intact_json_of_another_shape_is_a_decode_error_not_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let state = StateFile::new(dir.path(), "state").unwrap();
    state.write_json(&["not", "progress"]).unwrap();
    match state.read_json::<Progress>().unwrap_err() {
        Error::StateDecode { path, .. } => assert_eq!(path, state.path()),
        other => panic!("expected a decode error, got {other:?}"),
    }
}

#[test]
fn new_files_get_exactly_the_mode_asked_for_whatever_the_umask() {
    let dir = tempfile::tempdir().unwrap();
    let default = StateFile::new(dir.path(), "default").unwrap();
    default.write(b"x").unwrap();
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(default.path()), 0o640);
    // Wider than the usual umask (022) lets through, and setuid bits are dropped.
    let shared = StateFile::new(dir.path(), "shared").unwrap().mode(0o4666);
    shared.write(b"x").unwrap();
    assert_eq!(mode(shared.path()), 0o666);
}

#[test]
fn a_symlink_planted_at_the_state_name_is_replaced_not_written_through() {
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    fs::write(&victim, b"precious").unwrap();
    symlink(&victim, dir.path().join("state")).unwrap();
    let state = StateFile::new(dir.path(), "state").unwrap();

    let (path, found) = problem(state.read().unwrap_err());
    assert_eq!(
        (path, found),
        (state.path().to_path_buf(), StateFileProblem::SymbolicLink)
    );

    state.write(b"new state").unwrap();
    assert_eq!(fs::read(&victim).unwrap(), b"precious");
    assert!(fs::symlink_metadata(state.path()).unwrap().is_file());
    assert_eq!(state.read().unwrap(), Some(b"new state".to_vec()));
}

#[test]
fn a_symlink_planted_at_the_temporary_name_is_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    // One link to an existing file (which O_TRUNC would empty), one dangling (which O_CREAT
    // would create): the temporary name of the first write is `.state.tmp`.
    let victim = dir.path().join("victim");
    fs::write(&victim, b"precious").unwrap();
    symlink(&victim, dir.path().join(".state.tmp")).unwrap();
    let state = StateFile::new(dir.path(), "state").unwrap();
    state.write(b"one").unwrap();
    assert_eq!(state.read().unwrap(), Some(b"one".to_vec()));
    assert_eq!(fs::read(&victim).unwrap(), b"precious");
    assert!(
        fs::symlink_metadata(dir.path().join(".state.tmp"))
            .unwrap()
            .is_symlink()
    );

    let created = dir.path().join("created-through-link");
    symlink(&created, dir.path().join(".other.tmp")).unwrap();
    let other = StateFile::new(dir.path(), "other").unwrap();
    other.write(b"two").unwrap();
    assert!(!created.exists(), "the dangling link was followed");
    assert_eq!(other.read().unwrap(), Some(b"two".to_vec()));
    assert_eq!(
        names(dir.path()),
        [".other.tmp", ".state.tmp", "other", "state", "victim"]
    );
}

#[test]
fn a_fifo_at_the_state_name_is_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &path,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    let state = StateFile::new(dir.path(), "state").unwrap();
    // Were the open to block, the test would hang, not fail: read on a thread with a deadline.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(state.read().map_err(|e| e.to_string()));
    });
    let result = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("reading a FIFO blocked");
    let message = result.unwrap_err();
    assert!(message.contains("not a regular file"), "{message}");
}

#[test]
fn a_file_over_the_limit_is_neither_read_nor_written() {
    let dir = tempfile::tempdir().unwrap();
    let state = StateFile::new(dir.path(), "state").unwrap().max_len(100);
    state.write(&[b'a'; 100]).unwrap();
    match state.write(&[b'a'; 101]).unwrap_err() {
        Error::StateFileTooLarge { len, limit, .. } => assert_eq!((len, limit), (101, 100)),
        other => panic!("{other:?}"),
    }
    assert_eq!(state.read().unwrap(), Some(vec![b'a'; 100]));
    // Content over the limit in an intact file (written under a larger limit) is refused too,
    // even where the whole file is within the limit plus the longest header.
    StateFile::new(dir.path(), "state")
        .unwrap()
        .write(&[b'c'; 110])
        .unwrap();
    match state.read().unwrap_err() {
        Error::StateFileTooLarge { len, limit, .. } => assert_eq!((len, limit), (110, 100)),
        other => panic!("{other:?}"),
    }
    // A file grown on disk past the limit is refused unread.
    fs::write(state.path(), vec![b'b'; 10_000]).unwrap();
    match state.read().unwrap_err() {
        Error::StateFileTooLarge { path, len, limit } => {
            assert_eq!((path.as_path(), len, limit), (state.path(), 10_000, 100))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn concurrent_writers_in_one_process_leave_one_whole_state() {
    let dir = tempfile::tempdir().unwrap();
    let state = StateFile::new(dir.path(), "state").unwrap();
    let content = |t: usize, i: usize| format!("thread {t} write {i} ").repeat(50).into_bytes();
    std::thread::scope(|s| {
        for t in 0..8 {
            let state = &state;
            s.spawn(move || {
                for i in 0..10 {
                    state.write(&content(t, i)).unwrap();
                }
            });
        }
    });
    let last = state.read().unwrap().unwrap();
    assert!(
        (0..8).any(|t| last == content(t, 9)),
        "the state is no thread's last write"
    );
    assert_eq!(names(dir.path()), ["state"]);
}

#[test]
fn a_failed_rename_leaves_the_state_and_no_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    // A non-empty directory at the state's name: the rename over it fails.
    fs::create_dir(dir.path().join("state")).unwrap();
    fs::write(dir.path().join("state").join("inside"), b"x").unwrap();
    let state = StateFile::new(dir.path(), "state").unwrap();
    match state.write(b"new").unwrap_err() {
        Error::Io { op, path, .. } => {
            assert_eq!((op, path.as_path()), (Op::Rename, state.path()))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(names(dir.path()), ["state"]);
    assert_eq!(
        problem(state.read().unwrap_err()).1,
        StateFileProblem::NotRegularFile
    );
}

#[test]
fn the_directory_is_the_one_opened_even_if_renamed_afterwards() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("state-dir");
    fs::create_dir(&dir).unwrap();
    let state = StateFile::new(&dir, "state").unwrap();
    // Swap another directory in under the name.
    fs::rename(&dir, parent.path().join("moved")).unwrap();
    fs::create_dir(&dir).unwrap();
    state.write(b"held").unwrap();
    assert_eq!(
        fs::read_to_string(parent.path().join("moved").join("state"))
            .unwrap()
            .lines()
            .nth(1),
        Some("held")
    );
    assert!(names(&dir).is_empty());
}

#[test]
fn names_that_reach_outside_the_directory_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["", "/etc/passwd", "../state", "a/b", ".", "..", "nul\0"] {
        assert!(
            matches!(
                StateFile::new(dir.path(), name),
                Err(Error::InvalidName { .. })
            ),
            "{name:?}"
        );
    }
    // The longest legal name works: its temporary name is shortened to fit.
    let long = "s".repeat(255);
    let state = StateFile::new(dir.path(), &long).unwrap();
    state.write(b"x").unwrap();
    assert_eq!(state.read().unwrap(), Some(b"x".to_vec()));
}

#[test]
fn a_missing_directory_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    match StateFile::new(&missing, "state").unwrap_err() {
        Error::Io { op, path, source } => {
            assert_eq!((op, path), (Op::Open, missing));
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("{other:?}"),
    }
}

/// The example of docs/user-guide.md, section 9, "State files", as written there.
#[test]
fn the_user_guide_example_as_written_there() -> Result<(), Box<dyn std::error::Error>> {
    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Migration {
        step: u32,
        target: String,
    }
    let dir = tempfile::tempdir()?;

    let state = StateFile::new(dir.path(), "migration.json")? // the directory must exist
        .mode(0o640) // the default; set exactly, whatever the umask
        .max_len(16 * 1024 * 1024); // the default: larger files are refused unread

    match state.read_json::<Migration>()? {
        None => { /* never written: start from the beginning */ }
        Some(m) => println!("resuming at step {}", m.step),
    }
    state.write_json(&Migration {
        step: 2,
        target: "v0.75.0".into(),
    })?; // durable on return

    // The file as the guide shows it.
    assert_eq!(
        fs::read_to_string(state.path())?,
        "daemonkit-state/1 length=30 crc32c=44343763\n{\"step\":2,\"target\":\"v0.75.0\"}\n"
    );

    // A file that `write` did not leave is refused, naming the path and the problem:
    fs::write(state.path(), b"{\"step\": 3}")?;
    match state.read() {
        Err(Error::CorruptStateFile {
            path,
            problem: StateFileProblem::MissingHeader,
        }) => {
            eprintln!(
                "{} is not a state file; restore it or remove it",
                path.display()
            );
        }
        other => panic!("{other:?}"),
    }
    Ok(())
}
