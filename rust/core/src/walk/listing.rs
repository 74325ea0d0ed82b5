//! Reading one directory: open it, list its names, stat each one relative to
//! the directory handle, sort by name.
//!
//! A listing is the unit a worker hands to the consumer. Sorting by name makes
//! "the first N entries of this directory" a stable position to resume from.

use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;

use rayon::prelude::*;
use rustix::fs::Dir;

use super::options::WalkOptions;
use crate::content::{self, Hashes};
use crate::error::FsError;
use crate::pool;
use crate::sys::{self, Kind, Meta};

/// (device, inode) of a directory, for loop detection when following symlinks.
pub type FileId = (u64, u64);

/// Says when a walk is asked to stop; shared with the jobs that read a
/// directory's files on the I/O pool.
pub type Halted = Arc<dyn Fn() -> bool + Send + Sync>;

/// A directory to read.
#[derive(Clone, Debug)]
pub struct DirTask {
    pub path: Vec<u8>,
    /// Depth of the entries inside this directory (1 for a root).
    pub depth: u32,
    /// On a resumed task, the name of the last entry already yielded: the
    /// walk continues after it (by name, so entries added or removed since
    /// the checkpoint do not shift what is skipped).
    pub after: Option<Vec<u8>>,
    /// On a resumed task, the (device, inode) the directory must still have.
    pub expect: Option<FileId>,
    /// Directories from the root down to this one; only kept when following
    /// symlinks, where a link back to an ancestor would loop forever.
    pub ancestors: Arc<Vec<FileId>>,
}

/// One name in a directory: its metadata, an error, or both (a dangling or
/// looping symlink while following links is yielded as the link itself, with
/// an error saying why it was not followed).
#[derive(Debug)]
pub struct Item {
    pub name: Vec<u8>,
    pub meta: Option<Meta>,
    pub error: Option<(i32, String)>,
    /// Walk into this entry (a directory within the depth limit).
    pub descend: bool,
    /// Digests of a regular file, when the walk was asked for them.
    pub hashes: Hashes,
}

/// A directory's items, sorted by name, plus an error if it could not be
/// opened or read completely. A big directory comes in pieces of
/// [`PIECE`] items, in name order, each with `more` set but the last, so
/// the consumer gets to work before the whole directory is stat'ed. Items
/// already yielded before a resume (named up to `DirTask::after`) are left
/// out.
#[derive(Debug)]
pub struct Listing {
    pub task: DirTask,
    pub items: Vec<Item>,
    pub error: Option<FsError>,
    /// More pieces of this directory follow.
    pub more: bool,
}

/// Join a directory path and a name without doubling a trailing '/'.
pub fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut path = Vec::with_capacity(dir.len() + 1 + name.len());
    path.extend_from_slice(dir);
    if !dir.ends_with(b"/") {
        path.push(b'/');
    }
    path.extend_from_slice(name);
    path
}

impl Listing {
    /// A listing that only reports `message` for its directory.
    pub fn failed(path: Vec<u8>, message: &str) -> Listing {
        let error = Some(FsError::other(&path, 0, message));
        Listing {
            task: DirTask {
                path,
                depth: 1,
                after: None,
                ancestors: Arc::new(Vec::new()),
                expect: None,
            },
            items: Vec::new(),
            error,
            more: false,
        }
    }

    /// Tasks for the subdirectories to walk into, in name order.
    pub fn child_tasks(&self, follow: bool) -> Vec<DirTask> {
        self.items
            .iter()
            .filter(|item| item.descend)
            .map(|item| self.child_task(item, follow))
            .collect()
    }

    pub fn child_task(&self, item: &Item, follow: bool) -> DirTask {
        let ancestors = match (follow, item.meta) {
            (true, Some(meta)) => {
                let mut chain = Vec::with_capacity(self.task.ancestors.len() + 1);
                chain.extend_from_slice(&self.task.ancestors);
                chain.push(meta.file_id());
                Arc::new(chain)
            }
            _ => Arc::new(Vec::new()),
        };
        DirTask {
            path: join(&self.task.path, &item.name),
            depth: self.task.depth + 1,
            after: None,
            expect: None,
            ancestors,
        }
    }
}

