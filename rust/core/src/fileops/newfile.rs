//! A copied file's data, written where nobody sees it until it is whole.
//!
//! Where the destination's filesystem offers it (ext4, XFS, btrfs, tmpfs),
//! the copy is an unnamed file (`O_TMPFILE`) in its destination folder,
//! linked under its final name only once complete: a kill at any moment
//! leaves nothing behind, and there is no temporary name to create and
//! rename (one directory operation per file instead of three). Elsewhere,
//! and to replace a file (`overwrite`), the copy goes to a temporary name
//! (`.{tag}-{index}.pktmp`) renamed when complete; a stray left by a killed
//! run is reused by the resumed one.
//!
//! Data moves by reflink where the filesystem shares extents, else
//! `copy_file_range` (in-kernel), else read/write. `verify` streams it
//! through BLAKE3 and reads the copy back from the disk before it is named.

use std::ffi::{CStr, CString};
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use rustix::fs::{AtFlags, Mode, OFlags, RenameFlags, Timespec, Timestamps, CWD, UTIME_OMIT};
use rustix::io::Errno;

use super::plan::{Action, Item};
use crate::content::{hash_file, Want};
use crate::error::FsError;
use crate::sys::{self, ParentCache};

const STREAM: usize = 1 << 20;
/// Bytes per `copy_file_range` call: a stop request is looked at between
/// calls, so a pause takes effect inside a large file within one of them.
const KERNEL_CHUNK: u64 = 64 << 20;

/// Polled between chunks of a file: true once the caller asked to stop.
pub(super) type Stop<'a> = &'a (dyn Fn() -> bool + Sync);

pub(super) fn stopped(path: &[u8]) -> FsError {
    FsError::other(path, 0, "stopped (pause or cancel): redone on resume")
}

/// What a destination filesystem was found to offer, learnt from the first
/// file that tried (so later files do not ask again).
#[derive(Debug)]
pub(super) struct Caps {
    /// `O_TMPFILE`, and linking such a file in.
    pub tmpfile: bool,
    /// Linking the file's own handle in (`AT_EMPTY_PATH`) is allowed.
    pub link_fd: bool,
    /// Source devices from which a reflink failed.
    pub no_reflink_from: Vec<u64>,
}

impl Default for Caps {
    fn default() -> Self {
        Self {
            tmpfile: true,
            link_fd: true,
            no_reflink_from: Vec::new(),
        }
    }
}

pub(super) fn timestamps(mtime_ns: i64) -> Timestamps {
    with_atime(mtime_ns, None)
}

/// mtime, and atime when given (else left as it is).
fn with_atime(mtime_ns: i64, atime: Option<Timespec>) -> Timestamps {
    Timestamps {
        last_access: atime.unwrap_or(Timespec {
            tv_sec: 0,
            tv_nsec: UTIME_OMIT,
        }),
        last_modification: Timespec {
            tv_sec: mtime_ns.div_euclid(1_000_000_000),
            tv_nsec: mtime_ns.rem_euclid(1_000_000_000) as _,
        },
    }
}

/// Where one file is copied to.
pub(super) struct Dest<'a> {
    pub dir: BorrowedFd<'a>,
    pub name: &'a CStr,
    pub temp: &'a CStr,
    pub target: &'a [u8],
}

/// How to copy one file.
pub(super) struct How<'a> {
    pub verify: bool,
    pub durable: bool,
    /// Keep the source's access time.
    pub atime: bool,
    pub stop: Stop<'a>,
}

/// Copy the regular file `item` (at `source`) to `dest` and name it there.
/// Returns `(bytes, reflinked)`.
pub(super) fn copy_file(
    item: &Item,
    source: &[u8],
    dest: &Dest<'_>,
    how: &How<'_>,
    caps: &mut Caps,
    sources: &mut ParentCache,
) -> std::result::Result<(u64, bool), FsError> {
    // Twice at most: an unnamed file that cannot be linked in (no /proc,
    // say) is dropped and the file copied again under a temporary name.
    loop {
        let anonymous = caps.tmpfile && item.action != Action::Overwrite;
        match copy_once(item, source, dest, how, caps, sources, anonymous) {
            Err(Placing::Unsupported) => caps.tmpfile = false,
            Err(Placing::Failed(e)) => return Err(e),
            Ok(done) => return Ok(done),
        }
    }
}

enum Placing {
    /// Unnamed files do not work here: copy under a temporary name.
    Unsupported,
    Failed(FsError),
}

impl From<FsError> for Placing {
    fn from(e: FsError) -> Self {
        Placing::Failed(e)
    }
}

