//! SQLite's errors as the crate's [`Error`], and a full disk told apart
//! among its I/O errors.

use rusqlite::{Connection, ErrorCode};
use rustix::io::Errno;

use crate::error::{Error, StorageFull};

pub(super) type DbResult<T> = std::result::Result<T, DbError>;

/// SQLite says another connection holds the lock it needs.
pub(super) fn is_busy(err: &rusqlite::Error) -> bool {
    matches!(
        err.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

/// Internal error of opening a store, turned into [`Error`] at its edge.
#[derive(Debug)]
pub(super) enum DbError {
    Sqlite(rusqlite::Error),
    /// The file's schema version (`found`) is newer than this code writes.
    Newer {
        found: i64,
        supported: i64,
    },
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
            DbError::Newer { found, supported } => Error::database(format!(
                "library.db has schema version {found}, newer than this phasekit \
                 ({supported}); upgrade phasekit to open it"
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
pub(super) fn explain(conn: &Connection, path: Option<&[u8]>, err: Error) -> Error {
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