fn is_hidden(name: &[u8]) -> bool {
    name.first() == Some(&b'.')
}

fn is_skipped(opts: &WalkOptions, name: &[u8]) -> bool {
    match &opts.skip {
        Some(set) => {
            use std::os::unix::ffi::OsStrExt;
            set.is_match(Path::new(std::ffi::OsStr::from_bytes(name)))
        }
        None => false,
    }
}

/// Read one directory completely, handing each listing (a big directory's
/// pieces, in order) to `emit`, which returns false to stop. Never fails:
/// problems end up in the listing.
///
/// `halted` is polled between entries: once it says stop, the rest is
/// skipped and the incomplete piece is not emitted.
pub fn read_listing(
    task: DirTask,
    opts: &Arc<WalkOptions>,
    halted: &Halted,
    emit: &mut dyn FnMut(Listing) -> bool,
) {
    let mut listing = Listing {
        task,
        items: Vec::new(),
        error: None,
        more: false,
    };
    // A root given as a symlink is followed; below the roots only when asked.
    let follow_dir = opts.follow_symlinks || listing.task.depth == 1;
    let fd = match sys::open_dir(&listing.task.path, follow_dir) {
        Ok(fd) => fd,
        Err(err) => {
            listing.error = Some(FsError::from_io(&listing.task.path, &err));
            emit(listing);
            return;
        }
    };
    if let Some(expected) = listing.task.expect {
        let same = rustix::fs::fstat(&fd).map(|st| Meta::from_stat(&st).file_id() == expected);
        if same != Ok(true) {
            let message = "directory changed since the walk was interrupted \
                           (replaced, or now a symlink); not entered";
            listing.error = Some(FsError::other(&listing.task.path, 0, message));
            emit(listing);
            return;
        }
    }
    let mut dir = match Dir::new(fd) {
        Ok(dir) => dir,
        Err(errno) => {
            listing.error = Some(FsError::from_errno(&listing.task.path, errno));
            emit(listing);
            return;
        }
    };
    // Names stay C strings: each is passed straight to fstatat.
    let mut names: Vec<(CString, bool)> = Vec::new();
    for entry in dir.by_ref() {
        match entry {
            Ok(entry) => {
                let name = entry.file_name().to_bytes();
                if name == b"." || name == b".." {
                    continue;
                }
                if (!opts.include_hidden && is_hidden(name)) || is_skipped(opts, name) {
                    continue;
                }
                // Yielded before a resume: not even stat'ed again.
                if listing
                    .task
                    .after
                    .as_deref()
                    .is_some_and(|after| name <= after)
                {
                    continue;
                }
                // d_type says "regular file" for free on most filesystems.
                let regular = entry.file_type() == rustix::fs::FileType::RegularFile;
                names.push((entry.file_name().to_owned(), regular));
            }
            Err(errno) => {
                // e.g. EIO mid-directory: keep what was read, report the rest.
                listing.error = Some(FsError::from_errno(&listing.task.path, errno));
                break;
            }
        }
    }
    names.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let depth_ok = opts.max_depth.is_none_or(|max| listing.task.depth < max);
    let Ok(dirfd) = dir.fd() else {
        // rustix's Dir always holds an fd; this arm only keeps us panic-free.
        emit(listing);
        return;
    };
    let fd = dirfd.as_fd();
    // A hashing walk reads the files on the I/O pool (see crate::io_pool), whose
    // jobs own what they use: a handle of their own on this directory (not
    // needed for a single entry, read on this thread). If it cannot be had
    // (out of descriptors), this thread reads them.
    let shared = (opts.hash.any() && names.len() > 1)
        .then(|| rustix::io::fcntl_dupfd_cloexec(fd, 0).ok())
        .flatten()
        .map(|handle| {
            Arc::new(SharedDir {
                handle,
                opts: opts.clone(),
                halted: halted.clone(),
                ancestors: listing.task.ancestors.clone(),
                depth_ok,
            })
        });
    let mut names = names.into_iter();
    loop {
        let piece: Vec<(CString, bool)> = names.by_ref().take(PIECE).collect();
        let wanted = piece.len();
        let task = &listing.task;
        if let Some(dir) = shared.as_ref().filter(|_| piece.len() > 1) {
            // Hashing reads every file: many reads in flight, since on cold
            // storage each one mostly waits for the device (see crate::pool
            // and crate::io_pool).
            let jobs: Vec<_> = piece
                .into_iter()
                .map(|(name, regular)| {
                    let dir = dir.clone();
                    move || (!(dir.halted)()).then(|| dir.stat_item(name, regular))
                })
                .collect();
            let items: Vec<Item> = crate::io_pool::run_each(opts.read_threads, jobs)
                .into_iter()
                .flatten()
                .collect();
            if !emit_piece(&mut listing, items, wanted, &names, halted, emit) {
                return;
            }
            continue;
        }
        // Where the piece's entries are stat'ed: `None` on this thread,
        // `Some(None)` on rayon's global pool (one thread per core),
        // `Some(Some(pool))` on a reading pool.
        let spread: Option<Option<Arc<rayon::ThreadPool>>> = if piece.len() >= PARALLEL_LISTING {
            // A big directory (a camera folder of 10,000 photos) would
            // otherwise be read by one thread: share its names with a pool,
            // rayon's global one or the N threads a caller asked for.
            Some(
                opts.read_threads
                    .and_then(|n| pool::reading_pool(Some(n)).ok()),
            )
        } else {
            None
        };
        // The directory handle is only read from, so sharing it between
        // threads is safe.
        let stat = |(name, regular): (CString, bool)| {
            stat_item(
                fd,
                name,
                regular,
                &task.ancestors,
                opts,
                depth_ok,
                &**halted,
            )
        };
        let items: Vec<Item> = match spread {
            None => piece
                .into_iter()
                .take_while(|_| !halted())
                .map(stat)
                .collect(),
            Some(on) => {
                let stat_all = move || {
                    piece
                        .into_par_iter()
                        .take_any_while(|_| !halted())
                        .map(stat)
                        .collect()
                };
                match on {
                    Some(readers) => readers.install(stat_all),
                    None => stat_all(),
                }
            }
        };
        if !emit_piece(&mut listing, items, wanted, &names, halted, emit) {
            return;
        }
    }
}

