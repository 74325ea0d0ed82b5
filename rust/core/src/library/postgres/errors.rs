//! PostgreSQL's errors as the crate's [`Error`], in one place: a full disk
//! told apart, a lost connection said plainly, text PostgreSQL cannot hold
//! refused as bad input.

use std::error::Error as _;

use postgres::error::{DbError, Severity, SqlState};

use crate::error::{Error, StorageFull};

/// What a lost connection means for the caller (see [`Error::Unavailable`]).
const AFTER_LOSS: &str = "a write in progress was rolled back (unless the connection broke \
     as it committed: then kept, and found again by a resumed scan); the library connects \
     again at its next call, and an interrupted job resumes from its last checkpoint";

/// What went wrong talking to the server, as the crate's [`Error`].
impl From<postgres::Error> for Error {
    fn from(err: postgres::Error) -> Self {
        match err.as_db_error() {
            Some(db) => from_server(db),
            None if lost(&err) => Error::Unavailable(format!(
                "the connection to the PostgreSQL server was lost ({}); {AFTER_LOSS}",
                describe(&err)
            )),
            None => Error::database(format!("PostgreSQL: {}", describe(&err))),
        }
    }
}

/// Connecting to the server failed: what the server said (a database or
/// role that does not exist, a refused password), or why it could not be
/// reached.
pub(super) fn cannot_connect(target: &str, err: &postgres::Error) -> Error {
    let why = match err.as_db_error() {
        Some(db) => server_text(db),
        None => describe(err),
    };
    Error::database(format!("cannot connect to {target}: {why}"))
}

/// An error the server reported.
fn from_server(db: &DbError) -> Error {
    let code = db.code();
    let text = server_text(db);
    if *code == SqlState::DISK_FULL || (*code == SqlState::IO_ERROR && says_full(db.message())) {
        // The server's own word for a write that found no room.
        return Error::StorageFull(StorageFull {
            path: None,
            detail: text,
        });
    }
    if [
        SqlState::CHARACTER_NOT_IN_REPERTOIRE,
        SqlState::UNTRANSLATABLE_CHARACTER,
    ]
    .contains(code)
    {
        // A text column (a setting's key, a run id) given a NUL character:
        // PostgreSQL's text cannot hold it, whatever the encoding.
        return Error::InvalidArgument(format!(
            "PostgreSQL cannot store this text (a NUL character, or one the database's \
             encoding lacks): {text}"
        ));
    }
    // FATAL: the server ended the session (a restart, an idle session's
    // timeout, a terminated backend), whatever the code says.
    if going_away(code)
        || matches!(
            db.parsed_severity(),
            Some(Severity::Fatal | Severity::Panic)
        )
    {
        return Error::Unavailable(format!(
            "the PostgreSQL server ended the connection ({text}); {AFTER_LOSS}"
        ));
    }
    Error::database(format!("PostgreSQL: {text}"))
}

/// A server shutting down or starting up, or a broken connection (class
/// 08): it may take connections again without anyone doing anything.
pub(super) fn going_away(code: &SqlState) -> bool {
    [
        SqlState::ADMIN_SHUTDOWN,
        SqlState::CRASH_SHUTDOWN,
        SqlState::CANNOT_CONNECT_NOW,
    ]
    .contains(code)
        || code.code().starts_with("08")
}

/// "ERROR 23505: message (detail) hint", as the server put it.
fn server_text(db: &DbError) -> String {
    let mut text = format!("{} {}: {}", db.severity(), db.code().code(), db.message());
    if let Some(detail) = db.detail() {
        text.push_str(&format!(" ({detail})"));
    }
    if let Some(hint) = db.hint() {
        text.push_str(&format!("; hint: {hint}"));
    }
    text
}

/// The client's error with its cause (the driver's Display leaves it out).
fn describe(err: &postgres::Error) -> String {
    match err.source() {
        Some(cause) => format!("{err}: {cause}"),
        None => err.to_string(),
    }
}

/// The connection is gone: closed, or the socket failed under it.
fn lost(err: &postgres::Error) -> bool {
    err.is_closed()
        || err
            .source()
            .is_some_and(|cause| cause.is::<std::io::Error>())
}

fn says_full(message: &str) -> bool {
    message.contains("No space left on device") || message.contains("Disk quota exceeded")
}

/// `err` told with what the store knows: a full disk names the database
/// (its URL, without a password) instead of a file.
pub(super) fn explain(target: &str, err: Error) -> Error {
    match err {
        Error::StorageFull(full) => Error::StorageFull(StorageFull {
            path: Some(target.as_bytes().to_vec()),
            detail: full.detail,
        }),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_disk_messages_are_recognised() {
        assert!(says_full(
            "could not extend file \"base/1/2\": No space left on device"
        ));
        assert!(!says_full("could not read block 3"));
    }

    #[test]
    fn explain_names_the_database() {
        let full = Error::StorageFull(StorageFull {
            path: None,
            detail: "ERROR 53100: no room".into(),
        });
        match explain("postgresql://u@h/db", full) {
            Error::StorageFull(f) => {
                assert_eq!(f.path.as_deref(), Some(&b"postgresql://u@h/db"[..]))
            }
            other => panic!("{other:?}"),
        }
    }
}
