//! Writing a batch into a location that has entries already: each entry is
//! compared with its row, found by directory and name.
//!
//! As in SQLite's store (`sqlite/rescan.rs`), the rows of a run's directory
//! whose names fall in the run's range are read with a range query over
//! `entries_name` and looked up in memory. What differs is that every
//! statement is a round trip to the server: the runs' ranges are read
//! together, a query per level of directories in the batch (`prefetch`),
//! the new entries of a run get their ids together (see `ids.rs`), and the
//! batch's new rows go in one COPY and its changed rows in one `UPDATE ...
//! FROM unnest(...)` at the end, instead of a statement per entry.
//! Unchanged entries are not written at all.

use std::collections::HashMap;

use postgres::{Row, Transaction};

use super::entries::{each_by_index, kind, kind_column, mode};
use super::fresh::insert;
use super::ids::IdPool;
use super::statements::Statements;
use crate::error::{FsError, Result};
use crate::library::book::ScanBook;
use crate::library::model::TOP;
use crate::library::rows::{dir_runs, split_name, Change, Known, NewRow, Walked};
use crate::sys::Kind;
use crate::walk::Batch;

/// The rows of directory `parent` named `first..=last`, sorted by name.
fn known_rows(
    tx: &mut Transaction<'_>,
    st: &mut Statements,
    location_id: i64,
    parent: i64,
    first: &[u8],
    last: &[u8],
) -> Result<Vec<Known>> {
    let find = st.get(
        tx,
        "SELECT name, id, kind, size, mtime_ns, ctime_ns, inode, device, mode FROM entries \
         WHERE location_id = $1 AND parent_id = $2 AND name BETWEEN $3 AND $4 ORDER BY name",
    )?;
    tx.query(&find, &[&location_id, &parent, &first, &last])?
        .iter()
        .map(|r| known(r, 0))
        .collect()
}

/// A stored row's `name, id, kind, size, mtime_ns, ctime_ns, inode, device,
/// mode`, from column `at` of `r` on.
fn known(r: &Row, at: usize) -> Result<Known> {
    Ok(Known {
        name: r.try_get(at)?,
        id: r.try_get(at + 1)?,
        kind: kind(r, at + 2)?,
        size: r.try_get(at + 3)?,
        mtime_ns: r.try_get(at + 4)?,
        ctime_ns: r.try_get(at + 5)?,
        inode: r.try_get(at + 6)?,
        device: r.try_get(at + 7)?,
        mode: mode(r, at + 8)?,
    })
}

