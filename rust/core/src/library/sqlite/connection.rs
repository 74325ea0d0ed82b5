//! Opening library.db: the connection's settings, the schema brought up to
//! date, and the retries two processes opening one new library need.

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

use super::errors::{explain, is_busy, DbError, DbResult};
use super::schema;
use crate::error::{Error, Result};

/// Prepared statements a connection keeps (see `SqliteStore::configure`).
const STATEMENT_CACHE: usize = 64;

/// Seconds a connection waits for another writer before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// An open library.db: the SQLite implementation of
/// [`crate::library::LibraryStore`].
pub struct SqliteStore {
    pub(super) conn: Connection,
    /// The database file (None in memory), named by a full-disk error.
    pub(super) path: Option<Vec<u8>>,
}

impl SqliteStore {
    /// Open (creating and migrating as needed) the library.db at `path`.
    ///
    /// Several processes may open one library at once (two `phasekit index`
    /// started together on a new library). Switching a new file to WAL
    /// upgrades a read lock to a write lock, and SQLite answers a busy
    /// database there at once instead of waiting (waiting could deadlock):
    /// such an open is tried again, with a growing pause, for up to
    /// `BUSY_TIMEOUT` (30 s).
    pub fn open(path: &Path) -> Result<Self> {
        use std::os::unix::ffi::OsStrExt;
        let name = Some(path.as_os_str().as_bytes().to_vec());
        let started = std::time::Instant::now();
        let mut pause = Duration::from_millis(5);
        loop {
            let conn = Connection::open(path)?;
            let mut db = SqliteStore {
                conn,
                path: name.clone(),
            };
            match db.configure() {
                Ok(()) => return Ok(db),
                Err(DbError::Sqlite(err))
                    if is_busy(&err) && started.elapsed() + pause < BUSY_TIMEOUT =>
                {
                    drop(db);
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(200));
                }
                Err(err) => return Err(db.explain_error(err.into())),
            }
        }
    }

    /// A library that lives in memory only (ephemeral indexing).
    pub fn in_memory() -> Result<Self> {
        let mut db = SqliteStore {
            conn: Connection::open_in_memory()?,
            path: None,
        };
        match db.configure() {
            Ok(()) => Ok(db),
            Err(err) => Err(db.explain_error(err.into())),
        }
    }

    /// See [`crate::library::LibraryStore::explain`].
    pub(super) fn explain_error(&self, err: Error) -> Error {
        explain(&self.conn, self.path.as_deref(), err)
    }

    fn configure(&mut self) -> DbResult<()> {
        let conn = &mut self.conn;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        // rusqlite keeps 16 prepared statements by default; the jobs use
        // more than that between them, and re-preparing an evicted one (a
        // 64-row INSERT has 1,024 parameters) costs far more than keeping it.
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        // WAL: readers (a CLI listing entries) never block the indexer's writes.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // 64 MiB of page cache: the indices the indexer touches stay in memory.
        conn.pragma_update(None, "cache_size", CACHE_SIZE)?;
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        schema::migrate(conn)?;
        Ok(())
    }
}

/// The page cache's size (`PRAGMA cache_size`: negative is KiB).
pub(super) const CACHE_SIZE: i64 = -65536;

/// A smaller page cache while a scan reads every row of a table once (a
/// cache larger than a few pages does it no good), and the pages it held
/// released: a duplicate search's records of a million files, not 64 MiB
/// of pages it will not read again, are what its memory holds. The usual
/// size is back when it is dropped.
pub(super) struct ScanCache<'c> {
    conn: &'c Connection,
}

impl<'c> ScanCache<'c> {
    pub(super) fn new(conn: &'c Connection) -> Result<Self> {
        ScanCache::shrink(conn)?;
        Ok(ScanCache { conn })
    }

    /// The small cache, emptied, until [`ScanCache::restore`] (for a caller
    /// that cannot hold a `ScanCache` across a transaction).
    pub(super) fn shrink(conn: &Connection) -> Result<()> {
        conn.pragma_update(None, "cache_size", -2048)?;
        conn.execute_batch("PRAGMA shrink_memory")?;
        Ok(())
    }

    /// The usual size back (what dropping a `ScanCache` does), for a caller
    /// that cannot hold one across a transaction.
    pub(super) fn restore(conn: &Connection) {
        // Failing only leaves the smaller cache: slower, never wrong.
        let _ = conn.pragma_update(None, "cache_size", CACHE_SIZE);
    }
}

impl Drop for ScanCache<'_> {
    fn drop(&mut self) {
        ScanCache::restore(self.conn);
    }
}
