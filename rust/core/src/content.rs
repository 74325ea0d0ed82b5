//! Content identity (cas_id) and full-content checksums, one file or many.
//!
//! cas_id is compatible with Spacedrive's: BLAKE3 over the size (u64 LE), then
//! the whole file if it is at most 100 KiB, else an 8 KiB header, four 10 KiB
//! samples at `8192 + i * ((size - 16384) / 4)` and the 8 KiB footer; the id is
//! the first 16 hex digits. Empty files have none. A file whose size changes
//! while it is read is reported, never hashed half-old, half-new.

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;

use rayon::prelude::*;

use crate::cancel::CancelToken;
use crate::error::{Error, FsError, Result};
use crate::sys::{self, Meta};

pub const SMALL_FILE_MAX: u64 = 100 * 1024;
const HEADER: u64 = 8 * 1024;
const SAMPLE: u64 = 10 * 1024;
const SAMPLES: u64 = 4;
/// Read size for full checksums: large enough for BLAKE3's SIMD paths.
const STREAM_BUFFER: usize = 256 * 1024;

pub type Digest = [u8; 32];

thread_local! {
    // One reusable buffer per thread: small files are read whole, and a fresh
    // allocation per file would cost more than the read itself.
    static BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// The 16-hex-digit content id for a digest.
pub fn cas_id_hex(digest: &Digest) -> String {
    hex(&digest[..8])
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

fn changed(path: &[u8], detail: String) -> FsError {
    FsError::other(path, 0, format!("file changed while being read: {detail}"))
}

/// Offsets and lengths cas_id reads from a file of `size` bytes (> 100 KiB).
pub fn sample_ranges(size: u64) -> [(u64, u64); 6] {
    let jump = (size - 2 * HEADER) / SAMPLES;
    [
        (0, HEADER),
        (HEADER, SAMPLE),
        (HEADER + jump, SAMPLE),
        (HEADER + 2 * jump, SAMPLE),
        (HEADER + 3 * jump, SAMPLE),
        (size - HEADER, HEADER),
    ]
}

/// Read a whole small file into `buf`; the size must match `expected`.
///
/// Reads straight into a buffer of `expected + 1` bytes, so a file that is as
/// large as it claims costs one `read` call (std's `read_to_end` would grow
/// its reads from 8 KiB and take several, plus one to see the end).
///
/// The data lands at `buf[at..]`: cas_id puts the 8-byte size in front so the
/// whole message is hashed in one call (see [`PREFIX`]).
fn read_whole(
    file: &mut File,
    buf: &mut Vec<u8>,
    at: usize,
    expected: u64,
    path: &[u8],
) -> std::result::Result<(), FsError> {
    // One byte more than expected, to notice a file that grew.
    let want = expected as usize + 1;
    if buf.len() < at + want {
        buf.resize(at + want, 0);
    }
    let mut filled = 0;
    while filled < want {
        match file.read(&mut buf[at + filled..at + want]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(FsError::from_io(path, &e)),
        }
        // A regular file's read returns less than asked only at end of file,
        // so reaching exactly the expected size on a short read is the end:
        // this saves a second read per file (a fifth of the syscalls).
        if filled as u64 == expected {
            break;
        }
    }
    if filled as u64 != expected {
        return Err(changed(path, format!("size was {expected}, read {filled}")));
    }
    Ok(())
}

/// Room for cas_id's 8-byte size prefix in front of the data. BLAKE3 hashes
/// whole 1 KiB chunks in parallel (SIMD) only when it gets them in one call;
/// feeding the prefix and the data separately leaves every chunk straddling two
/// calls and hashed one at a time, about half as fast on small files.
const PREFIX: usize = 8;

/// Which digests to compute for a file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Want {
    pub cas_id: bool,
    pub checksum: bool,
}

impl Want {
    pub fn any(self) -> bool {
        self.cas_id || self.checksum
    }
}

/// Digests of one file; `None` where not wanted (and `cas` for empty files).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Hashes {
    pub cas: Option<Digest>,
    pub checksum: Option<Digest>,
}

