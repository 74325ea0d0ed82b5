//! `Store`: the library store a `LibraryDb` holds, SQLite's or
//! PostgreSQL's, as one type.
//!
//! The core's callers are generic over `LibraryStore` (`impl LibraryStore`,
//! never `dyn`); the bindings pick the store when a library is opened, so
//! they hold an enum that implements the trait by handing each call to the
//! store inside. That is one `match` per store operation (a page, a batch),
//! never per row: the per-row loops stay inside the concrete store's code
//! or in the core's functions, monomorphic over this type.

use phasekit_core::library::{
    DirSizes, EntryRow, FileDigest, FoundChecksum, Gone, HashedContent, IndexMode, IssueRow,
    LibraryStore, Location, MissingContent, NewIssue, PostgresStore, ScanBook, Seen, SqliteStore,
    Stored, StoredFile, Unseen,
};
use phasekit_core::walk::Batch;
use phasekit_core::{Error, FsError};

type Result<T> = std::result::Result<T, Error>;

/// A library's store (see the module comment).
// One per open library, kept in its `LibraryDb` and never moved in a loop:
// the larger variant costs a few hundred bytes once, boxing it an
// indirection on every call.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Store {
    /// library.db, in a library folder or in memory.
    Sqlite(SqliteStore),
    /// A PostgreSQL database shared by workers on several hosts.
    Postgres(PostgresStore),
}

/// `$store.$call` on whichever store `$self` holds.
macro_rules! dispatch {
    ($self:expr, $store:ident => $call:expr) => {
        match $self {
            Store::Sqlite($store) => $call,
            Store::Postgres($store) => $call,
        }
    };
}

impl LibraryStore for Store {
    fn schema_version(&self) -> Result<i64> {
        dispatch!(self, s => s.schema_version())
    }

    fn explain(&self, err: Error) -> Error {
        dispatch!(self, s => s.explain(err))
    }

    fn add_location(&mut self, path: &[u8], mode: IndexMode, recursive: bool) -> Result<Location> {
        dispatch!(self, s => s.add_location(path, mode, recursive))
    }

    fn locations(&self) -> Result<Vec<Location>> {
        dispatch!(self, s => s.locations())
    }

    fn location(&self, id: i64) -> Result<Location> {
        dispatch!(self, s => s.location(id))
    }

    fn location_by_path(&self, path: &[u8]) -> Result<Option<Location>> {
        dispatch!(self, s => s.location_by_path(path))
    }

    fn set_location_mode(&mut self, id: i64, mode: IndexMode) -> Result<()> {
        dispatch!(self, s => s.set_location_mode(id, mode))
    }

    fn mark_indexed(&mut self, id: i64, at: f64) -> Result<()> {
        dispatch!(self, s => s.mark_indexed(id, at))
    }

    fn remove_location(&mut self, id: i64) -> Result<u64> {
        dispatch!(self, s => s.remove_location(id))
    }

    fn setting(&self, key: &str) -> Result<Option<String>> {
        dispatch!(self, s => s.setting(key))
    }

    fn set_setting(&mut self, key: &str, value: Option<&str>) -> Result<()> {
        dispatch!(self, s => s.set_setting(key, value))
    }

    fn entries(&self, location_id: i64, after_id: i64, limit: usize) -> Result<Vec<EntryRow>> {
        dispatch!(self, s => s.entries(location_id, after_id, limit))
    }

    fn entry_at(&self, location_id: i64, path: &[u8]) -> Result<Option<EntryRow>> {
        dispatch!(self, s => s.entry_at(location_id, path))
    }

    fn entries_by_cas_id(&self, cas_id: &str) -> Result<Vec<EntryRow>> {
        dispatch!(self, s => s.entries_by_cas_id(cas_id))
    }

    fn entry_count(&self, location_id: i64) -> Result<u64> {
        dispatch!(self, s => s.entry_count(location_id))
    }

    fn content_identity(&self, cas_id: &str) -> Result<Option<(String, i64, f64)>> {
        dispatch!(self, s => s.content_identity(cas_id))
    }

