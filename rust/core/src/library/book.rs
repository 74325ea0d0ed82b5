//! A scan's bookkeeping, in memory and without storage: which directories
//! it met (parents of later entries), which entries it saw (for the sweep),
//! the sums aggregation needs, the files it inserted (for move detection),
//! and its counts. A store's batch writer (`LibraryStore::upsert_batch`)
//! fills it in as it writes; `scan.rs` reads it to sweep and aggregate.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use super::aggregate::{add_file, Linked, Sums};
use super::model::{now, TOP};
use super::rows::{split_name, Change, NewRow, Walked};
use crate::error::{FsError, Result};
use crate::sys::Kind;
use crate::walk::Batch;

/// Counts of one scan, for progress and the job's summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScanStats {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub other: u64,
    pub bytes: u64,
    /// Entries inserted, less the files the sweep found moved.
    pub new: u64,
    pub modified: u64,
    pub unchanged: u64,
    /// Files found under a new path (same device, inode, size and mtime,
    /// the old path gone): counted once, here, not as new nor deleted.
    pub moved: u64,
    /// Entries removed by the sweep because they are gone from disk.
    pub deleted: u64,
    /// Files hashed while walked (a fresh scan with cas_ids or checksums).
    pub hashed: u64,
}

/// Entry ids a scan saw: a bitset indexed by id, and how many.
#[derive(Debug, Default)]
pub struct Seen {
    bits: Vec<u64>,
    count: u64,
}

impl Seen {
    fn insert(&mut self, id: i64) {
        let Ok(i) = usize::try_from(id) else { return };
        if self.bits.len() <= i / 64 {
            self.bits.resize(i / 64 + 1, 0);
        }
        let bit = 1 << (i % 64);
        if self.bits[i / 64] & bit == 0 {
            self.bits[i / 64] |= bit;
            self.count += 1;
        }
    }

    pub fn contains(&self, id: i64) -> bool {
        usize::try_from(id)
            .ok()
            .and_then(|i| self.bits.get(i / 64).map(|w| w & (1 << (i % 64)) != 0))
            .unwrap_or(false)
    }

    /// How many ids were seen.
    pub fn len(&self) -> u64 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// A stored entry the scan did not see (see `LibraryStore::unseen_entries`).
#[derive(Clone, Debug)]
pub struct Unseen {
    pub id: i64,
    /// Relative to the location's root.
    pub path: Vec<u8>,
    pub kind: u8,
    pub size: i64,
    pub mtime_ns: i64,
    pub inode: i64,
    pub device: i64,
}

/// An entry found gone from disk: deleted, or moved to the entry
/// `moved_to` (which then takes over its content).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gone {
    pub id: i64,
    pub moved_to: Option<i64>,
}

/// The bookkeeping of one scan of one location.
#[derive(Debug)]
pub struct ScanBook {
    location_id: i64,
    /// The location's root followed by `/`: what walked paths start with.
    prefix: Vec<u8>,
    started: f64,
    /// The location had no entries: every entry is new, no lookups needed.
    fresh: bool,
    /// Each write waits for the store's disk before it returns (see
    /// [`ScanBook::set_durable_steps`]).
    durable_steps: bool,
    /// The store session that committed this scan's steps not yet made
    /// durable (`LibraryStore::flush_steps`), if any: a later step or flush
    /// on another session (the server restarted meanwhile) is refused.
    pub(crate) unflushed_session: Option<u64>,
    /// Ids of directories met so far, by relative path (parents of later entries).
    dir_ids: HashMap<Vec<u8>, i64>,
    seen: Seen,
    /// What aggregation needs, gathered while writing: bytes and count of
    /// the regular files directly in each directory (files with one name),
    /// the files with several names (counted once, see [`Linked`]), and
    /// every directory as (id, parent id, path length).
    file_sums: Sums,
    linked: Linked,
    dirs: Vec<(i64, i64, i64)>,
    /// Files inserted by this scan, by (device, inode): (id, size, mtime),
    /// for move detection.
    new_files: HashMap<(i64, i64), (i64, i64, i64)>,
    pub stats: ScanStats,
}

impl ScanBook {
    /// The bookkeeping of a scan of `location_id`, rooted at `root`
    /// (absolute bytes), starting now. `fresh`: the location has no entries.
    pub(crate) fn new(location_id: i64, mut root: Vec<u8>, fresh: bool) -> Self {
        if !root.ends_with(b"/") {
            root.push(b'/');
        }
        ScanBook {
            location_id,
            prefix: root,
            started: now(),
            fresh,
            durable_steps: true,
            unflushed_session: None,
            dir_ids: HashMap::new(),
            seen: Seen::default(),
            file_sums: Sums::new(),
            linked: Linked::default(),
            dirs: Vec::new(),
            new_files: HashMap::new(),
            stats: ScanStats::default(),
        }
    }

    pub fn location_id(&self) -> i64 {
        self.location_id
    }

