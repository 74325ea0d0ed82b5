//! Validation's checks: what is wrong with one indexed entry compared with
//! the disk now (its name, an `lstat` against the stored metadata, and in
//! `integrity`/`complete` mode its content), and pages of entries checked in
//! parallel. No storage here: `page.rs` reads the entries and records the
//! issues through the library's store.

use std::ffi::{CStr, CString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};

use rayon::prelude::*;

use crate::cancel::CancelToken;
use crate::content::{cas_id_hex, hash_file, hex, Want, SMALL_FILE_MAX};
use crate::error::{Error, FsError, Result};
use crate::library::model::Stored;
use crate::sys::{self, Kind, Meta};
use crate::walk::join;

/// A name longer than this many bytes is reported: the most eCryptfs (an
/// encrypted home directory) and several sync tools accept; ext4's 255 is
/// the hard limit, so longer names cannot exist at all.
pub const NAME_MAX_PORTABLE: usize = 143;
/// An absolute path longer than this (PATH_MAX less its NUL) is reported:
/// most tools cannot open it in one piece.
pub const PATH_MAX_BYTES: usize = 4095;
/// More levels than this below the location's root are reported.
pub const DEPTH_MAX: usize = 32;
/// Bytes a cas_id reads from a file over 100 KiB (two 8 KiB ends, four 10 KiB samples).
const SAMPLED_BYTES: u64 = 56 * 1024;

/// What is wrong with an entry. Names are stable (stored, and shown).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Category {
    /// The path no longer exists (or a directory above it is gone).
    Missing,
    /// It exists but cannot be stat'ed or read (permissions, I/O error).
    Unreadable,
    /// A file is now a directory, a symlink, ... or the other way round.
    KindChanged,
    /// A file indexed with content is now empty (reported instead of SizeChanged).
    Empty,
    SizeChanged,
    /// The mtime differs (or the file changed while being validated).
    Modified,
    /// Permission bits (including setuid, setgid, sticky) differ.
    PermissionsChanged,
    /// Another file (inode) now has the name.
    Replaced,
    /// Same size and mtime, different content: silent corruption.
    ContentChanged,
    /// Not UTF-8, a control character (newline, tab), a leading or trailing
    /// space, or a leading '-'.
    ProblematicName,
    NameTooLong,
    PathTooDeep,
    PathTooLong,
}

impl Category {
    pub const ALL: [Category; 13] = [
        Category::Missing,
        Category::Unreadable,
        Category::KindChanged,
        Category::Empty,
        Category::SizeChanged,
        Category::Modified,
        Category::PermissionsChanged,
        Category::Replaced,
        Category::ContentChanged,
        Category::ProblematicName,
        Category::NameTooLong,
        Category::PathTooDeep,
        Category::PathTooLong,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Missing => "missing",
            Category::Unreadable => "unreadable",
            Category::KindChanged => "kind_changed",
            Category::Empty => "empty",
            Category::SizeChanged => "size_changed",
            Category::Modified => "modified",
            Category::PermissionsChanged => "permissions_changed",
            Category::Replaced => "replaced",
            Category::ContentChanged => "content_changed",
            Category::ProblematicName => "problematic_name",
            Category::NameTooLong => "name_too_long",
            Category::PathTooDeep => "path_too_deep",
            Category::PathTooLong => "path_too_long",
        }
    }
}

/// How far validation looks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValidateMode {
    /// Metadata only: exists, kind, size, mtime, permissions.
    Basic,
    /// Plus the cas_id of files whose size and mtime are unchanged.
    Integrity,
    /// Plus the full checksum (stored where the index has none).
    Complete,
}

impl ValidateMode {
    pub fn parse(text: &str) -> Result<Self> {
        match text {
            "basic" => Ok(ValidateMode::Basic),
            "integrity" => Ok(ValidateMode::Integrity),
            "complete" => Ok(ValidateMode::Complete),
            other => Err(Error::InvalidArgument(format!(
                "validation mode must be basic, integrity or complete, not {other:?}"
            ))),
        }
    }
}

/// What checking one entry found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Checked {
    pub issues: Vec<(Category, String)>,
    /// The file's content was read, `bytes` of it.
    pub hashed: bool,
    pub bytes: u64,
    /// A checksum to store (complete mode, the index had none).
    pub store_checksum: Option<String>,
    /// A file whose content could not be compared: the index has no cas_id.
    pub unverified: bool,
}