/// The stored rows of the batch's runs, by run number, each sorted by
/// name: a query per level of directories instead of one per directory
/// (4,700 round trips in a re-index of 200,000 unchanged files). A run is
/// asked for once its directory's id is known: met in an earlier batch, or
/// found by the rows of an earlier level (a directory and its files are
/// often in the same batch); the runs of new directories are left to the
/// loop, which finds their rows the way it always did.
fn prefetch(
    tx: &mut Transaction<'_>,
    st: &mut Statements,
    book: &mut ScanBook,
    rels: &[Option<&[u8]>],
) -> Result<HashMap<usize, Vec<Known>>> {
    // (run number, its directory, first and last name) of runs not asked for yet.
    let mut waiting = Vec::new();
    for (n, (run, dir)) in dir_runs(rels).enumerate() {
        let Some(dir) = dir else { continue };
        let names = || run.clone().filter_map(|i| rels[i]).map(|r| split_name(r).1);
        if let (Some(first), Some(last)) = (names().min(), names().max()) {
            waiting.push((n, dir, first, last));
        }
    }
    // Directories found by earlier levels, by relative path.
    let mut found_dirs: HashMap<Vec<u8>, i64> = HashMap::new();
    let mut found: HashMap<usize, Vec<Known>> = HashMap::new();
    let mut by_name_set = false;
    loop {
        let (mut runs, mut dirs, mut parents, mut firsts, mut lasts) =
            (vec![], vec![], vec![], vec![], vec![]);
        let mut later = Vec::new();
        for (n, dir, first, last) in waiting {
            let parent = match dir {
                None => Some(TOP),
                Some(d) => match found_dirs.get(d) {
                    Some(&id) => Some(id),
                    // Known without a query, or not yet.
                    None => book.resolve_dir(d, |_, _| Ok(None))?,
                },
            };
            match parent {
                Some(parent) => {
                    runs.push(i64::try_from(n).unwrap_or(i64::MAX));
                    dirs.push(dir);
                    parents.push(parent);
                    firsts.push(first);
                    lasts.push(last);
                }
                None => later.push((n, dir, first, last)),
            }
        }
        waiting = later;
        if runs.is_empty() {
            return Ok(found);
        }
        if !by_name_set {
            // Each run's rows found through `entries_name`, as the query
            // per run does: left to itself the planner may hash the table.
            each_by_index(tx, st)?;
            by_name_set = true;
        }
        let find = st.get(
            tx,
            "SELECT r.i, e.name, e.id, e.kind, e.size, e.mtime_ns, e.ctime_ns, e.inode, \
             e.device, e.mode FROM unnest($2::bigint[], $3::bytea[], $4::bytea[]) \
             WITH ORDINALITY AS r (parent, first, last, i) JOIN entries e \
             ON e.location_id = $1 AND e.parent_id = r.parent \
             AND e.name BETWEEN r.first AND r.last ORDER BY r.i, e.name",
        )?;
        let location_id = book.location_id();
        for n in &runs {
            // Asked for: a run without rows holds only new entries.
            found
                .entry(usize::try_from(*n).unwrap_or(usize::MAX))
                .or_default();
        }
        for r in tx.query(&find, &[&location_id, &parents, &firsts, &lasts])? {
            // WITH ORDINALITY counts from 1.
            let i = usize::try_from(r.try_get::<_, i64>(0)? - 1).unwrap_or(usize::MAX);
            let (Some(&n), Some(&dir)) = (runs.get(i), dirs.get(i)) else {
                continue;
            };
            let known = known(&r, 1)?;
            if known.kind == Kind::Dir as u8 {
                let path = match dir {
                    None => known.name.clone(),
                    Some(d) => [d, b"/", &known.name].concat(),
                };
                found_dirs.insert(path, known.id);
            }
            found
                .entry(usize::try_from(n).unwrap_or(usize::MAX))
                .or_default()
                .push(known);
        }
    }
}

/// The changed rows of a batch, as the columns of one `UPDATE ... FROM
/// unnest(...)`.
#[derive(Default)]
struct Updates<'b> {
    id: Vec<i64>,
    parent: Vec<i64>,
    kind: Vec<i16>,
    size: Vec<i64>,
    mtime_ns: Vec<i64>,
    ctime_ns: Vec<i64>,
    inode: Vec<i64>,
    device: Vec<i64>,
    mode: Vec<i64>,
    /// Only ctime or mode changed: the stored digests are kept.
    touched: Vec<bool>,
    cas_id: Vec<Option<&'b str>>,
    checksum: Vec<Option<&'b str>>,
    extension: Vec<Option<String>>,
}

impl<'b> Updates<'b> {
    fn push(&mut self, id: i64, parent: i64, entry: &Walked<'b>, change: Change) {
        self.id.push(id);
        self.parent.push(parent);
        self.kind.push(kind_column(entry.kind));
        self.size.push(entry.size);
        self.mtime_ns.push(entry.mtime_ns);
        self.ctime_ns.push(entry.ctime_ns);
        self.inode.push(entry.inode);
        self.device.push(entry.device);
        self.mode.push(i64::from(entry.mode));
        self.touched.push(change == Change::Touched);
        self.cas_id.push(entry.cas_id);
        self.checksum.push(entry.checksum);
        self.extension.push(entry.extension());
    }

