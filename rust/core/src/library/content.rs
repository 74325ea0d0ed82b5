//! The content step of indexing: hash the files that have no cas_id (or no
//! checksum, in deep mode) and link entries to their content identities.

use std::fmt::Write;

use rusqlite::{params, Transaction, TransactionBehavior};

use super::model::now;
use super::sqlite::content::drop_lost_identities;
use super::sqlite::SqliteStore;
use super::store::LibraryStore;
use crate::cancel::CancelToken;
use crate::content::{cas_id_hex, hash_file, hex, map_items, Want};
use crate::error::{FsError, Result};
use crate::sys;
use crate::walk::join;

/// What one [`hash_missing`] call did.
#[derive(Debug, Default)]
pub struct HashPass {
    /// The highest entry id looked at: pass it as `after_id` next time.
    pub last_id: i64,
    /// Files looked at, files hashed, bytes hashed.
    pub looked_at: u64,
    pub hashed: u64,
    pub bytes: u64,
    pub errors: Vec<FsError>,
}

struct Missing {
    id: i64,
    path: Vec<u8>,
    size: i64,
    mtime_ns: i64,
    inode: i64,
    device: i64,
}

/// How many of the location's files [`hash_missing`] has yet to hash (non-empty
/// regular files without a cas_id, or without a checksum when `checksums` is
/// set): the total of the content step's progress.
pub fn count_missing(db: &SqliteStore, location_id: i64, checksums: bool) -> Result<u64> {
    // `+location_id`: one pass over the table in id order, as hash_missing
    // reads it, not a lookup of every row through `entries_name`.
    let count: i64 = db
        .conn
        .prepare_cached(
            "SELECT COUNT(*) FROM entries WHERE +location_id = ?1 AND kind = 0 AND size > 0 \
         AND (cas_id IS NULL OR (?2 AND checksum IS NULL))",
        )?
        .query_row(params![location_id, checksums], |r| r.get(0))?;
    Ok(u64::try_from(count).unwrap_or(0))
}

/// Hash up to `limit` files of the location (ids above `after_id`) that lack
/// a cas_id, or a checksum when `checksums` is set, in parallel; store the
/// results in one transaction. A file that changed since it was indexed is
/// reported and left for the next index.
///
/// The new cas_ids are linked to their content identities as they are
/// stored, by the schema's triggers. (Leaving them to one sorted pass of
/// [`link_identities`] instead was measured on a 200,000-file location
/// switched to content mode: no faster, 3.10-3.18 s against 3.17-3.24 s.)
pub fn hash_missing(
    db: &mut SqliteStore,
    location_id: i64,
    after_id: i64,
    limit: usize,
    checksums: bool,
    threads: Option<usize>,
    cancel: &CancelToken,
) -> Result<HashPass> {
    let root = db.location(location_id)?.path;
    let mut todo = Vec::new();
    {
        // `+location_id`: an id range scan, not `entries_name` (which would
        // read and sort all of the location's rows for every page).
        let mut stmt = db.conn.prepare_cached(
            "SELECT id, path, size, mtime_ns, inode, device FROM entries \
             WHERE id > ?2 AND +location_id = ?1 AND kind = 0 AND size > 0 \
             AND (cas_id IS NULL OR (?3 AND checksum IS NULL)) ORDER BY id LIMIT ?4",
        )?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt.query_map(params![location_id, after_id, checksums, limit], |r| {
            Ok(Missing {
                id: r.get(0)?,
                path: r.get(1)?,
                size: r.get(2)?,
                mtime_ns: r.get(3)?,
                inode: r.get(4)?,
                device: r.get(5)?,
            })
        })?;
        for row in rows {
            let mut m = row?;
            m.path = join(&root, &m.path);
            todo.push(m);
        }
    }
    let mut pass = HashPass {
        last_id: todo.last().map_or(after_id, |m| m.id),
        looked_at: todo.len() as u64,
        ..HashPass::default()
    };
    let want = Want {
        cas_id: true,
        checksum: checksums,
    };
    let stop = || cancel.is_cancelled();
    let results = map_items(&todo, threads, cancel, |m| {
        // Identity-checked open: a path now naming another file (or a
        // symlink) is refused rather than hashed under the old entry.
        let (mut file, meta) = sys::open_listed(&m.path, (m.device as u64, m.inode as u64))
            .map_err(|e| FsError::from_io(&m.path, &e))?;
        if meta.size as i64 != m.size || meta.mtime_ns != m.mtime_ns {
            return Err(FsError::other(&m.path, 0, "changed since it was indexed"));
        }
        hash_file(&mut file, &meta, want, &m.path, &stop)
    })?;
    let tx = db
        .conn
        .transaction_with_behavior(TransactionBehavior::Immediate)?;
    {
        let mut update = tx.prepare_cached(
            "UPDATE entries SET cas_id = ?2, checksum = COALESCE(?3, checksum) WHERE id = ?1",
        )?;
        for (m, result) in todo.iter().zip(results) {
            match result {
                Ok(h) => {
                    let cas = h.cas.map(|d| cas_id_hex(&d));
                    let sum = h.checksum.map(|d| hex(&d));
                    update.execute(params![m.id, cas, sum])?;
                    pass.hashed += 1;
                    pass.bytes += m.size as u64;
                }
                Err(e) => pass.errors.push(e),
            }
        }
    }
    tx.commit()?;
    Ok(pass)
}

