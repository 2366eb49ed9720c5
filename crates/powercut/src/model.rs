//! The model: what the filesystem holds now, what of it is durable, and what a power cut leaves.
//!
//! Every file keeps its current bytes plus the list of changes made since its last
//! `fsync`/`fdatasync` (with what each change overwrote, so the durable bytes can be rebuilt by
//! undoing them). Every directory keeps its current entries; the entries that are durable are
//! kept apart, and every create, unlink and rename since is a pending directory operation until
//! an `fsync` of a directory it touches makes it durable. A [`crash`](Model::crash) chooses, from
//! a seed, which pending changes reached the disk — see `docs/architecture.md`, "What durable
//! means here", for the model and how it compares with ext4.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::time::SystemTime;

use crate::rng::Rng;

/// An inode number. The root directory is [`ROOT`].
pub(crate) type Ino = u64;

/// The root directory's inode number (FUSE's `FUSE_ROOT_ID`).
pub(crate) const ROOT: Ino = 1;

/// Sector size: the smallest unit a torn write keeps or loses.
pub const SECTOR: u64 = 512;
/// Page size: the unit the page cache writes back in.
pub const PAGE: u64 = 4096;

// ===== nodes =====

/// An inode: a file or a directory, with the attributes the tests need.
#[derive(Clone, Debug)]
pub(crate) struct Node {
    pub kind: NodeKind,
    pub perm: u16,
    pub uid: u32,
    pub gid: u32,
    pub mtime: SystemTime,
    pub ctime: SystemTime,
    /// Entries naming this node now (1 for a linked file, 0 once unlinked).
    pub nlink: u32,
}

#[derive(Clone, Debug)]
pub(crate) enum NodeKind {
    File(FileData),
    /// Current entries, name to inode.
    Dir(BTreeMap<OsString, Ino>),
}

/// A file's current bytes and the changes since its last sync, oldest first.
#[derive(Clone, Debug, Default)]
pub(crate) struct FileData {
    pub data: Vec<u8>,
    pending: Vec<FileOp>,
}

/// One unsynced change to a file's bytes, with what it replaced so it can be undone.
#[derive(Clone, Debug)]
enum FileOp {
    Write {
        offset: u64,
        bytes: Vec<u8>,
        old_len: u64,
        /// The old bytes in `offset..min(offset + bytes.len(), old_len)`.
        overwritten: Vec<u8>,
    },
    SetLen {
        old_len: u64,
        new_len: u64,
        /// The old bytes in `new_len..old_len` when the file shrank.
        removed: Vec<u8>,
    },
}

impl FileData {
    fn with(data: Vec<u8>) -> FileData {
        FileData {
            data,
            pending: Vec::new(),
        }
    }

    /// Writes `bytes` at `offset`, zero-filling any gap past the end.
    pub fn write(&mut self, offset: u64, bytes: &[u8]) -> Result<(), i32> {
        let start = usize::try_from(offset).map_err(|_| libc::EFBIG)?;
        let end = start.checked_add(bytes.len()).ok_or(libc::EFBIG)?;
        let old_len = self.data.len();
        let overwritten = self.data[start.min(old_len)..end.min(old_len)].to_vec();
        if end > old_len {
            self.data.resize(end, 0);
        }
        self.data[start..end].copy_from_slice(bytes);
        self.pending.push(FileOp::Write {
            offset,
            bytes: bytes.to_vec(),
            old_len: old_len as u64,
            overwritten,
        });
        Ok(())
    }

    /// Truncates or extends (with zeros) to `new_len`.
    pub fn set_len(&mut self, new_len: u64) -> Result<(), i32> {
        let len = usize::try_from(new_len).map_err(|_| libc::EFBIG)?;
        let old_len = self.data.len();
        let removed = if len < old_len {
            self.data[len..].to_vec()
        } else {
            Vec::new()
        };
        self.data.resize(len, 0);
        self.pending.push(FileOp::SetLen {
            old_len: old_len as u64,
            new_len,
            removed,
        });
        Ok(())
    }