    /// When the scan started (unix seconds): the `indexed_at` of what it writes.
    pub fn started(&self) -> f64 {
        self.started
    }

    /// The location had no entries when the scan started: every entry of
    /// the batch is new.
    pub fn is_fresh(&self) -> bool {
        self.fresh
    }

    /// Whether each write of this scan waits for the store's disk before
    /// it returns (the default). Without: a PostgreSQL library commits a
    /// step's rows without waiting for the server to flush its log
    /// (`synchronous_commit = off` for that transaction), so the next step
    /// starts while the server writes; a crash of the server (not of this
    /// process) may then lose the last steps, whole and in order. Call
    /// `LibraryStore::flush_steps` before keeping a step's state anywhere:
    /// it makes them durable, or fails if the server lost some. A step
    /// written on a session other than the one that wrote the steps not
    /// yet flushed is refused the same way. SQLite ignores it.
    pub fn set_durable_steps(&mut self, durable: bool) {
        self.durable_steps = durable;
    }

    pub fn durable_steps(&self) -> bool {
        self.durable_steps
    }

    /// The location's root without its trailing `/` (empty for `/`).
    pub(crate) fn root(&self) -> &[u8] {
        &self.prefix[..self.prefix.len() - 1]
    }

    /// The entries this scan wrote or found.
    pub fn seen(&self) -> &Seen {
        &self.seen
    }

