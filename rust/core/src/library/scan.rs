//! One scan of a location: walker batches in, entries out, through a
//! [`LibraryStore`].
//!
//! Each batch is one store operation (`upsert_batch`, one transaction): new
//! entries are inserted, changed ones (kind, size, mtime or inode differ at
//! the precision stored) updated with their content identity cleared, and
//! unchanged ones are not written at all, which is what makes re-indexing
//! an unchanged tree cheap. After the walk, [`ScanWriter::sweep`] removes
//! what the scan did not see and is really gone, and carries the content of
//! moved files (same device, inode, size and mtime, old path gone) over to
//! their new path; a moved file counts once, as moved. What the scan keeps
//! in memory meanwhile is its [`ScanBook`] (`book.rs`).

use super::aggregate::carry;
use super::book::{ScanBook, ScanStats};
use super::store::LibraryStore;
use crate::error::{Error, FsError, Result};
use crate::sys::{self, Kind};
use crate::walk::Batch;

/// Writes the batches of one scan of one location.
pub struct ScanWriter {
    book: ScanBook,
    /// The sweep found every entry of the location seen by this scan (so
    /// nothing to remove, and the aggregate need not count them again: a
    /// count reads every row's visibility in PostgreSQL, ~17 ms for
    /// 200,000 fresh rows).
    whole: bool,
    /// A write of this scan failed: its rows may be missing although the
    /// book saw them (see `sweep`).
    failed_write: bool,
}

impl ScanWriter {
    /// Start a scan of `location_id`. `fresh` may be true only if the
    /// location has no entries yet.
    pub fn new(db: &impl LibraryStore, location_id: i64, fresh: bool) -> Result<Self> {
        let location = db.location(location_id)?;
        if fresh && db.entry_count(location_id)? > 0 {
            return Err(Error::InvalidArgument(
                "a fresh scan needs a location without entries".into(),
            ));
        }
        Ok(ScanWriter {
            book: ScanBook::new(location_id, location.path, fresh),
            whole: false,
            failed_write: false,
        })
    }

    /// When the scan started (unix seconds): the entries' `indexed_at`.
    pub fn started(&self) -> f64 {
        self.book.started()
    }

    /// See [`ScanBook::set_durable_steps`].
    pub fn set_durable_steps(&mut self, durable: bool) {
        self.book.set_durable_steps(durable);
    }

    /// Make the steps written so far durable (see
    /// [`LibraryStore::flush_steps`]).
    pub fn flush_steps(&mut self, db: &mut impl LibraryStore) -> Result<()> {
        db.flush_steps(&mut self.book)
    }

    pub fn stats(&self) -> ScanStats {
        self.book.stats
    }

    /// Write one walker batch in one transaction. Entries outside the
    /// location's root are reported as errors and skipped.
    pub fn write_batch(
        &mut self,
        db: &mut impl LibraryStore,
        batch: &Batch,
    ) -> Result<Vec<FsError>> {
        self.whole = false; // a write after the sweep: count again
        let written = db.upsert_batch(&mut self.book, batch);
        self.failed_write |= written.is_err();
        written
    }

    /// After the sweep: directory sizes and file counts (see
    /// `aggregate.rs`), from the sums gathered while writing when this scan
    /// saw every entry the location has, else from the store's rows.
    pub fn aggregate(&mut self, db: &mut impl LibraryStore) -> Result<(i64, i64)> {
        let location_id = self.book.location_id();
        if !self.whole && self.book.seen().len() != db.entry_count(location_id)? {
            return db.aggregate_sizes(location_id); // a resumed scan
        }
        let (dirs, sums) = self.book.take_sums();
        let sizes = carry(dirs, sums);
        db.store_sizes(location_id, &sizes)?;
        Ok(sizes.total)
    }

    /// After the walk: delete the location's entries this scan did not see
    /// and that are gone from disk, carrying the content of moved files over.
    ///
    /// An unseen entry whose path still exists is kept: it was walked before
    /// an interruption (a resumed scan sees only what came after), or it sits
    /// under a directory that could not be read this time.
    pub fn sweep(&mut self, db: &mut impl LibraryStore) -> Result<()> {
        // A root that is gone (renamed, unmounted) makes every entry look
        // gone: refuse rather than empty the location.
        let root = self.book.root();
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
        let location_id = self.book.location_id();
        // A fresh scan began on an empty location (checked in `new`) and
        // every row the location has now is one it wrote, if every write
        // succeeded: not counted again (a count reads every row's visibility
        // in PostgreSQL, 30 ms for 200,000 fresh rows).
        let fresh_and_whole = self.book.is_fresh() && !self.failed_write;
        if fresh_and_whole || self.book.seen().len() == db.entry_count(location_id)? {
            // The scan saw every entry the location has: nothing can be gone.
            self.whole = true;
            return Ok(());
        }
        let mut gone = Vec::new();
        let mut abs = root.to_vec();
        abs.push(b'/');
        let prefix = abs.len();
        db.unseen_entries(location_id, self.book.seen(), |old| {
            abs.truncate(prefix);
            abs.extend_from_slice(&old.path);
            if vanished(&abs) {
                gone.push(old);
            }
            Ok(())
        })?;
        let gone: Vec<_> = gone.iter().map(|old| self.book.gone(old)).collect();
        db.remove_gone(&gone)
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
