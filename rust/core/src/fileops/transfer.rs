//! Carrying out a [`Plan`] a page at a time: folders, then files in
//! parallel, then hard links.
//!
//! Each file gets its final name only when complete (mode and mtime set,
//! synced if asked, verified if asked), so a file under its final name is
//! always whole: `newfile.rs` writes it unnamed, or under a temporary name
//! (`.{tag}-{index}.pktmp`, fixed per plan entry: a run killed mid-file
//! leaves a stray that the resumed run truncates and reuses, or removes if
//! that entry now fails). A free destination name is taken with `linkat` or
//! `RENAME_NOREPLACE`, so nothing that appeared since planning is ever
//! overwritten. Symlinks and hard links go through temporary names too.

use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::{AtFlags, Mode, RenameFlags};
use rustix::io::Errno;

use super::newfile::{self, place, taken, timestamps, Caps, Dest, How, Stop};
use super::plan::{Action, Item, Plan};
use crate::cancel::CancelToken;
use crate::content::map_items_in_runs;
use crate::error::{Error, FsError, Result};
use crate::sys::{self, Kind, ParentCache};

/// How to carry out a plan.
#[derive(Clone, Debug, Default)]
pub struct TransferOptions {
    /// Check each copy: BLAKE3 of the source as read against the copy read
    /// back after it is synced.
    pub verify: bool,
    /// fsync each file before its rename, and each folder after.
    pub durable: bool,
    /// Give each copied file its source's access time too (else the time
    /// of the copy).
    pub atime: bool,
    /// A move: each source file is removed once its copy is in place (and
    /// synced); folders are removed by [`finish`].
    pub remove_sources: bool,
    /// Check whether a free name was taken by an earlier run of this plan
    /// (a resumed page): a complete copy there is kept, not redone.
    pub resumed: bool,
    /// Part of the temporary names: unique per job.
    pub tag: String,
    pub threads: Option<usize>,
}

/// What one page did.
#[derive(Debug, Default)]
pub struct PageDone {
    /// The index to resume from.
    pub next: usize,
    pub files: u64,
    pub bytes: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub links: u64,
    /// Files whose data was shared by reflink instead of copied.
    pub reflinked: u64,
    /// Entries found already in place from an earlier run.
    pub already: u64,
    pub errors: Vec<FsError>,
}

enum Done {
    File { bytes: u64, reflinked: bool },
    Symlink,
    Already,
}

fn split(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|&b| b == b'/') {
        Some(0) => (&path[..1], &path[1..]),
        Some(cut) => (&path[..cut], &path[cut + 1..]),
        None => (b".", path),
    }
}

fn cstr(bytes: &[u8], path: &[u8]) -> std::result::Result<CString, FsError> {
    CString::new(bytes)
        .map_err(|_| FsError::other(path, Errno::INVAL.raw_os_error(), "NUL in name"))
}

/// A kept handle on the destination folder of the last entry, the device
/// it is on, and what that filesystem offers.
#[derive(Default)]
struct DirCache {
    path: Vec<u8>,
    fd: Option<OwnedFd>,
    device: u64,
    caps: Caps,
}

impl DirCache {
    fn get(&mut self, dir: &[u8]) -> std::result::Result<(BorrowedFd<'_>, u64), FsError> {
        self.get_with_caps(dir).map(|(fd, device, _)| (fd, device))
    }

    fn get_with_caps(
        &mut self,
        dir: &[u8],
    ) -> std::result::Result<(BorrowedFd<'_>, u64, &mut Caps), FsError> {
        if self.fd.is_none() || self.path != dir {
            self.fd = None;
            // Not followed if it is a symlink now: a folder of the copy
            // swapped for a link (to /etc, say) after planning must not
            // receive the entries meant for it.
            let fd = sys::open_dir(dir, false).map_err(|e| FsError::from_io(dir, &e))?;
            let st = rustix::fs::fstat(&fd).map_err(|e| FsError::from_errno(dir, e))?;
            let device = sys::Meta::from_stat(&st).device;
            if device != self.device {
                self.caps = Caps::default(); // another filesystem: learn again
            }
            self.device = device;
            self.path = dir.to_vec();
            self.fd = Some(fd);
        }
        match &self.fd {
            Some(fd) => Ok((fd.as_fd(), self.device, &mut self.caps)),
            None => Err(FsError::other(dir, 0, "folder handle lost")),
        }
    }
}

fn temp_name(tag: &str, index: usize) -> CString {
    // Digits and the tag's ASCII only: never contains NUL.
    CString::new(format!(".{tag}-{index}.pktmp")).unwrap_or_default()
}