/// A cas_id as written by [`cas_id_hex`] (16 lowercase hex digits) as the
/// number it spells: numbers sort like those strings, and take a third of
/// the memory. `None` for any other text.
fn cas_number(text: &str) -> Option<u64> {
    let canonical =
        text.len() == 16 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    canonical
        .then(|| u64::from_str_radix(text, 16).ok())
        .flatten()
}

/// Link the location's entries that were inserted with their cas_ids (a
/// fresh content index, hashing as it walks)
/// to their content identities, creating new identities (first seen now),
/// and drop the identities that lost their last entry since the last call.
/// Returns the number of identities created. Other changes are linked by
/// the schema's triggers as they happen, so after a re-index that found
/// little this has almost nothing to do. With `prune`, lookups whose entry
/// changed or went and identities nothing uses are also looked for in the
/// whole library: a repair that the triggers make unnecessary. One
/// transaction; idempotent, so a rerun after a crash finishes the job.
///
/// Both inserts run in cas_id order, so the two cas_id-keyed trees grow
/// page by page instead of at random places. The rows are read in table
/// order (a sequential scan) and sorted here as numbers rather than by
/// SQLite, whose `ORDER BY` goes through the name index and a temporary
/// B-tree: this halves the time to link a fresh index.
pub fn link_identities(db: &mut SqliteStore, location_id: i64, prune: bool) -> Result<u64> {
    let tx = db
        .conn
        .transaction_with_behavior(TransactionBehavior::Immediate)?;
    let linked: bool = tx.query_row(
        "SELECT content_linked FROM locations WHERE id = ?1",
        [location_id],
        |r| r.get(0),
    )?;
    let mut created = 0;
    if !linked {
        created = match sorted_cas_rows(&tx, location_id)? {
            Some(rows) => insert_sorted(&tx, &rows)?,
            None => insert_by_sql(&tx, location_id)?,
        };
        tx.execute(
            "UPDATE locations SET content_linked = 1 WHERE id = ?1",
            [location_id],
        )?;
    }
    drop_lost_identities(&tx)?;
    if prune {
        tx.execute(
            "DELETE FROM entry_content WHERE NOT EXISTS (SELECT 1 FROM entries e \
             WHERE e.id = entry_content.entry_id AND e.cas_id = entry_content.cas_id)",
            [],
        )?;
        tx.execute(
            "DELETE FROM content_identities WHERE NOT EXISTS \
             (SELECT 1 FROM entry_content ec WHERE ec.cas_id = content_identities.cas_id)",
            [],
        )?;
    }
    tx.commit()?;
    Ok(created)
}

/// The location's (cas_id as a number, entry id, size) rows, sorted; `None`
/// if some cas_id is not in the canonical form (then SQL does the sorting).
fn sorted_cas_rows(tx: &Transaction<'_>, location_id: i64) -> Result<Option<Vec<(u64, i64, i64)>>> {
    let mut select = tx.prepare_cached(
        "SELECT cas_id, id, size FROM entries WHERE +location_id = ?1 AND cas_id IS NOT NULL",
    )?;
    let mut rows = Vec::new();
    let mut query = select.query([location_id])?;
    while let Some(row) = query.next()? {
        // Text that is not a canonical cas_id (or not text) goes the SQL way.
        let Some(key) = cas_number(row.get_ref(0)?.as_str().unwrap_or("")) else {
            return Ok(None);
        };
        rows.push((key, row.get(1)?, row.get(2)?));
    }
    rows.sort_unstable();
    Ok(Some(rows))
}

