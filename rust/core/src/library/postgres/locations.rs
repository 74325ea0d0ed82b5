//! `locations`: add, list, find, change and remove locations.

use postgres::{GenericClient, Row};

use super::connection::Conn;
use super::content::drop_lost_identities;
use super::locks;
use super::statements::Statements;
use crate::error::{Error, Result};
use crate::library::model::{now, IndexMode, Location};

const LOCATION_COLUMNS: &str =
    "id, path, mode, recursive, created_at, indexed_at, total_size, file_count";

fn location_row(r: &Row) -> Result<Location> {
    Ok(Location {
        id: r.try_get(0)?,
        path: r.try_get(1)?,
        mode: r.try_get(2)?,
        recursive: r.try_get(3)?,
        created_at: r.try_get(4)?,
        indexed_at: r.try_get(5)?,
        total_size: r.try_get(6)?,
        file_count: r.try_get(7)?,
    })
}

pub(super) fn add(
    conn: &mut Conn,
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
    let Conn {
        client, statements, ..
    } = conn;
    if let Some(existing) = by_path(client, statements, path)? {
        return Err(already(existing.id));
    }
    // Another process may add the same path between the check and the
    // insert (two indexes of a new location at once): the unique index
    // keeps the second insert from happening, and its caller hears what
    // the check would have said.
    let insert = statements.get(
        client,
        // Linked from the start (see the SQLite store's add_location).
        "INSERT INTO locations (path, mode, recursive, created_at, content_linked) \
         VALUES ($1, $2, $3, $4, 1) ON CONFLICT (sha256(path)) DO NOTHING RETURNING id",
    )?;
    let mode = mode.as_str();
    match client.query_opt(&insert, &[&path, &mode, &recursive, &now()])? {
        Some(row) => get(client, statements, row.try_get(0)?),
        None => {
            let id = by_path(client, statements, path)?.map_or(0, |l| l.id);
            Err(already(id))
        }
    }
}

pub(super) fn all(c: &mut impl GenericClient, st: &mut Statements) -> Result<Vec<Location>> {
    let stmt = st.get(
        c,
        &format!("SELECT {LOCATION_COLUMNS} FROM locations ORDER BY id"),
    )?;
    c.query(&stmt, &[])?.iter().map(location_row).collect()
}

pub(super) fn get(c: &mut impl GenericClient, st: &mut Statements, id: i64) -> Result<Location> {
    let stmt = st.get(
        c,
        &format!("SELECT {LOCATION_COLUMNS} FROM locations WHERE id = $1"),
    )?;
    match c.query_opt(&stmt, &[&id])? {
        Some(row) => location_row(&row),
        None => Err(Error::LocationNotFound(format!("no location with id {id}"))),
    }
}

pub(super) fn by_path(
    c: &mut impl GenericClient,
    st: &mut Statements,
    path: &[u8],
) -> Result<Option<Location>> {
    // Through the unique index on the path's digest, then the path itself.
    let stmt = st.get(
        c,
        &format!(
            "SELECT {LOCATION_COLUMNS} FROM locations \
             WHERE sha256(path) = sha256($1::bytea) AND path = $1"
        ),
    )?;
    c.query_opt(&stmt, &[&path])?
        .map(|row| location_row(&row))
        .transpose()
}

pub(super) fn set_mode(conn: &mut Conn, id: i64, mode: IndexMode) -> Result<()> {
    let Conn {
        client, statements, ..
    } = conn;
    let stmt = statements.get(client, "UPDATE locations SET mode = $1 WHERE id = $2")?;
    if client.execute(&stmt, &[&mode.as_str(), &id])? == 0 {
        return Err(Error::LocationNotFound(format!("no location with id {id}")));
    }
    Ok(())
}

pub(super) fn mark_indexed(conn: &mut Conn, id: i64, at: f64) -> Result<()> {
    let Conn {
        client, statements, ..
    } = conn;
    let stmt = statements.get(client, "UPDATE locations SET indexed_at = $1 WHERE id = $2")?;
    client.execute(&stmt, &[&at, &id])?;
    Ok(())
}

/// Remove a location and its entries (and, by foreign key, its issues), in
/// one transaction holding the location's row exclusively: a scan's batch
/// of it waits, then finds it gone, so no entry outlives its location (the
/// entries have no foreign key, see `schema.rs`). Deleting the entries
/// fires the delete trigger, which
/// unlinks their content identities and notes them lost; those no other
/// entry uses are dropped here, under the identities lock taken before
/// anything is deleted (see `schema.rs`).
pub(super) fn remove(conn: &mut Conn, id: i64) -> Result<u64> {
    let Conn {
        client, statements, ..
    } = conn;
    let mut tx = client.transaction()?;
    locks::location(&mut tx, statements, id, true)?;
    locks::identities(&mut tx, statements)?;
    let entries = statements.get(&mut tx, "DELETE FROM entries WHERE location_id = $1")?;
    let removed = tx.execute(&entries, &[&id])?;
    let location = statements.get(&mut tx, "DELETE FROM locations WHERE id = $1")?;
    tx.execute(&location, &[&id])?;
    drop_lost_identities(&mut tx, statements)?;
    tx.commit()?;
    Ok(removed)
}
