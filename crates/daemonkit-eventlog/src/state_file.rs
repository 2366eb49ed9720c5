//! Durable state files: a small file replaced whole, so that after a crash or a power cut it
//! holds exactly the old or the new content — never nothing, never a mix.

use std::fmt;
use std::fs::File;
use std::hash::{BuildHasher, RandomState};
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use rustix::fs::{FileType, Mode, OFlags};
use rustix::io::Errno;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::file::{absolute_dir, check_name, sync_directory_and_ancestors};
use crate::{Error, Op};

/// The first bytes of every state file: the format's name and version.
const MAGIC: &[u8] = b"daemonkit-state/1 ";

/// The longest header line: the magic, `length=` with up to 20 digits, ` crc32c=` with 8 hex
/// digits, and the newline (62 bytes), rounded up.
const MAX_HEADER: usize = 64;

/// The mode of a new state file unless [`StateFile::mode`] says otherwise.
const DEFAULT_MODE: u32 = 0o640;

/// The largest state [`StateFile::read`] accepts unless [`StateFile::max_len`] says otherwise.
pub const DEFAULT_MAX_LEN: u64 = 16 * 1024 * 1024;

/// How many temporary names [`StateFile::write`] tries before giving up: each is fresh, so only
/// a hostile user planting files at guessed names could make the first few fail.
const TEMP_ATTEMPTS: u32 = 8;

/// A temporary file's name keeps at most this much of the state file's name, so that it stays
/// within `NAME_MAX` (255 bytes) however long that name is.
const TEMP_NAME_KEEP: usize = 200;

// ===== impl StateFile =====

/// A small file that a daemon replaces whole and must never lose or find torn: the last
/// processed height, a migration's step, a lease.
///
/// [`write`](StateFile::write) writes the new content to a fresh temporary file in the same
/// directory, syncs it, renames it over the state file and syncs the directory: after a crash or
/// a power cut at any point the file holds exactly the old or the new content, and once `write`
/// returns, the new content survives both. [`read`](StateFile::read) tells a missing file
/// (`Ok(None)`: nothing was ever written) from a corrupt one ([`Error::CorruptStateFile`],
/// naming what is wrong): each file starts with a header line giving the content's length and
/// CRC-32C, so a torn or foreign file is never mistaken for a state. [`write_json`] and
/// [`read_json`] do the same for any serde type.
///
/// [`write_json`]: StateFile::write_json
/// [`read_json`]: StateFile::read_json
///
/// # Examples
///
/// ```
/// use daemonkit_eventlog::StateFile;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, PartialEq, Serialize, Deserialize)]
/// struct Progress {
///     step: u32,
///     version: String,
/// }
///
/// let dir = tempfile::tempdir()?;
/// let state = StateFile::new(dir.path(), "upgrade.json")?;
///
/// // Nothing written yet: missing, not corrupt.
/// assert_eq!(state.read_json::<Progress>()?, None);
///
/// // Durable when `write_json` returns.
/// let progress = Progress { step: 3, version: "v0.75.0".into() };
/// state.write_json(&progress)?;
/// assert_eq!(state.read_json::<Progress>()?, Some(progress));
///
/// // A file torn or damaged by anything but `write` is reported, with its path and the problem.
/// let mut bytes = std::fs::read(state.path())?;
/// *bytes.last_mut().unwrap() ^= 1;
/// std::fs::write(state.path(), bytes)?;
/// let err = state.read().unwrap_err();
/// assert!(err.to_string().contains("checksum"), "{err}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Format
///
/// One header line, then the content, byte for byte:
///
/// ```text
/// daemonkit-state/1 length=<decimal bytes of content> crc32c=<8 lowercase hex digits>\n
/// <content>
/// ```
///
/// The CRC-32C (Castagnoli) covers the content only; the length must match the bytes that follow
/// exactly, so a torn write (too few) and a foreign tail (too many) are both refused. A state
/// written with `write_json` is its JSON and a newline, so `tail -n +2 FILE | jq` shows it.
///
/// # Safety against a hostile directory
///
/// The directory is opened once, by [`new`](StateFile::new), and every later operation is
/// relative to that handle (`openat`, `renameat`): renaming or replacing the directory
/// afterwards does not redirect the state elsewhere. The state file's and the temporary file's
/// names are never followed if they are symbolic links: the temporary file is created with
/// `O_EXCL` (a name already taken, by a link or anything else, is skipped for a fresh one), the
/// rename replaces a link planted at the state file's name instead of writing through it, and
/// `read` refuses one ([`StateFileProblem::SymbolicLink`]). Reads are bounded by
/// [`max_len`](StateFile::max_len).
///
/// # One writer
///
/// Writes from many threads of one process are safe (each has its own temporary file; the last
/// rename wins). Two processes may write the same state file too, but nothing orders their
/// writes: give a state file one writing process, as a daemon does.
///
/// A process killed or a power cut during `write` may leave its temporary file,
/// `.<name>.tmp` or `.<name>.<16 hex digits>.tmp`, beside the state file. It is never read;
/// remove it when no writer runs.
#[derive(Debug)]
pub struct StateFile {
    /// The directory, as given (made absolute): for messages and the ancestors' sync.
    dir: PathBuf,
    /// The directory, opened once.
    dir_fd: OwnedFd,
    name: String,
    path: PathBuf,
    mode: u32,
    max_len: u64,
    /// Whether the directory and its ancestors have been synced, once per `StateFile`.
    ancestors_synced: AtomicBool,
}