    /// `path` relative to the location's root (None if outside it).
    pub(crate) fn relative<'p>(&self, path: &'p [u8]) -> Option<&'p [u8]> {
        path.strip_prefix(self.prefix.as_slice())
    }

    /// The id of the directory at `rel` (relative path), from those this
    /// scan met, else found component by component with `lookup(parent id,
    /// name)`, the store's; None if it is not indexed.
    pub(crate) fn resolve_dir(
        &mut self,
        rel: &[u8],
        mut lookup: impl FnMut(i64, &[u8]) -> Result<Option<i64>>,
    ) -> Result<Option<i64>> {
        if let Some(&id) = self.dir_ids.get(rel) {
            return Ok(Some(id));
        }
        let mut parent = TOP;
        let mut end = 0;
        for part in rel.split(|&b| b == b'/') {
            end += part.len();
            let prefix = &rel[..end];
            parent = match self.dir_ids.get(prefix) {
                Some(&id) => id,
                None => match lookup(parent, part)? {
                    Some(id) => {
                        self.dir_ids.insert(prefix.to_vec(), id);
                        id
                    }
                    None => return Ok(None),
                },
            };
            end += 1; // the slash
        }
        Ok(Some(parent))
    }

    /// Count a walked entry (files, bytes, ...; hashed while walked).
    pub(crate) fn count(&mut self, entry: &Walked<'_>) {
        let s = &mut self.stats;
        match entry.kind {
            k if k == Kind::File as u8 => {
                s.files += 1;
                s.bytes += entry.size as u64;
            }
            k if k == Kind::Dir as u8 => s.dirs += 1,
            k if k == Kind::Symlink as u8 => s.symlinks += 1,
            _ => s.other += 1,
        }
        if entry.hashed() {
            // Also a file found already written (a resumed first index
            // walks again what it wrote after its last checkpoint, whose
            // count was lost with it).
            s.hashed += 1;
        }
    }

    /// A walked entry inserted as `id` by a scan of a location with entries.
    pub(crate) fn inserted(&mut self, entry: &Walked<'_>, id: i64) {
        self.stats.new += 1;
        if entry.kind == Kind::File as u8 {
            self.new_files.insert(
                (entry.device, entry.inode),
                (id, entry.size, entry.mtime_ns),
            );
        }
    }

    /// A walked entry compared with its stored row.
    pub(crate) fn compared(&mut self, change: Change) {
        match change {
            Change::Modified => self.stats.modified += 1,
            _ => self.stats.unchanged += 1,
        }
    }

    /// What the scan keeps of every entry it wrote or found (as `id`, in
    /// directory `parent`): directory ids, sums for aggregation, the seen set.
    pub(crate) fn record(&mut self, id: i64, parent: i64, entry: &Walked<'_>) {
        if entry.kind == Kind::Dir as u8 {
            self.dir_ids.insert(entry.path.to_vec(), id);
            self.dirs.push((id, parent, entry.path.len() as i64));
        } else if entry.kind == Kind::File as u8 {
            match entry.link() {
                Some(key) => self.linked.note(key, entry.path, parent, entry.size),
                None => add_file(&mut self.file_sums, parent, entry.size),
            }
        }
        self.seen.insert(id);
    }

    /// The rows of a batch written into a fresh location, ids taken from
    /// `ids` in walk order (a directory's id is known before its children's
    /// rows), each entry counted and recorded: SQLite's store hands out
    /// `next..`, PostgreSQL's the ids its connection holds (increasing, with
    /// gaps where other writers took some). Entries outside the root, or
    /// whose directory is not indexed, go to `problems`, and so would an
    /// entry left without an id (a store gives one per entry of the batch).
    pub(crate) fn fresh_rows<'b>(
        &mut self,
        batch: &'b Batch,
        mut ids: impl Iterator<Item = i64>,
        problems: &mut Vec<FsError>,
    ) -> Vec<NewRow<'b>> {
        let mut rows = Vec::with_capacity(batch.len());
        for i in 0..batch.len() {
            let path = batch.path(i);
            let Some(rel) = self.relative(path) else {
                problems.push(FsError::other(path, 0, "outside the location's root"));
                continue;
            };
            let parent = match split_name(rel).0 {
                None => TOP,
                Some(p) => match self.dir_ids.get(p) {
                    Some(&id) => id,
                    None => {
                        problems.push(FsError::other(path, 0, "its directory is not indexed"));
                        continue;
                    }
                },
            };
            let Some(id) = ids.next() else {
                problems.push(FsError::other(path, 0, "no entry id was left for it"));
                continue;
            };
            let entry = Walked::new(batch, i, rel);
            self.count(&entry);
            self.record(id, parent, &entry);
            rows.push(NewRow {
                id,
                parent,
                extension: entry.extension(),
                entry,
            });
        }
        self.stats.new += rows.len() as u64;
        rows
    }

    /// An entry of the location the scan did not see, found gone from
    /// disk: moved, if it is a file this scan inserted under another path
    /// (same device and inode, and size and mtime: an inode merely reused
    /// by a new file has another mtime), else deleted. A moved file counts
    /// once, as moved: not as deleted, and no longer as new; each new file
    /// stands for one old name at most.
    pub(crate) fn gone(&mut self, old: &Unseen) -> Gone {
        let moved_to = match self.new_files.entry((old.device, old.inode)) {
            Entry::Occupied(new)
                if old.kind == Kind::File as u8
                    && (new.get().1, new.get().2) == (old.size, old.mtime_ns) =>
            {
                Some(new.remove().0)
            }
            _ => None,
        };
        match moved_to {
            Some(_) => {
                self.stats.moved += 1;
                self.stats.new -= 1;
            }
            None => self.stats.deleted += 1,
        }
        Gone {
            id: old.id,
            moved_to,
        }
    }

    /// The sums gathered while writing, for aggregation: every directory as
    /// (id, parent id, path length), and the files' sums by directory (each
    /// file with several names once). Taken: a second call finds none.
    pub(crate) fn take_sums(&mut self) -> (Vec<(i64, i64, i64)>, Sums) {
        let dirs = std::mem::take(&mut self.dirs);
        let mut sums = std::mem::take(&mut self.file_sums);
        std::mem::take(&mut self.linked).add_to(&mut sums);
        (dirs, sums)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_counts_each_id_once() {
        let mut seen = Seen::default();
        for id in [3, 200, 3, 64, -1] {
            seen.insert(id);
        }
        assert_eq!(seen.len(), 3);
        assert!(seen.contains(200) && seen.contains(64) && seen.contains(3));
        assert!(!seen.contains(4) && !seen.contains(10_000) && !seen.contains(-1));
    }

    #[test]
    fn directories_resolve_from_memory_then_through_the_lookup() {
        let mut book = ScanBook::new(1, b"/r".to_vec(), false);
        assert_eq!(book.relative(b"/r/a/b"), Some(&b"a/b"[..]));
        assert_eq!(book.relative(b"/rx"), None);
        let mut asked = Vec::new();
        let mut lookup = |parent: i64, name: &[u8]| {
            asked.push((parent, name.to_vec()));
            Ok(Some(parent * 10 + 1))
        };
        assert_eq!(book.resolve_dir(b"a/b", &mut lookup).unwrap(), Some(11));
        assert_eq!(book.resolve_dir(b"a/b", &mut lookup).unwrap(), Some(11));
        assert_eq!(book.resolve_dir(b"a/c", &mut lookup).unwrap(), Some(11));
        assert_eq!(
            asked,
            vec![(0, b"a".to_vec()), (1, b"b".to_vec()), (1, b"c".to_vec())]
        );
        let mut none = |_: i64, _: &[u8]| Ok(None);
        assert_eq!(book.resolve_dir(b"z", &mut none).unwrap(), None);
    }

    #[test]
    fn a_gone_file_with_a_new_name_is_moved_once() {
        let mut book = ScanBook::new(1, b"/".to_vec(), false);
        assert_eq!(book.root(), b"");
        book.stats.new = 1;
        book.new_files.insert((5, 9), (42, 100, 7));
        let old = Unseen {
            id: 3,
            path: b"old".to_vec(),
            kind: Kind::File as u8,
            size: 100,
            mtime_ns: 7,
            inode: 9,
            device: 5,
        };
        assert_eq!(book.gone(&old).moved_to, Some(42));
        assert_eq!(book.gone(&old).moved_to, None, "one old name per new file");
        assert_eq!(
            (book.stats.new, book.stats.moved, book.stats.deleted),
            (0, 1, 1)
        );
    }
}
