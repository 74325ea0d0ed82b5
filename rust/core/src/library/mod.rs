//! library.db: locations, entries and content identities (SQLite, WAL).
//!
//! This module is the only code that opens library.db (see docs/ARCHITECTURE.md,
//! invariant 7: one SQLite library per database file in a process). Paths are
//! stored as bytes: a location's absolute root, and each entry's path relative
//! to it, so any POSIX name round-trips.

mod aggregate;
mod content;
mod dupes;
mod fresh;
mod pipeline;
mod rescan;
mod rows;
mod scan;
mod schema;
pub mod validate;

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, ErrorCode, OptionalExtension, Row, TransactionBehavior};
use rustix::io::Errno;

/// The parent id of entries at the top of a location.
pub(crate) const TOP: i64 = 0;

pub use aggregate::aggregate;
pub use content::{count_missing, hash_missing, link_identities, HashPass};
pub use dupes::{file_records, store_digests};
pub use pipeline::{ScanPipeline, Step, CHANNEL_CAPACITY};
pub use scan::{ScanStats, ScanWriter};
pub use schema::SCHEMA_VERSION;

use crate::error::{Error, Result, StorageFull};

/// Prepared statements a connection keeps (see `LibraryDb::setup`).
const STATEMENT_CACHE: usize = 64;

/// Seconds a connection waits for another writer before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) type DbResult<T> = std::result::Result<T, DbError>;

