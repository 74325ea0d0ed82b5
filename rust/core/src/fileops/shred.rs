//! Overwriting a file's data before it is removed (a secure delete).
//!
//! Each pass writes the whole file with a BLAKE3 keyed stream (random to
//! anyone without the key, which is drawn from the kernel and never kept)
//! and syncs it, so the pass reaches the device instead of being merged in
//! the page cache with the next one; then the file is truncated and synced.
//! What this cannot promise is written in `python/phasekit/fileops/_delete.py`:
//! copy-on-write filesystems, SSDs and snapshots keep old blocks elsewhere.

use std::ffi::{CStr, CString};
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use rustix::fs::{FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::cancel::CancelToken;
use crate::error::{Error, FsError, Result};
use crate::sys;

/// Bytes written per call: a cancel is seen within one of them.
const CHUNK: usize = 1 << 20;

/// A fresh key for the overwrite stream, from the kernel.
pub fn stream_key() -> Result<[u8; 32]> {
    let mut key = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut key))
        .map_err(|e| Error::Fs(FsError::from_io(b"/dev/urandom", &e)))?;
    Ok(key)
}

/// What became of an entry to overwrite before its removal.
pub enum Overwritten {
    /// Ready to remove: overwritten and truncated, or nothing of its own to
    /// overwrite (a symlink, a special file, gone already).
    Done,
    /// A file with other hard links, opened for writing: remove its name,
    /// then [`overwrite_if_last`] (whoever removes the last name of a file
    /// overwrites it, even when two names are removed side by side).
    Linked(OwnedFd),
    /// Keep it: it could not be overwritten (the error), or a cancel came
    /// (None; the next run overwrites it from the start).
    Keep(Option<FsError>),
}

/// Overwrite the regular file `name` beneath `parent` (a folder on
/// `device`) with `passes` passes, then truncate it; it is not removed
/// here. Its type and device are checked before it is opened for writing:
/// a device node is never opened, and a file mounted over this name (a bind
/// mount, as containers do for /etc/hosts) is left alone, as a permanent
/// delete leaves other filesystems. A read-only file of ours is made
/// writable first (as `shred -f` does).
pub fn overwrite(
    parent: BorrowedFd<'_>,
    name: &CStr,
    path: &[u8],
    device: u64,
    passes: u32,
    key: &[u8; 32],
    cancel: &CancelToken,
) -> Overwritten {
    match open_for_overwrite(parent, name, path, device) {
        Ok(Opened::Nothing) => Overwritten::Done,
        Ok(Opened::Linked(fd)) => Overwritten::Linked(fd),
        Ok(Opened::Alone(fd)) => match write_passes(&fd, path, passes, key, cancel) {
            Ok(true) => Overwritten::Done,
            Ok(false) => Overwritten::Keep(None),
            Err(e) => Overwritten::Keep(Some(e)),
        },
        Err(e) => Overwritten::Keep(Some(e)),
    }
}

/// After the name of a [`Overwritten::Linked`] file was removed: overwrite
/// it through `fd` if that was its last name. Returns the names it still
/// has (0: it was overwritten). The name is gone either way.
pub fn overwrite_if_last(
    fd: &OwnedFd,
    path: &[u8],
    passes: u32,
    key: &[u8; 32],
    cancel: &CancelToken,
) -> std::result::Result<u64, FsError> {
    let st = rustix::fs::fstat(fd).map_err(|e| FsError::from_errno(path, e))?;
    if st.st_nlink > 0 {
        return Ok(st.st_nlink as u64); // another name keeps it (for now)
    }
    match write_passes(fd, path, passes, key, cancel)? {
        true => Ok(0),
        false => Err(FsError::other(
            path,
            Errno::INTR.raw_os_error(),
            "cancelled while its data was overwritten: its name is gone, its data freed \
             without the remaining passes",
        )),
    }
}

enum Opened {
    Nothing,
    Alone(OwnedFd),
    Linked(OwnedFd),
}

fn open_for_overwrite(
    parent: BorrowedFd<'_>,
    name: &CStr,
    path: &[u8],
    device: u64,
) -> std::result::Result<Opened, FsError> {
    let io = |e: Errno| FsError::from_errno(path, e);
    // O_PATH: a handle that reads nothing and opens no device; its type and
    // device decide, and the reopen below is of this very file.
    let handle = match rustix::fs::openat(
        parent,
        name,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(Opened::Nothing),
        Err(e) => return Err(io(e)),
    };
    let st = rustix::fs::fstat(&handle).map_err(io)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Ok(Opened::Nothing); // a symlink (itself, not followed), a FIFO, a device
    }
    if sys::Meta::from_stat(&st).device != device {
        return Err(FsError::other(
            path,
            Errno::XDEV.raw_os_error(),
            "on another filesystem (a mount point): left in place",
        ));
    }
    let reopen = CString::new(format!("/proc/self/fd/{}", handle.as_raw_fd()))
        .map_err(|_| FsError::other(path, Errno::INVAL.raw_os_error(), "bad handle"))?;
    let flags = OFlags::WRONLY | OFlags::CLOEXEC | OFlags::NOCTTY;
    let fd = match rustix::fs::open(&reopen, flags, Mode::empty()) {
        Err(Errno::ACCESS) if st.st_uid == rustix::process::geteuid().as_raw() => {
            // Ours but read-only: give ourselves write permission.
            rustix::fs::chmod(&reopen, Mode::from_raw_mode(st.st_mode & 0o7777 | 0o200))
                .map_err(io)?;
            rustix::fs::open(&reopen, flags, Mode::empty()).map_err(io)?
        }
        // No /proc (a chroot): open by name, without following a link.
        Err(Errno::NOENT) => {
            let fd = rustix::fs::openat(parent, name, flags | OFlags::NOFOLLOW, Mode::empty())
                .map_err(io)?;
            let now = rustix::fs::fstat(&fd).map_err(io)?;
            if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino) {
                return Err(FsError::other(
                    path,
                    0,
                    "replaced while being deleted: left in place",
                ));
            }
            fd
        }
        other => other.map_err(io)?,
    };
    Ok(if st.st_nlink > 1 {
        Opened::Linked(fd)
    } else {
        Opened::Alone(fd)
    })
}

/// The passes, then truncate; false if a cancel came first.
fn write_passes(
    fd: &OwnedFd,
    path: &[u8],
    passes: u32,
    key: &[u8; 32],
    cancel: &CancelToken,
) -> std::result::Result<bool, FsError> {
    let io = |e: Errno| FsError::from_errno(path, e);
    let st = rustix::fs::fstat(fd).map_err(io)?;
    let size = u64::try_from(st.st_size).unwrap_or(0);
    let mut stream = blake3::Hasher::new_keyed(key);
    stream.update(path);
    let mut stream = stream.finalize_xof();
    let mut buf = vec![0u8; CHUNK.min(usize::try_from(size).unwrap_or(CHUNK)).max(1)];
    for _ in 0..passes {
        let mut at = 0u64;
        while at < size {
            if cancel.is_cancelled() {
                return Ok(false);
            }
            let n = usize::try_from(size - at).unwrap_or(CHUNK).min(buf.len());
            stream.fill(&mut buf[..n]);
            let mut written = 0;
            while written < n {
                written += rustix::io::pwrite(fd.as_fd(), &buf[written..n], at + written as u64)
                    .map_err(io)?;
            }
            at += n as u64;
        }
        rustix::fs::fdatasync(fd).map_err(io)?;
    }
    rustix::fs::ftruncate(fd, 0).map_err(io)?;
    rustix::fs::fsync(fd).map_err(io)?;
    Ok(true)
}
