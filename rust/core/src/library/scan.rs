//! Writing one scan of a location: walker batches in, entries out.
//!
//! Each batch is one transaction. An entry is looked up by its path: new
//! entries are inserted, changed ones (kind, size, mtime or inode differ at
//! the precision stored) updated with their content identity cleared, and
//! unchanged ones are not written at all, which is what makes re-indexing an
//! unchanged tree cheap. After the walk, [`ScanWriter::sweep`] removes what
//! the scan did not see and is really gone, and carries the content of moved
//! files (same device, inode, size and mtime, old path gone) over to their
//! new path; a moved file counts once, as moved.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use rusqlite::{params, OptionalExtension, TransactionBehavior};

use super::aggregate::{add_file, carry, Linked};
use super::model::{now, TOP};
use super::sqlite::SqliteStore;
use super::store::LibraryStore;
use crate::error::{Error, FsError, Result};
use crate::sys::{self, Kind};
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

/// Writes the batches of one scan of one location.
pub struct ScanWriter {
    location_id: i64,
    /// The location's root followed by `/`: what walked paths start with.
    prefix: Vec<u8>,
    started: f64,
    /// The location had no entries: every entry is new, no lookups needed.
    fresh: bool,
    /// Ids of directories met so far, by relative path (parents of later entries).
    dir_ids: HashMap<Vec<u8>, i64>,
    /// Entry ids this scan saw (a bitset indexed by id), and how many.
    seen: Vec<u64>,
    seen_count: u64,
    /// What aggregation needs, gathered while writing: bytes and count of
    /// the regular files directly in each directory (files with one name),
    /// the files with several names (counted once, see [`Linked`]), and
    /// every directory as (id, parent id, path length).
    file_sums: HashMap<i64, (i64, i64)>,
    linked: Linked,
    dirs: Vec<(i64, i64, i64)>,
    /// Files inserted by this scan, by (device, inode): (id, size, mtime),
    /// for move detection.
    new_files: HashMap<(i64, i64), (i64, i64, i64)>,
    pub stats: ScanStats,
}

impl ScanWriter {
    /// Start a scan of `location_id`, whose root is `root` (absolute bytes).
    /// `fresh` may be true only if the location has no entries yet.
    pub fn new(db: &SqliteStore, location_id: i64, fresh: bool) -> Result<Self> {
        let location = db.location(location_id)?;
        if fresh && db.entry_count(location_id)? > 0 {
            return Err(Error::InvalidArgument(
                "a fresh scan needs a location without entries".into(),
            ));
        }
        let mut prefix = location.path;
        if !prefix.ends_with(b"/") {
            prefix.push(b'/');
        }
        Ok(ScanWriter {
            location_id,
            prefix,
            started: now(),
            fresh,
            dir_ids: HashMap::new(),
            seen: Vec::new(),
            seen_count: 0,
            file_sums: HashMap::new(),
            linked: Linked::default(),
            dirs: Vec::new(),
            new_files: HashMap::new(),
            stats: ScanStats::default(),
        })
    }

    pub fn started(&self) -> f64 {
        self.started
    }

    fn mark_seen(&mut self, id: i64) {
        let Ok(i) = usize::try_from(id) else { return };
        if self.seen.len() <= i / 64 {
            self.seen.resize(i / 64 + 1, 0);
        }
        let bit = 1 << (i % 64);
        if self.seen[i / 64] & bit == 0 {
            self.seen[i / 64] |= bit;
            self.seen_count += 1;
        }
    }

    fn was_seen(&self, id: i64) -> bool {
        usize::try_from(id)
            .ok()
            .and_then(|i| self.seen.get(i / 64).map(|w| w & (1 << (i % 64)) != 0))
            .unwrap_or(false)
    }

