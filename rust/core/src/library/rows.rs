//! What a walked entry becomes as a row of `entries`, before any SQL: its
//! parent and name, its extension, the digests the walk computed, stat
//! fields as signed 64-bit integers, and whether a stored row differs from
//! it. Pure functions, shared by a store's batch writers
//! (`sqlite/fresh.rs`, `sqlite/rescan.rs`) and the scan's bookkeeping
//! (`book.rs`).

use std::ops::Range;

use crate::sys::Kind;
use crate::walk::Batch;

/// Entry `i` of a walker batch, as the columns of its row (borrowed from
/// the batch): everything but its id and parent.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Walked<'a> {
    /// Relative to the location's root.
    pub path: &'a [u8],
    pub name: &'a [u8],
    pub kind: u8,
    pub size: i64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub inode: i64,
    pub device: i64,
    pub mode: u32,
    nlink: u64,
    /// What the walk computed (see [`digests`]).
    pub cas_id: Option<&'a str>,
    pub checksum: Option<&'a str>,
}

impl<'a> Walked<'a> {
    /// Entry `i` of `batch`, whose path relative to the root is `rel`.
    pub(crate) fn new(batch: &'a Batch, i: usize, rel: &'a [u8]) -> Self {
        let (cas_id, checksum) = digests(batch, i);
        Walked {
            path: rel,
            name: split_name(rel).1,
            kind: batch.kinds[i],
            size: signed(batch.sizes[i]),
            mtime_ns: batch.mtimes_ns[i],
            ctime_ns: batch.ctimes_ns[i],
            inode: signed(batch.inodes[i]),
            device: signed(batch.devices[i]),
            mode: batch.modes[i],
            nlink: batch.nlinks[i],
            cas_id,
            checksum,
        }
    }

    /// The extension column (see [`extension`]).
    pub(crate) fn extension(&self) -> Option<String> {
        extension(self.name, self.kind)
    }

    /// The walk hashed it.
    pub(crate) fn hashed(&self) -> bool {
        self.cas_id.is_some() || self.checksum.is_some()
    }

    /// (device, inode) of a regular file with more than one name (nlink > 1
    /// when walked), which aggregation counts once (see `aggregate.rs`).
    pub(crate) fn link(&self) -> Option<(i64, i64)> {
        (self.nlink > 1).then_some((self.device, self.inode))
    }
}

/// A row of a fresh scan: a walked entry with the id and parent assigned
/// (see `ScanBook::fresh_rows`), and its extension.
#[derive(Debug)]
pub(crate) struct NewRow<'a> {
    pub id: i64,
    pub parent: i64,
    pub extension: Option<String>,
    pub entry: Walked<'a>,
}

/// A stored row, as far as change detection needs it.
#[derive(Clone, Debug)]
pub(crate) struct Known {
    pub name: Vec<u8>,
    pub id: i64,
    pub kind: u8,
    pub size: i64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub inode: i64,
    pub device: i64,
    pub mode: u32,
}

/// How a walked entry differs from its stored row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Change {
    /// Nothing to write: the cheap case of re-indexing an unchanged tree.
    Unchanged,
    /// Same content (kind, size, mtime, inode and device), but the ctime or
    /// permissions differ: rewritten, keeping the stored digests.
    Touched,
    /// The content may differ: rewritten with the walk's digests (none
    /// unless it hashed), so the content step hashes it again.
    Modified,
}

impl Change {
    /// Compare at the precision stored.
    pub(crate) fn of(known: &Known, walked: &Walked<'_>) -> Change {
        let same_content = known.kind == walked.kind
            && known.size == walked.size
            && known.mtime_ns == walked.mtime_ns
            && known.inode == walked.inode
            && known.device == walked.device;
        if !same_content {
            Change::Modified
        } else if known.ctime_ns == walked.ctime_ns && known.mode == walked.mode {
            Change::Unchanged
        } else {
            Change::Touched
        }
    }
}

/// The runs of consecutive entries in one directory, given each entry's
/// relative path (None outside the root): each run's range and its
/// directory (None for a run outside the root; Some(None) at the top). A
/// walker batch holds whole runs of a directory's entries, so a store reads
/// the stored rows of a directory once per run.
pub(crate) fn dir_runs<'r, 'a>(
    rels: &'r [Option<&'a [u8]>],
) -> impl Iterator<Item = (Range<usize>, Option<Option<&'a [u8]>>)> + 'r {
    let parent_of = |i: usize| rels[i].map(|rel| split_name(rel).0);
    let mut start = 0;
    std::iter::from_fn(move || {
        if start >= rels.len() {
            return None;
        }
        let dir = parent_of(start);
        let end = (start + 1..rels.len())
            .find(|&j| parent_of(j) != dir)
            .unwrap_or(rels.len());
        let run = start..end;
        start = end;
        Some((run, dir))
    })
}

/// u64 stat fields are stored as SQLite's signed 64-bit integers, bit for bit.
pub(crate) fn signed(v: u64) -> i64 {
    v as i64
}

/// The cas_id and checksum the walk computed for entry `i` of `batch` (none
/// when it did not hash). An empty file has neither, however it is indexed
/// (the walker's hashing gives it a checksum; `hash_missing` never looks at
/// it), so a fresh deep index and a shallow one switched to deep agree.
pub(crate) fn digests(batch: &Batch, i: usize) -> (Option<&str>, Option<&str>) {
    if batch.sizes[i] == 0 {
        return (None, None);
    }
    let cas = batch.cas_ids.get(i).and_then(|c| c.as_deref());
    let sum = batch.checksums.get(i).and_then(|c| c.as_deref());
    (cas, sum)
}

/// A relative path's parent (None at the top) and last component.
pub(crate) fn split_name(rel: &[u8]) -> (Option<&[u8]>, &[u8]) {
    match rel.iter().rposition(|&b| b == b'/') {
        Some(cut) => (Some(&rel[..cut]), &rel[cut + 1..]),
        None => (None, rel),
    }
}

/// Lower-case extension of a file's name; none for other kinds, dot-files
/// and names without a dot.
pub(crate) fn extension(name: &[u8], kind: u8) -> Option<String> {
    if kind != Kind::File as u8 {
        return None;
    }
    match name.iter().rposition(|&b| b == b'.') {
        Some(dot) if dot > 0 && dot + 1 < name.len() => {
            Some(String::from_utf8_lossy(&name[dot + 1..]).to_lowercase())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::{dir_runs, extension, split_name};

    #[test]
    fn names_and_extensions() {
        assert_eq!(
            split_name(b"a/b/IMG.JPG"),
            (Some(&b"a/b"[..]), &b"IMG.JPG"[..])
        );
        assert_eq!(split_name(b"top"), (None, &b"top"[..]));
        assert_eq!(extension(b"IMG.JPG", 0), Some("jpg".into()));
        assert_eq!(extension(b".bashrc", 0), None);
        assert_eq!(extension(b"noext", 0), None);
        assert_eq!(extension(b"dir.d", 1), None);
        assert_eq!(extension(b"trail.", 0), None);
    }

    #[test]
    fn runs_of_one_directory() {
        let rels: [Option<&[u8]>; 6] = [
            Some(b"a"),
            Some(b"b"),
            Some(b"a/x"),
            Some(b"a/y"),
            None,
            Some(b"c/z"),
        ];
        let runs: Vec<_> = dir_runs(&rels).collect();
        assert_eq!(
            runs,
            vec![
                (0..2, Some(None)),
                (2..4, Some(Some(&b"a"[..]))),
                (4..5, None),
                (5..6, Some(Some(&b"c"[..]))),
            ]
        );
    }
}
