//! The library store: every operation the jobs and the bindings need of a
//! library's database, as one trait.
//!
//! [`LibraryStore`] names what is done (upsert a batch of walked entries,
//! sweep what vanished, pages of entries, store digests, record validation
//! issues, link content identities, aggregate directory sizes, locations),
//! not how: `sqlite/` implements it over library.db ([`super::SqliteStore`]),
//! and `postgres/` over a PostgreSQL database shared by workers on several
//! hosts ([`super::PostgresStore`]), with the same results
//! (`tests/store_contract.rs` compares them). Callers are generic over the store (`impl
//! LibraryStore`), never `dyn`: per-row loops stay monomorphic.
//!
//! Every write operation is atomic (one transaction in either store): a job that
//! is killed between two of them resumes from its last checkpoint and
//! repeats at most the operation it was in (docs/ARCHITECTURE.md,
//! invariant 1). Reads take `&self`, writes `&mut self`.

use crate::error::{Error, FsError, Result};
use crate::library::aggregate::DirSizes;
use crate::library::book::{Gone, ScanBook, Seen, Unseen};
use crate::library::model::{
    EntryRow, FileDigest, FoundChecksum, HashedContent, IndexMode, IssueRow, Location,
    MissingContent, NewIssue, Stored, StoredFile,
};
use crate::walk::Batch;

/// The operations on a library's database (see the module comment).
pub trait LibraryStore {
    // The store itself.

    /// The version of the store's schema.
    fn schema_version(&self) -> Result<i64>;

    /// `err`, from a call on this store, told more precisely with what the
    /// store knows: in SQLite, a full disk (SQLITE_FULL, or an I/O error
    /// with errno ENOSPC or EDQUOT) becomes [`Error::StorageFull`] naming
    /// library.db. Callers that hand errors on (the bindings) pass them
    /// through here.
    fn explain(&self, err: Error) -> Error;

    // Locations.

    /// Add a location rooted at the absolute path `path`; an error if the
    /// path is relative or already a location.
    fn add_location(&mut self, path: &[u8], mode: IndexMode, recursive: bool) -> Result<Location>;

    /// Every location, by id.
    fn locations(&self) -> Result<Vec<Location>>;

    /// The location `id`; [`Error::LocationNotFound`] if there is none.
    fn location(&self, id: i64) -> Result<Location>;

    /// The location rooted at exactly `path`, if any.
    fn location_by_path(&self, path: &[u8]) -> Result<Option<Location>>;

    /// Change what the location's index holds (the next index fills it in).
    fn set_location_mode(&mut self, id: i64, mode: IndexMode) -> Result<()>;

    /// Record that a scan of the location finished at `at` (unix seconds).
    fn mark_indexed(&mut self, id: i64, at: f64) -> Result<()>;

    /// Remove a location with its entries and validation issues; content
    /// identities no other entry uses go too. Returns the entries removed.
    fn remove_location(&mut self, id: i64) -> Result<u64>;

    // Settings of the library (what its jobs make, e.g. thumbnail variants).

    /// The value stored under `key` (a JSON text), if any.
    fn setting(&self, key: &str) -> Result<Option<String>>;

    /// Store `value` under `key`; None removes the key.
    fn set_setting(&mut self, key: &str, value: Option<&str>) -> Result<()>;

    // Entries, read.

    /// Up to `limit` entries of a location with id greater than `after_id`,
    /// in id order (page through with the last id returned).
    fn entries(&self, location_id: i64, after_id: i64, limit: usize) -> Result<Vec<EntryRow>>;

    /// The entry at `path` (relative to the location's root), if indexed.
    fn entry_at(&self, location_id: i64, path: &[u8]) -> Result<Option<EntryRow>>;

    /// Entries, in every location, whose content has this cas_id.
    fn entries_by_cas_id(&self, cas_id: &str) -> Result<Vec<EntryRow>>;

    /// How many entries the location has.
    fn entry_count(&self, location_id: i64) -> Result<u64>;

    /// `(cas_id, size, first_seen)` of a content identity.
    fn content_identity(&self, cas_id: &str) -> Result<Option<(String, i64, f64)>>;

    // Scans (`scan.rs` drives them; `book.rs` is what a scan keeps).

    /// Write one walker batch of a scan of `scan.location_id()`, atomically.
    /// Each entry is found by its directory and name: new ones are inserted
    /// (all of them, with ids handed out in walk order, when
    /// `scan.is_fresh()`), changed ones updated (`rows::Change`: a modified
    /// one loses its cas_id and checksum unless the walk computed them),
    /// unchanged ones not written. Every entry written or found is recorded
    /// in `scan` (`ScanBook::record`: its id, parent and sums), each insert
    /// and comparison counted. Entries inserted with a cas_id are linked to
    /// their content identities by the next `link_identities` at the latest.
    /// Entries outside the root, or whose directory is not indexed, are
    /// returned as problems and skipped.
    fn upsert_batch(&mut self, scan: &mut ScanBook, batch: &Batch) -> Result<Vec<FsError>>;

    /// Make every step this scan wrote without waiting for the disk
    /// (`ScanBook::set_durable_steps`) durable, before a state naming them
    /// is kept anywhere. [`crate::Error::Unavailable`] if the store's
    /// session changed since those steps (the server restarted: they may
    /// be lost, and the scan must resume from the last state kept). A
    /// store whose commits need no flush does nothing.
    fn flush_steps(&mut self, scan: &mut ScanBook) -> Result<()>;

    /// Rows up to which a scan merges the walker batches waiting for its
    /// writer into one `upsert_batch` (0: each batch on its own). For a
    /// store whose per-transaction cost dwarfs its per-row cost.
    fn rows_per_write(&self) -> usize;

