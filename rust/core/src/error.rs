//! Errors: per-file problems ([`FsError`], never fatal to a batch) and call-level
//! failures ([`Error`]).

use std::fmt;
use std::io;

/// A non-fatal problem with one path: the walk or batch goes on without it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FsError {
    pub path: Vec<u8>,
    /// The OS errno, or 0 when the problem is not an OS error (e.g. a file that
    /// changed while it was read).
    pub errno: i32,
    pub message: String,
}

impl FsError {
    pub fn from_io(path: &[u8], err: &io::Error) -> Self {
        let errno = err.raw_os_error().unwrap_or(match err.kind() {
            // Our own refusals (e.g. "not a regular file") carry no OS errno.
            io::ErrorKind::InvalidInput => rustix::io::Errno::INVAL.raw_os_error(),
            _ => 0,
        });
        Self {
            path: path.to_vec(),
            errno,
            message: describe_errno(errno, err),
        }
    }

    pub fn from_errno(path: &[u8], errno: rustix::io::Errno) -> Self {
        Self::from_io(path, &io::Error::from(errno))
    }

    pub fn other(path: &[u8], errno: i32, message: impl Into<String>) -> Self {
        Self {
            path: path.to_vec(),
            errno,
            message: message.into(),
        }
    }
}

/// The strerror text without std's " (os error N)" suffix, so messages read
/// the same as Python's `os.strerror`.
fn describe_errno(errno: i32, err: &io::Error) -> String {
    let text = err.to_string();
    match text.rfind(" (os error ") {
        Some(cut) if errno != 0 => text[..cut].to_string(),
        _ => text,
    }
}

impl fmt::Display for FsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} (errno {})",
            String::from_utf8_lossy(&self.path),
            self.message,
            self.errno
        )
    }
}

/// Why a whole call failed.
#[derive(Debug)]
pub enum Error {
    /// The cancel token was set; the call stopped at a safe point.
    Cancelled,
    /// A resume state could not be decoded.
    InvalidState(String),
    /// An argument makes no sense (e.g. a bad glob pattern or batch size 0).
    InvalidArgument(String),
    /// A single-path call failed on its path.
    Fs(FsError),
    /// library.db could not be read or written. `io` marks SQLite's I/O
    /// errors (SQLITE_IOERR_*): [`crate::library::LibraryStore::explain`] tells
    /// a full disk among them by the errno SQLite saw.
    Database { message: String, io: bool },
    /// library.db cannot grow: the disk (or the quota) under it is full.
    StorageFull(StorageFull),
    /// A location asked for (by id) does not exist.
    LocationNotFound(String),
    /// The object (a library) was closed; the message says which.
    Closed(String),
    /// The library's database cannot be reached for now: its server ended
    /// the connection (restarting, shut down) or the link broke. The store
    /// connects again at its next call; a job's run meeting this is
    /// interrupted, not failed, and resumes from its last checkpoint.
    Unavailable(String),
}

/// What [`Error::StorageFull`] knows: the database file, when known, and
/// SQLite's or the OS's own words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageFull {
    pub path: Option<Vec<u8>>,
    pub detail: String,
}

impl Error {
    /// A database failure that is not SQLite's own (e.g. a newer schema).
    pub fn database(message: impl Into<String>) -> Self {
        Error::Database {
            message: message.into(),
            io: false,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Cancelled => f.write_str("cancelled"),
            Error::InvalidState(msg) => write!(f, "invalid walk state: {msg}"),
            Error::InvalidArgument(msg) => f.write_str(msg),
            Error::Fs(err) => err.fmt(f),
            Error::Database { message, .. } => write!(f, "library database: {message}"),
            Error::StorageFull(full) => {
                let file = match &full.path {
                    Some(path) => String::from_utf8_lossy(path).into_owned(),
                    None => "library.db".into(),
                };
                write!(
                    f,
                    "{file}: the disk (or quota) is full, so the library database cannot grow \
                     ({}). Nothing is lost: the write that failed was rolled back and \
                     everything written before it is kept. Free some space, then resume \
                     the interrupted job (phasekit resume) or index again",
                    full.detail
                )
            }
            Error::LocationNotFound(msg) => f.write_str(msg),
            Error::Closed(msg) => f.write_str(msg),
            Error::Unavailable(msg) => f.write_str(msg),
        }
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;
