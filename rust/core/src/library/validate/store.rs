//! Validation's storage in library.db: the page of stored entries read, the
//! issues and checksums written (in the page's one transaction), and the
//! recorded issues read back. The checks themselves are in `checks.rs`.

use rusqlite::{params, TransactionBehavior};

use super::checks::{check_rows, Checked, IssueRow, Stored, ValidateMode, ValidatePass};
use crate::cancel::CancelToken;
use crate::content::in_pool;
use crate::error::{Error, Result};
use crate::library::sqlite::SqliteStore;
use crate::library::store::LibraryStore;

/// Rows per chunk of a page (see [`validate_page`]).
const READ_CHUNK: usize = 2048;

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

const STORED_COLUMNS: &str =
    "id, path, kind, size, mtime_ns, inode, device, mode, cas_id, checksum";

/// Validate up to `limit` entries of the location (ids above `after_id`) in
/// parallel; record the issues under `run_id` and, in complete mode, the
/// checksums the index lacked, in one transaction (none when there is
/// nothing to write, so a clean page never takes the write lock).
#[allow(clippy::too_many_arguments)]
pub fn validate_page(
    db: &mut SqliteStore,
    location_id: i64,
    run_id: &str,
    after_id: i64,
    limit: usize,
    mode: ValidateMode,
    threads: Option<usize>,
    cancel: &CancelToken,
) -> Result<ValidatePass> {
    let root = db.location(location_id)?.path;
    // The page is read in chunks, and each chunk is checked by the pool
    // while the next is read: reading 16,000 rows takes ~7 ms, during which
    // the other thread would otherwise wait.
    let (sender, receiver) = std::sync::mpsc::channel();
    // Moved in as `&mut`: the connection is used by this one thread only.
    let (conn, root_ref) = (&mut db.conn, &root);
    let read: Result<()> = in_pool(threads, move || {
        rayon::scope(move |scope| {
            // `+location_id` keeps SQLite off `entries_name` for this term:
            // with it, every page would read all of the location's rows and
            // sort them by id; the id range scan reads the page and little more.
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {STORED_COLUMNS} FROM entries WHERE id > ?2 AND +location_id = ?1 \
                 ORDER BY id LIMIT ?3"
            ))?;
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let mut query = stmt.query(params![location_id, after_id, limit])?;
            let mut chunk = Vec::with_capacity(READ_CHUNK);
            let mut index = 0;
            loop {
                let row = query.next()?;
                let end = row.is_none();
                if let Some(r) = row {
                    chunk.push(stored_row(r)?);
                }
                if chunk.len() == READ_CHUNK || (end && !chunk.is_empty()) {
                    let rows = std::mem::take(&mut chunk);
                    let sender = sender.clone();
                    scope.spawn(move |_| {
                        let checked = check_rows(root_ref, &rows, mode, cancel);
                        // The receiver outlives the scope: sending cannot fail.
                        let _ = sender.send((index, rows, checked));
                    });
                    index += 1;
                }
                if end {
                    return Ok(());
                }
            }
        })
    })?;
    read?;
    let mut chunks: Vec<(usize, Vec<Stored>, Vec<Checked>)> = receiver.into_iter().collect();
    if cancel.is_cancelled() {
        return Err(Error::Cancelled);
    }
    chunks.sort_unstable_by_key(|c| c.0);
    let mut rows = Vec::new();
    let mut checked = Vec::new();
    for (_, r, c) in chunks {
        rows.extend(r);
        checked.extend(c);
    }
    let mut pass = ValidatePass {
        last_id: rows.last().map_or(after_id, |e| e.id),
        looked_at: rows.len() as u64,
        ..ValidatePass::default()
    };
    let mut writes = false;
    for c in &checked {
        pass.hashed += u64::from(c.hashed);
        pass.bytes += c.bytes;
        pass.unverified += u64::from(c.unverified);
        for (category, _) in &c.issues {
            pass.found[*category as usize] += 1;
        }
        writes |= !c.issues.is_empty() || c.store_checksum.is_some();
    }
    if !writes {
        return Ok(pass);
    }
    let tx = db
        .conn
        .transaction_with_behavior(TransactionBehavior::Immediate)?;
    {
        let mut insert = tx.prepare_cached(
            "INSERT OR REPLACE INTO validation_issues \
             (run_id, entry_id, category, location_id, path, detail) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        // Only onto the row as validated: an index that changed it since
        // (another process) keeps what it wrote.
        let mut store = tx.prepare_cached(
            "UPDATE entries SET checksum = ?2 WHERE id = ?1 AND checksum IS NULL \
             AND size = ?3 AND mtime_ns = ?4 AND inode = ?5",
        )?;
        for (e, c) in rows.iter().zip(&checked) {
            for (category, detail) in &c.issues {
                insert.execute(params![
                    run_id,
                    e.id,
                    category.as_str(),
                    location_id,
                    e.path,
                    detail
                ])?;
            }
            if let Some(sum) = &c.store_checksum {
                pass.stored +=
                    store.execute(params![e.id, sum, e.size, e.mtime_ns, e.inode])? as u64;
            }
        }
    }
    tx.commit()?;
    Ok(pass)
}

/// Forget the issues recorded for a location (a new validation starts).
pub fn clear_issues(db: &mut SqliteStore, location_id: i64) -> Result<u64> {
    Ok(db.conn.execute(
        "DELETE FROM validation_issues WHERE location_id = ?1",
        [location_id],
    )? as u64)
}

/// `(category, count)` of a run's issues.
pub fn issue_counts(db: &SqliteStore, run_id: &str) -> Result<Vec<(String, u64)>> {
    let mut stmt = db.conn.prepare_cached(
        "SELECT category, COUNT(*) FROM validation_issues WHERE run_id = ?1 \
         GROUP BY category ORDER BY category",
    )?;
    let rows = stmt.query_map([run_id], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Up to `limit` issues of a run after `(entry_id, category)`, in that order.
pub fn issues(
    db: &SqliteStore,
    run_id: &str,
    after: (i64, &str),
    limit: usize,
) -> Result<Vec<IssueRow>> {
    let mut stmt = db.conn.prepare_cached(
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