/// Carry out `plan.items[start..]`: at most `max_items` entries and (past
/// one file per worker thread) `max_bytes` of file data. Cancelled: the page is redone on
/// resume.
pub fn transfer_page(
    plan: &Plan,
    start: usize,
    max_items: usize,
    max_bytes: u64,
    opts: &TransferOptions,
    cancel: &CancelToken,
) -> Result<PageDone> {
    // At least one file per worker before the byte cap applies: a page of
    // one large file would copy it on one thread while the others idle.
    let least = opts
        .threads
        .unwrap_or_else(rayon::current_num_threads)
        .clamp(1, max_items.max(1));
    let mut end = start;
    let mut files = 0usize;
    let mut bytes = 0u64;
    while end < plan.items.len() && end - start < max_items.max(1) {
        let item = &plan.items[end];
        if item.kind() == Kind::File && item.link_to.is_none() {
            if files >= least && bytes.saturating_add(item.size) > max_bytes {
                break;
            }
            bytes = bytes.saturating_add(item.size);
            files += 1;
        }
        end += 1;
    }
    let mut done = PageDone {
        next: end,
        ..PageDone::default()
    };
    // Folders first, in order: each exists before anything goes in it.
    for index in start..end {
        let item = &plan.items[index];
        if item.kind() == Kind::Dir {
            match make_dir(plan, item) {
                Ok(()) => done.dirs += 1,
                Err(e) => done.errors.push(e),
            }
        }
    }
    let work: Vec<usize> = (start..end)
        .filter(|&i| {
            let item = &plan.items[i];
            item.kind() != Kind::Dir && item.link_to.is_none()
        })
        .collect();
    // Runs of 16 small files per worker; large files one by one, so that
    // two of them are copied side by side.
    let run = if bytes / (files.max(1) as u64) > 1 << 20 {
        1
    } else {
        16
    };
    let stop = || cancel.is_cancelled();
    let results = map_items_in_runs(
        &work,
        run,
        opts.threads,
        cancel,
        || (ParentCache::default(), DirCache::default()),
        |(sources, targets), &index| copy_entry(plan, index, opts, sources, targets, &stop),
    )?;
    for result in results {
        match result {
            Ok(Done::File { bytes, reflinked }) => {
                done.files += 1;
                done.bytes += bytes;
                done.reflinked += u64::from(reflinked);
            }
            Ok(Done::Symlink) => done.symlinks += 1,
            Ok(Done::Already) => done.already += 1,
            Err(e) => done.errors.push(e),
        }
    }
    // Hard links last: the copy they name is in place by now (or failed).
    let (mut sources, mut targets) = (ParentCache::default(), DirCache::default());
    for index in start..end {
        let item = &plan.items[index];
        if let Some(first) = item.link_to {
            if cancel.is_cancelled() {
                return Err(Error::Cancelled);
            }
            match link_entry(plan, index, first, opts, &mut sources, &mut targets, &stop) {
                Ok(Done::Already) => done.already += 1,
                Ok(_) => done.links += 1,
                Err(e) => done.errors.push(e),
            }
        }
    }
    if opts.durable {
        sync_folders(plan, start, end, &mut done.errors);
    }
    Ok(done)
}

fn make_dir(plan: &Plan, item: &Item) -> std::result::Result<(), FsError> {
    let target = plan.target(item);
    // Writable by us until `finish` gives it its own mode.
    let mode = Mode::from_raw_mode((item.mode | 0o700) & 0o7777);
    let result = sys::with_parent(&target, |dir, name| {
        Ok(rustix::fs::mkdirat(dir, name, mode)?)
    });
    match result {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(Errno::EXIST.raw_os_error()) => {
            match sys::stat_path(&target, false) {
                Ok(meta) if meta.kind == Kind::Dir => Ok(()),
                _ => Err(FsError::other(
                    &target,
                    Errno::EXIST.raw_os_error(),
                    "something other than a folder is in the way: its contents are not copied",
                )),
            }
        }
        Err(e) => Err(FsError::from_io(&target, &e)),
    }
}

/// Whether `name` in `dir` is already this entry's complete copy.
fn already_there(dir: BorrowedFd<'_>, name: &CStr, item: &Item) -> bool {
    let Ok(meta) = sys::stat_at(dir, name, false) else {
        return false;
    };
    meta.kind == item.kind()
        && meta.mtime_ns == item.mtime_ns
        && (item.kind() != Kind::File || meta.size == item.size)
}

