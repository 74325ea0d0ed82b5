//! Overwriting a file's data before it is removed (a secure delete).
//!
//! Each pass writes the whole file with a BLAKE3 keyed stream (random to
//! anyone without the key, which is drawn from the kernel and never kept)
//! and syncs it, so the pass reaches the device instead of being merged in
//! the page cache with the next one; then the file is truncated and synced.
//! What this cannot promise is written in `python/phasekit/fileops/_delete.py`:
//! copy-on-write filesystems, SSDs and snapshots keep old blocks elsewhere.

use std::ffi::CStr;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd};

use rustix::fs::{FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::cancel::CancelToken;
use crate::error::{Error, FsError, Result};

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
    /// Overwritten and truncated, or nothing of its own to overwrite (a
    /// symlink, a special file): remove it.
    Done,
    /// Remove it, and report this: its data is kept by other hard links.
    RemoveAnyway(FsError),
    /// Keep it: it could not be overwritten (the error), or a cancel came
    /// (None; the next run overwrites it from the start).
    Keep(Option<FsError>),
}

/// Overwrite the regular file `name` beneath `parent` with `passes` passes,
/// then truncate it (it is not removed here). A file with other hard links
/// is not overwritten: its data stays reachable through names outside what
/// is deleted, which a delete never touches.
pub fn overwrite(
    parent: BorrowedFd<'_>,
    name: &CStr,
    path: &[u8],
    passes: u32,
    key: &[u8; 32],
    cancel: &CancelToken,
) -> Overwritten {
    match overwrite_file(parent, name, path, passes, key, cancel) {
        Ok(outcome) => outcome,
        Err(e) => Overwritten::Keep(Some(e)),
    }
}

fn overwrite_file(
    parent: BorrowedFd<'_>,
    name: &CStr,
    path: &[u8],
    passes: u32,
    key: &[u8; 32],
    cancel: &CancelToken,
) -> std::result::Result<Overwritten, FsError> {
    let flags = OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY;
    let fd = match rustix::fs::openat(parent, name, flags | OFlags::CLOEXEC, Mode::empty()) {
        Ok(fd) => fd,
        // A symlink (O_NOFOLLOW), gone already, or a FIFO with no reader:
        // nothing of its own to overwrite.
        Err(Errno::LOOP) | Err(Errno::NOENT) | Err(Errno::NXIO) => return Ok(Overwritten::Done),
        Err(e) => return Err(FsError::from_errno(path, e)),
    };
    let st = rustix::fs::fstat(&fd).map_err(|e| FsError::from_errno(path, e))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Ok(Overwritten::Done);
    }
    if st.st_nlink > 1 {
        return Ok(Overwritten::RemoveAnyway(FsError::other(
            path,
            Errno::MLINK.raw_os_error(),
            format!(
                "has {} other hard links: its data was not overwritten, only this name removed",
                st.st_nlink - 1
            ),
        )));
    }
    let size = u64::try_from(st.st_size).unwrap_or(0);
    let mut stream = blake3::Hasher::new_keyed(key);
    stream.update(path);
    let mut stream = stream.finalize_xof();
    let mut buf = vec![0u8; CHUNK.min(usize::try_from(size).unwrap_or(CHUNK)).max(1)];
    let io = |e: Errno| FsError::from_errno(path, e);
    for _ in 0..passes {
        let mut at = 0u64;
        while at < size {
            if cancel.is_cancelled() {
                return Ok(Overwritten::Keep(None));
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
        rustix::fs::fdatasync(&fd).map_err(io)?;
    }
    rustix::fs::ftruncate(&fd, 0).map_err(io)?;
    rustix::fs::fsync(&fd).map_err(io)?;
    Ok(Overwritten::Done)
}