/// Hash an open regular file whose metadata (from `fstat`) is `meta`.
///
/// Small files are read once for both digests. Large ones are sampled for the
/// cas_id with positioned reads (which leave the file offset at 0) and then
/// streamed for the checksum. `path` only labels errors.
///
/// `stop` is polled between the reads of a streamed file, so a cancel takes
/// effect within one buffer even inside a 10 GB file.
pub fn hash_file(
    file: &mut File,
    meta: &Meta,
    want: Want,
    path: &[u8],
    stop: &dyn Fn() -> bool,
) -> std::result::Result<Hashes, FsError> {
    let size = meta.size;
    let mut out = Hashes::default();
    if size == 0 && !want.checksum {
        return Ok(out); // empty files have no cas_id; nothing to read
    }
    BUFFER.with(|cell| {
        let mut buf = cell.borrow_mut();
        if size <= SMALL_FILE_MAX {
            read_whole(file, &mut buf, PREFIX, size, path)?;
            let end = PREFIX + size as usize;
            if want.cas_id && size > 0 {
                buf[..PREFIX].copy_from_slice(&size.to_le_bytes());
                out.cas = Some(*blake3::hash(&buf[..end]).as_bytes());
            }
            if want.checksum {
                out.checksum = Some(*blake3::hash(&buf[PREFIX..end]).as_bytes());
            }
            return Ok(());
        }
        if want.cas_id {
            out.cas = Some(sample_digest(file, meta, &mut buf, path)?);
        }
        if want.checksum {
            out.checksum = Some(stream_digest(file, meta, &mut buf, path, stop)?);
        }
        Ok(())
    })?;
    Ok(out)
}

/// BLAKE3 of a file's first `len` bytes (the duplicate search's prefix
/// stage). The file must be at least `len` bytes long.
pub fn prefix_digest(file: &File, len: u64, path: &[u8]) -> std::result::Result<Digest, FsError> {
    BUFFER.with(|cell| {
        let mut buf = cell.borrow_mut();
        let len = len as usize;
        if buf.len() < len {
            buf.resize(len, 0);
        }
        file.read_exact_at(&mut buf[..len], 0).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                changed(path, format!("shorter than {len} bytes"))
            } else {
                FsError::from_io(path, &e)
            }
        })?;
        Ok(*blake3::hash(&buf[..len]).as_bytes())
    })
}

/// cas_id digest of a file over 100 KiB: size, header, 4 samples, footer,
/// gathered into one buffer and hashed in one call (see [`PREFIX`]).
fn sample_digest(
    file: &File,
    meta: &Meta,
    buf: &mut Vec<u8>,
    path: &[u8],
) -> std::result::Result<Digest, FsError> {
    let size = meta.size;
    let total = PREFIX + (2 * HEADER + SAMPLES * SAMPLE) as usize;
    if buf.len() < total {
        buf.resize(total, 0);
    }
    buf[..PREFIX].copy_from_slice(&size.to_le_bytes());
    let mut at = PREFIX;
    for (offset, len) in sample_ranges(size) {
        let chunk = &mut buf[at..at + len as usize];
        file.read_exact_at(chunk, offset)
            .map_err(|e| match e.kind() {
                io::ErrorKind::UnexpectedEof => changed(path, format!("shorter than {size} bytes")),
                _ => FsError::from_io(path, &e),
            })?;
        at += len as usize;
    }
    let after = rustix::fs::fstat(file).map_err(|e| FsError::from_errno(path, e))?;
    let after = Meta::from_stat(&after);
    if after.size != size || after.mtime_ns != meta.mtime_ns {
        return Err(changed(path, format!("size {size} -> {}", after.size)));
    }
    Ok(*blake3::hash(&buf[..at]).as_bytes())
}

/// BLAKE3 of a whole file from its current offset, in fixed-size reads.
fn stream_digest(
    file: &mut File,
    meta: &Meta,
    buf: &mut Vec<u8>,
    path: &[u8],
    stop: &dyn Fn() -> bool,
) -> std::result::Result<Digest, FsError> {
    let size = meta.size;
    if buf.len() < STREAM_BUFFER {
        buf.resize(STREAM_BUFFER, 0);
    }
    let mut hasher = blake3::Hasher::new();
    let mut total: u64 = 0;
    loop {
        if stop() {
            return Err(FsError::other(path, 0, "cancelled"));
        }
        let n = match file.read(&mut buf[..STREAM_BUFFER]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(FsError::from_io(path, &e)),
        };
        total += n as u64;
        if total > size {
            break;
        }
        hasher.update(&buf[..n]);
    }
    if total != size {
        return Err(changed(path, format!("size was {size}, read {total}")));
    }
    // A same-size rewrite during a long read shows in mtime/ctime only.
    let after =
        Meta::from_stat(&rustix::fs::fstat(&*file).map_err(|e| FsError::from_errno(path, e))?);
    if after.size != size || after.mtime_ns != meta.mtime_ns || after.ctime_ns != meta.ctime_ns {
        return Err(changed(path, "modified during the read".into()));
    }
    Ok(*hasher.finalize().as_bytes())
}

