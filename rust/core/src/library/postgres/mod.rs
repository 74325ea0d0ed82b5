//! The PostgreSQL library store: a library in a PostgreSQL database, shared
//! by workers on several hosts (the job store of the same library may live
//! in the same database: python/phasekit/jobs/postgres/).
//!
//! [`PostgresStore`] implements [`LibraryStore`] as [`super::SqliteStore`]
//! does, with the same results (`tests/store_contract.rs` compares every
//! answer), and mirrors its layout: `connection.rs` (opening),
//! `statements.rs` (prepared statements), `errors.rs` (the server's errors
//! as the crate's: a full disk, a lost connection), `schema.rs` (tables,
//! triggers, versioned migrations under an advisory lock, and how writers
//! on several hosts keep out of each other's way), `locks.rs`, `ids.rs`
//! (entry ids in blocks), `rounds.rs` (lists written as sets, in order),
//! `locations.rs`, `entries.rs` (reads), `scan.rs` with `fresh.rs` and
//! `rescan.rs` (a scan's writes), `aggregate.rs`, `content.rs`, `carry.rs`,
//! `dupes.rs`, `validate.rs` and `settings.rs`. The per-entry work (row
//! shaping, change detection, sums, a scan's bookkeeping) is the library's
//! pure modules', as for SQLite.
//!
//! Every write operation is one transaction. Every statement is a round
//! trip to the server, so the writes go by sets, not by row: a fresh
//! scan's batch is one binary COPY, a re-scan's changes one COPY and one
//! `UPDATE ... FROM unnest(...)`, a page of digests or issues one statement.
//! Paths are `bytea`: any bytes round-trip.

mod aggregate;
mod carry;
mod connection;
mod content;
mod dupes;
mod entries;
mod environment;
mod errors;
mod fresh;
mod ids;
mod locations;
mod locks;
mod neighbour;
mod rescan;
mod rounds;
mod scan;
mod schema;
mod settings;
mod statements;
mod validate;

pub use connection::PostgresStore;
pub use neighbour::NeighbourSchema;
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

/// Run a read on the connection: `$f(client, statements, args...)`. A
/// read that finds its session ended by the server (idle through a
/// restart: the first call after it meets the server's goodbye) runs once
/// more on a new one; a write is not run again (see
/// `Error::Unavailable`).
macro_rules! read {
    ($store:expr, $f:path $(, $arg:expr)*) => {{
        let mut again = true;
        loop {
            let mut conn = $store.conn()?;
            let connection::Conn {
                client, statements, ..
            } = &mut *conn;
            match $f(client, statements $(, $arg)*) {
                Err(Error::Unavailable(_)) if again && client.is_closed() => again = false,
                done => break done,
            }
        }
    }};
}

impl LibraryStore for PostgresStore {
    fn schema_version(&self) -> Result<i64> {
        schema::version(&mut self.conn()?.client)
    }

    fn explain(&self, err: Error) -> Error {
        errors::explain(&self.target, err)
    }

    fn add_location(&mut self, path: &[u8], mode: IndexMode, recursive: bool) -> Result<Location> {
        locations::add(self.conn_mut()?, path, mode, recursive)
    }

    fn locations(&self) -> Result<Vec<Location>> {
        read!(self, locations::all)
    }

    fn location(&self, id: i64) -> Result<Location> {
        read!(self, locations::get, id)
    }

    fn location_by_path(&self, path: &[u8]) -> Result<Option<Location>> {
        read!(self, locations::by_path, path)
    }

    fn set_location_mode(&mut self, id: i64, mode: IndexMode) -> Result<()> {
        locations::set_mode(self.conn_mut()?, id, mode)
    }

    fn mark_indexed(&mut self, id: i64, at: f64) -> Result<()> {
        locations::mark_indexed(self.conn_mut()?, id, at)
    }

    fn remove_location(&mut self, id: i64) -> Result<u64> {
        locations::remove(self.conn_mut()?, id)
    }

    fn setting(&self, key: &str) -> Result<Option<String>> {
        read!(self, settings::get, key)
    }

    fn set_setting(&mut self, key: &str, value: Option<&str>) -> Result<()> {
        let connection::Conn {
            client, statements, ..
        } = self.conn_mut()?;
        settings::set(client, statements, key, value)
    }

    fn entries(&self, location_id: i64, after_id: i64, limit: usize) -> Result<Vec<EntryRow>> {
        read!(self, entries::page, location_id, after_id, limit)
    }

    fn entry_at(&self, location_id: i64, path: &[u8]) -> Result<Option<EntryRow>> {
        read!(self, entries::at, location_id, path)
    }

