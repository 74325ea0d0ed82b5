//! Directory sizes and file counts, deepest first.
//!
//! A regular file with several names (hard links) in one location counts
//! once, like `du`: in the directory of its name that sorts first by bytes,
//! whatever order the walk wrote its names in, so a resumed index sums as an
//! uninterrupted one does. A name outside the location does not matter: the
//! file has one name inside, and counts there.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use rusqlite::{params, TransactionBehavior};

use super::model::TOP;
use super::sqlite::SqliteStore;
use crate::error::Result;
use crate::sys::Kind;

/// Bytes and count of the regular files directly in each directory, by id.
pub(crate) type Sums = HashMap<i64, (i64, i64)>;

/// Regular files with several names, by (device, inode): the (relative
/// path, parent id, size) of the name that sorts first, where it counts.
#[derive(Debug, Default)]
pub(crate) struct Linked(HashMap<(i64, i64), (Vec<u8>, i64, i64)>);

impl Linked {
    /// One name of the file `key`, in directory `parent`.
    pub(crate) fn note(&mut self, key: (i64, i64), rel: &[u8], parent: i64, size: i64) {
        match self.0.entry(key) {
            Entry::Vacant(slot) => {
                slot.insert((rel.to_vec(), parent, size));
            }
            Entry::Occupied(mut slot) => {
                if rel < slot.get().0.as_slice() {
                    slot.insert((rel.to_vec(), parent, size));
                }
            }
        }
    }

    /// Count each file once, in the directory of its first name.
    pub(crate) fn add_to(self, sums: &mut Sums) {
        for (_, parent, size) in self.0.into_values() {
            let sum = sums.entry(parent).or_insert((0, 0));
            sum.0 += size;
            sum.1 += 1;
        }
    }
}

/// Set every directory's `agg_size` (bytes of the regular files beneath it)
/// and `file_count`, and the location's totals. Returns the totals.
///
/// Sums are gathered in one pass over the location's files, carried up the
/// tree in memory (a child's path is longer than its parent's, so sorting
/// directories by path length, longest first, visits children before
/// parents), and written only where they changed, in one transaction.
/// Without the walk's link counts, files with several names are the
/// (device, inode) pairs found more than once among the location's files
/// (sorted here: on a 200,000-file location, a pass with SQLite's
/// `GROUP BY device, inode HAVING COUNT(*) > 1` took 0.21-0.22 s, this one
/// 0.11 s, against 0.06-0.07 s for the sums alone): their rows are taken
/// out of the sums and each file is put back once (see [`Linked`]).
pub fn aggregate(db: &mut SqliteStore, location_id: i64) -> Result<(i64, i64)> {
    let tx = db
        .conn
        .transaction_with_behavior(TransactionBehavior::Immediate)?;
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
        // One pass over the location's files: sums by directory, and every
        // file's (device, inode, id), sorted after to find the shared ones.
        let mut stmt = tx.prepare(
            "SELECT parent_id, size, device, inode, id FROM entries \
             WHERE location_id = ?1 AND kind = ?2",
        )?;
        let mut rows = stmt.query(params![location_id, Kind::File as u8])?;
        let mut files: Vec<(i64, i64, i64)> = Vec::new();
        while let Some(r) = rows.next()? {
            let sum = sums.entry(r.get(0)?).or_insert((0, 0));
            sum.0 += r.get::<_, i64>(1)?;
            sum.1 += 1;
            files.push((r.get(2)?, r.get(3)?, r.get(4)?));
        }
        files.sort_unstable();
        // Files with several names: taken out of the sums, put back once.
        let mut row = tx.prepare("SELECT path, parent_id, size FROM entries WHERE id = ?1")?;
        let mut linked = Linked::default();
        for names in files.chunk_by(|a, b| (a.0, a.1) == (b.0, b.1)) {
            if names.len() < 2 {
                continue;
            }
            for &(device, inode, id) in names {
                let (path, parent, size): (Vec<u8>, i64, i64) =
                    row.query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
                let sum = sums.entry(parent).or_insert((0, 0));
                sum.0 -= size;
                sum.1 -= 1;
                linked.note((device, inode), &path, parent, size);
            }
        }
        linked.add_to(&mut sums);
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
    mut sums: Sums,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_counts_once_where_its_first_name_is() {
        let mut linked = Linked::default();
        // Names met in any order; b"a-b/y" sorts before b"a/x" ('-' < '/').
        linked.note((1, 7), b"a/x", 10, 5);
        linked.note((1, 7), b"a-b/y", 20, 5);
        linked.note((1, 7), b"b", TOP, 5);
        linked.note((1, 8), b"caf\xe9", TOP, 3);
        let mut sums = Sums::new();
        sums.insert(10, (100, 2));
        linked.add_to(&mut sums);
        assert_eq!(sums.get(&10), Some(&(100, 2)));
        assert_eq!(sums.get(&20), Some(&(5, 1)));
        assert_eq!(sums.get(&TOP), Some(&(3, 1)));
    }
}
