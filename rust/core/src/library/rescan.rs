//! Writing a batch into a location that has entries already: each entry is
//! compared with its row, found by directory and name.
//!
//! A walker batch holds whole runs of one directory's entries. For each run
//! the rows of that directory whose names fall in the run's range are read
//! with one range query over `entries_name` and looked up in memory, instead
//! of one indexed query per entry: the per-statement work is paid per
//! directory. New entries are inserted, changed ones (kind, size, mtime or
//! inode differ at the precision stored) updated with their content identity
//! cleared, and unchanged ones are not written at all, which is what makes
//! re-indexing an unchanged tree cheap.

use rusqlite::{params, CachedStatement, Transaction};

use super::model::TOP;
use super::rows::{digests, extension, signed, split_name};
use super::scan::ScanWriter;
use crate::error::{FsError, Result};
use crate::sys::Kind;
use crate::walk::Batch;

/// An existing row, as far as change detection needs it.
struct Known {
    name: Vec<u8>,
    id: i64,
    kind: u8,
    size: i64,
    mtime_ns: i64,
    ctime_ns: i64,
    inode: i64,
    device: i64,
    mode: u32,
}

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

impl ScanWriter {
    /// [`ScanWriter::write_batch`] for a location with entries, inside `tx`.
    pub(crate) fn write_rescan(
        &mut self,
        tx: &Transaction<'_>,
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
        let location_id = self.location_id();
        let started = self.started();
        // Relative paths, or None for a path outside the root.
        let rels: Vec<Option<&[u8]>> = batch.paths().map(|p| self.relative(p)).collect();
        let parent_of = |i: usize| rels[i].map(|rel| split_name(rel).0);
        let mut start = 0;
        while start < batch.len() {
            // The run of entries in the same directory as entry `start`.
            let dir = parent_of(start);
            let end = (start + 1..batch.len())
                .find(|&j| parent_of(j) != dir)
                .unwrap_or(batch.len());
            let run = start..end;
            start = end;
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
                Some(dir) => self.resolve_dir(&mut find_id, dir)?,
            };
            let Some(parent) = parent else {
                // Cannot happen for a walk (a directory comes before its
                // children), but never write an entry without its parent.
                skip("its directory is not indexed");
                continue;
            };
            let names: Vec<&[u8]> = run
                .clone()
                .filter_map(|i| rels[i])
                .map(|r| split_name(r).1)
                .collect();
            let (Some(first), Some(last)) = (names.iter().min(), names.iter().max()) else {
                continue;
            };
            let known = known_rows(&mut find, location_id, parent, first, last)?;
            for (i, name) in run.zip(names) {
                let rel = rels[i].unwrap_or_default();
                let kind = batch.kinds[i];
                let size = signed(batch.sizes[i]);
                let (inode, device) = (signed(batch.inodes[i]), signed(batch.devices[i]));
                let (mtime, ctime, mode) = (batch.mtimes_ns[i], batch.ctimes_ns[i], batch.modes[i]);
                self.count(kind, batch.sizes[i]);
                let (cas, sum) = digests(batch, i);
                let found = known
                    .binary_search_by(|k| k.name.as_slice().cmp(name))
                    .ok()
                    .map(|at| &known[at]);
                if cas.is_some() || sum.is_some() {
                    // Hashed while walked, also a file found already written
                    // (a resumed first index walks again what it wrote after
                    // its last checkpoint, whose count was lost with it).
                    self.stats.hashed += 1;
                }
                let id = match found {
                    None => {
                        insert.execute(params![
                            location_id,
                            rel,
                            parent,
                            name,
                            extension(name, kind),
                            kind,
                            size,
                            mtime,
                            ctime,
                            inode,
                            device,
                            mode,
                            cas,
                            sum,
                            started
                        ])?;
                        self.stats.new += 1;
                        let id = tx.last_insert_rowid();
                        if kind == Kind::File as u8 {
                            self.note_new_file((device, inode), id, size, mtime);
                        }
                        id
                    }
                    Some(k) => {
                        let same_content = k.kind == kind
                            && k.size == size
                            && k.mtime_ns == mtime
                            && k.inode == inode
                            && k.device == device;
                        if same_content {
                            self.stats.unchanged += 1;
                        } else {
                            self.stats.modified += 1;
                        }
                        if !(same_content && k.ctime_ns == ctime && k.mode == mode) {
                            update.execute(params![
                                k.id,
                                parent,
                                kind,
                                size,
                                mtime,
                                ctime,
                                inode,
                                device,
                                mode,
                                started,
                                same_content,
                                cas,
                                sum,
                                extension(name, kind)
                            ])?;
                        }
                        k.id
                    }
                };
                let link = (batch.nlinks[i] > 1).then_some((device, inode));
                self.record(id, parent, rel, kind, size, link);
            }
        }
        Ok(())
    }
}
