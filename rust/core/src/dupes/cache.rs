//! A file of digests computed so far, so a duplicate search over a tree that
//! is not in a library resumes without reading any file twice.
//!
//! Fixed-size records are appended after each page; the caller checkpoints
//! the length reached. Opening with a checkpointed length cuts off whatever
//! was written after it (a page whose checkpoint never committed, or a torn
//! record), so the file holds exactly the checkpointed pages: a redone page
//! appends its records once. A record applies only to a file that still has
//! the listed device, inode, size and mtime (see [`super::Finder::apply_known`]).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::finder::{Hashed, Stage};
use crate::content::Digest;
use crate::error::{Error, Result};

/// A digest known from an earlier run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Known {
    pub device: u64,
    pub inode: u64,
    pub size: u64,
    pub mtime_ns: Option<i64>,
    pub stage: Stage,
    pub digest: Digest,
}

/// device, inode, size, mtime (i64::MIN: unknown), stage, digest.
const RECORD: usize = 8 + 8 + 8 + 8 + 1 + 32;
const NO_MTIME: i64 = i64::MIN;

fn io_error(path: &Path, what: &str, err: std::io::Error) -> Error {
    Error::InvalidArgument(format!(
        "digest cache {}: cannot {what}: {err}",
        path.display()
    ))
}

/// An open digest cache file.
pub struct DigestCache {
    file: File,
    path: PathBuf,
    len: u64,
}

impl DigestCache {
    /// Open (creating) the cache at `path`, keep its first `committed` bytes
    /// (whole records) and return them.
    pub fn open(path: &Path, committed: u64) -> Result<(Self, Vec<Known>)> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| io_error(path, "open", e))?;
        let on_disk = file
            .metadata()
            .map_err(|e| io_error(path, "stat", e))?
            .len();
        // Whole records only; a file shorter than its checkpoint (lost by a
        // power cut after the checkpoint committed) keeps what it has.
        let keep = committed.min(on_disk) / RECORD as u64 * RECORD as u64;
        file.set_len(keep)
            .map_err(|e| io_error(path, "truncate", e))?;
        let mut bytes = Vec::with_capacity(keep as usize);
        file.seek(SeekFrom::Start(0))
            .and_then(|_| file.read_to_end(&mut bytes))
            .map_err(|e| io_error(path, "read", e))?;
        let known = bytes.chunks_exact(RECORD).filter_map(decode).collect();
        let cache = DigestCache {
            file,
            path: path.to_path_buf(),
            len: keep,
        };
        Ok((cache, known))
    }

    /// Append a page's digests; returns the length to checkpoint. The data
    /// reaches the OS before this returns (no fsync: a process crash keeps
    /// it, and a power cut only costs hashing it again).
    pub fn append(&mut self, hashed: &[Hashed]) -> Result<u64> {
        let mut buf = Vec::with_capacity(hashed.len() * RECORD);
        for h in hashed {
            buf.extend_from_slice(&h.device.to_le_bytes());
            buf.extend_from_slice(&h.inode.to_le_bytes());
            buf.extend_from_slice(&h.size.to_le_bytes());
            buf.extend_from_slice(&h.mtime_ns.unwrap_or(NO_MTIME).to_le_bytes());
            buf.push(match h.stage {
                Stage::Full => 1,
                Stage::Prefix => 2,
                _ => 0,
            });
            buf.extend_from_slice(&h.digest);
        }
        self.file
            .seek(SeekFrom::Start(self.len))
            .and_then(|_| self.file.write_all(&buf))
            .map_err(|e| io_error(&self.path, "write", e))?;
        self.len += buf.len() as u64;
        Ok(self.len)
    }

    /// The length written so far (what a checkpoint should record).
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

fn u64_at(record: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&record[at..at + 8]);
    u64::from_le_bytes(b)
}

fn decode(record: &[u8]) -> Option<Known> {
    let stage = match record[32] {
        0 => Stage::Partial,
        1 => Stage::Full,
        2 => Stage::Prefix,
        _ => return None,
    };
    let mtime = u64_at(record, 24) as i64;
    let mut digest = [0u8; 32];
    digest.copy_from_slice(&record[33..RECORD]);
    Some(Known {
        device: u64_at(record, 0),
        inode: u64_at(record, 8),
        size: u64_at(record, 16),
        mtime_ns: (mtime != NO_MTIME).then_some(mtime),
        stage,
        digest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hashed(inode: u64, stage: Stage) -> Hashed {
        Hashed {
            device: 7,
            inode,
            size: 100 + inode,
            mtime_ns: if inode.is_multiple_of(2) {
                Some(-5)
            } else {
                None
            },
            entry_ids: Vec::new(),
            stage,
            digest: [inode as u8; 32],
        }
    }

    #[test]
    fn records_round_trip_and_uncommitted_tail_is_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cache");
        let (mut cache, known) = DigestCache::open(&path, 0).expect("open");
        assert!(known.is_empty());
        let first = cache
            .append(&[hashed(1, Stage::Partial), hashed(2, Stage::Full)])
            .expect("append");
        // Written but never checkpointed, plus a torn record.
        cache.append(&[hashed(3, Stage::Partial)]).expect("append");
        drop(cache);
        let mut f = OpenOptions::new().append(true).open(&path).expect("reopen");
        f.write_all(&[1, 2, 3]).expect("torn");
        drop(f);

        let (cache, known) = DigestCache::open(&path, first).expect("open again");
        assert_eq!(cache.len(), first);
        assert_eq!(known.len(), 2);
        assert_eq!(known[0].inode, 1);
        assert_eq!(known[0].mtime_ns, None);
        assert_eq!(known[0].stage, Stage::Partial);
        assert_eq!(known[1].mtime_ns, Some(-5));
        assert_eq!(known[1].stage, Stage::Full);
        assert_eq!(known[1].digest, [2u8; 32]);
        assert_eq!(std::fs::metadata(&path).expect("stat").len(), first);
    }
}
