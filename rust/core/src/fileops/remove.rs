//! Permanent removal of a tree, relative to folder handles.
//!
//! Every name is resolved beneath a handle on its own folder, opened with
//! `O_NOFOLLOW`: a symlink is removed as a link and never followed, and a
//! folder swapped for a symlink while the removal runs is not entered (its
//! open fails with ELOOP/ENOTDIR). Folders on another filesystem (a mount
//! point inside the tree) are left in place unless allowed. Sibling folders
//! are emptied in parallel. A removal is idempotent: run again after a
//! cancel or a crash, it removes what is left.

use std::ffi::{CStr, CString};
use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
// The list of hard-linked files pending is pushed to by the parallel
// workers: one short lock per such file.
use std::sync::{Mutex, PoisonError};

use rayon::prelude::*;
use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::cancel::CancelToken;
use crate::content::in_pool;
use crate::error::{Error, FsError, Result};
use crate::fileops::shred::{self, Overwritten};
use crate::sys;
use crate::walk::join;

/// What to remove and how.
#[derive(Clone, Debug, Default)]
pub struct RemoveOptions {
    /// Enter folders on other filesystems (mount points inside the tree).
    pub cross_filesystems: bool,
    /// Worker threads (None: rayon's default pool).
    pub threads: Option<usize>,
    /// Overwrite each regular file's data this many times before removing
    /// it (0: just remove; see `shred.rs`).
    pub overwrite_passes: u32,
}

/// Counters a caller may read while a removal runs (progress).
#[derive(Debug, Default)]
pub struct Removed {
    /// Files, symlinks and special files removed.
    pub files: AtomicU64,
    pub dirs: AtomicU64,
}

impl Removed {
    pub fn snapshot(&self) -> (u64, u64) {
        (
            self.files.load(Ordering::Relaxed),
            self.dirs.load(Ordering::Relaxed),
        )
    }
}

fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

struct Walk<'a> {
    opts: &'a RemoveOptions,
    done: &'a Removed,
    cancel: &'a CancelToken,
    /// The overwrite stream's key, when files are overwritten.
    key: Option<[u8; 32]>,
    /// Hard-linked files whose removed name was not their last, kept open:
    /// overwritten at the end if the removal took their other names too.
    linked: Mutex<Vec<(Vec<u8>, OwnedFd)>>,
}

/// Remove `path` and, if it is a folder, everything beneath it. A symlink
/// is removed, never followed. Returns the per-entry failures (the rest is
/// removed; a folder that keeps an entry stays); a missing `path` is an
/// error, a cancel stops at the next entry with [`Error::Cancelled`].
pub fn remove_tree(
    path: &[u8],
    opts: &RemoveOptions,
    done: &Removed,
    cancel: &CancelToken,
) -> Result<Vec<FsError>> {
    sys::raise_open_files_limit();
    let key = match opts.overwrite_passes {
        0 => None,
        _ => Some(shred::stream_key()?),
    };
    let walk = Walk {
        opts,
        done,
        cancel,
        key,
        linked: Mutex::new(Vec::new()),
    };
    let meta = sys::stat_path(path, false).map_err(|e| Error::Fs(FsError::from_io(path, &e)))?;
    // The filesystem of the folder holding `path`: a file mounted over it
    // (a bind mount) is another filesystem's.
    let folder = match path.iter().rposition(|&b| b == b'/') {
        Some(0) => &b"/"[..],
        Some(cut) => &path[..cut],
        None => &b"."[..],
    };
    let folder_device = sys::stat_path(folder, true)
        .map_err(|e| Error::Fs(FsError::from_io(folder, &e)))?
        .device;
    let mut errors = Vec::new();
    in_pool(opts.threads, || {
        sys::with_parent(path, |parent, name| {
            if meta.kind != sys::Kind::Dir {
                remove_entry(parent, name, false, path, folder_device, &walk, &mut errors);
                return Ok(());
            }
            let fd = match rustix::fs::openat(parent, name, dir_flags(), Mode::empty()) {
                Ok(fd) => fd,
                Err(e) => {
                    errors.push(FsError::from_errno(path, e));
                    return Ok(());
                }
            };
            if empty_dir(fd, path, meta.device, &walk, &mut errors) {
                remove_entry(parent, name, true, path, folder_device, &walk, &mut errors);
            }
            Ok(())
        })
        .map_err(|e| Error::Fs(FsError::from_io(path, &e)))
    })??;
    if cancel.is_cancelled() {
        return Err(Error::Cancelled);
    }
    if let Some(key) = &walk.key {
        let linked =
            std::mem::take(&mut *walk.linked.lock().unwrap_or_else(PoisonError::into_inner));
        for (path, fd) in linked {
            match shred::overwrite_if_last(&fd, &path, opts.overwrite_passes, key, cancel) {
                Ok(0) => {}
                Ok(names) => errors.push(FsError::other(
                    &path,
                    Errno::MLINK.raw_os_error(),
                    format!(
                        "has {names} hard links outside what was deleted: its data was not \
                         overwritten, only this name removed"
                    ),
                )),
                Err(e) => errors.push(e),
            }
        }
    }
    Ok(errors)
}

