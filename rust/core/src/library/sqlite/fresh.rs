//! Writing a batch into a location that had no entries: no lookups, ids
//! assigned here, rows inserted many per statement.
//!
//! Within the batch's write transaction (begun IMMEDIATE, so SQLite's write
//! lock is held from its start) the next free id is read once and ids are
//! handed out in walk order (`ScanBook::fresh_rows`), so a directory's id is
//! known before its children are written and the rows can go in multi-row
//! INSERTs, which spend far less per row in SQLite's statement machinery
//! than one INSERT per row.

use rusqlite::types::ToSql;
use rusqlite::Transaction;

use crate::error::{FsError, Result};
use crate::library::book::ScanBook;
use crate::walk::Batch;

/// Rows per multi-row INSERT (16 parameters each, well under SQLite's limit).
const ROWS_PER_INSERT: usize = 64;
const COLUMNS: usize = 16;

fn insert_sql(rows: usize) -> String {
    let one = format!("({})", vec!["?"; COLUMNS].join(","));
    let values = vec![one.as_str(); rows].join(",");
    format!(
        "INSERT INTO entries (id, location_id, path, parent_id, name, extension, kind, size, \
         mtime_ns, ctime_ns, inode, device, mode, cas_id, checksum, indexed_at) VALUES {values}"
    )
}

/// `LibraryStore::upsert_batch` for a fresh scan, inside `tx`.
pub(super) fn write(
    tx: &Transaction<'_>,
    book: &mut ScanBook,
    batch: &Batch,
    problems: &mut Vec<FsError>,
) -> Result<()> {
    let next_id: i64 = tx.query_row("SELECT COALESCE(MAX(id), 0) + 1 FROM entries", [], |r| {
        r.get(0)
    })?;
    let rows = book.fresh_rows(batch, next_id.., problems);
    let started = book.started();
    let location = book.location_id();
    // One statement per chunk size, looked up once per batch: building
    // and hashing the long SQL text per chunk cost ~5 % of the writer.
    let full_sql = insert_sql(ROWS_PER_INSERT);
    let mut full = tx.prepare_cached(&full_sql)?;
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let mut rest;
        let stmt = if chunk.len() == ROWS_PER_INSERT {
            &mut full
        } else {
            rest = tx.prepare_cached(&insert_sql(chunk.len()))?;
            &mut rest
        };
        for (k, row) in chunk.iter().enumerate() {
            let e = &row.entry;
            let values: [&dyn ToSql; COLUMNS] = [
                &row.id,
                &location,
                &e.path,
                &row.parent,
                &e.name,
                &row.extension,
                &e.kind,
                &e.size,
                &e.mtime_ns,
                &e.ctime_ns,
                &e.inode,
                &e.device,
                &e.mode,
                &e.cas_id,
                &e.checksum,
                &started,
            ];
            for (c, value) in values.iter().enumerate() {
                stmt.raw_bind_parameter(k * COLUMNS + c + 1, value)?;
            }
        }
        stmt.raw_execute()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn insert_sql_has_one_placeholder_per_value() {
        let sql = super::insert_sql(3);
        assert_eq!(sql.matches('?').count(), 3 * super::COLUMNS);
    }
}