fn copy_entry(
    plan: &Plan,
    index: usize,
    opts: &TransferOptions,
    sources: &mut ParentCache,
    targets: &mut DirCache,
    stop: Stop<'_>,
) -> std::result::Result<Done, FsError> {
    let item = &plan.items[index];
    let source = plan.source(item);
    let target = plan.target(item);
    let (dir_path, name) = split(&target);
    let name = cstr(name, &target)?;
    let temp = temp_name(&opts.tag, index);
    let (dir, device, caps) = targets.get_with_caps(dir_path)?;
    if opts.resumed && item.action != Action::Overwrite && already_there(dir, &name, item) {
        if opts.remove_sources {
            remove_source(&source, item)?;
        }
        return Ok(Done::Already);
    }
    if opts.remove_sources && device == item.device && item.kind() != Kind::Other {
        // A move within one filesystem: the entry itself is renamed, its
        // data never copied (nor can it be half there). Two mounts of one
        // filesystem (bind mounts) share a device yet refuse a rename with
        // EXDEV: those entries are copied below.
        match move_by_rename(item, &source, dir, &name, &target) {
            Err(e) if e.errno == Errno::XDEV.raw_os_error() => {}
            done => return done,
        }
    }
    let outcome = match item.kind() {
        Kind::File => {
            let dest = Dest {
                dir,
                name: &name,
                temp: &temp,
                target: &target,
            };
            let how = How {
                verify: opts.verify,
                durable: opts.durable,
                atime: opts.atime,
                stop,
            };
            newfile::copy_file(item, &source, &dest, &how, caps, sources)
                .map(|(bytes, reflinked)| Done::File { bytes, reflinked })
        }
        Kind::Symlink => copy_symlink(item, &source, &target, dir, &temp).and_then(|done| {
            if opts.durable {
                rustix::fs::fsync(dir).map_err(|e| FsError::from_errno(&target, e))?;
            }
            place(dir, &temp, &name, item, &target)?;
            Ok(done)
        }),
        _ => {
            return Err(FsError::other(
                &source,
                0,
                "special file (FIFO, socket or device): not copied",
            ))
        }
    };
    match outcome {
        Ok(done) => {
            if opts.remove_sources {
                if opts.durable {
                    // The copy's name must survive a power cut before the
                    // source goes: one folder sync per moved file.
                    rustix::fs::fsync(dir).map_err(|e| FsError::from_errno(&target, e))?;
                }
                remove_source(&source, item)?;
            }
            Ok(done)
        }
        Err(e) => {
            let _ = rustix::fs::unlinkat(dir, &temp, AtFlags::empty());
            Err(e)
        }
    }
}

/// Move one entry within its filesystem: a rename that never replaces
/// (unless the plan says overwrite), after checking it is still the entry
/// listed.
fn move_by_rename(
    item: &Item,
    source: &[u8],
    dir: BorrowedFd<'_>,
    name: &CStr,
    target: &[u8],
) -> std::result::Result<Done, FsError> {
    let flags = if item.action == Action::Overwrite {
        RenameFlags::empty()
    } else {
        RenameFlags::NOREPLACE
    };
    sys::with_parent(source, |from, from_name| {
        let meta = sys::stat_at(from, from_name, false)?;
        if meta.file_id() != (item.device, item.inode) {
            return Err(std::io::Error::other(
                "replaced since the move was planned: left in place",
            ));
        }
        Ok(rustix::fs::renameat_with(
            from, from_name, dir, name, flags,
        )?)
    })
    .map_err(|e| {
        if e.raw_os_error() == Some(Errno::EXIST.raw_os_error()) {
            taken(target, Errno::EXIST)
        } else {
            FsError::from_io(source, &e)
        }
    })?;
    Ok(match item.kind() {
        Kind::Symlink => Done::Symlink,
        _ => Done::File {
            bytes: item.size,
            reflinked: false,
        },
    })
}

fn remove_source(source: &[u8], item: &Item) -> std::result::Result<(), FsError> {
    sys::with_parent(source, |dir, name| {
        // Still the entry that was copied? (A file replaced since is left.)
        let meta = match sys::stat_at(dir, name, false) {
            Ok(meta) => meta,
            // Removed already: by the run a kill stopped after this entry's
            // copy was in place and its source gone, before its checkpoint.
            Err(e) if e.raw_os_error() == Some(Errno::NOENT.raw_os_error()) => return Ok(()),
            Err(e) => return Err(e),
        };
        if meta.file_id() != (item.device, item.inode) {
            return Err(std::io::Error::other(
                "replaced since it was copied: the source is left in place",
            ));
        }
        Ok(rustix::fs::unlinkat(dir, name, AtFlags::empty())?)
    })
    .map_err(|e| FsError::from_io(source, &e))
}