    /// `fsync`/`fdatasync`: everything written so far is durable.
    pub fn sync(&mut self) {
        self.pending.clear();
    }

    /// The bytes on stable storage: the current bytes with every pending change undone.
    fn durable(&self) -> Vec<u8> {
        let mut data = self.data.clone();
        for op in self.pending.iter().rev() {
            match op {
                FileOp::Write {
                    offset,
                    old_len,
                    overwritten,
                    ..
                } => {
                    // Offsets were valid usizes when the write was made.
                    let start = *offset as usize;
                    data[start..start + overwritten.len()].copy_from_slice(overwritten);
                    data.truncate(*old_len as usize);
                }
                FileOp::SetLen {
                    old_len,
                    new_len,
                    removed,
                } => {
                    data.truncate(*new_len as usize);
                    data.extend_from_slice(removed);
                    data.resize(*old_len as usize, 0);
                }
            }
        }
        data
    }

    /// The bytes a power cut leaves: the durable bytes, then the pending changes in order up to a
    /// point the seed picks, the last of them possibly torn at a sector or page boundary.
    fn after_crash(&self, rng: &mut Rng, report: &mut CrashReport) -> Vec<u8> {
        let mut data = self.durable();
        let n = self.pending.len() as u64;
        if n == 0 {
            return data;
        }
        // Weighted towards the two extremes, which are where protocols break most often.
        let kept = match rng.below(4) {
            0 => n,
            1 => 0,
            _ => rng.below(n + 1),
        };
        for op in &self.pending[..kept as usize] {
            apply(&mut data, op, None);
        }
        if kept < n {
            report.file_ops_dropped += n - kept;
            let op = &self.pending[kept as usize];
            if let FileOp::Write { offset, bytes, .. } = op {
                let unit = if rng.chance(1, 2) { SECTOR } else { PAGE };
                let end = offset + bytes.len() as u64;
                // Boundaries strictly inside the write where a torn write may stop.
                let first = (offset / unit + 1) * unit;
                let cuts: Vec<u64> = (0..)
                    .map(|i| first + i * unit)
                    .take_while(|&b| b < end)
                    .collect();
                if !cuts.is_empty() && rng.chance(1, 2) {
                    let stop = cuts[rng.below(cuts.len() as u64) as usize];
                    apply(&mut data, op, Some(stop - offset));
                    report.torn_writes += 1;
                }
            }
        }
        report.bytes_lost += self.data.len().abs_diff(data.len()) as u64;
        data
    }
}

/// Applies `op` to `data`; a write only up to `limit` bytes when given (a torn write).
fn apply(data: &mut Vec<u8>, op: &FileOp, limit: Option<u64>) {
    match op {
        FileOp::Write { offset, bytes, .. } => {
            let n = limit.map_or(bytes.len(), |l| (l as usize).min(bytes.len()));
            let start = *offset as usize;
            if data.len() < start + n {
                data.resize(start + n, 0);
            }
            data[start..start + n].copy_from_slice(&bytes[..n]);
        }
        FileOp::SetLen { new_len, .. } => data.resize(*new_len as usize, 0),
    }
}

// ===== directory operations =====

/// One unsynced change to directory entries.
#[derive(Clone, Debug)]
enum MetaOp {
    /// `name` in `dir` now names `ino` (create, mkdir).
    Link { dir: Ino, name: OsString, ino: Ino },
    /// `name` in `dir` no longer names `ino` (unlink, rmdir).
    Unlink { dir: Ino, name: OsString, ino: Ino },
    /// `ino` moved from `from`/`from_name` to `to`/`to_name`, replacing what was there.
    Rename {
        from: Ino,
        from_name: OsString,
        to: Ino,
        to_name: OsString,
        ino: Ino,
    },
}

