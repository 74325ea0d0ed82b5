//! The content step of indexing: hash the files that have no cas_id (or no
//! checksum, in deep mode) and link entries to their content identities.

use rusqlite::{params, TransactionBehavior};

use super::{now, LibraryDb};
use crate::cancel::CancelToken;
use crate::content::{cas_id_hex, hash_file, hex, map_items, Want};
use crate::error::{FsError, Result};
use crate::sys;

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

/// Hash up to `limit` files of the location (ids above `after_id`) that lack
/// a cas_id, or a checksum when `checksums` is set, in parallel; store the
/// results in one transaction. A file that changed since it was indexed is
/// reported and left for the next index. `root` is the location's path.
pub fn hash_missing(
    db: &mut LibraryDb,
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
            let mut abs = root.clone();
            if !abs.ends_with(b"/") {
                abs.push(b'/');
            }
            abs.extend_from_slice(&m.path);
            m.path = abs;
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

/// Drop content identities no entry refers to any more.
pub(crate) const PRUNE_IDENTITIES: &str = "DELETE FROM content_identities WHERE NOT EXISTS \
     (SELECT 1 FROM entry_content ec WHERE ec.cas_id = content_identities.cas_id)";

/// Record the content identities of the location's hashed entries (new
/// ones first seen now) and the lookup from each cas_id to its entries; with
/// `prune`, drop lookups whose entry changed or went and identities nothing
/// uses any more (after re-indexing found changes). Returns the number of
/// identities created. One transaction; idempotent, so a rerun after a crash
/// finishes the job.
///
/// Both inserts run in cas_id order, so the two cas_id-keyed trees grow
/// page by page instead of at random places.
pub fn link_identities(db: &mut LibraryDb, location_id: i64, prune: bool) -> Result<u64> {
    let tx = db
        .conn
        .transaction_with_behavior(TransactionBehavior::Immediate)?;
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
    if prune {
        tx.execute(
            "DELETE FROM entry_content WHERE NOT EXISTS (SELECT 1 FROM entries e \
             WHERE e.id = entry_content.entry_id AND e.cas_id = entry_content.cas_id)",
            [],
        )?;
        tx.execute(PRUNE_IDENTITIES, [])?;
    }
    tx.commit()?;
    Ok(created as u64)
}
