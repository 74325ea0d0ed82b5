//! Validation's reads and writes: pages of entries to compare with the
//! disk, and `validation_issues` (one row per run, entry and category).

use rusqlite::{params, Connection, TransactionBehavior};

use crate::error::Result;
use crate::library::model::{FoundChecksum, IssueRow, NewIssue, Stored};

const STORED_COLUMNS: &str =
    "id, path, kind, size, mtime_ns, inode, device, mode, cas_id, checksum";

fn stored_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Stored> {
    Ok(Stored {
        id: r.get(0)?,
        path: r.get(1)?,
        kind: r.get(2)?,
        size: r.get(3)?,
        mtime_ns: r.get(4)?,
        inode: r.get(5)?,
        device: r.get(6)?,
        mode: r.get(7)?,
        cas_id: r.get(8)?,
        checksum: r.get(9)?,
    })
}

/// `LibraryStore::entries_to_validate`: one query, handed on in chunks as
/// it is read.
pub(super) fn entries_to_validate(
    conn: &Connection,
    location_id: i64,
    after_id: i64,
    limit: usize,
    chunk: usize,
    mut each: impl FnMut(Vec<Stored>),
) -> Result<()> {
    // `+location_id` keeps SQLite off `entries_name` for this term: with
    // it, every page would read all of the location's rows and sort them by
    // id; the id range scan reads the page and little more.
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {STORED_COLUMNS} FROM entries WHERE id > ?2 AND +location_id = ?1 \
         ORDER BY id LIMIT ?3"
    ))?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let chunk = chunk.max(1);
    let mut query = stmt.query(params![location_id, after_id, limit])?;
    let mut rows = Vec::with_capacity(chunk);
    while let Some(r) = query.next()? {
        rows.push(stored_row(r)?);
        if rows.len() == chunk {
            each(std::mem::replace(&mut rows, Vec::with_capacity(chunk)));
        }
    }
    if !rows.is_empty() {
        each(rows);
    }
    Ok(())
}

/// `LibraryStore::record_validation`: one transaction.
pub(super) fn record(
    conn: &mut Connection,
    run_id: &str,
    location_id: i64,
    issues: &[NewIssue<'_>],
    checksums: &[FoundChecksum<'_>],
) -> Result<u64> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut stored = 0;
    {
        let mut insert = tx.prepare_cached(
            "INSERT OR REPLACE INTO validation_issues \
             (run_id, entry_id, category, location_id, path, detail) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for i in issues {
            insert.execute(params![
                run_id,
                i.entry_id,
                i.category,
                location_id,
                i.path,
                i.detail
            ])?;
        }
        // Only onto the row as validated: an index that changed it since
        // (another process) keeps what it wrote.
        let mut store = tx.prepare_cached(
            "UPDATE entries SET checksum = ?2 WHERE id = ?1 AND checksum IS NULL \
             AND size = ?3 AND mtime_ns = ?4 AND inode = ?5",
        )?;
        for c in checksums {
            stored += store.execute(params![c.id, c.checksum, c.size, c.mtime_ns, c.inode])? as u64;
        }
    }
    tx.commit()?;
    Ok(stored)
}

/// `LibraryStore::clear_issues`.
pub(super) fn clear_issues(conn: &Connection, location_id: i64) -> Result<u64> {
    Ok(conn.execute(
        "DELETE FROM validation_issues WHERE location_id = ?1",
        [location_id],
    )? as u64)
}

/// `LibraryStore::issue_counts`.
pub(super) fn issue_counts(conn: &Connection, run_id: &str) -> Result<Vec<(String, u64)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT category, COUNT(*) FROM validation_issues WHERE run_id = ?1 \
         GROUP BY category ORDER BY category",
    )?;
    let rows = stmt.query_map([run_id], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// `LibraryStore::issues`.
pub(super) fn issues(
    conn: &Connection,
    run_id: &str,
    after: (i64, &str),
    limit: usize,
) -> Result<Vec<IssueRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT entry_id, category, path, detail FROM validation_issues \
         WHERE run_id = ?1 AND (entry_id, category) > (?2, ?3) \
         ORDER BY entry_id, category LIMIT ?4",
    )?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = stmt.query_map(params![run_id, after.0, after.1, limit], |r| {
        Ok(IssueRow {
            entry_id: r.get(0)?,
            category: r.get(1)?,
            path: r.get(2)?,
            detail: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}
