//! `locations`: add, list, find, change and remove locations.

use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};

use super::content::drop_lost_identities;
use crate::error::{Error, Result};
use crate::library::model::{now, IndexMode, Location};

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

pub(super) fn add(
    conn: &Connection,
    path: &[u8],
    mode: IndexMode,
    recursive: bool,
) -> Result<Location> {
    if !path.starts_with(b"/") {
        return Err(Error::InvalidArgument(
            "a location's path must be absolute".into(),
        ));
    }
    let already = |id: i64| {
        Error::InvalidArgument(format!(
            "{} is already location {id}",
            String::from_utf8_lossy(path)
        ))
    };
    if let Some(existing) = by_path(conn, path)? {
        return Err(already(existing.id));
    }
    // The check above and the insert are two statements: another process
    // may add the same path in between (two indexes of a new location at
    // once). The unique path then keeps the insert from happening, and the
    // caller hears what the check would have said.
    // Linked (`content_linked` 1) from the start: it has no entries, and a
    // scan writing cas_ids marks it in the same transaction; left at the
    // column's default (0), a shallow index's link pass read every row
    // for cas_ids that cannot be there.
    let inserted = conn.execute(
        "INSERT INTO locations (path, mode, recursive, created_at, content_linked) \
         VALUES (?1, ?2, ?3, ?4, 1) ON CONFLICT(path) DO NOTHING",
        params![path, mode.as_str(), recursive, now()],
    )?;
    if inserted == 0 {
        let id = by_path(conn, path)?.map_or(0, |l| l.id);
        return Err(already(id));
    }
    get(conn, conn.last_insert_rowid())
}

pub(super) fn all(conn: &Connection) -> Result<Vec<Location>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {LOCATION_COLUMNS} FROM locations ORDER BY id"
    ))?;
    let rows = stmt.query_map([], location_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub(super) fn get(conn: &Connection, id: i64) -> Result<Location> {
    conn.query_row(
        &format!("SELECT {LOCATION_COLUMNS} FROM locations WHERE id = ?1"),
        [id],
        location_row,
    )
    .optional()?
    .ok_or_else(|| Error::LocationNotFound(format!("no location with id {id}")))
}

pub(super) fn by_path(conn: &Connection, path: &[u8]) -> Result<Option<Location>> {
    Ok(conn
        .query_row(
            &format!("SELECT {LOCATION_COLUMNS} FROM locations WHERE path = ?1"),
            [path],
            location_row,
        )
        .optional()?)
}

pub(super) fn set_mode(conn: &Connection, id: i64, mode: IndexMode) -> Result<()> {
    get(conn, id)?;
    conn.execute(
        "UPDATE locations SET mode = ?1 WHERE id = ?2",
        params![mode.as_str(), id],
    )?;
    Ok(())
}

pub(super) fn mark_indexed(conn: &Connection, id: i64, at: f64) -> Result<()> {
    conn.execute(
        "UPDATE locations SET indexed_at = ?1 WHERE id = ?2",
        params![at, id],
    )?;
    Ok(())
}

/// Remove a location and its entries, in one transaction. Deleting the
/// entries fires `entries_cas_deleted` for each (see the schema), so the
/// content identities only they used are dropped with them.
pub(super) fn remove(conn: &mut Connection, id: i64) -> Result<u64> {
    get(conn, id)?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let removed = tx.execute("DELETE FROM entries WHERE location_id = ?1", [id])?;
    tx.execute("DELETE FROM locations WHERE id = ?1", [id])?;
    drop_lost_identities(&tx)?;
    tx.commit()?;
    Ok(removed as u64)
}