    fn entries_by_cas_id(&self, cas_id: &str) -> Result<Vec<EntryRow>> {
        read!(self, entries::by_cas_id, cas_id)
    }

    fn entry_count(&self, location_id: i64) -> Result<u64> {
        read!(self, entries::count, location_id)
    }

    fn content_identity(&self, cas_id: &str) -> Result<Option<(String, i64, f64)>> {
        read!(self, entries::content_identity, cas_id)
    }

    fn upsert_batch(&mut self, scan: &mut ScanBook, batch: &Batch) -> Result<Vec<FsError>> {
        scan::upsert_batch(self.conn_mut()?, scan, batch)
    }

    fn flush_steps(&mut self, scan: &mut ScanBook) -> Result<()> {
        scan::flush_steps(self.conn_mut()?, scan)
    }

    fn rows_per_write(&self) -> usize {
        scan::ROWS_PER_WRITE
    }

    fn unseen_entries(
        &self,
        location_id: i64,
        seen: &Seen,
        each: impl FnMut(Unseen) -> Result<()>,
    ) -> Result<()> {
        scan::unseen_entries(&mut *self.conn()?, location_id, seen, each)
    }

    fn remove_gone(&mut self, gone: &[Gone]) -> Result<()> {
        scan::remove_gone(self.conn_mut()?, gone)
    }

    fn aggregate_sizes(&mut self, location_id: i64) -> Result<(i64, i64)> {
        aggregate::aggregate(self.conn_mut()?, location_id)
    }

    fn store_sizes(&mut self, location_id: i64, sizes: &DirSizes) -> Result<()> {
        aggregate::store(self.conn_mut()?, location_id, sizes)
    }

    fn count_missing(&self, location_id: i64, checksums: bool) -> Result<u64> {
        read!(self, content::count_missing, location_id, checksums)
    }

    fn missing_content(
        &self,
        location_id: i64,
        after_id: i64,
        limit: usize,
        checksums: bool,
    ) -> Result<Vec<MissingContent>> {
        read!(
            self,
            content::missing_content,
            location_id,
            after_id,
            limit,
            checksums
        )
    }

    fn store_content(&mut self, hashed: &[HashedContent]) -> Result<()> {
        content::store_content(self.conn_mut()?, hashed)
    }

    fn carry_content(
        &mut self,
        to: (i64, &[u8]),
        from: (i64, &[u8]),
        placed_since_ns: i64,
    ) -> Result<u64> {
        carry::carry_content(self.conn_mut()?, to, from, placed_since_ns)
    }

    fn link_identities(&mut self, location_id: i64, prune: bool) -> Result<u64> {
        let config = self.config.clone();
        content::link_identities(self.conn_mut()?, &config, location_id, prune)
    }

    fn defer_links(&mut self, location_id: i64) -> Result<()> {
        content::defer_hashed_links(self.conn_mut()?, location_id)
    }

    fn links_pending(&self) -> Result<bool> {
        read!(self, content::links_pending)
    }

    fn regular_files(&self, location_id: i64, each: impl FnMut(StoredFile)) -> Result<()> {
        dupes::regular_files(&mut *self.conn()?, location_id, each)
    }

    fn store_digests(&mut self, digests: &[FileDigest]) -> Result<u64> {
        dupes::store_digests(self.conn_mut()?, digests)
    }

    fn entries_to_validate(
        &self,
        location_id: i64,
        after_id: i64,
        limit: usize,
        chunk: usize,
        each: impl FnMut(Vec<Stored>),
    ) -> Result<()> {
        validate::entries_to_validate(
            &mut *self.conn()?,
            location_id,
            after_id,
            limit,
            chunk,
            each,
        )
    }

    fn record_validation(
        &mut self,
        run_id: &str,
        location_id: i64,
        issues: &[NewIssue<'_>],
        checksums: &[FoundChecksum<'_>],
    ) -> Result<u64> {
        validate::record(self.conn_mut()?, run_id, location_id, issues, checksums)
    }

    fn clear_issues(&mut self, location_id: i64) -> Result<u64> {
        let connection::Conn {
            client, statements, ..
        } = self.conn_mut()?;
        validate::clear_issues(client, statements, location_id)
    }

    fn issue_counts(&self, run_id: &str) -> Result<Vec<(String, u64)>> {
        read!(self, validate::issue_counts, run_id)
    }

    fn issues(&self, run_id: &str, after: (i64, &str), limit: usize) -> Result<Vec<IssueRow>> {
        read!(self, validate::issues, run_id, after, limit)
    }
}