fn copy_once(
    item: &Item,
    source: &[u8],
    dest: &Dest<'_>,
    how: &How<'_>,
    caps: &mut Caps,
    sources: &mut ParentCache,
    anonymous: bool,
) -> std::result::Result<(u64, bool), Placing> {
    let (mut input, meta) = sources
        .open_listed(source, (item.device, item.inode))
        .map_err(|e| FsError::from_io(source, &e))?;
    if meta.size != item.size || meta.mtime_ns != item.mtime_ns {
        return Err(FsError::other(source, 0, "changed since the copy was planned").into());
    }
    let mut output = if anonymous {
        match rustix::fs::openat(
            dest.dir,
            c".",
            OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        ) {
            Ok(fd) => File::from(fd),
            // Not offered by this filesystem (or kernel).
            Err(Errno::OPNOTSUPP) | Err(Errno::ISDIR) | Err(Errno::INVAL) => {
                return Err(Placing::Unsupported)
            }
            Err(e) => return Err(FsError::from_errno(dest.target, e).into()),
        }
    } else {
        // O_TRUNC without O_EXCL: a stray left by a killed run of this plan
        // entry is reused; O_NOFOLLOW: a link planted there is not followed.
        let flags =
            OFlags::RDWR | OFlags::CREATE | OFlags::TRUNC | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        File::from(
            rustix::fs::openat(dest.dir, dest.temp, flags, Mode::from_raw_mode(0o600))
                .map_err(|e| FsError::from_errno(dest.target, e))?,
        )
    };
    let files = (&mut input, &mut output);
    let outcome = fill(item, source, dest.target, files, how, caps);
    let outcome = outcome.and_then(|reflinked| {
        if anonymous {
            link_in(&output, dest, &mut caps.link_fd)?;
        } else {
            if how.durable {
                rustix::fs::fsync(dest.dir).map_err(|e| FsError::from_errno(dest.target, e))?;
            }
            place(dest.dir, dest.temp, dest.name, item, dest.target)?;
        }
        Ok((item.size, reflinked))
    });
    if outcome.is_err() && !anonymous {
        let _ = rustix::fs::unlinkat(dest.dir, dest.temp, AtFlags::empty());
    }
    outcome
}

/// Write the data, mode and mtime into `output`; synced if asked, verified
/// if asked. Returns whether the data was shared by reflink.
fn fill(
    item: &Item,
    source: &[u8],
    target: &[u8],
    (input, output): (&mut File, &mut File),
    how: &How<'_>,
    caps: &mut Caps,
) -> std::result::Result<bool, Placing> {
    let mut reflinked = false;
    // Before reading: reading may move it (relatime).
    let atime = match how.atime {
        true => {
            let st = rustix::fs::fstat(&*input).map_err(|e| FsError::from_errno(source, e))?;
            Some(Timespec {
                tv_sec: st.st_atime,
                tv_nsec: st.st_atime_nsec as _,
            })
        }
        false => None,
    };
    let digest = if how.verify {
        Some(stream(input, output, item.size, source, target, how.stop)?)
    } else {
        if !caps.no_reflink_from.contains(&item.device) {
            reflinked = rustix::fs::ioctl_ficlone(&*output, &*input).is_ok();
            if !reflinked {
                caps.no_reflink_from.push(item.device);
            }
        }
        if !reflinked {
            kernel_copy(input, output, item.size, source, target, how.stop)?;
        }
        None
    };
    let at_end = rustix::fs::fstat(&*input).map_err(|e| FsError::from_errno(source, e))?;
    let now = sys::Meta::from_stat(&at_end);
    if now.size != item.size || now.mtime_ns != item.mtime_ns {
        return Err(FsError::other(source, 0, "file changed while being copied").into());
    }
    let io = |e: Errno| Placing::Failed(FsError::from_errno(target, e));
    // Always: the mode a file is created with depends on the umask and on
    // the folder's default ACL, which this cannot know.
    rustix::fs::fchmod(&*output, Mode::from_raw_mode(item.mode & 0o7777)).map_err(io)?;
    rustix::fs::futimens(&*output, &with_atime(item.mtime_ns, atime)).map_err(io)?;
    if how.durable || how.verify {
        rustix::fs::fsync(&*output).map_err(io)?;
    }
    if let Some(expected) = digest {
        // Read back what reached the disk, not the page cache's copy.
        let _ = rustix::fs::fadvise(&*output, 0, None, rustix::fs::Advice::DontNeed);
        if atime.is_some() {
            // Reading must not move the access time just given (relatime
            // does when it is older than the mtime). We own the file, so
            // O_NOATIME is allowed.
            let flags = rustix::fs::fcntl_getfl(&*output).map_err(io)?;
            rustix::fs::fcntl_setfl(&*output, flags | OFlags::NOATIME).map_err(io)?;
        }
        let meta = sys::Meta::from_stat(&rustix::fs::fstat(&*output).map_err(io)?);
        output.rewind().map_err(|e| FsError::from_io(target, &e))?;
        let want = Want {
            cas_id: false,
            checksum: true,
        };
        let back = hash_file(output, &meta, want, target, how.stop)?;
        if back.checksum != Some(expected) {
            return Err(FsError::other(
                target,
                Errno::IO.raw_os_error(),
                "verification failed: the copy read back differs from the source; removed",
            )
            .into());
        }
    }
    Ok(reflinked)
}