    /// The id of the directory at `rel` (relative path), from the cache or
    /// found component by component; None if it is not indexed.
    pub(crate) fn resolve_dir(
        &mut self,
        find_id: &mut rusqlite::CachedStatement<'_>,
        rel: &[u8],
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
                None => {
                    let found: Option<i64> = find_id
                        .query_row(params![self.location_id, parent, part], |r| r.get(0))
                        .optional()?;
                    match found {
                        Some(id) => {
                            self.dir_ids.insert(prefix.to_vec(), id);
                            id
                        }
                        None => return Ok(None),
                    }
                }
            };
            end += 1; // the slash
        }
        Ok(Some(parent))
    }

    /// Write one walker batch in one transaction. Entries outside the
    /// location's root are reported as errors and skipped.
    pub fn write_batch(&mut self, db: &mut SqliteStore, batch: &Batch) -> Result<Vec<FsError>> {
        let mut problems = Vec::new();
        let tx = db
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        if batch.cas_ids.iter().any(Option::is_some) {
            // Rows inserted with a cas_id are not linked to their content
            // identities by the triggers: `link_identities` links them in
            // bulk. Marked with every such batch, in its transaction: a link
            // that ran meanwhile (another job) has cleared the mark.
            super::sqlite::content::defer_links(&tx, self.location_id)?;
        }
        if self.fresh {
            self.write_fresh(&tx, batch, &mut problems)?;
            tx.commit()?;
            return Ok(problems);
        }
        self.write_rescan(&tx, batch, &mut problems)?;
        tx.commit()?;
        Ok(problems)
    }

    /// What the scan keeps of every entry it wrote or found: directory ids
    /// (parents of later entries), sums for aggregation, the seen set.
    /// `link` is the (device, inode) of a regular file with more than one
    /// name (nlink > 1 when walked): such a file is counted once, where its
    /// first name in byte order is (see [`Linked`]).
    pub(crate) fn record(
        &mut self,
        id: i64,
        parent: i64,
        rel: &[u8],
        kind: u8,
        size: i64,
        link: Option<(i64, i64)>,
    ) {
        if kind == Kind::Dir as u8 {
            self.dir_ids.insert(rel.to_vec(), id);
            self.dirs.push((id, parent, rel.len() as i64));
        } else if kind == Kind::File as u8 {
            match link {
                Some(key) => self.linked.note(key, rel, parent, size),
                None => add_file(&mut self.file_sums, parent, size),
            }
        }
        self.mark_seen(id);
    }

    /// `path` relative to the location's root (None if outside it).
    pub(crate) fn relative<'p>(&self, path: &'p [u8]) -> Option<&'p [u8]> {
        path.strip_prefix(self.prefix.as_slice())
    }

    /// The id of a directory this scan has met.
    pub(crate) fn known_dir(&self, rel: &[u8]) -> Option<i64> {
        self.dir_ids.get(rel).copied()
    }

    /// A file this scan inserted, for move detection in the sweep.
    pub(crate) fn note_new_file(&mut self, key: (i64, i64), id: i64, size: i64, mtime_ns: i64) {
        self.new_files.insert(key, (id, size, mtime_ns));
    }

    pub(crate) fn location_id(&self) -> i64 {
        self.location_id
    }

    pub(crate) fn count(&mut self, kind: u8, size: u64) {
        let s = &mut self.stats;
        match kind {
            k if k == Kind::File as u8 => {
                s.files += 1;
                s.bytes += size;
            }
            k if k == Kind::Dir as u8 => s.dirs += 1,
            k if k == Kind::Symlink as u8 => s.symlinks += 1,
            _ => s.other += 1,
        }
    }

    /// After the sweep: directory sizes and file counts (see
    /// `aggregate.rs`), from the sums gathered while writing when this scan
    /// saw every entry the location has, else from the store's rows.
    pub fn aggregate(&mut self, db: &mut impl LibraryStore) -> Result<(i64, i64)> {
        if self.seen_count != db.entry_count(self.location_id)? {
            return db.aggregate_sizes(self.location_id); // a resumed scan
        }
        let dirs = std::mem::take(&mut self.dirs);
        let mut sums = std::mem::take(&mut self.file_sums);
        std::mem::take(&mut self.linked).add_to(&mut sums);
        let sizes = carry(dirs, sums);
        db.store_sizes(self.location_id, &sizes)?;
        Ok(sizes.total)
    }

    /// After the walk: delete the location's entries this scan did not see
    /// and that are gone from disk, carrying the content of moved files over.
    ///
    /// An unseen entry whose path still exists is kept: it was walked before
    /// an interruption (a resumed scan sees only what came after), or it sits
    /// under a directory that could not be read this time.
    pub fn sweep(&mut self, db: &mut SqliteStore) -> Result<()> {
        // A root that is gone (renamed, unmounted) makes every entry look
        // gone: refuse rather than empty the location.
        let root = &self.prefix[..self.prefix.len() - 1];
        match sys::stat_path(if root.is_empty() { b"/" } else { root }, true) {
            Ok(meta) if meta.kind == Kind::Dir => {}
            Ok(_) => {
                return Err(Error::InvalidArgument(format!(
                    "the location's root {} is no longer a directory; nothing was removed",
                    String::from_utf8_lossy(root)
                )))
            }
            Err(err) => {
                return Err(Error::InvalidArgument(format!(
                    "the location's root {} cannot be read ({err}); nothing was removed",
                    String::from_utf8_lossy(root)
                )))
            }
        }
        if self.seen_count == db.entry_count(self.location_id)? {
            // The scan saw every entry the location has (always so for a
            // fresh, uninterrupted scan): nothing can be gone.
            return Ok(());
        }
        let mut gone: Vec<(i64, u8, i64, i64, i64, i64)> = Vec::new();
        {
            let mut stmt = db.conn.prepare(
                "SELECT id, path, kind, size, mtime_ns, inode, device FROM entries \
                 WHERE location_id = ?1",
            )?;
            let mut rows = stmt.query([self.location_id])?;
            let mut abs = self.prefix.clone();
            while let Some(r) = rows.next()? {
                let id: i64 = r.get(0)?;
                if self.was_seen(id) {
                    continue;
                }
                let rel: Vec<u8> = r.get(1)?;
                abs.truncate(self.prefix.len());
                abs.extend_from_slice(&rel);
                if !vanished(&abs) {
                    continue;
                }
                gone.push((id, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?));
            }
        }
        let tx = db
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut carry = tx.prepare_cached(
                "UPDATE entries SET cas_id = old.cas_id, \
                 checksum = old.checksum FROM (SELECT cas_id, checksum FROM entries \
                 WHERE id = ?2) AS old WHERE entries.id = ?1 AND entries.cas_id IS NULL",
            )?;
            let mut delete = tx.prepare_cached("DELETE FROM entries WHERE id = ?1")?;
            for &(id, kind, size, mtime, inode, device) in &gone {
                // A file moved (renamed keeps the inode, size and mtime; an
                // inode merely reused by a new file has another mtime) is
                // counted once, as moved: not as deleted, and no longer as
                // new. Each new file stands for one old name at most.
                let moved_to = match self.new_files.entry((device, inode)) {
                    Entry::Occupied(new)
                        if kind == Kind::File as u8
                            && (new.get().1, new.get().2) == (size, mtime) =>
                    {
                        Some(new.remove().0)
                    }
                    _ => None,
                };
                match moved_to {
                    Some(new_id) => {
                        carry.execute(params![new_id, id])?;
                        self.stats.moved += 1;
                        self.stats.new -= 1;
                    }
                    None => self.stats.deleted += 1,
                }
                delete.execute([id])?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}

/// True when `path` is certainly gone (ENOENT or ENOTDIR on lstat); any
/// other failure (a permission problem) keeps the entry.
fn vanished(path: &[u8]) -> bool {
    match sys::stat_path(path, false) {
        Ok(_) => false,
        Err(err) => matches!(
            err.raw_os_error().map(rustix::io::Errno::from_raw_os_error),
            Some(rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR)
        ),
    }
}
