//! Writing a batch into a location that has entries already: each entry is
//! compared with its row, found by directory and name.
//!
//! A walker batch holds whole runs of one directory's entries. For each run
//! the rows of that directory whose names fall in the run's range are read
//! with one range query over `entries_name` and looked up in memory, instead
//! of one indexed query per entry: the per-statement work is paid per
//! directory. New entries are inserted, changed ones updated (see
//! `rows::Change`: a modified one with its content identity cleared), and
//! unchanged ones are not written at all, which is what makes re-indexing
//! an unchanged tree cheap.

use rusqlite::{params, CachedStatement, OptionalExtension, Transaction};

use crate::error::{FsError, Result};
use crate::library::book::ScanBook;
use crate::library::model::TOP;
use crate::library::rows::{dir_runs, split_name, Change, Known, Walked};
use crate::walk::Batch;

/// The rows of directory `parent` named `first..=last`, sorted by name.
fn known_rows(
    find: &mut CachedStatement<'_>,
    location_id: i64,
    parent: i64,
    first: &[u8],
    last: &[u8],
) -> Result<Vec<Known>> {
    let rows = find.query_map(params![location_id, parent, first, last], |r| {
        Ok(Known {
            name: r.get(0)?,
            id: r.get(1)?,
            kind: r.get(2)?,
            size: r.get(3)?,
            mtime_ns: r.get(4)?,
            ctime_ns: r.get(5)?,
            inode: r.get(6)?,
            device: r.get(7)?,
            mode: r.get(8)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// `LibraryStore::upsert_batch` for a location with entries, inside `tx`.
pub(super) fn write(
    tx: &Transaction<'_>,
    book: &mut ScanBook,
    batch: &Batch,
    problems: &mut Vec<FsError>,
) -> Result<()> {
    let mut find = tx.prepare_cached(
        "SELECT name, id, kind, size, mtime_ns, ctime_ns, inode, device, mode FROM entries \
         WHERE location_id = ?1 AND parent_id = ?2 AND name BETWEEN ?3 AND ?4 ORDER BY name",
    )?;
    let mut find_id = tx.prepare_cached(
        "SELECT id FROM entries WHERE location_id = ?1 AND parent_id = ?2 AND name = ?3",
    )?;
    let mut insert = tx.prepare_cached(
        "INSERT INTO entries (location_id, path, parent_id, name, extension, kind, size, \
         mtime_ns, ctime_ns, inode, device, mode, cas_id, checksum, indexed_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
    )?;
    let mut update = tx.prepare_cached(
        "UPDATE entries SET parent_id = ?2, kind = ?3, size = ?4, mtime_ns = ?5, \
         ctime_ns = ?6, inode = ?7, device = ?8, mode = ?9, indexed_at = ?10, \
         cas_id = CASE WHEN ?11 THEN cas_id ELSE ?12 END, \
         checksum = CASE WHEN ?11 THEN checksum ELSE ?13 END, extension = ?14 \
         WHERE id = ?1",
    )?;
    let location_id = book.location_id();
    let started = book.started();
    // Relative paths, or None for a path outside the root.
    let rels: Vec<Option<&[u8]>> = batch.paths().map(|p| book.relative(p)).collect();
    for (run, dir) in dir_runs(&rels) {
        // Entries of a run that cannot be written are reported, each.
        let mut skip = |why: &str| {
            let paths = run.clone().map(|i| FsError::other(batch.path(i), 0, why));
            problems.extend(paths);
        };
        let Some(dir) = dir else {
            skip("outside the location's root");
            continue;
        };
        let parent = match dir {
            None => Some(TOP),
            Some(dir) => book.resolve_dir(dir, |parent, name| {
                Ok(find_id
                    .query_row(params![location_id, parent, name], |r| r.get(0))
                    .optional()?)
            })?,
        };
        let Some(parent) = parent else {
            // Cannot happen for a walk (a directory comes before its
            // children), but never write an entry without its parent.
            skip("its directory is not indexed");
            continue;
        };
        let names = || run.clone().filter_map(|i| rels[i]).map(|r| split_name(r).1);
        let (Some(first), Some(last)) = (names().min(), names().max()) else {
            continue;
        };
        let known = known_rows(&mut find, location_id, parent, first, last)?;
        for i in run.clone() {
            let entry = Walked::new(batch, i, rels[i].unwrap_or_default());
            book.count(&entry);
            let found = known
                .binary_search_by(|k| k.name.as_slice().cmp(entry.name))
                .ok()
                .map(|at| &known[at]);
            let id = match found {
                None => {
                    insert.execute(params![
                        location_id,
                        entry.path,
                        parent,
                        entry.name,
                        entry.extension(),
                        entry.kind,
                        entry.size,
                        entry.mtime_ns,
                        entry.ctime_ns,
                        entry.inode,
                        entry.device,
                        entry.mode,
                        entry.cas_id,
                        entry.checksum,
                        started
                    ])?;
                    let id = tx.last_insert_rowid();
                    book.inserted(&entry, id);
                    id
                }
                Some(k) => {
                    let change = Change::of(k, &entry);
                    book.compared(change);
                    if change != Change::Unchanged {
                        update.execute(params![
                            k.id,
                            parent,
                            entry.kind,
                            entry.size,
                            entry.mtime_ns,
                            entry.ctime_ns,
                            entry.inode,
                            entry.device,
                            entry.mode,
                            started,
                            change == Change::Touched,
                            entry.cas_id,
                            entry.checksum,
                            entry.extension()
                        ])?;
                    }
                    k.id
                }
            };
            book.record(id, parent, &entry);
        }
    }
    Ok(())
}
