//! Writing a batch into a location that had no entries: no lookups, ids
//! assigned here, rows inserted many per statement.
//!
//! Within the batch's write transaction (begun IMMEDIATE, so SQLite's write
//! lock is held from its start) the next free id is read once and ids are handed out in walk
//! order, so a directory's id is known before its children are written and
//! the rows can go in multi-row INSERTs, which spend far less per row in
//! SQLite's statement machinery than one INSERT per row.

use rusqlite::types::ToSql;
use rusqlite::Transaction;

use super::model::TOP;
use super::rows::{digests, extension, signed, split_name};
use super::scan::ScanWriter;
use crate::error::{FsError, Result};
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

/// One row, borrowed from the batch.
struct Row<'a> {
    id: i64,
    path: &'a [u8],
    parent: i64,
    name: &'a [u8],
    extension: Option<String>,
    kind: u8,
    size: i64,
    mtime: i64,
    ctime: i64,
    inode: i64,
    device: i64,
    mode: u32,
    cas: Option<&'a str>,
    sum: Option<&'a str>,
}

impl ScanWriter {
    /// [`ScanWriter::write_batch`] for a fresh scan, inside `tx`.
    pub(crate) fn write_fresh(
        &mut self,
        tx: &Transaction<'_>,
        batch: &Batch,
        problems: &mut Vec<FsError>,
    ) -> Result<()> {
        let mut next_id: i64 =
            tx.query_row("SELECT COALESCE(MAX(id), 0) + 1 FROM entries", [], |r| {
                r.get(0)
            })?;
        let mut rows = Vec::with_capacity(batch.len());
        for i in 0..batch.len() {
            let path = batch.path(i);
            let Some(rel) = self.relative(path) else {
                problems.push(FsError::other(path, 0, "outside the location's root"));
                continue;
            };
            let (parent_rel, name) = split_name(rel);
            let parent = match parent_rel {
                None => TOP,
                Some(p) => match self.known_dir(p) {
                    Some(id) => id,
                    None => {
                        problems.push(FsError::other(path, 0, "its directory is not indexed"));
                        continue;
                    }
                },
            };
            let kind = batch.kinds[i];
            let size = batch.sizes[i] as i64;
            self.count(kind, batch.sizes[i]);
            let id = next_id;
            next_id += 1;
            let (inode, device) = (signed(batch.inodes[i]), signed(batch.devices[i]));
            let link = (batch.nlinks[i] > 1).then_some((device, inode));
            self.record(id, parent, rel, kind, size, link);
            let (cas, sum) = digests(batch, i);
            rows.push(Row {
                id,
                path: rel,
                parent,
                name,
                extension: extension(name, kind),
                kind,
                size,
                mtime: batch.mtimes_ns[i],
                ctime: batch.ctimes_ns[i],
                inode,
                device,
                mode: batch.modes[i],
                cas,
                sum,
            });
        }
        self.stats.new += rows.len() as u64;
        self.stats.hashed += rows
            .iter()
            .filter(|r| r.cas.is_some() || r.sum.is_some())
            .count() as u64;
        let started = self.started();
        let location = self.location_id();
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
                let values: [&dyn ToSql; COLUMNS] = [
                    &row.id,
                    &location,
                    &row.path,
                    &row.parent,
                    &row.name,
                    &row.extension,
                    &row.kind,
                    &row.size,
                    &row.mtime,
                    &row.ctime,
                    &row.inode,
                    &row.device,
                    &row.mode,
                    &row.cas,
                    &row.sum,
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
}

#[cfg(test)]
mod tests {
    #[test]
    fn insert_sql_has_one_placeholder_per_value() {
        let sql = super::insert_sql(3);
        assert_eq!(sql.matches('?').count(), 3 * super::COLUMNS);
    }
}
