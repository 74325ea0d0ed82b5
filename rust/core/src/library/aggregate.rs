//! Directory sizes and file counts, deepest first.

use std::collections::HashMap;

use rusqlite::{params, TransactionBehavior};

use super::scan::TOP;
use super::LibraryDb;
use crate::error::Result;
use crate::sys::Kind;

/// Set every directory's `agg_size` (bytes of the regular files beneath it)
/// and `file_count`, and the location's totals. Returns the totals.
///
/// Sums are gathered with one grouped query, carried up the tree in memory
/// (a child's path is longer than its parent's, so sorting directories by
/// path length, longest first, visits children before parents), and written
/// only where they changed, in one transaction.
pub fn aggregate(db: &mut LibraryDb, location_id: i64) -> Result<(i64, i64)> {
    let tx = db
        .conn
        .transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut dirs: Vec<(i64, i64, i64)> = Vec::new();
    let mut sums: HashMap<i64, (i64, i64)> = HashMap::new();
    {
        let mut stmt = tx.prepare(
            "SELECT id, parent_id, length(path) FROM entries WHERE location_id = ?1 AND kind = ?2",
        )?;
        let rows = stmt.query_map(params![location_id, Kind::Dir as u8], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
        for row in rows {
            dirs.push(row?);
        }
        let mut stmt = tx.prepare(
            "SELECT parent_id, SUM(size), COUNT(*) FROM entries \
             WHERE location_id = ?1 AND kind = ?2 GROUP BY parent_id",
        )?;
        let rows = stmt.query_map(params![location_id, Kind::File as u8], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        for row in rows {
            let (parent, size, count) = row?;
            sums.insert(parent, (size, count));
        }
    }
    let totals = write_sums(&tx, location_id, dirs, sums)?;
    tx.commit()?;
    Ok(totals)
}

/// Carry the per-directory sums of files (`sums`: parent id → bytes, count)
/// up the tree and write them, with the location's totals, inside `tx`.
/// `dirs` holds every directory as (id, parent id, path length).
pub(crate) fn write_sums(
    tx: &rusqlite::Transaction<'_>,
    location_id: i64,
    mut dirs: Vec<(i64, i64, i64)>,
    mut sums: HashMap<i64, (i64, i64)>,
) -> Result<(i64, i64)> {
    dirs.sort_by_key(|&(_, _, len)| std::cmp::Reverse(len));
    {
        let mut update = tx.prepare_cached(
            "UPDATE entries SET agg_size = ?2, file_count = ?3 WHERE id = ?1 \
             AND (agg_size IS NOT ?2 OR file_count IS NOT ?3)",
        )?;
        for &(id, parent, _) in &dirs {
            let (size, count) = sums.get(&id).copied().unwrap_or((0, 0));
            update.execute(params![id, size, count])?;
            let up = sums.entry(parent).or_insert((0, 0));
            up.0 += size;
            up.1 += count;
        }
    }
    let (total, files) = sums.get(&TOP).copied().unwrap_or((0, 0));
    tx.execute(
        "UPDATE locations SET total_size = ?2, file_count = ?3 WHERE id = ?1",
        params![location_id, total, files],
    )?;
    Ok((total, files))
}
