//! Thin, safe wrappers over the POSIX calls the walker and hashers need.
//!
//! Paths are bytes. Paths longer than the kernel's PATH_MAX (4096) cannot be
//! passed to `open`/`stat` in one piece, so [`with_parent`] resolves them
//! piecewise with `openat` relative to directory handles: every path that the
//! walker yields can be opened and stat'ed again.

use std::ffi::{CStr, CString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat, CWD};

/// Paths at least this long are resolved piecewise (PATH_MAX is 4096 on Linux,
/// 1024 on macOS; we stay under the smaller one with room for a NUL).
const SHORT_PATH: usize = 1000;

/// What kind of entry a path is, as reported to Python (numbers are stable).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    File = 0,
    Dir = 1,
    Symlink = 2,
    /// FIFOs, sockets, block and character devices: never opened for reading.
    Other = 3,
}

impl Kind {
    fn from_mode(mode: u32) -> Self {
        match FileType::from_raw_mode(mode as _) {
            FileType::RegularFile => Kind::File,
            FileType::Directory => Kind::Dir,
            FileType::Symlink => Kind::Symlink,
            _ => Kind::Other,
        }
    }
}

/// Seconds and nanoseconds as i64 nanoseconds, saturating: times before 1678
/// or after 2262 (which some filesystems store) clamp instead of overflowing.
pub fn nanos(secs: i64, nsec: i64) -> i64 {
    let exact = i128::from(secs) * 1_000_000_000 + i128::from(nsec);
    // Clamped into range first, so the conversion cannot fail.
    i64::try_from(exact.clamp(i128::from(i64::MIN), i128::from(i64::MAX))).unwrap_or(i64::MAX)
}

/// The stat fields phasekit keeps for an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    pub kind: Kind,
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub inode: u64,
    pub device: u64,
    pub mode: u32,
    pub nlink: u64,
}

impl Meta {
    // The `as` casts normalise per-platform field widths of `struct stat`
    // (e.g. i64 vs u64 sizes, u16 vs u32 modes); values are never negative
    // where we cast to unsigned.
    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
    pub fn from_stat(st: &Stat) -> Self {
        let mode = st.st_mode as u32;
        Meta {
            kind: Kind::from_mode(mode),
            size: st.st_size as u64,
            mtime_ns: nanos(st.st_mtime as i64, st.st_mtime_nsec as i64),
            ctime_ns: nanos(st.st_ctime as i64, st.st_ctime_nsec as i64),
            inode: st.st_ino as u64,
            device: st.st_dev as u64,
            mode,
            nlink: st.st_nlink as u64,
        }
    }

    /// Identity of the underlying file (hard links share it).
    pub fn file_id(&self) -> (u64, u64) {
        (self.device, self.inode)
    }
}

fn cstring(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| io::Error::from_raw_os_error(libc_einval()))
}

fn libc_einval() -> i32 {
    rustix::io::Errno::INVAL.raw_os_error()
}

/// Flags for a directory handle used only to resolve names beneath it.
fn search_flags() -> OFlags {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        // O_PATH needs only search (x) permission, like the kernel's own
        // resolution of a long path would.
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC
    }
}