impl MetaOp {
    fn dirs(&self) -> [Ino; 2] {
        match self {
            MetaOp::Link { dir, .. } | MetaOp::Unlink { dir, .. } => [*dir, *dir],
            MetaOp::Rename { from, to, .. } => [*from, *to],
        }
    }

    fn touches(&self, dir: Ino) -> bool {
        self.dirs().contains(&dir)
    }

    /// Applies the operation to a set of directory tables (durable or crashed).
    fn apply(&self, dirs: &mut HashMap<Ino, BTreeMap<OsString, Ino>>) {
        match self {
            MetaOp::Link { dir, name, ino } => {
                dirs.entry(*dir).or_default().insert(name.clone(), *ino);
            }
            MetaOp::Unlink { dir, name, ino } => {
                let entries = dirs.entry(*dir).or_default();
                if entries.get(name) == Some(ino) {
                    entries.remove(name);
                }
            }
            MetaOp::Rename {
                from,
                from_name,
                to,
                to_name,
                ino,
            } => {
                let entries = dirs.entry(*from).or_default();
                if entries.get(from_name) == Some(ino) {
                    entries.remove(from_name);
                }
                dirs.entry(*to).or_default().insert(to_name.clone(), *ino);
            }
        }
    }
}

// ===== the model =====

/// What one power cut did: how much of what was not synced it dropped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CrashReport {
    /// The seed that chose this crash state; the same seed over the same operations gives the
    /// same state.
    pub seed: u64,
    /// Operations (writes, syncs, creates, renames…) the filesystem accepted before the cut.
    pub ops: u64,
    /// Unsynced directory operations (create, unlink, rename) that did not survive.
    pub dir_ops_dropped: u64,
    /// Unsynced directory operations that survived all the same.
    pub dir_ops_kept: u64,
    /// Unsynced file changes (writes, truncations) that did not survive.
    pub file_ops_dropped: u64,
    /// Writes that survived only in part, cut at a sector or page boundary.
    pub torn_writes: u64,
    /// Bytes of file length that differ from the last state before the cut.
    pub bytes_lost: u64,
}

/// A whole tree as it would be found on the disk: what [`Model::crash`] and
/// [`Model::current_image`] produce and [`crate::PowerCut`] writes to the backing directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Image {
    File {
        perm: u16,
        mtime: SystemTime,
        data: Vec<u8>,
    },
    Dir {
        perm: u16,
        entries: BTreeMap<OsString, Image>,
    },
}

/// The filesystem's whole state, shared by the FUSE thread and the handle.
#[derive(Debug)]
pub(crate) struct Model {
    pub nodes: HashMap<Ino, Node>,
    next_ino: Ino,
    /// Directory entries as they are on stable storage, per directory.
    durable_dirs: HashMap<Ino, BTreeMap<OsString, Ino>>,
    /// Unsynced directory operations, oldest first.
    pending_meta: Vec<MetaOp>,
    /// Counted operations accepted so far.
    pub ops: u64,
    /// Fail every operation after this many have been accepted.
    pub cut_after: Option<u64>,
    /// The power is off: every operation fails with `EIO`.
    pub cut: bool,
}

impl Model {
    /// A model holding `image` (the backing directory as loaded), all of it durable.
    pub fn from_image(image: Image) -> Model {
        let now = SystemTime::now();
        let mut model = Model {
            nodes: HashMap::new(),
            next_ino: ROOT + 1,
            durable_dirs: HashMap::new(),
            pending_meta: Vec::new(),
            ops: 0,
            cut_after: None,
            cut: false,
        };
        let perm = match &image {
            Image::Dir { perm, .. } => *perm,
            Image::File { .. } => 0o755,
        };
        model.nodes.insert(
            ROOT,
            Node {
                kind: NodeKind::Dir(BTreeMap::new()),
                perm,
                uid: 0,
                gid: 0,
                mtime: now,
                ctime: now,
                nlink: 2,
            },
        );
        model.durable_dirs.insert(ROOT, BTreeMap::new());
        if let Image::Dir { entries, .. } = image {
            model.load_entries(ROOT, entries);
        }
        model
    }