/// Hand out one piece of `listing`'s directory; false when the listing ends
/// here: the last piece was sent, the consumer stopped, or the piece was cut
/// short (a stop, even one taken back since: never handed out, the directory
/// is read again after its last item on resume).
fn emit_piece(
    listing: &mut Listing,
    items: Vec<Item>,
    wanted: usize,
    rest: &std::vec::IntoIter<(CString, bool)>,
    halted: &Halted,
    emit: &mut dyn FnMut(Listing) -> bool,
) -> bool {
    if halted() || items.len() != wanted {
        return false;
    }
    let more = !rest.as_slice().is_empty();
    let piece = Listing {
        task: listing.task.clone(),
        items,
        // A read error concerns the directory as a whole: said once, last.
        error: if more { None } else { listing.error.take() },
        more,
    };
    emit(piece) && more
}

/// What the jobs reading one directory's files on the I/O pool share.
struct SharedDir {
    handle: OwnedFd,
    opts: Arc<WalkOptions>,
    halted: Halted,
    ancestors: Arc<Vec<FileId>>,
    depth_ok: bool,
}

impl SharedDir {
    fn stat_item(&self, name: CString, regular: bool) -> Item {
        let (opts, halted) = (&*self.opts, &*self.halted);
        stat_item(
            self.handle.as_fd(),
            name,
            regular,
            &self.ancestors,
            opts,
            self.depth_ok,
            halted,
        )
    }
}