    fn upsert_batch(&mut self, scan: &mut ScanBook, batch: &Batch) -> Result<Vec<FsError>> {
        dispatch!(self, s => s.upsert_batch(scan, batch))
    }

    fn flush_steps(&mut self, scan: &mut ScanBook) -> Result<()> {
        dispatch!(self, s => s.flush_steps(scan))
    }

    fn rows_per_write(&self) -> usize {
        dispatch!(self, s => s.rows_per_write())
    }

    fn unseen_entries(
        &self,
        location_id: i64,
        seen: &Seen,
        each: impl FnMut(Unseen) -> Result<()>,
    ) -> Result<()> {
        dispatch!(self, s => s.unseen_entries(location_id, seen, each))
    }

    fn remove_gone(&mut self, gone: &[Gone]) -> Result<()> {
        dispatch!(self, s => s.remove_gone(gone))
    }

    fn aggregate_sizes(&mut self, location_id: i64) -> Result<(i64, i64)> {
        dispatch!(self, s => s.aggregate_sizes(location_id))
    }

    fn store_sizes(&mut self, location_id: i64, sizes: &DirSizes) -> Result<()> {
        dispatch!(self, s => s.store_sizes(location_id, sizes))
    }

    fn count_missing(&self, location_id: i64, checksums: bool) -> Result<u64> {
        dispatch!(self, s => s.count_missing(location_id, checksums))
    }

    fn missing_content(
        &self,
        location_id: i64,
        after_id: i64,
        limit: usize,
        checksums: bool,
    ) -> Result<Vec<MissingContent>> {
        dispatch!(self, s => s.missing_content(location_id, after_id, limit, checksums))
    }

    fn store_content(&mut self, hashed: &[HashedContent]) -> Result<()> {
        dispatch!(self, s => s.store_content(hashed))
    }

    fn carry_content(
        &mut self,
        to: (i64, &[u8]),
        from: (i64, &[u8]),
        placed_since_ns: i64,
    ) -> Result<u64> {
        dispatch!(self, s => s.carry_content(to, from, placed_since_ns))
    }

    fn link_identities(&mut self, location_id: i64, prune: bool) -> Result<u64> {
        dispatch!(self, s => s.link_identities(location_id, prune))
    }

    fn defer_links(&mut self, location_id: i64) -> Result<()> {
        dispatch!(self, s => s.defer_links(location_id))
    }

    fn links_pending(&self) -> Result<bool> {
        dispatch!(self, s => s.links_pending())
    }

    fn regular_files(&self, location_id: i64, each: impl FnMut(StoredFile)) -> Result<()> {
        dispatch!(self, s => s.regular_files(location_id, each))
    }

    fn store_digests(&mut self, digests: &[FileDigest]) -> Result<u64> {
        dispatch!(self, s => s.store_digests(digests))
    }

    fn entries_to_validate(
        &self,
        location_id: i64,
        after_id: i64,
        limit: usize,
        chunk: usize,
        each: impl FnMut(Vec<Stored>),
    ) -> Result<()> {
        dispatch!(self, s => s.entries_to_validate(location_id, after_id, limit, chunk, each))
    }

    fn record_validation(
        &mut self,
        run_id: &str,
        location_id: i64,
        issues: &[NewIssue<'_>],
        checksums: &[FoundChecksum<'_>],
    ) -> Result<u64> {
        dispatch!(self, s => s.record_validation(run_id, location_id, issues, checksums))
    }

    fn clear_issues(&mut self, location_id: i64) -> Result<u64> {
        dispatch!(self, s => s.clear_issues(location_id))
    }

    fn issue_counts(&self, run_id: &str) -> Result<Vec<(String, u64)>> {
        dispatch!(self, s => s.issue_counts(run_id))
    }

    fn issues(&self, run_id: &str, after: (i64, &str), limit: usize) -> Result<Vec<IssueRow>> {
        dispatch!(self, s => s.issues(run_id, after, limit))
    }
}