    /// A modified entry's digests are the walk's (none unless it hashed),
    /// so the content step hashes it again; a touched one keeps its own.
    fn write(&self, tx: &mut Transaction<'_>, st: &mut Statements, started: f64) -> Result<()> {
        if self.id.is_empty() {
            return Ok(());
        }
        let update = st.get(
            tx,
            "UPDATE entries e SET parent_id = v.parent_id, kind = v.kind, size = v.size, \
             mtime_ns = v.mtime_ns, ctime_ns = v.ctime_ns, inode = v.inode, \
             device = v.device, mode = v.mode, indexed_at = $1, \
             cas_id = CASE WHEN v.touched THEN e.cas_id ELSE v.cas_id END, \
             checksum = CASE WHEN v.touched THEN e.checksum ELSE v.checksum END, \
             extension = v.extension \
             FROM unnest($2::bigint[], $3::bigint[], $4::smallint[], $5::bigint[], \
             $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[], \
             $11::boolean[], $12::text[], $13::text[], $14::text[]) \
             AS v (id, parent_id, kind, size, mtime_ns, ctime_ns, inode, device, mode, \
             touched, cas_id, checksum, extension) \
             WHERE e.id = v.id",
        )?;
        tx.execute(
            &update,
            &[
                &started,
                &self.id,
                &self.parent,
                &self.kind,
                &self.size,
                &self.mtime_ns,
                &self.ctime_ns,
                &self.inode,
                &self.device,
                &self.mode,
                &self.touched,
                &self.cas_id,
                &self.checksum,
                &self.extension,
            ],
        )?;
        Ok(())
    }
}

/// `LibraryStore::upsert_batch` for a location with entries, inside `tx`.
pub(super) fn write(
    tx: &mut Transaction<'_>,
    st: &mut Statements,
    pool: &mut IdPool,
    book: &mut ScanBook,
    batch: &Batch,
    problems: &mut Vec<FsError>,
) -> Result<()> {
    let location_id = book.location_id();
    let started = book.started();
    let find_id = st.get(
        tx,
        "SELECT id FROM entries WHERE location_id = $1 AND parent_id = $2 AND name = $3",
    )?;
    // Relative paths, or None for a path outside the root.
    let rels: Vec<Option<&[u8]>> = batch.paths().map(|p| book.relative(p)).collect();
    let mut prefetched = prefetch(tx, st, book, &rels)?;
    let mut new_rows: Vec<NewRow<'_>> = Vec::new();
    let mut updates = Updates::default();
    for (n, (run, dir)) in dir_runs(&rels).enumerate() {
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
                match tx.query_opt(&find_id, &[&location_id, &parent, &name])? {
                    Some(row) => Ok(Some(row.try_get(0)?)),
                    None => Ok(None),
                }
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
        let known = match prefetched.remove(&n) {
            Some(rows) => rows,
            // Its directory was met in this batch: looked up now.
            None => known_rows(tx, st, location_id, parent, first, last)?,
        };
        let entries: Vec<Walked<'_>> = run
            .clone()
            .map(|i| Walked::new(batch, i, rels[i].unwrap_or_default()))
            .collect();
        let found: Vec<Option<&Known>> = entries
            .iter()
            .map(|entry| {
                known
                    .binary_search_by(|k| k.name.as_slice().cmp(entry.name))
                    .ok()
                    .map(|at| &known[at])
            })
            .collect();
        let new = found.iter().filter(|f| f.is_none()).count();
        let mut ids = if new > 0 {
            pool.take(tx, st, new)?
        } else {
            Vec::new()
        }
        .into_iter();
        for ((i, entry), found) in run.clone().zip(entries).zip(found) {
            book.count(&entry);
            let id = match found {
                None => {
                    let Some(id) = ids.next() else {
                        let why = "no entry id was left for it";
                        problems.push(FsError::other(batch.path(i), 0, why));
                        continue;
                    };
                    book.inserted(&entry, id);
                    new_rows.push(NewRow {
                        id,
                        parent,
                        extension: entry.extension(),
                        entry,
                    });
                    id
                }
                Some(k) => {
                    let change = Change::of(k, &entry);
                    book.compared(change);
                    if change != Change::Unchanged {
                        updates.push(k.id, parent, &entry, change);
                    }
                    k.id
                }
            };
            book.record(id, parent, &entry);
        }
    }
    insert(tx, st, location_id, started, &new_rows)?;
    updates.write(tx, st, started)
}