/// Open `path` (regular files only) and compute the wanted digests.
pub fn hash_path(
    path: &[u8],
    want: Want,
    stop: &dyn Fn() -> bool,
) -> std::result::Result<Hashes, FsError> {
    let (mut file, meta) = sys::open_regular(path).map_err(|e| FsError::from_io(path, &e))?;
    hash_file(&mut file, &meta, want, path, stop)
}

/// Like [`hash_path`], for a file listed earlier as `expected` (device,
/// inode): refuses symlinks and files replaced since (see [`sys::open_listed`]).
pub fn hash_listed(
    path: &[u8],
    expected: (u64, u64),
    want: Want,
    stop: &dyn Fn() -> bool,
) -> std::result::Result<Hashes, FsError> {
    let (mut file, meta) =
        sys::open_listed(path, expected).map_err(|e| FsError::from_io(path, &e))?;
    hash_file(&mut file, &meta, want, path, stop)
}

/// The full cas_id digest of a path: `Ok(None)` for an empty file.
pub fn cas_digest(path: &[u8]) -> std::result::Result<Option<Digest>, FsError> {
    Ok(hash_path(path, CAS_ONLY, &never)?.cas)
}

/// Want only the cas_id.
pub const CAS_ONLY: Want = Want {
    cas_id: true,
    checksum: false,
};
/// Want only the full checksum.
pub const CHECKSUM_ONLY: Want = Want {
    cas_id: false,
    checksum: true,
};

/// A stop predicate for calls that cannot be cancelled.
pub fn never() -> bool {
    false
}

/// The content id of a path: `Ok(None)` for an empty file.
pub fn cas_id(path: &[u8]) -> std::result::Result<Option<String>, FsError> {
    Ok(cas_digest(path)?.map(|d| cas_id_hex(&d)))
}

/// BLAKE3 of a file's whole content, streamed in fixed-size reads.
pub fn full_digest(path: &[u8]) -> std::result::Result<Digest, FsError> {
    checksum_digest(hash_path(path, CHECKSUM_ONLY, &never)?, path)
}

fn checksum_digest(hashes: Hashes, path: &[u8]) -> std::result::Result<Digest, FsError> {
    hashes
        .checksum
        .ok_or_else(|| FsError::other(path, 0, "no checksum computed"))
}

/// Full checksum as 64 hex digits.
pub fn checksum(path: &[u8]) -> std::result::Result<String, FsError> {
    Ok(hex(&full_digest(path)?))
}

pub use crate::pool::in_pool;

/// Apply a per-path function to many paths in parallel, in input order.
/// Stops early (returning [`Error::Cancelled`]) once `cancel` is set.
pub fn map_paths<T: Send>(
    paths: &[Vec<u8>],
    threads: Option<usize>,
    cancel: &CancelToken,
    f: impl Fn(&[u8]) -> std::result::Result<T, FsError> + Sync + Send,
) -> Result<Vec<std::result::Result<T, FsError>>> {
    map_items(paths, threads, cancel, || (), |_, path| f(path))
}

/// Apply `f` to many items in parallel, in input order (see [`map_paths`]),
/// on the reading pool ([`crate::pool`]: `threads` workers, or the default
/// pool sized for storage latency). Each run of items handed to a worker gets
/// one state from `init` (e.g. a [`sys::ParentCache`]), which `f` may keep
/// things in from item to item.
pub fn map_items<I: Sync, S, T: Send>(
    items: &[I],
    threads: Option<usize>,
    cancel: &CancelToken,
    init: impl Fn() -> S + Sync + Send,
    f: impl Fn(&mut S, &I) -> std::result::Result<T, FsError> + Sync + Send,
) -> Result<Vec<std::result::Result<T, FsError>>> {
    // Small files cost ~10 µs each: hand them out in runs so the
    // scheduling overhead stays small (and a run's state is reused).
    let results = crate::pool::in_reading_pool(threads, || map_runs(items, 16, cancel, init, f))?;
    cancelled_or(results, cancel)
}

/// [`map_items`] with runs of at least `run` items per worker (1 for items
/// that each take long, such as large files), on `threads` workers or one per
/// core: for work that writes (copies), where more threads than cores gain
/// nothing.
pub fn map_items_in_runs<I: Sync, S, T: Send>(
    items: &[I],
    run: usize,
    threads: Option<usize>,
    cancel: &CancelToken,
    init: impl Fn() -> S + Sync + Send,
    f: impl Fn(&mut S, &I) -> std::result::Result<T, FsError> + Sync + Send,
) -> Result<Vec<std::result::Result<T, FsError>>> {
    let results = in_pool(threads, || map_runs(items, run, cancel, init, f))?;
    cancelled_or(results, cancel)
}