    fn load_entries(&mut self, dir: Ino, entries: BTreeMap<OsString, Image>) {
        for (name, child) in entries {
            let ino = self.alloc();
            let node = match child {
                Image::File { perm, mtime, data } => Node {
                    kind: NodeKind::File(FileData::with(data)),
                    perm,
                    uid: 0,
                    gid: 0,
                    mtime,
                    ctime: mtime,
                    nlink: 1,
                },
                Image::Dir { perm, entries } => {
                    self.durable_dirs.insert(ino, BTreeMap::new());
                    self.nodes.insert(ino, Node::dir(perm, 0, 0));
                    self.load_entries(ino, entries);
                    self.link_durably(dir, name, ino);
                    continue;
                }
            };
            self.nodes.insert(ino, node);
            self.link_durably(dir, name, ino);
        }
    }

    fn link_durably(&mut self, dir: Ino, name: OsString, ino: Ino) {
        if let Some(NodeKind::Dir(entries)) = self.nodes.get_mut(&dir).map(|n| &mut n.kind) {
            entries.insert(name.clone(), ino);
        }
        self.durable_dirs.entry(dir).or_default().insert(name, ino);
    }

    fn alloc(&mut self) -> Ino {
        let ino = self.next_ino;
        self.next_ino += 1;
        ino
    }

    /// Counts one operation; false if the power is (now) off and the operation must fail.
    pub fn tick(&mut self) -> bool {
        if self.cut {
            return false;
        }
        if self.cut_after.is_some_and(|n| self.ops >= n) {
            self.cut = true;
            return false;
        }
        self.ops += 1;
        true
    }

    pub fn dir_entries(&self, dir: Ino) -> Result<&BTreeMap<OsString, Ino>, i32> {
        match self.nodes.get(&dir).map(|n| &n.kind) {
            Some(NodeKind::Dir(entries)) => Ok(entries),
            Some(NodeKind::File(_)) => Err(libc::ENOTDIR),
            None => Err(libc::ENOENT),
        }
    }

    fn dir_entries_mut(&mut self, dir: Ino) -> Result<&mut BTreeMap<OsString, Ino>, i32> {
        match self.nodes.get_mut(&dir).map(|n| &mut n.kind) {
            Some(NodeKind::Dir(entries)) => Ok(entries),
            Some(NodeKind::File(_)) => Err(libc::ENOTDIR),
            None => Err(libc::ENOENT),
        }
    }

    pub fn lookup(&self, dir: Ino, name: &OsStr) -> Result<Ino, i32> {
        self.dir_entries(dir)?
            .get(name)
            .copied()
            .ok_or(libc::ENOENT)
    }

    /// Creates a file or directory `name` in `dir`; a pending directory operation until `dir` is
    /// synced.
    pub fn create(
        &mut self,
        dir: Ino,
        name: &OsStr,
        is_dir: bool,
        perm: u16,
        uid: u32,
        gid: u32,
    ) -> Result<Ino, i32> {
        if name.len() > 255 {
            return Err(libc::ENAMETOOLONG);
        }
        if self.dir_entries(dir)?.contains_key(name) {
            return Err(libc::EEXIST);
        }
        let ino = self.alloc();
        let node = if is_dir {
            self.durable_dirs.insert(ino, BTreeMap::new());
            Node::dir(perm, uid, gid)
        } else {
            let now = SystemTime::now();
            Node {
                kind: NodeKind::File(FileData::default()),
                perm,
                uid,
                gid,
                mtime: now,
                ctime: now,
                nlink: 1,
            }
        };
        self.nodes.insert(ino, node);
        self.dir_entries_mut(dir)?.insert(name.to_owned(), ino);
        self.touch(dir);
        self.pending_meta.push(MetaOp::Link {
            dir,
            name: name.to_owned(),
            ino,
        });
        Ok(ino)
    }

