//! The SQLite library store: library.db (WAL), the only code in this crate
//! that uses SQLite (see docs/ARCHITECTURE.md, invariant 7: one SQLite library
//! per database file in a process; `tests/layout.rs` checks that rusqlite
//! is used nowhere else).
//!
//! [`SqliteStore`] implements [`LibraryStore`] by handing each operation to
//! the submodule of its area: `connection.rs` (opening, settings, retries),
//! `errors.rs` (SQLite's errors, a full disk told apart), `schema.rs`
//! (tables, indices, triggers, migrations), `locations.rs`, `entries.rs`
//! (reads), `scan.rs` with `fresh.rs` and `rescan.rs` (a scan's writes),
//! `aggregate.rs`, `content.rs`, `dupes.rs`, `validate.rs` and `settings.rs`. What is not
//! SQL (row shaping and change detection, sums, the scan's bookkeeping)
//! comes from the library's pure modules (`rows.rs`, `aggregate.rs`,
//! `book.rs`). Paths are stored as bytes: a location's absolute root, and
//! each entry's path relative to it, so any POSIX name round-trips.
//!
//! # Rules the schema keeps
//!
//! Some rules live in the database itself, where that is the fastest
//! correct way; a second store must keep the same ones (in SQL or in code):
//!
//! - One row per name: `entries_name` (location, parent id, name) is
//!   unique, and so is a location's `path`.
//! - A location's entries and validation issues go with it (foreign keys,
//!   `ON DELETE CASCADE`).
//! - A validation issue is one row per (run, entry, category): a page
//!   validated again replaces its own rows (the primary key).
//! - Content identities follow cas_ids (triggers `entries_cas_changed` and
//!   `entries_cas_deleted`, see `schema.rs`, `V3`): an entry whose cas_id
//!   changes (re-indexed, hashed, a move carried over) or that is deleted
//!   (swept, its location removed) loses its `entry_content` lookup row at
//!   once and its old cas_id is noted in `lost_links`; a new cas_id gets its
//!   identity (first seen now, unless it exists) and its lookup row. Every
//!   writer of cas_ids relies on this instead of maintaining the lookup
//!   itself, and a re-index touches the lookup only where content changed.
//!   Two parts are left to code, for speed: rows *inserted* with a cas_id
//!   (a fresh content index) are linked by `link_identities` in one sorted
//!   pass (their location is marked `content_linked = 0` meanwhile), and
//!   the identities noted in `lost_links` that nothing uses any more are
//!   dropped by `link_identities` and `remove_location`.
//! - Empty files have neither a cas_id nor a checksum (migration `V4` made
//!   old files follow it; from then on the writers do: `rows::digests`,
//!   `missing_content`, `store_digests`).
//!
//! The duplicate finder's digest cache for trees outside a library
//! (`crate::dupes::DigestCache`, `src/dupes/cache.rs`) is not SQLite and
//! not library.db: it is a file of fixed-size records of its own, one per
//! duplicate search, in the library folder's scratch directory.

mod aggregate;
mod carry;
mod connection;
mod content;
mod dupes;
mod entries;
mod errors;
mod fresh;
mod locations;
mod rescan;
mod scan;
mod schema;
mod settings;
mod validate;

use connection::ScanCache;
pub use connection::SqliteStore;
pub use schema::SCHEMA_VERSION;

use crate::error::{Error, FsError, Result};
use crate::library::aggregate::DirSizes;
use crate::library::book::{Gone, ScanBook, Seen, Unseen};
use crate::library::model::{
    EntryRow, FileDigest, FoundChecksum, HashedContent, IndexMode, IssueRow, Location,
    MissingContent, NewIssue, Stored, StoredFile,
};
use crate::library::store::LibraryStore;
use crate::walk::Batch;

impl LibraryStore for SqliteStore {
    fn schema_version(&self) -> Result<i64> {
        Ok(schema::version(&self.conn)?)
    }

    fn explain(&self, err: Error) -> Error {
        self.explain_error(err)
    }

    fn add_location(&mut self, path: &[u8], mode: IndexMode, recursive: bool) -> Result<Location> {
        locations::add(&self.conn, path, mode, recursive)
    }

    fn locations(&self) -> Result<Vec<Location>> {
        locations::all(&self.conn)
    }

    fn location(&self, id: i64) -> Result<Location> {
        locations::get(&self.conn, id)
    }

    fn location_by_path(&self, path: &[u8]) -> Result<Option<Location>> {
        locations::by_path(&self.conn, path)
    }

    fn set_location_mode(&mut self, id: i64, mode: IndexMode) -> Result<()> {
        locations::set_mode(&self.conn, id, mode)
    }

    fn mark_indexed(&mut self, id: i64, at: f64) -> Result<()> {
        locations::mark_indexed(&self.conn, id, at)
    }

    fn remove_location(&mut self, id: i64) -> Result<u64> {
        locations::remove(&mut self.conn, id)
    }

    fn setting(&self, key: &str) -> Result<Option<String>> {
        settings::get(&self.conn, key)
    }