fn map_runs<I: Sync, S, T: Send>(
    items: &[I],
    run: usize,
    cancel: &CancelToken,
    init: impl Fn() -> S + Sync + Send,
    f: impl Fn(&mut S, &I) -> std::result::Result<T, FsError> + Sync + Send,
) -> Vec<std::result::Result<T, FsError>> {
    items
        .par_iter()
        .with_min_len(run.max(1))
        .map_init(&init, |state, item| {
            if cancel.is_cancelled() {
                return Err(FsError::other(b"", 0, "cancelled"));
            }
            f(state, item)
        })
        .collect()
}

fn cancelled_or<T>(results: T, cancel: &CancelToken) -> Result<T> {
    if cancel.is_cancelled() {
        return Err(Error::Cancelled);
    }
    Ok(results)
}

pub type HashResults<T> = Vec<std::result::Result<T, FsError>>;

/// Content ids of many files, in parallel, in input order.
pub fn cas_ids(
    paths: &[Vec<u8>],
    threads: Option<usize>,
    cancel: &CancelToken,
) -> Result<HashResults<Option<String>>> {
    map_paths(paths, threads, cancel, |path| {
        let hashes = hash_path(path, CAS_ONLY, &|| cancel.is_cancelled())?;
        Ok(hashes.cas.as_ref().map(cas_id_hex))
    })
}

/// Full checksums of many files, in parallel, in input order.
pub fn checksums(
    paths: &[Vec<u8>],
    threads: Option<usize>,
    cancel: &CancelToken,
) -> Result<HashResults<String>> {
    map_paths(paths, threads, cancel, |path| {
        let hashes = hash_path(path, CHECKSUM_ONLY, &|| cancel.is_cancelled())?;
        Ok(hex(&checksum_digest(hashes, path)?))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::ffi::OsStrExt;

    fn write(dir: &tempfile::TempDir, name: &str, data: &[u8]) -> Vec<u8> {
        let path = dir.path().join(name);
        let mut f = File::create(&path).unwrap();
        f.write_all(data).unwrap();
        path.as_os_str().as_bytes().to_vec()
    }

    fn reference(data: &[u8]) -> String {
        let size = data.len() as u64;
        let mut h = blake3::Hasher::new();
        h.update(&size.to_le_bytes());
        if size <= SMALL_FILE_MAX {
            h.update(data);
        } else {
            for (off, len) in sample_ranges(size) {
                h.update(&data[off as usize..(off + len) as usize]);
            }
        }
        h.finalize().to_hex()[..16].to_string()
    }

    #[test]
    fn cas_id_matches_definition_at_boundaries() {
        let dir = tempfile::tempdir().unwrap();
        for size in [
            1usize,
            16 * 1024,
            100 * 1024,
            100 * 1024 + 1,
            1 << 20,
            3_000_017,
        ] {
            let data: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
            let path = write(&dir, &format!("f{size}"), &data);
            assert_eq!(
                cas_id(&path).unwrap(),
                Some(reference(&data)),
                "size {size}"
            );
            assert_eq!(
                checksum(&path).unwrap(),
                blake3::hash(&data).to_hex().to_string()
            );
        }
    }

    #[test]
    fn empty_file_has_no_cas_id_but_a_checksum() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "empty", b"");
        assert_eq!(cas_id(&path).unwrap(), None);
        assert_eq!(
            checksum(&path).unwrap(),
            blake3::hash(b"").to_hex().to_string()
        );
    }

    #[test]
    fn directories_and_missing_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().as_os_str().as_bytes().to_vec();
        assert_eq!(
            cas_id(&d).unwrap_err().errno,
            rustix::io::Errno::ISDIR.raw_os_error()
        );
        let missing = [d.clone(), b"/nope".to_vec()].concat();
        assert_eq!(
            cas_id(&missing).unwrap_err().errno,
            rustix::io::Errno::NOENT.raw_os_error()
        );
    }

    #[test]
    fn batch_keeps_order_and_reports_per_file() {
        let dir = tempfile::tempdir().unwrap();
        let a = write(&dir, "a", b"hello");
        let b = [dir.path().as_os_str().as_bytes(), b"/missing"].concat();
        let out = cas_ids(&[a.clone(), b, a], Some(2), &CancelToken::new()).unwrap();
        assert_eq!(out[0].as_ref().unwrap(), &Some(reference(b"hello")));
        assert!(out[1].is_err());
        assert_eq!(out[0], out[2]);
    }

    #[test]
    fn cancelled_batch_fails() {
        let cancel = CancelToken::new();
        cancel.cancel();
        assert!(matches!(
            cas_ids(&[b"/".to_vec()], None, &cancel),
            Err(Error::Cancelled)
        ));
    }
}