fn copy_symlink(
    item: &Item,
    source: &[u8],
    target: &[u8],
    dir: BorrowedFd<'_>,
    temp: &CStr,
) -> std::result::Result<Done, FsError> {
    let link = sys::with_parent(source, |d, name| {
        Ok(rustix::fs::readlinkat(d, name, Vec::new())?)
    })
    .map_err(|e| FsError::from_io(source, &e))?;
    // A stray of a killed run: symlinkat cannot reuse it.
    let _ = rustix::fs::unlinkat(dir, temp, AtFlags::empty());
    rustix::fs::symlinkat(link.as_c_str(), dir, temp)
        .map_err(|e| FsError::from_errno(target, e))?;
    rustix::fs::utimensat(
        dir,
        temp,
        &timestamps(item.mtime_ns),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(|e| FsError::from_errno(target, e))?;
    Ok(Done::Symlink)
}

fn link_entry(
    plan: &Plan,
    index: usize,
    first: u64,
    opts: &TransferOptions,
    sources: &mut ParentCache,
    targets: &mut DirCache,
    stop: Stop<'_>,
) -> std::result::Result<Done, FsError> {
    let item = &plan.items[index];
    let target = plan.target(item);
    let first_target = plan.target(&plan.items[first as usize]);
    let (dir_path, name) = split(&target);
    let name = cstr(name, &target)?;
    let temp = temp_name(&opts.tag, index);
    let (dir, _) = targets.get(dir_path)?;
    if opts.resumed && already_there(dir, &name, item) {
        if opts.remove_sources {
            remove_source(&plan.source(item), item)?;
        }
        return Ok(Done::Already);
    }
    let _ = rustix::fs::unlinkat(dir, &temp, AtFlags::empty());
    // Only to this plan's copy of the file: something else under that name
    // (the copy failed because the name was taken) is never linked to.
    let first_item = &plan.items[first as usize];
    let linked = sys::with_parent(&first_target, |d, n| {
        let there = sys::stat_at(d, n, false)?;
        if there.kind != Kind::File
            || there.size != first_item.size
            || there.mtime_ns != first_item.mtime_ns
        {
            return Err(std::io::Error::other("not this copy's file"));
        }
        Ok(rustix::fs::linkat(d, n, dir, &temp, AtFlags::empty())?)
    });
    if linked.is_err() {
        // The first copy failed (or is gone): copy this name on its own.
        return copy_entry(plan, index, opts, sources, targets, stop);
    }
    match place(dir, &temp, &name, item, &target) {
        Ok(()) => {
            if opts.remove_sources {
                remove_source(&plan.source(item), item)?;
            }
            Ok(Done::File {
                bytes: 0,
                reflinked: false,
            })
        }
        Err(e) => {
            let _ = rustix::fs::unlinkat(dir, &temp, AtFlags::empty());
            Err(e)
        }
    }
}

fn sync_folders(plan: &Plan, start: usize, end: usize, errors: &mut Vec<FsError>) {
    let mut last: Option<Vec<u8>> = None;
    for item in &plan.items[start..end] {
        let target = plan.target(item);
        let dir = split(&target).0.to_vec();
        if last.as_deref() == Some(&dir[..]) {
            continue;
        }
        if let Err(e) = sys::open_dir(&dir, true).and_then(|fd| Ok(rustix::fs::fsync(fd)?)) {
            errors.push(FsError::from_io(&dir, &e));
        }
        last = Some(dir);
    }
}

/// After the last page: give folders their own mode and mtime (deepest
/// first: filling a folder changes its mtime), and for a move remove the
/// source folders, now empty. Returns the problems met. Idempotent: a
/// cancel ([`Error::Cancelled`]) or a crash midway is finished by a rerun.
pub fn finish(plan: &Plan, opts: &TransferOptions, cancel: &CancelToken) -> Result<Vec<FsError>> {
    let mut errors = Vec::new();
    for item in plan.items.iter().rev() {
        if item.kind() != Kind::Dir {
            continue;
        }
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        let target = plan.target(item);
        // Through a handle opened without following a symlink: a folder
        // swapped for a link since is refused, its target left alone.
        let result = sys::open_dir(&target, false).and_then(|fd| {
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(item.mode & 0o7777))?;
            rustix::fs::futimens(&fd, &timestamps(item.mtime_ns))?;
            Ok(())
        });
        if let Err(e) = result {
            if e.raw_os_error() != Some(Errno::NOENT.raw_os_error()) {
                errors.push(FsError::from_io(&target, &e));
            }
        }
        if opts.remove_sources {
            let source = plan.source(item);
            let removed = sys::with_parent(&source, |dir, name| {
                Ok(rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)?)
            });
            match removed {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(Errno::NOENT.raw_os_error()) => {}
                Err(e) => errors.push(FsError::from_io(&source, &e)),
            }
        }
    }
    Ok(errors)
}
