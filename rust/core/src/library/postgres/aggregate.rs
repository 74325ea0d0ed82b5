//! Directory sizes and file counts written to `entries` and `locations`;
//! the sums themselves are carried in `library/aggregate.rs`.

use postgres::fallible_iterator::FallibleIterator;
use postgres::types::ToSql;
use postgres::Transaction;

use super::connection::Conn;
use super::entries::each_by_index;
use super::locks;
use super::statements::Statements;
use crate::error::Result;
use crate::library::aggregate::{
    add_file, carry, several_names, take_file, DirSizes, Linked, Sums,
};
use crate::sys::Kind;

/// `LibraryStore::aggregate_sizes`: the sums from the location's rows, in
/// one transaction holding the location's row, so no batch of the
/// location is written between the rows summed and the sums written.
///
/// One pass over the location's files gives the sums by directory and
/// every file's (device, inode, id); the files with several names among
/// them are taken out of the sums and put back once (see `Linked`).
pub(super) fn aggregate(conn: &mut Conn, location_id: i64) -> Result<(i64, i64)> {
    let Conn {
        client, statements, ..
    } = conn;
    let mut tx = client.transaction()?;
    locks::location(&mut tx, statements, location_id, false)?;
    let dir = i16::from(Kind::Dir as u8);
    let file = i16::from(Kind::File as u8);
    let mut dirs: Vec<(i64, i64, i64)> = Vec::new();
    let stmt = statements.get(
        &mut tx,
        "SELECT id, parent_id, octet_length(path)::bigint FROM entries \
         WHERE location_id = $1 AND kind = $2",
    )?;
    let params: [&(dyn ToSql + Sync); 2] = [&location_id, &dir];
    let mut rows = tx.query_raw(&stmt, params)?;
    while let Some(r) = rows.next()? {
        dirs.push((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?));
    }
    drop(rows);
    let mut sums = Sums::new();
    let mut files: Vec<(i64, i64, i64)> = Vec::new();
    let stmt = statements.get(
        &mut tx,
        "SELECT parent_id, size, device, inode, id FROM entries \
         WHERE location_id = $1 AND kind = $2",
    )?;
    let params: [&(dyn ToSql + Sync); 2] = [&location_id, &file];
    let mut rows = tx.query_raw(&stmt, params)?;
    while let Some(r) = rows.next()? {
        add_file(&mut sums, r.try_get(0)?, r.try_get(1)?);
        files.push((r.try_get(2)?, r.try_get(3)?, r.try_get(4)?));
    }
    drop(rows);
    // The names of files with several names, read in one query.
    let mut linked_ids = Vec::new();
    let mut keys = std::collections::HashMap::new();
    for names in several_names(&mut files) {
        for &(device, inode, id) in names {
            linked_ids.push(id);
            keys.insert(id, (device, inode));
        }
    }
    let mut linked = Linked::default();
    if !linked_ids.is_empty() {
        let stmt = statements.get(
            &mut tx,
            "SELECT id, path, parent_id, size FROM entries WHERE id = ANY($1)",
        )?;
        for r in tx.query(&stmt, &[&linked_ids])? {
            let id: i64 = r.try_get(0)?;
            let path: &[u8] = r.try_get(1)?;
            let (parent, size): (i64, i64) = (r.try_get(2)?, r.try_get(3)?);
            take_file(&mut sums, parent, size);
            if let Some(&key) = keys.get(&id) {
                linked.note(key, path, parent, size);
            }
        }
    }
    linked.add_to(&mut sums);
    let sizes = carry(dirs, sums);
    write(&mut tx, statements, location_id, &sizes)?;
    tx.commit()?;
    Ok(sizes.total)
}

/// `LibraryStore::store_sizes`, in one transaction.
pub(super) fn store(conn: &mut Conn, location_id: i64, sizes: &DirSizes) -> Result<()> {
    let Conn {
        client, statements, ..
    } = conn;
    let mut tx = client.transaction()?;
    write(&mut tx, statements, location_id, sizes)?;
    tx.commit()?;
    Ok(())
}

/// Write directory sums where they changed (one statement), and the
/// location's totals.
fn write(
    tx: &mut Transaction<'_>,
    st: &mut Statements,
    location_id: i64,
    sizes: &DirSizes,
) -> Result<()> {
    if !sizes.dirs.is_empty() {
        let ids: Vec<i64> = sizes.dirs.iter().map(|d| d.0).collect();
        let bytes: Vec<i64> = sizes.dirs.iter().map(|d| d.1).collect();
        let counts: Vec<i64> = sizes.dirs.iter().map(|d| d.2).collect();
        // The directories are a small part of the table: each found by its
        // id. Left to itself the planner, seeing a few thousand values,
        // scans and hashes the whole table instead (200,000 entries, 4,700
        // directories: 111 ms against 43 ms), and more as the table grows.
        each_by_index(tx, st)?;
        let update = st.get(
            tx,
            "UPDATE entries e SET agg_size = v.size, file_count = v.count \
             FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS v (id, size, count) \
             WHERE e.id = v.id AND (e.agg_size IS DISTINCT FROM v.size \
             OR e.file_count IS DISTINCT FROM v.count)",
        )?;
        tx.execute(&update, &[&ids, &bytes, &counts])?;
    }
    let (total, files) = sizes.total;
    let totals = st.get(
        tx,
        "UPDATE locations SET total_size = $2, file_count = $3 WHERE id = $1",
    )?;
    tx.execute(&totals, &[&location_id, &total, &files])?;
    Ok(())
}