/// Link sorted rows (see [`sorted_cas_rows`]); returns identities created.
fn insert_sorted(tx: &Transaction<'_>, rows: &[(u64, i64, i64)]) -> Result<u64> {
    let mut link = tx
        .prepare_cached("INSERT OR IGNORE INTO entry_content (cas_id, entry_id) VALUES (?1, ?2)")?;
    let mut identity = tx.prepare_cached(
        "INSERT OR IGNORE INTO content_identities (cas_id, size, first_seen) VALUES (?1, ?2, ?3)",
    )?;
    let seen_at = now();
    let mut created = 0;
    let mut text = String::with_capacity(16);
    for group in rows.chunk_by(|a, b| a.0 == b.0) {
        text.clear();
        // Writing to a String cannot fail.
        let _ = write!(text, "{:016x}", group[0].0);
        for (_, id, _) in group {
            link.execute(params![text, id])?;
        }
        // An identity's size is its smallest entry's (they agree unless a
        // cas_id collides across sizes).
        let size = group.iter().map(|r| r.2).min().unwrap_or(0);
        created += identity.execute(params![text, size, seen_at])? as u64;
    }
    Ok(created)
}

/// The same as [`insert_sorted`], sorted by SQLite: for cas_ids in another form.
fn insert_by_sql(tx: &Transaction<'_>, location_id: i64) -> Result<u64> {
    let created = tx.execute(
        "INSERT OR IGNORE INTO content_identities (cas_id, size, first_seen) \
         SELECT cas_id, MIN(size), ?2 FROM entries WHERE location_id = ?1 \
         AND cas_id IS NOT NULL GROUP BY cas_id ORDER BY cas_id",
        params![location_id, now()],
    )?;
    tx.execute(
        "INSERT OR IGNORE INTO entry_content (cas_id, entry_id) \
         SELECT cas_id, id FROM entries WHERE location_id = ?1 AND cas_id IS NOT NULL \
         ORDER BY cas_id, id",
        [location_id],
    )?;
    Ok(created as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::library::model::IndexMode;

    type Rows = Vec<(String, i64)>;

    /// A location whose files have these (cas_id, size) pairs, linked; then
    /// the lookup rows and the identities, sorted.
    fn linked(cas: &[(&str, i64)]) -> (Rows, Rows) {
        let mut db = SqliteStore::in_memory().unwrap();
        let loc = db.add_location(b"/t", IndexMode::Content, true).unwrap();
        for (i, (cas_id, size)) in cas.iter().enumerate() {
            let name = format!("f{i}");
            db.conn
                .execute(
                    "INSERT INTO entries (location_id, path, parent_id, name, kind, size, \
                     mtime_ns, ctime_ns, inode, device, mode, cas_id, indexed_at) \
                     VALUES (?1, ?2, 0, ?2, 0, ?3, 0, 0, ?4, 1, 33188, ?5, 0)",
                    params![loc.id, name.as_bytes(), size, i as i64, cas_id],
                )
                .unwrap();
        }
        assert_eq!(
            link_identities(&mut db, loc.id, false).unwrap(),
            cas.iter()
                .map(|c| c.0)
                .collect::<std::collections::BTreeSet<_>>()
                .len() as u64
        );
        let rows = |sql: &str| -> Rows {
            let mut stmt = db.conn.prepare(sql).unwrap();
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .map(|r| r.unwrap())
                .collect();
            rows
        };
        (
            rows("SELECT cas_id, entry_id FROM entry_content ORDER BY 1, 2"),
            rows("SELECT cas_id, size FROM content_identities ORDER BY 1"),
        )
    }

    #[test]
    fn canonical_and_other_cas_ids_link_alike() {
        let a = "00000000000000ff";
        let b = "a000000000000001";
        let (links, identities) = linked(&[(b, 5), (a, 7), (b, 5), (a, 3)]);
        let owned =
            |v: &[(&str, i64)]| -> Rows { v.iter().map(|(s, n)| (s.to_string(), *n)).collect() };
        assert_eq!(links, owned(&[(a, 2), (a, 4), (b, 1), (b, 3)]));
        assert_eq!(identities, owned(&[(a, 3), (b, 5)]));
        // Not canonical (upper case): SQLite sorts instead, same result.
        let (links, identities) = linked(&[("B", 5), (a, 7), ("B", 5), (a, 3)]);
        assert_eq!(links, owned(&[(a, 2), (a, 4), ("B", 1), ("B", 3)]));
        assert_eq!(identities, owned(&[(a, 3), ("B", 5)]));
    }

    #[test]
    fn cas_numbers_only_for_canonical_text() {
        assert_eq!(cas_number("00000000000000ff"), Some(255));
        assert_eq!(cas_number("00000000000000FF"), None);
        assert_eq!(cas_number("ff"), None);
        assert_eq!(cas_number("+000000000000000"), None);
        assert_eq!(
            format!("{:016x}", cas_number("a000000000000001").unwrap()),
            "a000000000000001"
        );
    }
}