/// Call `f(dirfd, name)` where `name` resolved beneath `dirfd` is `path`.
///
/// Short paths go straight to the kernel relative to the current directory;
/// long ones are split at `/` boundaries and resolved one piece at a time.
pub fn with_parent<T>(
    path: &[u8],
    f: impl FnOnce(BorrowedFd<'_>, &CStr) -> io::Result<T>,
) -> io::Result<T> {
    if path.len() < SHORT_PATH {
        return f(CWD, &cstring(path)?);
    }
    let trimmed = trim_trailing_slashes(path);
    let cut = trimmed
        .iter()
        .rposition(|&b| b == b'/')
        .ok_or_else(|| io::Error::from(rustix::io::Errno::NAMETOOLONG))?;
    let (parent, name) = (&trimmed[..cut], &trimmed[cut + 1..]);
    let parent_fd = open_long_dir(parent)?;
    f(parent_fd.as_fd(), &cstring(name)?)
}

fn trim_trailing_slashes(path: &[u8]) -> &[u8] {
    let mut end = path.len();
    while end > 1 && path[end - 1] == b'/' {
        end -= 1;
    }
    &path[..end]
}

/// Open a directory of any length for name resolution, piece by piece.
fn open_long_dir(path: &[u8]) -> io::Result<OwnedFd> {
    let mut current: Option<OwnedFd> = None;
    let mut rest = path;
    if rest.first() == Some(&b'/') {
        current = Some(rustix::fs::openat(
            CWD,
            c"/",
            search_flags(),
            Mode::empty(),
        )?);
        rest = &rest[1..];
    }
    while !rest.is_empty() {
        // Take the longest piece that fits, ending at a '/' boundary.
        let piece_len = if rest.len() < SHORT_PATH {
            rest.len()
        } else {
            rest[..SHORT_PATH]
                .iter()
                .rposition(|&b| b == b'/')
                .filter(|&p| p > 0)
                .ok_or_else(|| io::Error::from(rustix::io::Errno::NAMETOOLONG))?
        };
        let piece = cstring(&rest[..piece_len])?;
        let next = match &current {
            Some(fd) => rustix::fs::openat(fd, &piece, search_flags(), Mode::empty())?,
            None => rustix::fs::openat(CWD, &piece, search_flags(), Mode::empty())?,
        };
        current = Some(next);
        rest = &rest[piece_len..];
        while rest.first() == Some(&b'/') {
            rest = &rest[1..];
        }
    }
    match current {
        Some(fd) => Ok(fd),
        None => Ok(rustix::fs::openat(
            CWD,
            c".",
            search_flags(),
            Mode::empty(),
        )?),
    }
}

/// `stat` (or `lstat` when `follow` is false) of a name beneath `dir`.
pub fn stat_at(dir: BorrowedFd<'_>, name: &CStr, follow: bool) -> io::Result<Meta> {
    let flags = if follow {
        AtFlags::empty()
    } else {
        AtFlags::SYMLINK_NOFOLLOW
    };
    Ok(Meta::from_stat(&rustix::fs::statat(dir, name, flags)?))
}

/// `stat`/`lstat` of a path of any length.
pub fn stat_path(path: &[u8], follow: bool) -> io::Result<Meta> {
    with_parent(path, |dir, name| stat_at(dir, name, follow))
}

/// Open a directory for reading its entries. With `follow` false a symlink in
/// the last component is refused (ELOOP/ENOTDIR), so a directory swapped for a
/// symlink after it was listed is never walked into.
pub fn open_dir(path: &[u8], follow: bool) -> io::Result<OwnedFd> {
    let mut flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    if !follow {
        flags |= OFlags::NOFOLLOW;
    }
    with_parent(path, |dir, name| {
        Ok(rustix::fs::openat(dir, name, flags, Mode::empty())?)
    })
}

/// Open a regular file for reading, after checking that it is one.
///
/// FIFOs, sockets and devices are refused before `open` (opening a FIFO blocks,
/// opening some devices has side effects). The open itself is non-blocking and
/// the handle is checked again with `fstat`, so a file swapped for a FIFO in
/// between is still refused. Returns the file and its metadata.
pub fn open_regular(path: &[u8]) -> io::Result<(File, Meta)> {
    with_parent(path, |dir, name| {
        let before = stat_at(dir, name, true)?;
        if before.kind != Kind::File {
            return Err(not_regular(before.kind));
        }
        let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(dir, name, flags, Mode::empty())?;
        let meta = Meta::from_stat(&rustix::fs::fstat(&fd)?);
        if meta.kind != Kind::File {
            return Err(not_regular(meta.kind));
        }
        Ok((File::from(fd), meta))
    })
}

/// Open a name beneath `dir` that was just stat'ed as the regular file
/// `expected`, for reading. Refuses (with "changed") anything that is no
/// longer that same file; non-blocking, so a FIFO swapped in cannot hang us.
pub fn open_regular_at(
    dir: BorrowedFd<'_>,
    name: &CStr,
    follow: bool,
    expected: &Meta,
) -> io::Result<(File, Meta)> {
    let mut flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    if !follow {
        flags |= OFlags::NOFOLLOW;
    }
    let fd = rustix::fs::openat(dir, name, flags, Mode::empty())?;
    let meta = Meta::from_stat(&rustix::fs::fstat(&fd)?);
    if meta.kind != Kind::File {
        return Err(not_regular(meta.kind));
    }
    if meta.file_id() != expected.file_id() {
        return Err(io::Error::other(
            "file changed while being read: replaced after it was listed",
        ));
    }
    Ok((File::from(fd), meta))
}

/// Open a name beneath `dir` without following a symlink, non-blocking, and
/// `fstat` it: for a name readdir reported as a regular file. The caller must
/// check the returned kind before reading: something else may have been swapped
/// in since readdir. Non-blocking means even a FIFO cannot hang the open, and
/// it is never read; a device node could only be swapped in by a privileged
/// user in that window.
pub fn open_file_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<(File, Meta)> {
    let flags =
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC | OFlags::NOFOLLOW;
    let fd = rustix::fs::openat(dir, name, flags, Mode::empty())?;
    let meta = Meta::from_stat(&rustix::fs::fstat(&fd)?);
    Ok((File::from(fd), meta))
}

/// Open `path` for reading only if it is still the regular file `expected`
/// (same device and inode) and not a symlink: for files listed earlier (e.g.
/// from a library), so that a file swapped for a link or another file since is
/// reported, never read in its place.
pub fn open_listed(path: &[u8], expected: (u64, u64)) -> io::Result<(File, Meta)> {
    with_parent(path, |dir, name| open_listed_at(dir, name, expected))
}

/// [`open_listed`] of a name beneath `dir`.
fn open_listed_at(
    dir: BorrowedFd<'_>,
    name: &CStr,
    expected: (u64, u64),
) -> io::Result<(File, Meta)> {
    // No lstat first (a fifth of the syscalls when hashing small files):
    // the name was listed as a regular file, O_NOFOLLOW refuses a symlink
    // swapped in, O_NONBLOCK keeps a FIFO from hanging the open, and the
    // fstat below refuses anything that is not the listed file before a
    // byte is read. Only a privileged user could swap a device node in
    // (the walker's own hashing, `open_file_at`, takes the same view).
    let flags =
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC | OFlags::NOFOLLOW;
    let fd = rustix::fs::openat(dir, name, flags, Mode::empty()).map_err(|e| {
        if e == rustix::io::Errno::LOOP {
            changed_since_listed(Kind::Symlink)
        } else {
            io::Error::from(e)
        }
    })?;
    let meta = Meta::from_stat(&rustix::fs::fstat(&fd)?);
    if meta.kind != Kind::File || meta.file_id() != expected {
        return Err(changed_since_listed(meta.kind));
    }
    Ok((File::from(fd), meta))
}

/// A handle on the folder of the last file opened through it, for loops
/// over files listed together (a walk lists a folder's files one after
/// another): each file is then resolved as one name beneath that handle
/// instead of component by component from the root, which was a fifth of
/// the kernel's time when hashing many small files.
///
/// A folder renamed or replaced while its handle is kept still yields its
/// own files; [`ParentCache::open_listed`] checks each file's identity, so
/// no other file can be read in place of the one listed.
#[derive(Default)]
pub struct ParentCache {
    parent: Vec<u8>,
    fd: Option<OwnedFd>,
}

impl ParentCache {
    /// [`open_listed`], resolving `path`'s folder once for consecutive
    /// files of the same folder.
    pub fn open_listed(&mut self, path: &[u8], expected: (u64, u64)) -> io::Result<(File, Meta)> {
        let trimmed = trim_trailing_slashes(path);
        let (parent, name) = match trimmed.iter().rposition(|&b| b == b'/') {
            // "/name": the parent is the root itself.
            Some(0) => (&trimmed[..1], &trimmed[1..]),
            Some(cut) => (&trimmed[..cut], &trimmed[cut + 1..]),
            None => return open_listed(path, expected),
        };
        if name.is_empty() {
            return open_listed(path, expected);
        }
        let name = cstring(name)?;
        if self.fd.is_none() || self.parent != parent {
            // Cleared first: a folder that cannot be opened leaves no stale
            // handle filed under another folder's path.
            self.fd = None;
            let opened = if parent.len() < SHORT_PATH {
                cstring(parent)
                    .and_then(|p| Ok(rustix::fs::openat(CWD, &p, search_flags(), Mode::empty())?))
            } else {
                open_long_dir(parent)
            };
            // The whole path, resolved as before, reports the error (or
            // succeeds where a folder handle needs more rights than a path
            // lookup, e.g. without O_PATH).
            let Ok(fd) = opened else {
                return open_listed(path, expected);
            };
            self.parent.clear();
            self.parent.extend_from_slice(parent);
            self.fd = Some(fd);
        }
        match &self.fd {
            Some(fd) => open_listed_at(fd.as_fd(), &name, expected),
            None => open_listed(path, expected),
        }
    }
}

fn changed_since_listed(kind: Kind) -> io::Error {
    io::Error::other(format!(
        "file changed while being read: it is not the file that was listed (now a {})",
        match kind {
            Kind::File => "different file",
            Kind::Dir => "directory",
            Kind::Symlink => "symlink",
            Kind::Other => "special file",
        }
    ))
}

/// The error for "this is not a regular file": EISDIR for directories, and
/// EINVAL with a clear message for FIFOs, sockets and devices.
fn not_regular(kind: Kind) -> io::Error {
    match kind {
        Kind::Dir => io::Error::from(rustix::io::Errno::ISDIR),
        _ => io::Error::new(
            io::ErrorKind::InvalidInput,
            NotRegular, // errno is attached by FsError conversion below
        ),
    }
}

/// Marker payload for [`not_regular`]; [`crate::FsError`] maps it to EINVAL.
#[derive(Debug)]
pub struct NotRegular;

impl std::fmt::Display for NotRegular {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("not a regular file (FIFO, socket or device): not opened")
    }
}

impl std::error::Error for NotRegular {}

/// Raise this process's soft limit on open files to its hard limit, once.
/// A removal holds one folder handle per level of the tree it is in (so a
/// folder swapped for a symlink is never followed), and the common soft
/// limit of 1024 would stop it about 1000 levels down; the hard limit is
/// what the administrator allows. Failure leaves the limit as it was.
pub fn raise_open_files_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let limit = getrlimit(Resource::Nofile);
        if limit.current < limit.maximum {
            // Best effort: a refusal (a sandbox) only keeps the old limit.
            let _ = setrlimit(
                Resource::Nofile,
                Rlimit {
                    current: limit.maximum,
                    maximum: limit.maximum,
                },
            );
        }
    });
}
