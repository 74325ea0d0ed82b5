//! Reading `entries`: pages of a location, one entry by path, the entries
//! of a content identity, counts; and the conversions of the columns whose
//! PostgreSQL type is wider than the record's.

use postgres::{GenericClient, Row, Transaction};

use super::statements::Statements;
use crate::error::{Error, Result};
use crate::library::model::{EntryRow, TOP};

pub(super) const ENTRY_COLUMNS: &str = "id, location_id, path, parent_id, name, extension, kind, \
     size, agg_size, file_count, mtime_ns, ctime_ns, inode, device, mode, cas_id, checksum, \
     indexed_at";

/// An entry's kind, stored as `smallint` (PostgreSQL has no unsigned byte).
pub(super) fn kind(row: &Row, i: usize) -> Result<u8> {
    let v: i16 = row.try_get(i)?;
    u8::try_from(v).map_err(|_| Error::database(format!("an entry's kind is {v}, not 0..=255")))
}

/// A walked entry's kind as stored.
pub(super) fn kind_column(kind: u8) -> i16 {
    i16::from(kind)
}

/// An entry's mode bits, stored as `bigint` (`integer` is signed).
pub(super) fn mode(row: &Row, i: usize) -> Result<u32> {
    let v: i64 = row.try_get(i)?;
    u32::try_from(v).map_err(|_| Error::database(format!("an entry's mode is {v}, not a u32")))
}

/// A limit as PostgreSQL's `bigint` (usize::MAX: no limit).
pub(super) fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub(super) fn entry_row(r: &Row) -> Result<EntryRow> {
    Ok(EntryRow {
        id: r.try_get(0)?,
        location_id: r.try_get(1)?,
        path: r.try_get(2)?,
        parent_id: Some(r.try_get::<_, i64>(3)?).filter(|&p| p != TOP),
        name: String::from_utf8_lossy(r.try_get::<_, &[u8]>(4)?).into_owned(),
        extension: r.try_get(5)?,
        kind: kind(r, 6)?,
        size: r.try_get(7)?,
        agg_size: r.try_get(8)?,
        file_count: r.try_get(9)?,
        mtime_ns: r.try_get(10)?,
        ctime_ns: r.try_get(11)?,
        inode: r.try_get(12)?,
        device: r.try_get(13)?,
        mode: mode(r, 14)?,
        cas_id: r.try_get(15)?,
        checksum: r.try_get(16)?,
        indexed_at: r.try_get(17)?,
    })
}

/// The primary key walked from `after_id` in id order: the page's rows and,
/// where locations interleave, the others' rows between them. `location_id
/// + 0` keeps the planner off `entries_name` (which would read every row of
/// the location and sort them, for each page), as SQLite's `+location_id`
/// does: an index on (location, id) cost a fresh scan 15 % more (see
/// `schema.rs`). Run in a transaction held to the key ([`by_the_key`]).
pub(super) fn page(
    c: &mut impl GenericClient,
    st: &mut Statements,
    location_id: i64,
    after_id: i64,
    n: usize,
) -> Result<Vec<EntryRow>> {
    let mut tx = c.transaction()?;
    by_the_key(&mut tx, st)?;
    let stmt = st.get(
        &mut tx,
        &format!(
            "SELECT {ENTRY_COLUMNS} FROM entries WHERE id > $2 AND location_id + 0 = $1 \
             ORDER BY id LIMIT $3"
        ),
    )?;
    let rows = tx
        .query(&stmt, &[&location_id, &after_id, &limit(n)])?
        .iter()
        .map(entry_row)
        .collect();
    tx.commit()?;
    rows
}