impl StateFile {
    /// A state file named `name` in the existing directory `dir`.
    ///
    /// Opens `dir` (following symbolic links in `dir` itself: it is the caller's to choose) and
    /// keeps it open. Nothing is read or written yet. New state files are created mode `0640`
    /// (see [`mode`](StateFile::mode)); reads refuse files larger than [`DEFAULT_MAX_LEN`] (see
    /// [`max_len`](StateFile::max_len)).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`] if `name` is not a plain file name (empty, absolute, with a `/` or
    /// NUL, `.` or `..`); [`Error::Io`] if `dir` cannot be opened as a directory (it must exist:
    /// create it first, or let systemd's `StateDirectory=` make it).
    pub fn new(dir: impl AsRef<Path>, name: &str) -> Result<StateFile, Error> {
        check_name("state file name", name)?;
        let dir = absolute_dir(dir.as_ref())?;
        // O_DIRECTORY: a FIFO or file planted at the path fails here instead of blocking or
        // being written beside.
        let dir_fd = rustix::fs::open(
            &dir,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|errno| Error::Io {
            op: Op::Open,
            path: dir.clone(),
            source: errno.into(),
        })?;
        Ok(StateFile {
            path: dir.join(name),
            dir,
            dir_fd,
            name: name.to_owned(),
            mode: DEFAULT_MODE,
            max_len: DEFAULT_MAX_LEN,
            ancestors_synced: AtomicBool::new(false),
        })
    }

    /// Sets the permission bits of state files this `StateFile` creates (default `0o640`).
    ///
    /// Only the permission bits (`0o777`) are used: a state file is never set-user-ID, set-group-ID
    /// or sticky. The mode is set exactly, whatever the process's umask.
    #[must_use]
    pub fn mode(mut self, mode: u32) -> StateFile {
        self.mode = mode & 0o777;
        self
    }

    /// Sets the largest content, in bytes, that [`read`](StateFile::read) accepts and
    /// [`write`](StateFile::write) writes (default [`DEFAULT_MAX_LEN`], 16 MiB).
    ///
    /// The bound keeps a file grown by mistake or by a hostile user from exhausting memory.
    #[must_use]
    pub fn max_len(mut self, max_len: u64) -> StateFile {
        self.max_len = max_len;
        self
    }