/// SQLite says another connection holds the lock it needs.
fn is_busy(err: &rusqlite::Error) -> bool {
    matches!(
        err.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

/// Internal error of this module, turned into [`Error`] at its edge.
#[derive(Debug)]
pub(crate) enum DbError {
    Sqlite(rusqlite::Error),
    Newer(i64),
}

impl From<rusqlite::Error> for DbError {
    fn from(err: rusqlite::Error) -> Self {
        DbError::Sqlite(err)
    }
}

impl From<DbError> for Error {
    fn from(err: DbError) -> Self {
        match err {
            DbError::Sqlite(e) => e.into(),
            DbError::Newer(v) => Error::database(format!(
                "library.db has schema version {v}, newer than this phasekit \
                 ({SCHEMA_VERSION}); upgrade phasekit to open it"
            )),
        }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(err: rusqlite::Error) -> Self {
        match err.sqlite_error_code() {
            // SQLite's own word for a write that found no room (its unix
            // layer reports ENOSPC on a write so).
            Some(ErrorCode::DiskFull) => Error::StorageFull(StorageFull {
                path: None,
                detail: err.to_string(),
            }),
            Some(ErrorCode::SystemIoFailure) => Error::Database {
                message: err.to_string(),
                io: true,
            },
            _ => Error::database(err.to_string()),
        }
    }
}

/// True when the last I/O error SQLite met on `conn` had errno ENOSPC or
/// EDQUOT (a quota, or growing the shared-memory file, is reported as an
/// I/O error, not as SQLITE_FULL).
fn io_error_was_full(conn: &Connection) -> bool {
    // SAFETY: the handle is valid while `conn` is open, and
    // sqlite3_system_errno only reads a field of the connection.
    let errno = unsafe { rusqlite::ffi::sqlite3_system_errno(conn.handle()) };
    [Errno::NOSPC, Errno::DQUOT]
        .iter()
        .any(|e| e.raw_os_error() == errno)
}

/// `err` told more precisely with what the connection knows: an I/O error
/// whose errno says the disk or quota is full becomes
/// [`Error::StorageFull`], which names the database file.
fn explain(conn: &Connection, path: Option<&[u8]>, err: Error) -> Error {
    let detail = match err {
        Error::Database { message, io: true } if io_error_was_full(conn) => message,
        Error::StorageFull(full) => full.detail,
        other => return other,
    };
    Error::StorageFull(StorageFull {
        path: path.map(<[u8]>::to_vec),
        detail,
    })
}

/// How much a location's index holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IndexMode {
    /// Metadata only.
    Shallow,
    /// Plus cas_ids and content identities.
    Content,
    /// Plus full checksums, for later validation.
    Deep,
}

impl IndexMode {
    pub fn parse(text: &str) -> Result<Self> {
        match text {
            "shallow" => Ok(IndexMode::Shallow),
            "content" => Ok(IndexMode::Content),
            "deep" => Ok(IndexMode::Deep),
            other => Err(Error::InvalidArgument(format!(
                "index mode must be shallow, content or deep, not {other:?}"
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            IndexMode::Shallow => "shallow",
            IndexMode::Content => "content",
            IndexMode::Deep => "deep",
        }
    }
}

/// One row of `locations`.
#[derive(Clone, Debug, PartialEq)]
pub struct Location {
    pub id: i64,
    pub path: Vec<u8>,
    pub mode: String,
    pub recursive: bool,
    pub created_at: f64,
    pub indexed_at: Option<f64>,
    pub total_size: Option<i64>,
    pub file_count: Option<i64>,
}

/// One row of `entries`.
#[derive(Clone, Debug, PartialEq)]
pub struct EntryRow {
    pub id: i64,
    pub location_id: i64,
    /// Relative to the location's root.
    pub path: Vec<u8>,
    pub parent_id: Option<i64>,
    pub name: String,
    pub extension: Option<String>,
    pub kind: u8,
    pub size: i64,
    pub agg_size: Option<i64>,
    pub file_count: Option<i64>,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub inode: i64,
    pub device: i64,
    pub mode: u32,
    pub cas_id: Option<String>,
    pub checksum: Option<String>,
    pub indexed_at: f64,
}

const ENTRY_COLUMNS: &str = "id, location_id, path, parent_id, name, extension, kind, size, \
     agg_size, file_count, mtime_ns, ctime_ns, inode, device, mode, cas_id, checksum, indexed_at";

fn entry_row(r: &Row<'_>) -> rusqlite::Result<EntryRow> {
    Ok(EntryRow {
        id: r.get(0)?,
        location_id: r.get(1)?,
        path: r.get(2)?,
        parent_id: Some(r.get::<_, i64>(3)?).filter(|&p| p != TOP),
        name: String::from_utf8_lossy(&r.get::<_, Vec<u8>>(4)?).into_owned(),
        extension: r.get(5)?,
        kind: r.get(6)?,
        size: r.get(7)?,
        agg_size: r.get(8)?,
        file_count: r.get(9)?,
        mtime_ns: r.get(10)?,
        ctime_ns: r.get(11)?,
        inode: r.get(12)?,
        device: r.get(13)?,
        mode: r.get(14)?,
        cas_id: r.get(15)?,
        checksum: r.get(16)?,
        indexed_at: r.get(17)?,
    })
}

const LOCATION_COLUMNS: &str =
    "id, path, mode, recursive, created_at, indexed_at, total_size, file_count";

fn location_row(r: &Row<'_>) -> rusqlite::Result<Location> {
    Ok(Location {
        id: r.get(0)?,
        path: r.get(1)?,
        mode: r.get(2)?,
        recursive: r.get(3)?,
        created_at: r.get(4)?,
        indexed_at: r.get(5)?,
        total_size: r.get(6)?,
        file_count: r.get(7)?,
    })
}

pub(crate) fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// An open library.db.
pub struct LibraryDb {
    pub(crate) conn: Connection,
    /// The database file (None in memory), named by a full-disk error.
    path: Option<Vec<u8>>,
}

impl LibraryDb {
    /// Open (creating and migrating as needed) the library.db at `path`.
    ///
    /// Several processes may open one library at once (two `phasekit index`
    /// started together on a new library). Switching a new file to WAL
    /// upgrades a read lock to a write lock, and SQLite answers a busy
    /// database there at once instead of waiting (waiting could deadlock):
    /// such an open is tried again, with a growing pause, for up to
    /// [`BUSY_TIMEOUT`].
    pub fn open(path: &Path) -> Result<Self> {
        use std::os::unix::ffi::OsStrExt;
        let name = Some(path.as_os_str().as_bytes().to_vec());
        let started = std::time::Instant::now();
        let mut pause = Duration::from_millis(5);
        loop {
            let conn = Connection::open(path)?;
            let mut db = LibraryDb {
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
                Err(err) => return Err(db.explain(err.into())),
            }
        }
    }

    /// A library that lives in memory only (ephemeral indexing).
    pub fn in_memory() -> Result<Self> {
        Self::setup(Connection::open_in_memory()?, None)
    }

    /// `err`, from a call on this library, told more precisely: a full disk
    /// (SQLITE_FULL, or an I/O error with errno ENOSPC or EDQUOT) becomes
    /// [`Error::StorageFull`] naming this library.db. Callers that hand
    /// errors on (the bindings) pass them through here.
    pub fn explain(&self, err: Error) -> Error {
        explain(&self.conn, self.path.as_deref(), err)
    }

    fn setup(conn: Connection, path: Option<Vec<u8>>) -> Result<Self> {
        let mut db = LibraryDb { conn, path };
        match db.configure() {
            Ok(()) => Ok(db),
            Err(err) => Err(db.explain(err.into())),
        }
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
        conn.pragma_update(None, "cache_size", -65536)?;
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        schema::migrate(conn)?;
        Ok(())
    }

    pub fn schema_version(&self) -> Result<i64> {
        Ok(self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }

    // locations

    /// Add a location rooted at the absolute path `path`.
    pub fn add_location(
        &mut self,
        path: &[u8],
        mode: IndexMode,
        recursive: bool,
    ) -> Result<Location> {
        if !path.starts_with(b"/") {
            return Err(Error::InvalidArgument(
                "a location's path must be absolute".into(),
            ));
        }
        if let Some(existing) = self.location_by_path(path)? {
            return Err(Error::InvalidArgument(format!(
                "{} is already location {}",
                String::from_utf8_lossy(path),
                existing.id
            )));
        }
        self.conn.execute(
            "INSERT INTO locations (path, mode, recursive, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![path, mode.as_str(), recursive, now()],
        )?;
        self.location(self.conn.last_insert_rowid())
    }

    pub fn locations(&self) -> Result<Vec<Location>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {LOCATION_COLUMNS} FROM locations ORDER BY id"
        ))?;
        let rows = stmt.query_map([], location_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn location(&self, id: i64) -> Result<Location> {
        self.conn
            .query_row(
                &format!("SELECT {LOCATION_COLUMNS} FROM locations WHERE id = ?1"),
                [id],
                location_row,
            )
            .optional()?
            .ok_or_else(|| Error::LocationNotFound(format!("no location with id {id}")))
    }

    pub fn location_by_path(&self, path: &[u8]) -> Result<Option<Location>> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {LOCATION_COLUMNS} FROM locations WHERE path = ?1"),
                [path],
                location_row,
            )
            .optional()?)
    }

    pub fn set_location_mode(&mut self, id: i64, mode: IndexMode) -> Result<()> {
        self.location(id)?;
        self.conn.execute(
            "UPDATE locations SET mode = ?1 WHERE id = ?2",
            params![mode.as_str(), id],
        )?;
        Ok(())
    }

    /// Remove a location and its entries; content identities no other entry
    /// is linked to go too (the schema's triggers unlink each entry deleted).
    /// Returns the number of entries removed.
    pub fn remove_location(&mut self, id: i64) -> Result<u64> {
        self.location(id)?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let removed = tx.execute("DELETE FROM entries WHERE location_id = ?1", [id])?;
        tx.execute("DELETE FROM locations WHERE id = ?1", [id])?;
        content::drop_lost_identities(&tx)?;
        tx.commit()?;
        Ok(removed as u64)
    }

    // entries

    /// Up to `limit` entries of a location with id greater than `after_id`,
    /// in id order (page through with the last id returned).
    pub fn entries(&self, location_id: i64, after_id: i64, limit: usize) -> Result<Vec<EntryRow>> {
        // `+location_id`: walk the id range instead of `entries_name`, which
        // would read and sort all of the location's rows for every page.
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {ENTRY_COLUMNS} FROM entries WHERE id > ?2 AND +location_id = ?1 \
             ORDER BY id LIMIT ?3"
        ))?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt.query_map(params![location_id, after_id, limit], entry_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The entry at `path` (relative to the location's root), if indexed:
    /// found component by component through `entries_name`.
    pub fn entry_at(&self, location_id: i64, path: &[u8]) -> Result<Option<EntryRow>> {
        let mut find = self.conn.prepare_cached(
            "SELECT id FROM entries WHERE location_id = ?1 AND parent_id = ?2 AND name = ?3",
        )?;
        let mut id = TOP;
        for part in path.split(|&b| b == b'/').filter(|p| !p.is_empty()) {
            match find
                .query_row(params![location_id, id, part], |r| r.get(0))
                .optional()?
            {
                Some(found) => id = found,
                None => return Ok(None),
            }
        }
        if id == TOP {
            return Ok(None); // the root itself is not an entry
        }
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {ENTRY_COLUMNS} FROM entries WHERE id = ?1"),
                [id],
                entry_row,
            )
            .optional()?)
    }

    /// Entries, in every location, whose content has this cas_id.
    pub fn entries_by_cas_id(&self, cas_id: &str) -> Result<Vec<EntryRow>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {ENTRY_COLUMNS} FROM entries WHERE id IN \
             (SELECT entry_id FROM entry_content WHERE cas_id = ?1) AND cas_id = ?1 ORDER BY id"
        ))?;
        let rows = stmt.query_map([cas_id], entry_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn entry_count(&self, location_id: i64) -> Result<u64> {
        let n: i64 = self.conn.query_row(
            "SELECT COUNT(*) FROM entries WHERE location_id = ?1",
            [location_id],
            |r| r.get(0),
        )?;
        Ok(n as u64)
    }

    /// `(cas_id, size, first_seen)` of a content identity.
    pub fn content_identity(&self, cas_id: &str) -> Result<Option<(String, i64, f64)>> {
        Ok(self
            .conn
            .query_row(
                "SELECT cas_id, size, first_seen FROM content_identities WHERE cas_id = ?1",
                [cas_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?)
    }

    /// Record that a scan of the location finished at `at` (unix seconds).
    pub fn mark_indexed(&mut self, location_id: i64, at: f64) -> Result<()> {
        self.conn.execute(
            "UPDATE locations SET indexed_at = ?1 WHERE id = ?2",
            params![at, location_id],
        )?;
        Ok(())
    }
}
