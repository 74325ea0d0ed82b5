//! Reading `entries`: pages of a location, one entry by path, the entries
//! of a content identity, counts.

use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::error::Result;
use crate::library::model::{EntryRow, TOP};

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

pub(super) fn page(
    conn: &Connection,
    location_id: i64,
    after_id: i64,
    limit: usize,
) -> Result<Vec<EntryRow>> {
    // `+location_id`: walk the id range instead of `entries_name`, which
    // would read and sort all of the location's rows for every page.
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {ENTRY_COLUMNS} FROM entries WHERE id > ?2 AND +location_id = ?1 \
         ORDER BY id LIMIT ?3"
    ))?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = stmt.query_map(params![location_id, after_id, limit], entry_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Found component by component through `entries_name`.
pub(super) fn at(conn: &Connection, location_id: i64, path: &[u8]) -> Result<Option<EntryRow>> {
    let mut find = conn.prepare_cached(
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
    Ok(conn
        .query_row(
            &format!("SELECT {ENTRY_COLUMNS} FROM entries WHERE id = ?1"),
            [id],
            entry_row,
        )
        .optional()?)
}

/// Through the `entry_content` lookup, checked against the entry's cas_id.
pub(super) fn by_cas_id(conn: &Connection, cas_id: &str) -> Result<Vec<EntryRow>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {ENTRY_COLUMNS} FROM entries WHERE id IN \
         (SELECT entry_id FROM entry_content WHERE cas_id = ?1) AND cas_id = ?1 ORDER BY id"
    ))?;
    let rows = stmt.query_map([cas_id], entry_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub(super) fn count(conn: &Connection, location_id: i64) -> Result<u64> {
    let n: i64 = conn.query_row(
        "SELECT COUNT(*) FROM entries WHERE location_id = ?1",
        [location_id],
        |r| r.get(0),
    )?;
    Ok(n as u64)
}

pub(super) fn content_identity(
    conn: &Connection,
    cas_id: &str,
) -> Result<Option<(String, i64, f64)>> {
    Ok(conn
        .query_row(
            "SELECT cas_id, size, first_seen FROM content_identities WHERE cas_id = ?1",
            [cas_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?)
}