    /// The state file's path: the directory given to [`new`](StateFile::new), made absolute,
    /// joined with the name.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Replaces the state with `content`: durable, and whole, when this returns.
    ///
    /// Writes a fresh temporary file beside the state file (created exclusively, with the
    /// [`mode`](StateFile::mode)), syncs it, renames it over the state file and syncs the
    /// directory. The first write of a `StateFile` also syncs the directory's ancestors, so a
    /// directory made just before (`create_dir_all`) survives a power cut with the state in it.
    ///
    /// # Errors
    ///
    /// [`Error::StateFileTooLarge`] if `content` is longer than [`max_len`](StateFile::max_len);
    /// [`Error::Io`] naming the operation and the path if any step fails. If the rename has not
    /// happened the state file is untouched and the temporary file is removed. If the final
    /// directory sync fails ([`Op::SyncDirectory`]), the state file already holds the new content
    /// but a power cut may still bring back the old.
    pub fn write(&self, content: &[u8]) -> Result<(), Error> {
        let len = content.len() as u64;
        if len > self.max_len {
            return Err(Error::StateFileTooLarge {
                path: self.path.clone(),
                len,
                limit: self.max_len,
            });
        }
        if !self.ancestors_synced.load(Ordering::Acquire) {
            sync_directory_and_ancestors(&self.dir)?;
            self.ancestors_synced.store(true, Ordering::Release);
        }
        let (temp_name, file) = self.create_temp()?;
        let temp_path = self.dir.join(&temp_name);
        let failed = |op: Op, path: &Path| {
            let path = path.to_path_buf();
            move |source: io::Error| Error::Io { op, path, source }
        };
        let staged = (|| {
            // The mode given at creation was narrowed by the umask; set it exactly.
            rustix::fs::fchmod(&file, Mode::from_raw_mode(self.mode))
                .map_err(|errno| failed(Op::SetMode, &temp_path)(errno.into()))?;
            let mut file = File::from(file);
            file.write_all(&frame(content))
                .map_err(failed(Op::Write, &temp_path))?;
            // Without this the rename can reach the disk before the bytes it names: a power cut
            // would then leave an empty or torn state file under the state file's name.
            file.sync_all().map_err(failed(Op::Sync, &temp_path))?;
            rustix::fs::renameat(&self.dir_fd, &temp_name, &self.dir_fd, &self.name)
                .map_err(|errno| failed(Op::Rename, &self.path)(errno.into()))
        })();
        if let Err(e) = staged {
            // The state file is untouched; do not leave the temporary file behind.
            if let Err(errno) =
                rustix::fs::unlinkat(&self.dir_fd, &temp_name, rustix::fs::AtFlags::empty())
            {
                tracing::debug!(
                    reason = "StateTempFileLeft",
                    path = %temp_path.display(),
                    error = %errno,
                    "cannot remove a state file's temporary file after a failed write"
                );
            }
            return Err(e);
        }
        // Makes the rename durable: until then a power cut can bring back the old content.
        rustix::fs::fsync(&self.dir_fd).map_err(|errno| Error::Io {
            op: Op::SyncDirectory,
            path: self.dir.clone(),
            source: errno.into(),
        })
    }