/// For the rest of the transaction `tx`, a join of a few thousand values
/// (an `unnest`) with `entries` finds each value's rows through an index,
/// one lookup per value, rather than hashing or sorting the whole table to
/// meet them (the planner's choice once the values are many: see
/// `aggregate.rs`, `rescan.rs`).
pub(super) fn each_by_index(tx: &mut Transaction<'_>, st: &mut Statements) -> Result<()> {
    let stmt = st.get(
        tx,
        "SELECT set_config('enable_hashjoin', 'off', true), \
         set_config('enable_mergejoin', 'off', true)",
    )?;
    tx.execute(&stmt, &[])?;
    Ok(())
}

/// For the rest of the transaction `tx`, a page in id order walks the
/// primary key from where the last ended and stops at its `LIMIT`. The
/// planner cannot see how much of the table `location_id + 0 = $1` keeps
/// (it guesses 0.5 % for an expression), so it expects to read the whole
/// table for a page anyway: it scanned every row after the page's start
/// and sorted them, for each page (75-100 ms for the first page of a
/// 200,000-entry location; `phasekit ls` of it 1.0-1.1 s against 0.31 s
/// from library.db, and quadratic in the location's size). Scans and sorts
/// are ruled out rather than the estimate fixed: a location fresh from its
/// first index has no statistics yet.
pub(super) fn by_the_key(tx: &mut Transaction<'_>, st: &mut Statements) -> Result<()> {
    let stmt = st.get(
        tx,
        "SELECT set_config('enable_seqscan', 'off', true), \
         set_config('enable_bitmapscan', 'off', true), set_config('enable_sort', 'off', true)",
    )?;
    tx.execute(&stmt, &[])?;
    Ok(())
}

/// Found component by component through `entries_name`.
pub(super) fn at(
    c: &mut impl GenericClient,
    st: &mut Statements,
    location_id: i64,
    path: &[u8],
) -> Result<Option<EntryRow>> {
    let find = st.get(
        c,
        "SELECT id FROM entries WHERE location_id = $1 AND parent_id = $2 AND name = $3",
    )?;
    let mut id = TOP;
    for part in path.split(|&b| b == b'/').filter(|p| !p.is_empty()) {
        match c.query_opt(&find, &[&location_id, &id, &part])? {
            Some(row) => id = row.try_get(0)?,
            None => return Ok(None),
        }
    }
    if id == TOP {
        return Ok(None); // the root itself is not an entry
    }
    let stmt = st.get(
        c,
        &format!("SELECT {ENTRY_COLUMNS} FROM entries WHERE id = $1"),
    )?;
    c.query_opt(&stmt, &[&id])?
        .map(|row| entry_row(&row))
        .transpose()
}

/// Through the `entry_content` lookup, checked against the entry's cas_id.
pub(super) fn by_cas_id(
    c: &mut impl GenericClient,
    st: &mut Statements,
    cas_id: &str,
) -> Result<Vec<EntryRow>> {
    let stmt = st.get(
        c,
        &format!(
            "SELECT {ENTRY_COLUMNS} FROM entries WHERE id IN \
             (SELECT entry_id FROM entry_content WHERE cas_id = $1) AND cas_id = $1 ORDER BY id"
        ),
    )?;
    c.query(&stmt, &[&cas_id])?.iter().map(entry_row).collect()
}

pub(super) fn count(
    c: &mut impl GenericClient,
    st: &mut Statements,
    location_id: i64,
) -> Result<u64> {
    let stmt = st.get(c, "SELECT COUNT(*) FROM entries WHERE location_id = $1")?;
    let n: i64 = c.query_one(&stmt, &[&location_id])?.try_get(0)?;
    Ok(u64::try_from(n).unwrap_or(0))
}

pub(super) fn content_identity(
    c: &mut impl GenericClient,
    st: &mut Statements,
    cas_id: &str,
) -> Result<Option<(String, i64, f64)>> {
    let stmt = st.get(
        c,
        "SELECT cas_id, size, first_seen FROM content_identities WHERE cas_id = $1",
    )?;
    match c.query_opt(&stmt, &[&cas_id])? {
        Some(row) => Ok(Some((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?))),
        None => Ok(None),
    }
}