    /// Removes `name` from `dir` (a file for `unlink`, an empty directory for `rmdir`).
    pub fn remove(&mut self, dir: Ino, name: &OsStr, want_dir: bool) -> Result<(), i32> {
        let ino = self.lookup(dir, name)?;
        match (&self.nodes[&ino].kind, want_dir) {
            (NodeKind::Dir(entries), true) if !entries.is_empty() => return Err(libc::ENOTEMPTY),
            (NodeKind::Dir(_), false) => return Err(libc::EISDIR),
            (NodeKind::File(_), true) => return Err(libc::ENOTDIR),
            _ => {}
        }
        self.dir_entries_mut(dir)?.remove(name);
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.nlink = 0;
        }
        self.touch(dir);
        self.pending_meta.push(MetaOp::Unlink {
            dir,
            name: name.to_owned(),
            ino,
        });
        Ok(())
    }

    /// `rename(2)` without flags, or with `RENAME_NOREPLACE` when `no_replace`.
    pub fn rename(
        &mut self,
        from: Ino,
        from_name: &OsStr,
        to: Ino,
        to_name: &OsStr,
        no_replace: bool,
    ) -> Result<(), i32> {
        let ino = self.lookup(from, from_name)?;
        self.dir_entries(to)?;
        if from == to && from_name == to_name {
            return Ok(());
        }
        let src_is_dir = matches!(self.nodes[&ino].kind, NodeKind::Dir(_));
        if let Ok(old) = self.lookup(to, to_name) {
            if no_replace {
                return Err(libc::EEXIST);
            }
            match (&self.nodes[&old].kind, src_is_dir) {
                (NodeKind::Dir(e), true) if !e.is_empty() => return Err(libc::ENOTEMPTY),
                (NodeKind::Dir(_), false) => return Err(libc::EISDIR),
                (NodeKind::File(_), true) => return Err(libc::ENOTDIR),
                _ => {}
            }
            if let Some(node) = self.nodes.get_mut(&old) {
                node.nlink = 0;
            }
        }
        if src_is_dir && self.is_ancestor(ino, to) {
            return Err(libc::EINVAL);
        }
        self.dir_entries_mut(from)?.remove(from_name);
        self.dir_entries_mut(to)?.insert(to_name.to_owned(), ino);
        self.touch(from);
        self.touch(to);
        self.pending_meta.push(MetaOp::Rename {
            from,
            from_name: from_name.to_owned(),
            to,
            to_name: to_name.to_owned(),
            ino,
        });
        Ok(())
    }

    /// Whether `dir` is `ancestor` or below it (a directory cannot move into itself).
    fn is_ancestor(&self, ancestor: Ino, dir: Ino) -> bool {
        if ancestor == dir {
            return true;
        }
        let mut stack = vec![ancestor];
        let mut seen = HashSet::new();
        while let Some(d) = stack.pop() {
            if !seen.insert(d) {
                continue;
            }
            if let Ok(entries) = self.dir_entries(d) {
                for &child in entries.values() {
                    if child == dir {
                        return true;
                    }
                    stack.push(child);
                }
            }
        }
        false
    }

    fn touch(&mut self, ino: Ino) {
        if let Some(node) = self.nodes.get_mut(&ino) {
            let now = SystemTime::now();
            node.mtime = now;
            node.ctime = now;
        }
    }

    pub fn file_mut(&mut self, ino: Ino) -> Result<&mut FileData, i32> {
        let node = self.nodes.get_mut(&ino).ok_or(libc::ENOENT)?;
        let now = SystemTime::now();
        node.mtime = now;
        node.ctime = now;
        match &mut node.kind {
            NodeKind::File(f) => Ok(f),
            NodeKind::Dir(_) => Err(libc::EISDIR),
        }
    }

    /// `fsync` of a directory: its pending operations become durable — and, so that every
    /// directory's durable history stays a prefix of its real one, every earlier operation on a
    /// directory that one of those (a rename) also touches.
    pub fn sync_dir(&mut self, dir: Ino) {
        let mut dirs: HashSet<Ino> = HashSet::from([dir]);
        let mut chosen = vec![false; self.pending_meta.len()];
        for (i, op) in self.pending_meta.iter().enumerate().rev() {
            if op.dirs().iter().any(|d| dirs.contains(d)) {
                chosen[i] = true;
                dirs.extend(op.dirs());
            }
        }
        let mut rest = Vec::new();
        for (op, chosen) in std::mem::take(&mut self.pending_meta)
            .into_iter()
            .zip(chosen)
        {
            if chosen {
                op.apply(&mut self.durable_dirs);
            } else {
                rest.push(op);
            }
        }
        self.pending_meta = rest;
    }

    /// Unsynced directory operations touching `dir`.
    #[cfg(test)]
    fn pending_in(&self, dir: Ino) -> usize {
        self.pending_meta
            .iter()
            .filter(|op| op.touches(dir))
            .count()
    }

    /// The tree a power cut would leave, chosen by `seed`.
    ///
    /// Directory operations: for each directory the seed picks how many of its pending
    /// operations reached the disk, in order; an operation survives only if it is within that
    /// prefix in every directory it touches (a rename touches two), and once one is lost every
    /// later operation on its directories is lost too, so each directory's state is one it
    /// really passed through. Files: see [`FileData::after_crash`]. A file whose entry did not
    /// survive is gone, synced or not.
    pub fn crash(&self, seed: u64) -> (Image, CrashReport) {
        let mut rng = Rng::new(seed);
        let mut report = CrashReport {
            seed,
            ops: self.ops,
            ..CrashReport::default()
        };
        let mut dirs = self.durable_dirs.clone();
        // Per directory: how many of its pending operations may survive.
        let mut budget: BTreeMap<Ino, u64> = BTreeMap::new();
        for op in &self.pending_meta {
            for d in op.dirs() {
                budget.entry(d).or_insert(0);
            }
        }
        for (&d, b) in budget.iter_mut() {
            let n = self.pending_meta.iter().filter(|op| op.touches(d)).count() as u64;
            *b = match rng.below(4) {
                0 => n,
                1 => 0,
                _ => rng.below(n + 1),
            };
        }
        let mut closed: HashSet<Ino> = HashSet::new();
        for op in &self.pending_meta {
            let ds = op.dirs();
            let survives = ds
                .iter()
                .all(|d| !closed.contains(d) && budget.get(d).is_some_and(|&b| b > 0));
            if survives {
                op.apply(&mut dirs);
                report.dir_ops_kept += 1;
                for d in dedup(ds) {
                    if let Some(b) = budget.get_mut(&d) {
                        *b -= 1;
                    }
                }
            } else {
                report.dir_ops_dropped += 1;
                closed.extend(ds);
            }
        }
        // File contents are chosen in inode order so the seed alone fixes them.
        let mut inos: Vec<Ino> = self.nodes.keys().copied().collect();
        inos.sort_unstable();
        let mut contents: HashMap<Ino, Vec<u8>> = HashMap::new();
        for ino in inos {
            if let NodeKind::File(f) = &self.nodes[&ino].kind {
                contents.insert(ino, f.after_crash(&mut rng, &mut report));
            }
        }
        let image = self.build_image(ROOT, &dirs, &mut contents, &mut HashSet::new());
        (image, report)
    }

    /// The tree as it is now, as a clean shutdown (sync, unmount) leaves it.
    pub fn current_image(&self) -> Image {
        let dirs: HashMap<Ino, BTreeMap<OsString, Ino>> = self
            .nodes
            .iter()
            .filter_map(|(&ino, n)| match &n.kind {
                NodeKind::Dir(e) => Some((ino, e.clone())),
                NodeKind::File(_) => None,
            })
            .collect();
        let mut contents: HashMap<Ino, Vec<u8>> = self
            .nodes
            .iter()
            .filter_map(|(&ino, n)| match &n.kind {
                NodeKind::File(f) => Some((ino, f.data.clone())),
                NodeKind::Dir(_) => None,
            })
            .collect();
        self.build_image(ROOT, &dirs, &mut contents, &mut HashSet::new())
    }

    fn build_image(
        &self,
        ino: Ino,
        dirs: &HashMap<Ino, BTreeMap<OsString, Ino>>,
        contents: &mut HashMap<Ino, Vec<u8>>,
        seen: &mut HashSet<Ino>,
    ) -> Image {
        let node = &self.nodes[&ino];
        match &node.kind {
            NodeKind::File(_) => Image::File {
                perm: node.perm,
                mtime: node.mtime,
                // A file reached twice (a rename that both kept and moved it) gets its bytes
                // at the first name and is empty at the second.
                data: contents.remove(&ino).unwrap_or_default(),
            },
            NodeKind::Dir(_) => {
                seen.insert(ino);
                let mut entries = BTreeMap::new();
                for (name, &child) in dirs.get(&ino).into_iter().flatten() {
                    if seen.contains(&child) || !self.nodes.contains_key(&child) {
                        continue;
                    }
                    entries.insert(name.clone(), self.build_image(child, dirs, contents, seen));
                }
                Image::Dir {
                    perm: node.perm,
                    entries,
                }
            }
        }
    }
}