    /// Creates a fresh temporary file, exclusively: `.<name>.tmp` if free, else a random name.
    fn create_temp(&self) -> Result<(String, OwnedFd), Error> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let mut stem = self.name.as_str();
        if stem.len() > TEMP_NAME_KEEP {
            let mut end = TEMP_NAME_KEEP;
            while !stem.is_char_boundary(end) {
                end -= 1;
            }
            stem = &stem[..end];
        }
        let mut temp_name = String::new();
        for attempt in 0..TEMP_ATTEMPTS {
            temp_name = if attempt == 0 {
                format!(".{stem}.tmp")
            } else {
                // Unpredictable (a per-process random key), and unique within the process.
                let n = COUNTER.fetch_add(1, Ordering::Relaxed);
                let key = RandomState::new().hash_one((std::process::id(), n, attempt));
                format!(".{stem}.{key:016x}.tmp")
            };
            // O_EXCL: a name already taken — a planted symbolic link, a writer's leftover — is
            // never opened, let alone written through.
            match rustix::fs::openat(
                &self.dir_fd,
                &temp_name,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(self.mode),
            ) {
                Ok(fd) => return Ok((temp_name, fd)),
                Err(Errno::EXIST) => continue,
                Err(errno) => {
                    return Err(Error::Io {
                        op: Op::Open,
                        path: self.dir.join(temp_name),
                        source: errno.into(),
                    });
                }
            }
        }
        Err(Error::Io {
            op: Op::Open,
            path: self.dir.join(temp_name),
            source: Errno::EXIST.into(),
        })
    }

    /// Reads the state: `Ok(None)` if there is no state file, its content if it is whole.
    ///
    /// # Errors
    ///
    /// [`Error::CorruptStateFile`] if a file is there but is not a whole state (torn, damaged,
    /// foreign, a symbolic link, not a regular file), naming the problem;
    /// [`Error::StateFileTooLarge`] if it is larger than [`max_len`](StateFile::max_len) allows
    /// (it is not read); [`Error::Io`] if it cannot be opened or read.
    pub fn read(&self) -> Result<Option<Vec<u8>>, Error> {
        let corrupt = |problem| Error::CorruptStateFile {
            path: self.path.clone(),
            problem,
        };
        let failed = |op: Op| {
            let path = self.path.clone();
            move |errno: Errno| Error::Io {
                op,
                path,
                source: errno.into(),
            }
        };
        // O_NONBLOCK: a FIFO planted at the name fails the checks below instead of blocking
        // the open until a writer comes.
        let fd = match rustix::fs::openat(
            &self.dir_fd,
            &self.name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(None),
            // With O_NOFOLLOW, ELOOP means the name is a symbolic link.
            Err(Errno::LOOP) => return Err(corrupt(StateFileProblem::SymbolicLink)),
            // A socket cannot be opened at all.
            Err(Errno::NXIO) => return Err(corrupt(StateFileProblem::NotRegularFile)),
            Err(errno) => return Err(failed(Op::Open)(errno)),
        };
        let stat = rustix::fs::fstat(&fd).map_err(failed(Op::Read))?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
            return Err(corrupt(StateFileProblem::NotRegularFile));
        }
        let limit = self.max_len.saturating_add(MAX_HEADER as u64);
        let too_large = |len| Error::StateFileTooLarge {
            path: self.path.clone(),
            len,
            limit: self.max_len,
        };
        let size = u64::try_from(stat.st_size).unwrap_or(0);
        if size > limit {
            return Err(too_large(size));
        }
        // Bounded again while reading: the file may grow between the fstat and the read.
        let mut bytes = Vec::new();
        File::from(fd)
            .take(limit + 1)
            .read_to_end(&mut bytes)
            .map_err(|source| Error::Io {
                op: Op::Read,
                path: self.path.clone(),
                source,
            })?;
        if bytes.len() as u64 > limit {
            return Err(too_large(bytes.len() as u64));
        }
        let content = unframe(bytes).map_err(corrupt)?;
        // The bound on the whole file leaves room for the longest header: hold the content to
        // the limit itself, as `write` does.
        if content.len() as u64 > self.max_len {
            return Err(too_large(content.len() as u64));
        }
        Ok(Some(content))
    }

    /// Replaces the state with `value` as JSON (and a newline), as [`write`](StateFile::write).
    ///
    /// # Errors
    ///
    /// [`Error::StateEncode`] if `value` cannot be encoded as JSON; otherwise as
    /// [`write`](StateFile::write).
    pub fn write_json<T: Serialize + ?Sized>(&self, value: &T) -> Result<(), Error> {
        let mut json = serde_json::to_vec(value).map_err(|source| Error::StateEncode {
            path: self.path.clone(),
            source,
        })?;
        json.push(b'\n');
        self.write(&json)
    }

    /// Reads the state as JSON: `Ok(None)` if there is no state file, as
    /// [`read`](StateFile::read).
    ///
    /// # Errors
    ///
    /// As [`read`](StateFile::read); and [`Error::StateDecode`] if the file is whole but its
    /// content does not decode as a `T`.
    pub fn read_json<T: DeserializeOwned>(&self) -> Result<Option<T>, Error> {
        self.read()?
            .map(|bytes| {
                serde_json::from_slice(&bytes).map_err(|source| Error::StateDecode {
                    path: self.path.clone(),
                    source,
                })
            })
            .transpose()
    }
}

/// The header line and `content`, as one buffer written in one go.
fn frame(content: &[u8]) -> Vec<u8> {
    let header = format!(
        "daemonkit-state/1 length={} crc32c={:08x}\n",
        content.len(),
        crc32c::crc32c(content)
    );
    let mut framed = Vec::with_capacity(header.len() + content.len());
    framed.extend_from_slice(header.as_bytes());
    framed.extend_from_slice(content);
    framed
}

/// The content of a whole state file, or what is wrong with it.
fn unframe(mut bytes: Vec<u8>) -> Result<Vec<u8>, StateFileProblem> {
    if bytes.is_empty() {
        return Err(StateFileProblem::Empty);
    }
    if !bytes.starts_with(MAGIC) {
        return Err(StateFileProblem::MissingHeader);
    }
    let window = &bytes[..bytes.len().min(MAX_HEADER)];
    let Some(newline) = window.iter().position(|&b| b == b'\n') else {
        return Err(StateFileProblem::MalformedHeader);
    };
    let (length, crc) =
        parse_header(&bytes[MAGIC.len()..newline]).ok_or(StateFileProblem::MalformedHeader)?;
    let found = (bytes.len() - newline - 1) as u64;
    if found < length {
        return Err(StateFileProblem::Truncated {
            expected: length,
            found,
        });
    }
    if found > length {
        return Err(StateFileProblem::TrailingBytes {
            expected: length,
            found,
        });
    }
    bytes.drain(..=newline);
    let actual = crc32c::crc32c(&bytes);
    if actual != crc {
        return Err(StateFileProblem::ChecksumMismatch {
            expected: crc,
            actual,
        });
    }
    Ok(bytes)
}

