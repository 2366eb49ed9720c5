//! One open file of a log: the file, its path, its identity and its last durable length.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use jiff::civil::Date;

use crate::file::{lock, open_log_file, sync_directory_and_ancestors};
use crate::repair::{TornTailRepair, repair_torn_tail};
use crate::{Error, Op};

/// A file's place in a rotating set: its UTC day and its number within the day (0 for the
/// first, unnumbered file).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct SegmentKey {
    pub(crate) day: Date,
    pub(crate) seq: u32,
}

/// One open file of a log and what the writer knows about it.
pub(crate) struct Segment {
    /// Written only by the leader; `&File` is `Write`.
    pub(crate) file: File,
    pub(crate) path: PathBuf,
    /// The file's place in a rotating set; `None` for a single-file log.
    pub(crate) key: Option<SegmentKey>,
    /// The identity of the inode opened, to notice the path being removed or replaced.
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    /// The file's length after its last durable line.
    pub(crate) good_len: u64,
    /// The file may hold bytes past `good_len`: rolling back a failed batch failed too, so the
    /// next batch must first cut the file back.
    pub(crate) dirty: bool,
}

impl Segment {
    pub(crate) fn new(
        file: File,
        path: PathBuf,
        key: Option<SegmentKey>,
        good_len: u64,
    ) -> Result<Segment, Error> {
        let meta = file.metadata().map_err(|source| Error::Io {
            op: Op::Stat,
            path: path.clone(),
            source,
        })?;
        Ok(Segment {
            file,
            path,
            key,
            dev: meta.dev(),
            ino: meta.ino(),
            good_len,
            dirty: false,
        })
    }
}

/// Opens (creating if needed) `<dir>/<name>` as an append segment: locked, its directory entry
/// synced, a torn tail repaired.
pub(crate) fn open_segment(
    dir: &Path,
    name: &str,
    key: Option<SegmentKey>,
) -> Result<(Segment, Option<TornTailRepair>), Error> {
    let path = dir.join(name);
    let (file, created) = open_log_file(&path)?;
    lock(&file, &path)?;
    // Synced even when the file existed: its creator may have died before syncing it; and
    // with its ancestors, which a power cut could otherwise take away with it.
    sync_directory_and_ancestors(dir)?;
    let (good_len, repair) = if created {
        (0, None)
    } else {
        repair_torn_tail(&file, &path, dir, name)?
    };
    Ok((Segment::new(file, path, key, good_len)?, repair))
}
