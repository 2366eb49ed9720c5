//! The FUSE side: kernel requests turned into [`Model`] operations.
//!
//! Every request that changes something or makes it durable (create, mkdir, unlink, rmdir,
//! rename, write, truncate, chmod, fsync, fsyncdir) is counted, and once the power is cut every
//! request fails with `EIO` — like a disk that vanished — so the state a crash starts from is
//! exactly the state when the cut fell.

use std::ffi::OsStr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};

use crate::model::{Ino, Model, Node, NodeKind};

/// How long the kernel may cache attributes and entries. Only this mount changes the tree, and
/// after a crash the next mount starts with empty caches, so a short cache is safe.
const TTL: Duration = Duration::from_secs(1);

pub(crate) struct PowerCutFs {
    pub model: Arc<Mutex<Model>>,
}

impl PowerCutFs {
    fn model(&self) -> MutexGuard<'_, Model> {
        // A panic in one request must not wedge the mount; the model is consistent between
        // requests because every change is made under this one lock.
        self.model.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn attr(ino: Ino, node: &Node) -> FileAttr {
    let (kind, size) = match &node.kind {
        NodeKind::File(f) => (FileType::RegularFile, f.data.len() as u64),
        NodeKind::Dir(e) => (FileType::Directory, e.len() as u64),
    };
    FileAttr {
        ino: INodeNo(ino),
        size,
        blocks: size.div_ceil(512),
        atime: node.mtime,
        mtime: node.mtime,
        ctime: node.ctime,
        crtime: node.ctime,
        kind,
        perm: node.perm,
        nlink: node.nlink,
        uid: node.uid,
        gid: node.gid,
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}

fn errno(code: i32) -> Errno {
    Errno::from_i32(code)
}

/// Fails the request with `EIO` once the power is off.
macro_rules! live {
    ($model:expr, $reply:expr) => {{
        if $model.cut {
            $reply.error(Errno::EIO);
            return;
        }
    }};
}

/// Counts a request that changes or syncs something; fails it with `EIO` if the power is (now)
/// off.
macro_rules! count {
    ($model:expr, $reply:expr) => {{
        if !$model.tick() {
            $reply.error(Errno::EIO);
            return;
        }
    }};
}

impl Filesystem for PowerCutFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let m = self.model();
        live!(m, reply);
        match m.lookup(parent.0, name) {
            Ok(ino) => reply.entry(&TTL, &attr(ino, &m.nodes[&ino]), Generation(0)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let m = self.model();
        live!(m, reply);
        match m.nodes.get(&ino.0) {
            Some(node) => reply.attr(&TTL, &attr(ino.0, node)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut m = self.model();
        let changes = mode.is_some() || size.is_some() || uid.is_some() || gid.is_some();
        if changes {
            count!(m, reply);
        } else {
            live!(m, reply);
        }
        if let Some(size) = size
            && let Err(e) = m.file_mut(ino.0).and_then(|f| f.set_len(size))
        {
            reply.error(errno(e));
            return;
        }
        let Some(node) = m.nodes.get_mut(&ino.0) else {
            reply.error(Errno::ENOENT);
            return;
        };
        if let Some(mode) = mode {
            node.perm = (mode & 0o7777) as u16;
        }
        if let Some(uid) = uid {
            node.uid = uid;
        }
        if let Some(gid) = gid {
            node.gid = gid;
        }
        match mtime {
            Some(TimeOrNow::SpecificTime(t)) => node.mtime = t,
            Some(TimeOrNow::Now) => node.mtime = SystemTime::now(),
            None => {}
        }
        reply.attr(&TTL, &attr(ino.0, node));
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        let mut m = self.model();
        count!(m, reply);
        if mode & libc::S_IFMT != libc::S_IFREG {
            // Only regular files and directories are modelled.
            reply.error(Errno::EPERM);
            return;
        }
        let perm = (mode & !umask & 0o7777) as u16;
        match m.create(parent.0, name, false, perm, req.uid(), req.gid()) {
            Ok(ino) => reply.entry(&TTL, &attr(ino, &m.nodes[&ino]), Generation(0)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let mut m = self.model();
        count!(m, reply);
        let perm = (mode & !umask & 0o7777) as u16;
        match m.create(parent.0, name, true, perm, req.uid(), req.gid()) {
            Ok(ino) => reply.entry(&TTL, &attr(ino, &m.nodes[&ino]), Generation(0)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut m = self.model();
        count!(m, reply);
        match m.remove(parent.0, name, false) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut m = self.model();
        count!(m, reply);
        match m.remove(parent.0, name, true) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let mut m = self.model();
        count!(m, reply);
        if !(flags - RenameFlags::RENAME_NOREPLACE).is_empty() {
            // RENAME_EXCHANGE and RENAME_WHITEOUT are not modelled.
            reply.error(Errno::EINVAL);
            return;
        }
        let no_replace = flags.contains(RenameFlags::RENAME_NOREPLACE);
        match m.rename(parent.0, name, newparent.0, newname, no_replace) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let m = self.model();
        live!(m, reply);
        match m.nodes.get(&ino.0).map(|n| &n.kind) {
            // Direct I/O: every read and write reaches the model, which is the only truth.
            Some(NodeKind::File(_)) => reply.opened(FileHandle(0), FopenFlags::FOPEN_DIRECT_IO),
            Some(NodeKind::Dir(_)) => reply.error(Errno::EISDIR),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let m = self.model();
        live!(m, reply);
        match m.nodes.get(&ino.0).map(|n| &n.kind) {
            Some(NodeKind::File(f)) => {
                let start = usize::try_from(offset)
                    .unwrap_or(usize::MAX)
                    .min(f.data.len());
                let end = start.saturating_add(size as usize).min(f.data.len());
                reply.data(&f.data[start..end]);
            }
            Some(NodeKind::Dir(_)) => reply.error(Errno::EISDIR),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let mut m = self.model();
        count!(m, reply);
        match m.file_mut(ino.0).and_then(|f| f.write(offset, data)) {
            // FUSE caps a write far below u32::MAX.
            Ok(()) => reply.written(data.len() as u32),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // close(2) makes nothing durable.
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let mut m = self.model();
        count!(m, reply);
        // fsync and fdatasync alike make the file's bytes and length durable; neither makes its
        // directory entry durable (that takes an fsync of the directory).
        match m.nodes.get_mut(&ino.0).map(|n| &mut n.kind) {
            Some(NodeKind::File(f)) => {
                f.sync();
                reply.ok();
            }
            Some(NodeKind::Dir(_)) => {
                m.sync_dir(ino.0);
                reply.ok();
            }
            None => reply.error(Errno::ENOENT),
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let m = self.model();
        live!(m, reply);
        match m.dir_entries(ino.0) {
            Ok(_) => reply.opened(FileHandle(0), FopenFlags::empty()),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let m = self.model();
        live!(m, reply);
        let entries = match m.dir_entries(ino.0) {
            Ok(e) => e,
            Err(e) => {
                reply.error(errno(e));
                return;
            }
        };
        let dots = [
            (ino.0, FileType::Directory, OsStr::new(".")),
            (ino.0, FileType::Directory, OsStr::new("..")),
        ];
        let all = dots.into_iter().chain(entries.iter().map(|(name, &child)| {
            let kind = match m.nodes.get(&child).map(|n| &n.kind) {
                Some(NodeKind::Dir(_)) => FileType::Directory,
                _ => FileType::RegularFile,
            };
            (child, kind, name.as_os_str())
        }));
        for (i, (child, kind, name)) in all.enumerate().skip(offset as usize) {
            if reply.add(INodeNo(child), (i + 1) as u64, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let mut m = self.model();
        count!(m, reply);
        match m.dir_entries(ino.0) {
            Ok(_) => {
                m.sync_dir(ino.0);
                reply.ok();
            }
            Err(e) => reply.error(errno(e)),
        }
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        // A roomy, made-up disk: 1 GiB in 4 KiB blocks, a million inodes.
        reply.statfs(
            262_144, 262_144, 262_144, 1_000_000, 1_000_000, 4096, 255, 4096,
        );
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let mut m = self.model();
        count!(m, reply);
        let ino = match m.lookup(parent.0, name) {
            Ok(_) if flags & libc::O_EXCL != 0 => {
                reply.error(Errno::EEXIST);
                return;
            }
            Ok(ino) => {
                if flags & libc::O_TRUNC != 0
                    && let Err(e) = m.file_mut(ino).and_then(|f| f.set_len(0))
                {
                    reply.error(errno(e));
                    return;
                }
                ino
            }
            Err(_) => {
                let perm = (mode & !umask & 0o7777) as u16;
                match m.create(parent.0, name, false, perm, req.uid(), req.gid()) {
                    Ok(ino) => ino,
                    Err(e) => {
                        reply.error(errno(e));
                        return;
                    }
                }
            }
        };
        reply.created(
            &TTL,
            &attr(ino, &m.nodes[&ino]),
            Generation(0),
            FileHandle(0),
            FopenFlags::FOPEN_DIRECT_IO,
        );
    }
}