/// Items per piece of a big directory's listing (see [`Listing`]).
pub const PIECE: usize = 4096;

/// Directories with at least this many entries are stat'ed (and hashed) in
/// parallel within the listing.
const PARALLEL_LISTING: usize = 256;

fn stat_item(
    dirfd: std::os::fd::BorrowedFd<'_>,
    name: CString,
    regular: bool,
    ancestors: &[FileId],
    opts: &WalkOptions,
    depth_ok: bool,
    halted: &(dyn Fn() -> bool + Sync),
) -> Item {
    let cname: &CStr = &name;
    if regular && opts.hash.any() && !opts.follow_symlinks {
        if let Some(item) = open_and_hash(dirfd, cname, opts, halted) {
            return Item {
                name: name.into_bytes(),
                ..item
            };
        }
    }
    let lmeta = match sys::stat_at(dirfd, cname, false) {
        Ok(meta) => meta,
        Err(err) => {
            // Typically ENOENT: the entry vanished between readdir and stat.
            let fs = FsError::from_io(b"", &err);
            return Item {
                name: name.into_bytes(),
                meta: None,
                error: Some((fs.errno, fs.message)),
                descend: false,
                hashes: Hashes::default(),
            };
        }
    };
    let mut item = Item {
        name: Vec::new(), // filled in last: `cname` borrows `name` until then
        meta: Some(lmeta),
        error: None,
        descend: false,
        hashes: Hashes::default(),
    };
    if opts.follow_symlinks && lmeta.kind == Kind::Symlink {
        match sys::stat_at(dirfd, cname, true) {
            Ok(target) => {
                if target.kind == Kind::Dir && ancestors.contains(&target.file_id()) {
                    item.error = Some((
                        rustix::io::Errno::LOOP.raw_os_error(),
                        "symlink loop: points to an ancestor directory; not followed".into(),
                    ));
                } else {
                    item.meta = Some(target);
                }
            }
            Err(err) => {
                let fs = FsError::from_io(b"", &err);
                item.error = Some((fs.errno, format!("broken symlink: {}", fs.message)));
            }
        }
    }
    item.descend = depth_ok && item.meta.is_some_and(|m| m.kind == Kind::Dir);
    if let Some(meta) = item
        .meta
        .filter(|m| opts.hash.any() && m.kind == Kind::File)
    {
        // Hash now, while the directory is open: openat by name costs no path
        // resolution, unlike hashing by full path later.
        let hashed = sys::open_regular_at(dirfd, cname, opts.follow_symlinks, &meta)
            .map_err(|e| FsError::from_io(b"", &e))
            .and_then(|(mut file, fmeta)| {
                content::hash_file(&mut file, &fmeta, opts.hash, b"", halted)
            });
        match hashed {
            Ok(hashes) => item.hashes = hashes,
            Err(err) => item.error = Some((err.errno, err.message)),
        }
    }
    item.name = name.into_bytes();
    item
}

/// The fast path for a name readdir says is a regular file, when hashing:
/// open it first and take its metadata from `fstat` on the open handle, which
/// saves the separate `lstat` (one syscall in five). `None` when the open
/// fails (e.g. no read permission, or it became a symlink): the caller then
/// takes the normal path, which lstat's the entry and reports the error.
fn open_and_hash(
    dirfd: std::os::fd::BorrowedFd<'_>,
    cname: &CStr,
    opts: &WalkOptions,
    halted: &(dyn Fn() -> bool + Sync),
) -> Option<Item> {
    let (mut file, meta) = sys::open_file_at(dirfd, cname).ok()?;
    let mut item = Item {
        name: Vec::new(),
        meta: Some(meta),
        error: None,
        descend: false,
        hashes: Hashes::default(),
    };
    if meta.kind == Kind::File {
        match content::hash_file(&mut file, &meta, opts.hash, b"", halted) {
            Ok(hashes) => item.hashes = hashes,
            Err(err) => item.error = Some((err.errno, err.message)),
        }
    }
    Some(item)
}
