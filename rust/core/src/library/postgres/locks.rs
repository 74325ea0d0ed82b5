//! The locks that stand in for SQLite's one write lock (see `schema.rs`):
//! a location's row, taken first, and the content identities' advisory lock.

use postgres::GenericClient;

use super::schema::{IDENTITIES_LOCK, LOCK_NAMESPACE};
use super::statements::Statements;
use crate::error::{Error, Result};

/// Lock the location's row until the transaction ends, so the writes of one
/// location's entries take turns (`exclusive`: also against rows added
/// with it as foreign key, for its removal). [`Error::LocationNotFound`] if
/// there is no such location.
pub(super) fn location(
    c: &mut impl GenericClient,
    st: &mut Statements,
    id: i64,
    exclusive: bool,
) -> Result<()> {
    // FOR NO KEY UPDATE leaves inserts that reference the row (issues
    // recorded meanwhile) free; FOR UPDATE waits for them.
    let sql = if exclusive {
        "SELECT 1 FROM locations WHERE id = $1 FOR UPDATE"
    } else {
        "SELECT 1 FROM locations WHERE id = $1 FOR NO KEY UPDATE"
    };
    let stmt = st.get(c, sql)?;
    match c.query_opt(&stmt, &[&id])? {
        Some(_) => Ok(()),
        None => Err(Error::LocationNotFound(format!("no location with id {id}"))),
    }
}

/// Take the content identities' lock exclusively until the transaction
/// ends: no other transaction writes a cas_id meanwhile (see `schema.rs`).
pub(super) fn identities(c: &mut impl GenericClient, st: &mut Statements) -> Result<()> {
    let stmt = st.get(c, "SELECT pg_advisory_xact_lock($1, $2)")?;
    c.execute(&stmt, &[&LOCK_NAMESPACE, &IDENTITIES_LOCK])?;
    Ok(())
}

/// Take the content identities' lock shared until the transaction ends,
/// before the first row is written: a write of cas_ids (whose triggers take
/// it too) then never holds rows that a transaction dropping identities
/// (which holds it exclusively, see [`identities`]) waits for, while that
/// one holds what it waits for: they take turns instead of deadlocking.
pub(super) fn identities_shared(c: &mut impl GenericClient, st: &mut Statements) -> Result<()> {
    let stmt = st.get(c, "SELECT pg_advisory_xact_lock_shared($1, $2)")?;
    c.execute(&stmt, &[&LOCK_NAMESPACE, &IDENTITIES_LOCK])?;
    Ok(())
}