/// What one [`super::validate_page`] call did.
#[derive(Debug, Default)]
pub struct ValidatePass {
    /// The highest entry id looked at: pass it as `after_id` next time.
    pub last_id: i64,
    pub looked_at: u64,
    /// Files whose content was read, and the bytes read.
    pub hashed: u64,
    pub bytes: u64,
    /// Checksums stored (complete mode).
    pub stored: u64,
    /// Files with no cas_id to compare with (a shallow index).
    pub unverified: u64,
    /// Issues found on this page, by category (indexed like [`Category::ALL`]).
    pub found: [u64; Category::ALL.len()],
}

fn kind_name(kind: u8) -> &'static str {
    match kind {
        0 => "file",
        1 => "directory",
        2 => "symlink",
        _ => "special file",
    }
}

/// Nanoseconds as `seconds.nanoseconds` (exact; floor division for times
/// before 1970), the way the Python side prints them too.
pub fn format_ns(ns: i64) -> String {
    format!(
        "{}.{:09}",
        ns.div_euclid(1_000_000_000),
        ns.rem_euclid(1_000_000_000)
    )
}

/// The name checks: they depend on the stored path only. `rel` is relative
/// to the root, `abs_len` the length of the absolute path.
pub fn name_issues(rel: &[u8], abs_len: usize) -> Vec<(Category, String)> {
    let mut out = Vec::new();
    let name = rel.rsplit(|&b| b == b'/').next().unwrap_or(rel);
    let mut why: Vec<String> = Vec::new();
    if std::str::from_utf8(name).is_err() {
        why.push("not valid UTF-8".into());
    }
    if name.contains(&b'\n') {
        why.push("contains a newline".into());
    }
    if let Some(c) = name
        .iter()
        .find(|&&b| (b < 0x20 && b != b'\n') || b == 0x7f)
    {
        why.push(format!("contains the control character 0x{c:02x}"));
    }
    if name.first() == Some(&b' ') {
        why.push("starts with a space".into());
    }
    if name.len() > 1 && name.last() == Some(&b' ') {
        why.push("ends with a space".into());
    }
    if name.first() == Some(&b'-') {
        why.push("starts with '-' (read as an option by command-line tools)".into());
    }
    if !why.is_empty() {
        out.push((Category::ProblematicName, why.join("; ")));
    }
    if name.len() > NAME_MAX_PORTABLE {
        out.push((
            Category::NameTooLong,
            format!("name is {} bytes (over {NAME_MAX_PORTABLE})", name.len()),
        ));
    }
    let depth = rel.split(|&b| b == b'/').filter(|p| !p.is_empty()).count();
    if depth > DEPTH_MAX {
        out.push((
            Category::PathTooDeep,
            format!("{depth} levels below the location (over {DEPTH_MAX})"),
        ));
    }
    if abs_len > PATH_MAX_BYTES {
        out.push((
            Category::PathTooLong,
            format!("path is {abs_len} bytes (over {PATH_MAX_BYTES})"),
        ));
    }
    out
}

fn is_gone(errno: i32) -> bool {
    errno == rustix::io::Errno::NOENT.raw_os_error()
        || errno == rustix::io::Errno::NOTDIR.raw_os_error()
}