/// Give the unnamed file `file` its final name; never replaces a file.
fn link_in(file: &File, dest: &Dest<'_>, link_fd: &mut bool) -> std::result::Result<(), Placing> {
    // The handle itself (AT_EMPTY_PATH) is cheapest, but needs
    // CAP_DAC_READ_SEARCH on kernels before 6.10 (ENOENT without it); else
    // through /proc, whose lookup costs more than the rest of the link.
    if *link_fd {
        match rustix::fs::linkat(file.as_fd(), c"", dest.dir, dest.name, AtFlags::EMPTY_PATH) {
            Err(Errno::NOENT) | Err(Errno::PERM) | Err(Errno::INVAL) => *link_fd = false,
            other => return other.map_err(|e| link_failed(dest, e)),
        }
    }
    let proc = CString::new(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .map_err(|_| Placing::Unsupported)?;
    rustix::fs::linkat(CWD, &proc, dest.dir, dest.name, AtFlags::SYMLINK_FOLLOW)
        .map_err(|e| link_failed(dest, e))
}

fn link_failed(dest: &Dest<'_>, e: Errno) -> Placing {
    match e {
        Errno::NOENT | Errno::PERM | Errno::ACCESS | Errno::XDEV | Errno::OPNOTSUPP => {
            Placing::Unsupported
        }
        e => Placing::Failed(taken(dest.target, e)),
    }
}

/// Rename the finished temporary file `temp` to its final name.
pub(super) fn place(
    dir: BorrowedFd<'_>,
    temp: &CStr,
    name: &CStr,
    item: &Item,
    target: &[u8],
) -> std::result::Result<(), FsError> {
    if item.action == Action::Overwrite {
        return rustix::fs::renameat(dir, temp, dir, name)
            .map_err(|e| FsError::from_errno(target, e));
    }
    match rustix::fs::renameat_with(dir, temp, dir, name, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(()),
        // A filesystem without RENAME_NOREPLACE: link (which never
        // replaces), then drop the temporary name.
        Err(Errno::INVAL) | Err(Errno::NOSYS) => {
            rustix::fs::linkat(dir, temp, dir, name, AtFlags::empty())
                .map_err(|e| taken(target, e))?;
            let _ = rustix::fs::unlinkat(dir, temp, AtFlags::empty());
            Ok(())
        }
        Err(e) => Err(taken(target, e)),
    }
}

pub(super) fn taken(target: &[u8], e: Errno) -> FsError {
    if e == Errno::EXIST {
        FsError::other(
            target,
            e.raw_os_error(),
            "the name was taken after the copy was planned: left as it is",
        )
    } else {
        FsError::from_errno(target, e)
    }
}

/// Copy `size` bytes in the kernel; read/write where it cannot.
fn kernel_copy(
    input: &mut File,
    output: &mut File,
    size: u64,
    source: &[u8],
    target: &[u8],
    stop: Stop<'_>,
) -> std::result::Result<(), FsError> {
    let mut copied = 0u64;
    while copied < size {
        if stop() {
            return Err(stopped(source));
        }
        let want = (size - copied).min(KERNEL_CHUNK) as usize;
        match rustix::fs::copy_file_range(&*input, None, &*output, None, want) {
            Ok(0) => break,
            Ok(n) => copied += n as u64,
            Err(Errno::INTR) => continue,
            // Not supported between these files: stream the rest.
            Err(Errno::XDEV) | Err(Errno::INVAL) | Err(Errno::NOSYS) | Err(Errno::OPNOTSUPP)
                if copied == 0 =>
            {
                stream(input, output, size, source, target, stop)?;
                return Ok(());
            }
            Err(e) => {
                return Err(FsError::from_errno(
                    if e == Errno::NOSPC { target } else { source },
                    e,
                ))
            }
        }
    }
    if copied != size {
        return Err(FsError::other(
            source,
            0,
            "file changed while being copied (shorter)",
        ));
    }
    Ok(())
}

/// Copy by read/write, hashing what is read; the digest of the source.
fn stream(
    input: &mut File,
    output: &mut File,
    size: u64,
    source: &[u8],
    target: &[u8],
    stop: Stop<'_>,
) -> std::result::Result<[u8; 32], FsError> {
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; STREAM];
    let mut copied = 0u64;
    loop {
        if stop() {
            return Err(stopped(source));
        }
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(FsError::from_io(source, &e)),
        };
        hasher.update(&buf[..n]);
        output
            .write_all(&buf[..n])
            .map_err(|e| FsError::from_io(target, &e))?;
        copied += n as u64;
    }
    if copied != size {
        return Err(FsError::other(source, 0, "file changed while being copied"));
    }
    Ok(*hasher.finalize().as_bytes())
}