impl Node {
    fn dir(perm: u16, uid: u32, gid: u32) -> Node {
        let now = SystemTime::now();
        Node {
            kind: NodeKind::Dir(BTreeMap::new()),
            perm,
            uid,
            gid,
            mtime: now,
            ctime: now,
            nlink: 2,
        }
    }
}

fn dedup(ds: [Ino; 2]) -> Vec<Ino> {
    if ds[0] == ds[1] {
        vec![ds[0]]
    } else {
        ds.to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn empty() -> Model {
        Model::from_image(Image::Dir {
            perm: 0o755,
            entries: BTreeMap::new(),
        })
    }

    fn file<'a>(image: &'a Image, name: &str) -> Option<&'a [u8]> {
        match image {
            Image::Dir { entries, .. } => match entries.get(OsStr::new(name)) {
                Some(Image::File { data, .. }) => Some(data),
                _ => None,
            },
            Image::File { .. } => None,
        }
    }

    fn seeds() -> impl Iterator<Item = u64> {
        0..200
    }

    #[test]
    fn synced_file_in_synced_directory_always_survives() {
        let mut m = empty();
        let ino = m.create(ROOT, OsStr::new("a"), false, 0o644, 0, 0).unwrap();
        m.file_mut(ino).unwrap().write(0, b"hello\n").unwrap();
        m.file_mut(ino).unwrap().sync();
        m.sync_dir(ROOT);
        m.file_mut(ino).unwrap().write(6, b"unsynced").unwrap();
        for seed in seeds() {
            let (image, _) = m.crash(seed);
            let data = file(&image, "a").expect("synced entry survives");
            assert!(data.starts_with(b"hello\n"), "seed {seed}: {data:?}");
            assert!(
                b"hello\nunsynced".starts_with(data),
                "seed {seed}: {data:?}"
            );
        }
    }

    #[test]
    fn unsynced_create_is_sometimes_lost_and_sometimes_kept() {
        let mut m = empty();
        let ino = m.create(ROOT, OsStr::new("a"), false, 0o644, 0, 0).unwrap();
        m.file_mut(ino).unwrap().write(0, b"x").unwrap();
        m.file_mut(ino).unwrap().sync();
        let present = seeds()
            .filter(|&s| file(&m.crash(s).0, "a").is_some())
            .count();
        assert!(present > 0 && present < 200, "present in {present} of 200");
    }

    #[test]
    fn unsynced_appends_survive_only_as_prefixes_torn_at_sector_or_page() {
        let mut m = empty();
        let ino = m.create(ROOT, OsStr::new("a"), false, 0o644, 0, 0).unwrap();
        m.sync_dir(ROOT);
        let big: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        m.file_mut(ino).unwrap().write(0, &big).unwrap();
        let mut lens = HashSet::new();
        for seed in seeds() {
            let data = file(&m.crash(seed).0, "a").unwrap().to_vec();
            assert_eq!(data[..], big[..data.len()], "seed {seed}: not a prefix");
            assert!(
                data.len().is_multiple_of(512) || data.len() == big.len(),
                "seed {seed}: torn at {}",
                data.len()
            );
            lens.insert(data.len());
        }
        assert!(
            lens.contains(&0) && lens.contains(&big.len()) && lens.len() > 3,
            "{lens:?}"
        );
    }

    #[test]
    fn sync_of_a_directory_makes_its_renames_durable_on_both_sides() {
        let mut m = empty();
        let d = m.create(ROOT, OsStr::new("d"), true, 0o755, 0, 0).unwrap();
        let f = m
            .create(ROOT, OsStr::new("tmp"), false, 0o644, 0, 0)
            .unwrap();
        m.file_mut(f).unwrap().write(0, b"new").unwrap();
        m.file_mut(f).unwrap().sync();
        m.rename(ROOT, OsStr::new("tmp"), d, OsStr::new("state"), false)
            .unwrap();
        assert_eq!(m.pending_in(d), 1);
        m.sync_dir(d);
        // The rename pulled in the earlier operations on the root (mkdir d, create tmp).
        assert_eq!(m.pending_in(ROOT), 0);
        for seed in seeds() {
            let (image, _) = m.crash(seed);
            let Image::Dir { entries, .. } = &image else {
                panic!()
            };
            assert!(!entries.contains_key(OsStr::new("tmp")), "seed {seed}");
            let Some(sub @ Image::Dir { .. }) = entries.get(OsStr::new("d")) else {
                panic!("seed {seed}: d lost")
            };
            assert_eq!(file(sub, "state"), Some(&b"new"[..]), "seed {seed}");
        }
    }

    #[test]
    fn a_directory_keeps_a_prefix_of_its_operations() {
        let mut m = empty();
        for name in ["a", "b", "c", "d"] {
            m.create(ROOT, OsStr::new(name), false, 0o644, 0, 0)
                .unwrap();
        }
        for seed in seeds() {
            let Image::Dir { entries, .. } = m.crash(seed).0 else {
                panic!()
            };
            let names: Vec<_> = entries
                .keys()
                .map(|k| k.to_str().unwrap().to_owned())
                .collect();
            let expect: Vec<_> = ["a", "b", "c", "d"][..names.len()]
                .iter()
                .map(|s| s.to_string())
                .collect();
            assert_eq!(names, expect, "seed {seed}");
        }
    }

    #[test]
    fn same_seed_same_crash() {
        let mut m = empty();
        let ino = m.create(ROOT, OsStr::new("a"), false, 0o644, 0, 0).unwrap();
        m.file_mut(ino).unwrap().write(0, &[7; 9000]).unwrap();
        for seed in seeds() {
            assert_eq!(m.crash(seed), m.crash(seed));
        }
    }

    #[test]
    fn truncation_is_undone_when_not_synced() {
        let mut m = empty();
        let ino = m.create(ROOT, OsStr::new("a"), false, 0o644, 0, 0).unwrap();
        m.sync_dir(ROOT);
        m.file_mut(ino).unwrap().write(0, b"0123456789").unwrap();
        m.file_mut(ino).unwrap().sync();
        m.file_mut(ino).unwrap().set_len(4).unwrap();
        m.file_mut(ino).unwrap().write(4, b"ab").unwrap();
        let mut seen = HashSet::new();
        for seed in seeds() {
            seen.insert(file(&m.crash(seed).0, "a").unwrap().to_vec());
        }
        let expect: HashSet<Vec<u8>> = [&b"0123456789"[..], b"0123", b"0123ab"]
            .iter()
            .map(|s| s.to_vec())
            .collect();
        assert_eq!(seen, expect);
    }
}