/// Run `f` on `path`'s last component relative to `dir`, its directory
/// opened already, or else resolve `path` itself.
fn in_dir<T>(
    path: &[u8],
    dir: Option<BorrowedFd<'_>>,
    f: impl FnOnce(BorrowedFd<'_>, &CStr) -> io::Result<T>,
) -> io::Result<T> {
    match dir {
        Some(dir) => {
            let name = path.rsplit(|&b| b == b'/').next().unwrap_or(path);
            let name =
                CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
            f(dir, &name)
        }
        None => sys::with_parent(path, f),
    }
}

/// Entries checked per opened directory: long runs of one directory are
/// split so the threads share them.
const PER_DIRECTORY_OPEN: usize = 64;

/// Runs of consecutive rows (id order: walk order) in one directory, at
/// most [`PER_DIRECTORY_OPEN`] long.
fn directory_runs(rows: &[Stored]) -> Vec<std::ops::Range<usize>> {
    fn parent(rel: &[u8]) -> &[u8] {
        rel.iter()
            .rposition(|&b| b == b'/')
            .map_or(&rel[..0], |cut| &rel[..cut])
    }
    let mut runs = Vec::new();
    let mut start = 0;
    for i in 1..=rows.len() {
        if i == rows.len()
            || i - start == PER_DIRECTORY_OPEN
            || parent(&rows[i].path) != parent(&rows[start].path)
        {
            runs.push(start..i);
            start = i;
        }
    }
    runs
}

/// Check one entry of the location rooted at `root`. `stop` is polled while
/// a large file is read.
pub fn check_entry(
    root: &[u8],
    dir: Option<BorrowedFd<'_>>,
    e: &Stored,
    mode: ValidateMode,
    stop: &dyn Fn() -> bool,
) -> Checked {
    let abs = join(root, &e.path);
    let mut out = Checked {
        issues: name_issues(&e.path, abs.len()),
        ..Checked::default()
    };
    // A file whose content will be compared is `lstat`ed, opened only if it
    // is still a regular file (a FIFO or device is never opened: docs/ARCHITECTURE.md,
    // invariant 4; opening a FIFO would wake its writer), without following
    // a symlink, and `fstat`ed: the metadata compared is that of the very
    // file read, so nothing can be swapped in between. Anything else is
    // only `lstat`ed.
    let mut opened = None;
    let mut open_error = None;
    let stat = if mode != ValidateMode::Basic && e.kind == Kind::File as u8 {
        match in_dir(&abs, dir, |dir, name| {
            let before = sys::stat_at(dir, name, false)?;
            if before.kind != Kind::File {
                return Ok((before, None));
            }
            Ok(match sys::open_file_at(dir, name) {
                Ok((file, meta)) => (meta, Some(Ok(file))),
                Err(err) => (before, Some(Err(err))),
            })
        }) {
            Ok((meta, Some(Ok(file)))) => {
                if meta.kind == Kind::File {
                    opened = Some(file);
                }
                Ok(meta)
            }
            Ok((meta, Some(Err(err)))) => {
                let fs = FsError::from_io(&abs, &err);
                if is_gone(fs.errno) {
                    Err(err)
                } else {
                    // ELOOP: a symlink by now. Otherwise (EACCES, EIO) the
                    // metadata is still compared.
                    if fs.errno != rustix::io::Errno::LOOP.raw_os_error() {
                        open_error = Some(fs);
                    }
                    Ok(meta)
                }
            }
            Ok((meta, None)) => Ok(meta),
            Err(err) => Err(err),
        }
    } else {
        in_dir(&abs, dir, |dir, name| sys::stat_at(dir, name, false))
    };
    let now = match stat {
        Ok(meta) => meta,
        Err(err) => {
            let fs = FsError::from_io(&abs, &err);
            let category = if is_gone(fs.errno) {
                Category::Missing
            } else {
                Category::Unreadable
            };
            out.issues.push((category, fs.message));
            return out;
        }
    };
    if now.kind as u8 != e.kind {
        out.issues.push((
            Category::KindChanged,
            format!(
                "was a {}, now a {}",
                kind_name(e.kind),
                kind_name(now.kind as u8)
            ),
        ));
        return out;
    }
    let (was, is) = (e.mode & 0o7777, now.mode & 0o7777);
    if was != is {
        out.issues.push((
            Category::PermissionsChanged,
            format!("mode {was:04o} -> {is:04o}"),
        ));
    }
    if !matches!(now.kind, Kind::File | Kind::Symlink) {
        // A directory's size and mtime change with its children; a FIFO or
        // device has no content of its own to compare.
        return out;
    }
    let size_same = now.size as i64 == e.size;
    if !size_same {
        if now.kind == Kind::File && now.size == 0 && e.size > 0 {
            out.issues
                .push((Category::Empty, format!("was {} bytes, now empty", e.size)));
        } else {
            out.issues.push((
                Category::SizeChanged,
                format!("size {} -> {} bytes", e.size, now.size),
            ));
        }
    }
    let mtime_same = now.mtime_ns == e.mtime_ns;
    if !mtime_same {
        out.issues.push((
            Category::Modified,
            format!(
                "mtime {} -> {}",
                format_ns(e.mtime_ns),
                format_ns(now.mtime_ns)
            ),
        ));
    }
    if now.inode as i64 != e.inode {
        out.issues.push((
            Category::Replaced,
            format!("inode {} -> {}", e.inode as u64, now.inode),
        ));
    }
    if mode != ValidateMode::Basic && now.kind == Kind::File && size_same && mtime_same {
        let file = match (opened, open_error) {
            (Some(file), _) => Ok(file),
            (None, Some(err)) => Err(err),
            // Not a file when opened, a file when stat'ed: it is changing.
            (None, None) => Err(FsError::other(&abs, 0, "changed while being validated")),
        };
        check_content(&abs, e, file, &now, mode, stop, &mut out);
    }
    out
}

/// Recompute what the index has for a file whose size and mtime are as
/// indexed and compare: `file` is the file opened (or why it could not
/// be), `now` its `fstat`.
/// The issue for a file that could not be opened or read: errno 0 means it
/// changed meanwhile (between open and stat, or while read), else it is
/// unreadable.
fn read_failure(err: FsError) -> (Category, String) {
    let category = if err.errno == 0 {
        Category::Modified
    } else {
        Category::Unreadable
    };
    (category, err.message)
}

fn check_content(
    abs: &[u8],
    e: &Stored,
    file: std::result::Result<File, FsError>,
    now: &Meta,
    mode: ValidateMode,
    stop: &dyn Fn() -> bool,
    out: &mut Checked,
) {
    let want = Want {
        // Empty files have neither a cas_id nor a checksum: nothing to
        // compare, nothing to store, nothing to report.
        cas_id: e.cas_id.is_some() && now.size > 0,
        checksum: mode == ValidateMode::Complete && now.size > 0,
    };
    if !want.any() {
        out.unverified = now.size > 0;
        return;
    }
    let mut file = match file {
        Ok(file) => file,
        Err(err) => {
            out.issues.push(read_failure(err));
            return;
        }
    };
    let meta = *now;
    let hashes = match hash_file(&mut file, &meta, want, abs, stop) {
        Ok(h) => h,
        Err(err) => {
            out.issues.push(read_failure(err));
            return;
        }
    };
    out.hashed = true;
    // A full checksum (or a small file) reads everything; a sampled cas_id
    // reads the header, four samples and the footer.
    out.bytes = if want.checksum || meta.size <= SMALL_FILE_MAX {
        meta.size
    } else {
        SAMPLED_BYTES
    };
    let cas = hashes.cas.map(|d| cas_id_hex(&d));
    if let (Some(was), Some(is)) = (&e.cas_id, &cas) {
        if was != is {
            out.issues
                .push((Category::ContentChanged, format!("cas_id {was} -> {is}")));
            return;
        }
    }
    if let Some(sum) = hashes.checksum.map(|d| hex(&d)) {
        match &e.checksum {
            Some(was) if *was != sum => out
                .issues
                .push((Category::ContentChanged, format!("checksum {was} -> {sum}"))),
            Some(_) => {}
            None => out.store_checksum = Some(sum),
        }
    }
}

/// Check `rows` (consecutive, in id order) in parallel; results in order.
pub(super) fn check_rows(
    root: &[u8],
    rows: &[Stored],
    mode: ValidateMode,
    cancel: &CancelToken,
) -> Vec<Checked> {
    let stop = || cancel.is_cancelled();
    // Each run's directory is opened once and its entries are looked up
    // relative to it: one path resolution per run instead of one or two per
    // entry. A directory that cannot be opened (gone, unreadable) leaves its
    // entries to resolve their own paths, which reports why.
    let runs = directory_runs(rows);
    // Runs, not entries, are what the threads share: one task per run, so
    // a chunk ends with both threads busy.
    let per_run: Vec<Vec<Checked>> = runs
        .par_iter()
        .map(|run| {
            if cancel.is_cancelled() {
                return Vec::new();
            }
            let first = &rows[run.start].path;
            let cut = first.iter().rposition(|&b| b == b'/').unwrap_or(0);
            let dir = sys::open_dir(&join(root, &first[..cut]), true).ok();
            let dir = dir.as_ref().map(|d| d.as_fd());
            rows[run.clone()]
                .iter()
                .map(|e| check_entry(root, dir, e, mode, &stop))
                .collect()
        })
        .collect();
    per_run.into_iter().flatten().collect()
}