/// Parses `length=<digits> crc32c=<8 lowercase hex>`, strictly: nothing else is accepted.
fn parse_header(fields: &[u8]) -> Option<(u64, u32)> {
    let fields = std::str::from_utf8(fields).ok()?;
    let (length, crc) = fields.split_once(' ')?;
    let length = length.strip_prefix("length=")?;
    let crc = crc.strip_prefix("crc32c=")?;
    let digits = |s: &str, radix: u32| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_digit(radix) && !c.is_ascii_uppercase())
    };
    if !digits(length, 10) || crc.len() != 8 || !digits(crc, 16) {
        return None;
    }
    Some((length.parse().ok()?, u32::from_str_radix(crc, 16).ok()?))
}

// ===== impl StateFileProblem =====

/// What [`Error::CorruptStateFile`] found wrong with a state file.
///
/// Each is a file that [`StateFile::write`] never leaves behind, even when killed or cut off by a
/// power failure: something else wrote, damaged or replaced it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StateFileProblem {
    /// The name is a symbolic link, which is never followed.
    SymbolicLink,
    /// The name is a directory, FIFO, socket or device, not a regular file.
    NotRegularFile,
    /// The file is empty.
    Empty,
    /// The file does not start with `daemonkit-state/1 `: not a state file, or a foreign one.
    MissingHeader,
    /// The header line is not `daemonkit-state/1 length=N crc32c=XXXXXXXX`.
    MalformedHeader,
    /// Fewer bytes follow the header than it announces.
    Truncated {
        /// The length the header announces.
        expected: u64,
        /// The bytes that follow it.
        found: u64,
    },
    /// More bytes follow the header than it announces.
    TrailingBytes {
        /// The length the header announces.
        expected: u64,
        /// The bytes that follow it.
        found: u64,
    },
    /// The content's CRC-32C is not the one in the header: the bytes were changed.
    ChecksumMismatch {
        /// The checksum in the header.
        expected: u32,
        /// The checksum of the content.
        actual: u32,
    },
}

impl fmt::Display for StateFileProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateFileProblem::SymbolicLink => {
                f.write_str("it is a symbolic link, which a state file never follows")
            }
            StateFileProblem::NotRegularFile => f.write_str("it is not a regular file"),
            StateFileProblem::Empty => f.write_str("it is empty"),
            StateFileProblem::MissingHeader => {
                f.write_str("it does not start with the header \"daemonkit-state/1 \"")
            }
            StateFileProblem::MalformedHeader => {
                f.write_str("its header line is not \"daemonkit-state/1 length=N crc32c=XXXXXXXX\"")
            }
            StateFileProblem::Truncated { expected, found } => write!(
                f,
                "the header announces {expected} bytes of content but only {found} follow (torn)"
            ),
            StateFileProblem::TrailingBytes { expected, found } => write!(
                f,
                "the header announces {expected} bytes of content but {found} follow"
            ),
            StateFileProblem::ChecksumMismatch { expected, actual } => write!(
                f,
                "the content's checksum is crc32c={actual:08x}, not crc32c={expected:08x} as the header says"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_and_unframes_any_content() {
        for content in [&b""[..], b"x", b"{\"a\":1}\n", &[0u8, 10, 255, 10][..]] {
            assert_eq!(unframe(frame(content)), Ok(content.to_vec()));
        }
    }

    #[test]
    fn the_header_is_the_documented_line() {
        assert_eq!(
            frame(b"hello"),
            b"daemonkit-state/1 length=5 crc32c=9a71bb4c\nhello".to_vec()
        );
    }

    #[test]
    fn refuses_every_prefix_of_a_state() {
        let framed = frame(b"{\"height\":12345}\n");
        for cut in 0..framed.len() {
            assert!(unframe(framed[..cut].to_vec()).is_err(), "prefix of {cut}");
        }
    }

    #[test]
    fn refuses_headers_that_are_almost_right() {
        for header in [
            "daemonkit-state/1 length=+1 crc32c=00000000\nx",
            "daemonkit-state/1 length=1 crc32c=0000000\nx",
            "daemonkit-state/1 length=1 crc32c=0000000G\nx",
            "daemonkit-state/1 length=1 crc32c=ABCDEF00\nx",
            "daemonkit-state/1 length=1  crc32c=00000000\nx",
            "daemonkit-state/1 length=1 crc32c=00000000 \nx",
            "daemonkit-state/1 length=99999999999999999999999 crc32c=00000000\nx",
            "daemonkit-state/1 length=1\nx",
        ] {
            assert_eq!(
                unframe(header.as_bytes().to_vec()),
                Err(StateFileProblem::MalformedHeader),
                "{header:?}"
            );
        }
    }
}