/// Remove `name` beneath `parent`, a folder on `device` (overwritten first
/// in a secure delete).
fn remove_entry(
    parent: BorrowedFd<'_>,
    name: &CStr,
    dir: bool,
    path: &[u8],
    device: u64,
    walk: &Walk<'_>,
    errors: &mut Vec<FsError>,
) -> bool {
    let mut last_name = None;
    if let (false, Some(key)) = (dir, &walk.key) {
        let passes = walk.opts.overwrite_passes;
        match shred::overwrite(parent, name, path, device, passes, key, walk.cancel) {
            Overwritten::Done => {}
            Overwritten::Linked(fd) => last_name = Some(fd),
            Overwritten::Keep(error) => {
                errors.extend(error);
                return false;
            }
        }
    }
    let removed = unlink_entry(parent, name, dir, path, walk, errors);
    if let (true, Some(fd), Some(key)) = (removed, last_name, &walk.key) {
        let passes = walk.opts.overwrite_passes;
        match shred::overwrite_if_last(&fd, path, passes, key, walk.cancel) {
            Ok(0) => {}
            // Its other names may be removed later in this walk: decided at the end.
            Ok(_) => walk
                .linked
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((path.to_vec(), fd)),
            Err(e) => errors.push(e),
        }
    }
    removed
}

fn unlink_entry(
    parent: BorrowedFd<'_>,
    name: &CStr,
    dir: bool,
    path: &[u8],
    walk: &Walk<'_>,
    errors: &mut Vec<FsError>,
) -> bool {
    let flags = if dir {
        AtFlags::REMOVEDIR
    } else {
        AtFlags::empty()
    };
    match rustix::fs::unlinkat(parent, name, flags) {
        Ok(()) => {
            let counter = if dir {
                &walk.done.dirs
            } else {
                &walk.done.files
            };
            counter.fetch_add(1, Ordering::Relaxed);
            true
        }
        // Gone already (removed by a run before a crash, or by someone
        // else): what was asked holds.
        Err(Errno::NOENT) => true,
        Err(e) => {
            errors.push(FsError::from_errno(path, e));
            false
        }
    }
}

/// Remove everything in the folder open as `fd` (named `path`, on
/// `device`); true when it is empty afterwards.
fn empty_dir(
    fd: OwnedFd,
    path: &[u8],
    device: u64,
    walk: &Walk<'_>,
    errors: &mut Vec<FsError>,
) -> bool {
    let mut dir = match Dir::new(fd) {
        Ok(dir) => dir,
        Err(e) => {
            errors.push(FsError::from_errno(path, e));
            return false;
        }
    };
    let names = match list(&mut dir, path) {
        Ok(names) => names,
        Err(e) => {
            errors.push(e);
            return false;
        }
    };
    // Read to the end: the handle now only serves *at calls.
    let Ok(fd) = dir.fd() else {
        // rustix's Dir always holds an fd; this arm only keeps us panic-free.
        return false;
    };
    let mut subdirs = Vec::new();
    let mut all_gone = true;
    for (name, kind) in names {
        if walk.cancel.is_cancelled() {
            return false;
        }
        let kind = match kind {
            Some(kind) => kind,
            // No d_type on this filesystem: ask, without following.
            None => match rustix::fs::statat(fd, &name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => FileType::from_raw_mode(st.st_mode),
                Err(Errno::NOENT) => continue,
                Err(e) => {
                    errors.push(FsError::from_errno(&join(path, name.as_bytes()), e));
                    all_gone = false;
                    continue;
                }
            },
        };
        if kind == FileType::Directory {
            subdirs.push(name);
        } else {
            let child = || join(path, name.as_bytes());
            if !remove_entry(fd, &name, false, &child(), device, walk, errors) {
                all_gone = false;
            }
        }
    }
    // Sibling folders in parallel: a broad tree keeps every thread busy
    // (rayon runs them on the calling thread when the pool is busy). Each
    // collects its own errors, merged in name order afterwards.
    let results: Vec<(bool, Vec<FsError>)> = subdirs
        .par_iter()
        .map(|name| {
            let mut errs = Vec::new();
            let child = join(path, name.as_bytes());
            let gone = empty_subdir(fd, name, &child, device, walk, &mut errs);
            (gone, errs)
        })
        .collect();
    for (gone, mut errs) in results {
        all_gone &= gone;
        errors.append(&mut errs);
    }
    all_gone && !walk.cancel.is_cancelled()
}

/// Empty and remove the folder `name` beneath `parent`.
fn empty_subdir(
    parent: BorrowedFd<'_>,
    name: &CStr,
    path: &[u8],
    device: u64,
    walk: &Walk<'_>,
    errors: &mut Vec<FsError>,
) -> bool {
    if walk.cancel.is_cancelled() {
        return false;
    }
    let fd = match rustix::fs::openat(parent, name, dir_flags(), Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return true,
        // Swapped for a symlink since it was listed (O_NOFOLLOW refused it):
        // the link itself is removed, its target never touched.
        Err(Errno::LOOP) | Err(Errno::NOTDIR) => {
            return remove_entry(parent, name, false, path, device, walk, errors);
        }
        Err(e) => {
            errors.push(FsError::from_errno(path, e));
            return false;
        }
    };
    let here = match rustix::fs::fstat(&fd) {
        Ok(st) => sys::Meta::from_stat(&st).device,
        Err(e) => {
            errors.push(FsError::from_errno(path, e));
            return false;
        }
    };
    if here != device && !walk.opts.cross_filesystems {
        errors.push(FsError::other(
            path,
            Errno::XDEV.raw_os_error(),
            "on another filesystem (a mount point): left in place",
        ));
        return false;
    }
    empty_dir(fd, path, here, walk, errors)
        && remove_entry(parent, name, true, path, device, walk, errors)
}

/// The names in a folder, with their type when the filesystem says it.
fn list(
    dir: &mut Dir,
    path: &[u8],
) -> std::result::Result<Vec<(CString, Option<FileType>)>, FsError> {
    let mut names = Vec::new();
    for entry in dir.by_ref() {
        let entry = entry.map_err(|e| FsError::from_errno(path, e))?;
        let name = entry.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        let kind = match entry.file_type() {
            FileType::Unknown => None,
            other => Some(other),
        };
        names.push((name.to_owned(), kind));
    }
    Ok(names)
}