    /// Call `each` with every entry of the location whose id is not in
    /// `seen` (any order).
    fn unseen_entries(
        &self,
        location_id: i64,
        seen: &Seen,
        each: impl FnMut(Unseen) -> Result<()>,
    ) -> Result<()>;

    /// Sweep what vanished, atomically: delete these entries, first giving
    /// each moved one's cas_id and checksum to the entry it moved to
    /// (unless that has a cas_id of its own). Content identities follow as
    /// for any change of cas_id (see `link_identities`).
    fn remove_gone(&mut self, gone: &[Gone]) -> Result<()>;

    // Aggregation (the rules are in `aggregate.rs`).

    /// Set every directory's `agg_size` and `file_count`, and the
    /// location's totals, from the location's entries as stored (one
    /// transaction: what is summed is what is written to). Returns the
    /// location's `(total_size, file_count)`.
    fn aggregate_sizes(&mut self, location_id: i64) -> Result<(i64, i64)>;

    /// Store sizes already carried up the tree (by a scan that saw every
    /// entry): written only where they changed.
    fn store_sizes(&mut self, location_id: i64, sizes: &DirSizes) -> Result<()>;

    // Content (`content.rs` hashes).

    /// How many of the location's files have content still to hash:
    /// non-empty regular files without a cas_id, or without a checksum when
    /// `checksums` is set (empty files never have either).
    fn count_missing(&self, location_id: i64, checksums: bool) -> Result<u64>;

    /// Up to `limit` of those files with ids above `after_id`, in id order.
    fn missing_content(
        &self,
        location_id: i64,
        after_id: i64,
        limit: usize,
        checksums: bool,
    ) -> Result<Vec<MissingContent>>;

    /// Store hashed content, atomically: each entry's cas_id, and its
    /// checksum where one is given (else the stored one is kept). A new
    /// cas_id is linked to its content identity (created, first seen now)
    /// by the time this returns.
    fn store_content(&mut self, hashed: &[HashedContent]) -> Result<()>;

    /// Content carried by a copy or a move, atomically: each regular file
    /// under `to` (location id, path relative to its root; empty: the whole
    /// location) without a cas_id takes the cas_id and checksum of the file
    /// at the same relative place under `from`, where both have the same
    /// size and mtime (a copy keeps them) and the file under `to` was
    /// placed (its ctime, in ns) at or after `placed_since_ns`. Its content
    /// identity, if another entry still has it, keeps its `first_seen`.
    /// Returns the entries given a cas_id.
    fn carry_content(
        &mut self,
        to: (i64, &[u8]),
        from: (i64, &[u8]),
        placed_since_ns: i64,
    ) -> Result<u64>;

    /// Link the location's entries stored with cas_ids by a batch (see
    /// `upsert_batch`) to their content identities, creating new identities
    /// (first seen now), and drop the identities that lost their last entry
    /// since the last call; atomic and idempotent, so a rerun after a crash
    /// finishes the job. Returns the number of identities created. With
    /// `prune`, lookups whose entry changed or went and identities nothing
    /// uses are also looked for in the whole library (a repair).
    fn link_identities(&mut self, location_id: i64, prune: bool) -> Result<u64>;

    /// Leave the cas_ids the location's entries get from now on (first
    /// ones: a cas_id replacing another is linked at once) to the next
    /// [`LibraryStore::link_identities`], which links them in one sorted
    /// pass: for hashing most of a large location.
    fn defer_links(&mut self, location_id: i64) -> Result<()>;

    /// Whether some location has cas_ids not linked to their identities yet
    /// (stored by a scan or a deferred content step, before its link pass):
    /// until then an identity without links may still be in use.
    fn links_pending(&self) -> Result<bool>;

    // Duplicates (`dupes.rs` converts to and from the finder's records).

    /// Call `each` with every regular file of the location (any order).
    fn regular_files(&self, location_id: i64, each: impl FnMut(StoredFile)) -> Result<()>;

    /// Store digests onto their entries, atomically; an entry whose size or
    /// mtime is no longer the digest's (re-indexed since) is left alone.
    /// Content identities follow a new cas_id as in `store_content`.
    /// Returns the entries updated.
    fn store_digests(&mut self, digests: &[FileDigest]) -> Result<u64>;

    // Validation (`validate/` checks; `validation_issues` holds what the
    // latest validation of a location found).

    /// Up to `limit` entries of a location with id greater than `after_id`,
    /// in id order, handed to `each` in chunks of up to `chunk` as they are
    /// read (so checking a chunk overlaps reading the next).
    fn entries_to_validate(
        &self,
        location_id: i64,
        after_id: i64,
        limit: usize,
        chunk: usize,
        each: impl FnMut(Vec<Stored>),
    ) -> Result<()>;

    /// Record what validating a page found, atomically: the issues under
    /// `run_id`, replacing the same (run, entry, category) (so a page
    /// validated again after a resume changes nothing), and each checksum
    /// onto its entry while the entry is as validated (same size, mtime and
    /// inode) and still has none. Returns the checksums stored.
    fn record_validation(
        &mut self,
        run_id: &str,
        location_id: i64,
        issues: &[NewIssue<'_>],
        checksums: &[FoundChecksum<'_>],
    ) -> Result<u64>;

    /// Forget the issues recorded for a location (a new validation starts);
    /// the number removed.
    fn clear_issues(&mut self, location_id: i64) -> Result<u64>;

    /// `(category, count)` of a run's issues, by category.
    fn issue_counts(&self, run_id: &str) -> Result<Vec<(String, u64)>>;

    /// Up to `limit` issues of a run after `(entry_id, category)`, in that order.
    fn issues(&self, run_id: &str, after: (i64, &str), limit: usize) -> Result<Vec<IssueRow>>;
}
