//! Directory sizes and file counts written to `entries` and `locations`;
//! the sums themselves are carried in `library/aggregate.rs`.

use rusqlite::{params, Connection, Transaction, TransactionBehavior};

use crate::error::Result;
use crate::library::aggregate::{
    add_file, carry, several_names, take_file, DirSizes, Linked, Sums,
};
use crate::sys::Kind;

/// `LibraryStore::aggregate_sizes`: the sums from the location's rows, in
/// one transaction (the rows summed are the rows the sums are written to).
///
/// One pass over the location's files gives the sums by directory and
/// every file's (device, inode, id); the files with several names among
/// them are taken out of the sums and put back once (see `Linked`).
pub(super) fn aggregate(conn: &mut Connection, location_id: i64) -> Result<(i64, i64)> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut dirs: Vec<(i64, i64, i64)> = Vec::new();
    let mut sums = Sums::new();
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
            "SELECT parent_id, size, device, inode, id FROM entries \
             WHERE location_id = ?1 AND kind = ?2",
        )?;
        let mut rows = stmt.query(params![location_id, Kind::File as u8])?;
        let mut files: Vec<(i64, i64, i64)> = Vec::new();
        while let Some(r) = rows.next()? {
            add_file(&mut sums, r.get(0)?, r.get(1)?);
            files.push((r.get(2)?, r.get(3)?, r.get(4)?));
        }
        let mut row = tx.prepare("SELECT path, parent_id, size FROM entries WHERE id = ?1")?;
        let mut linked = Linked::default();
        for names in several_names(&mut files) {
            for &(device, inode, id) in names {
                let (path, parent, size): (Vec<u8>, i64, i64) =
                    row.query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
                take_file(&mut sums, parent, size);
                linked.note((device, inode), &path, parent, size);
            }
        }
        linked.add_to(&mut sums);
    }
    let sizes = carry(dirs, sums);
    write(&tx, location_id, &sizes)?;
    tx.commit()?;
    Ok(sizes.total)
}

/// `LibraryStore::store_sizes`, in one transaction.
pub(super) fn store(conn: &mut Connection, location_id: i64, sizes: &DirSizes) -> Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    write(&tx, location_id, sizes)?;
    tx.commit()?;
    Ok(())
}

/// Write directory sums where they changed, and the location's totals.
fn write(tx: &Transaction<'_>, location_id: i64, sizes: &DirSizes) -> Result<()> {
    let mut update = tx.prepare_cached(
        "UPDATE entries SET agg_size = ?2, file_count = ?3 WHERE id = ?1 \
         AND (agg_size IS NOT ?2 OR file_count IS NOT ?3)",
    )?;
    for &(id, size, count) in &sizes.dirs {
        update.execute(params![id, size, count])?;
    }
    let (total, files) = sizes.total;
    tx.execute(
        "UPDATE locations SET total_size = ?2, file_count = ?3 WHERE id = ?1",
        params![location_id, total, files],
    )?;
    Ok(())
}