    fn set_setting(&mut self, key: &str, value: Option<&str>) -> Result<()> {
        settings::set(&self.conn, key, value)
    }

    fn entries(&self, location_id: i64, after_id: i64, limit: usize) -> Result<Vec<EntryRow>> {
        // A listing reads each page once: with the usual cache, listing a
        // million entries grew the process by the pages it had read (62 MB at
        // 200,000 entries, 106 MB at 1,000,000).
        let _small = ScanCache::new(&self.conn)?;
        entries::page(&self.conn, location_id, after_id, limit)
    }

    fn entry_at(&self, location_id: i64, path: &[u8]) -> Result<Option<EntryRow>> {
        entries::at(&self.conn, location_id, path)
    }

    fn entries_by_cas_id(&self, cas_id: &str) -> Result<Vec<EntryRow>> {
        entries::by_cas_id(&self.conn, cas_id)
    }

    fn entry_count(&self, location_id: i64) -> Result<u64> {
        entries::count(&self.conn, location_id)
    }

    fn content_identity(&self, cas_id: &str) -> Result<Option<(String, i64, f64)>> {
        entries::content_identity(&self.conn, cas_id)
    }

    fn upsert_batch(&mut self, scan: &mut ScanBook, batch: &Batch) -> Result<Vec<FsError>> {
        scan::upsert_batch(&mut self.conn, scan, batch)
    }

    fn flush_steps(&mut self, _scan: &mut ScanBook) -> Result<()> {
        // Every step was committed as any write is: nothing is waiting.
        Ok(())
    }

    fn rows_per_write(&self) -> usize {
        // A transaction costs little here (one writer, in-process, no
        // round trips): a walker batch per write keeps progress smooth.
        0
    }

    fn unseen_entries(
        &self,
        location_id: i64,
        seen: &Seen,
        each: impl FnMut(Unseen) -> Result<()>,
    ) -> Result<()> {
        scan::unseen_entries(&self.conn, location_id, seen, each)
    }

    fn remove_gone(&mut self, gone: &[Gone]) -> Result<()> {
        scan::remove_gone(&mut self.conn, gone)
    }

    fn aggregate_sizes(&mut self, location_id: i64) -> Result<(i64, i64)> {
        aggregate::aggregate(&mut self.conn, location_id)
    }

    fn store_sizes(&mut self, location_id: i64, sizes: &DirSizes) -> Result<()> {
        aggregate::store(&mut self.conn, location_id, sizes)
    }

    fn count_missing(&self, location_id: i64, checksums: bool) -> Result<u64> {
        content::count_missing(&self.conn, location_id, checksums)
    }

    fn missing_content(
        &self,
        location_id: i64,
        after_id: i64,
        limit: usize,
        checksums: bool,
    ) -> Result<Vec<MissingContent>> {
        content::missing_content(&self.conn, location_id, after_id, limit, checksums)
    }

    fn carry_content(
        &mut self,
        to: (i64, &[u8]),
        from: (i64, &[u8]),
        placed_since_ns: i64,
    ) -> Result<u64> {
        carry::carry_content(&mut self.conn, to, from, placed_since_ns)
    }

    fn store_content(&mut self, hashed: &[HashedContent]) -> Result<()> {
        content::store_content(&mut self.conn, hashed)
    }

    fn link_identities(&mut self, location_id: i64, prune: bool) -> Result<u64> {
        content::link_identities(&mut self.conn, location_id, prune)
    }

    fn links_pending(&self) -> Result<bool> {
        content::links_pending(&self.conn)
    }

    fn defer_links(&mut self, location_id: i64) -> Result<()> {
        let tx = self.conn.transaction()?;
        content::defer_hashed_links(&tx, location_id)?;
        tx.commit()?;
        Ok(())
    }

    fn regular_files(&self, location_id: i64, each: impl FnMut(StoredFile)) -> Result<()> {
        dupes::regular_files(&self.conn, location_id, each)
    }

    fn store_digests(&mut self, digests: &[FileDigest]) -> Result<u64> {
        dupes::store_digests(&mut self.conn, digests)
    }

    fn entries_to_validate(
        &self,
        location_id: i64,
        after_id: i64,
        limit: usize,
        chunk: usize,
        each: impl FnMut(Vec<Stored>),
    ) -> Result<()> {
        validate::entries_to_validate(&self.conn, location_id, after_id, limit, chunk, each)
    }

    fn record_validation(
        &mut self,
        run_id: &str,
        location_id: i64,
        issues: &[NewIssue<'_>],
        checksums: &[FoundChecksum<'_>],
    ) -> Result<u64> {
        validate::record(&mut self.conn, run_id, location_id, issues, checksums)
    }

    fn clear_issues(&mut self, location_id: i64) -> Result<u64> {
        validate::clear_issues(&self.conn, location_id)
    }

    fn issue_counts(&self, run_id: &str) -> Result<Vec<(String, u64)>> {
        validate::issue_counts(&self.conn, run_id)
    }

    fn issues(&self, run_id: &str, after: (i64, &str), limit: usize) -> Result<Vec<IssueRow>> {
        validate::issues(&self.conn, run_id, after, limit)
    }
}
