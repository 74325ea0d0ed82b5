//! Content carried from one place of the library to another: what a copy
//! or a move made holds the bytes its source held, so the files it placed
//! take their source's cas_id and checksum instead of being hashed again
//! (`LibraryStore::carry_content`).

use std::collections::HashMap;

use rusqlite::{params, Connection, TransactionBehavior};

use crate::error::Result;

/// A regular file under the prefix `files_under` was given.
struct Below {
    /// Its path after the prefix.
    rest: Vec<u8>,
    size: i64,
    mtime_ns: i64,
    ctime_ns: i64,
    id: i64,
    cas_id: Option<String>,
    checksum: Option<String>,
}

/// The regular files of a location under `prefix` (relative to its root;
/// empty: all of them), handed to `each`.
fn files_under(
    conn: &Connection,
    location_id: i64,
    prefix: &[u8],
    mut each: impl FnMut(Below),
) -> Result<()> {
    // Paths under `p` are `p` itself and those in [p + "/", p + "0"): '0'
    // follows '/' in byte order, and BLOBs compare as bytes.
    let below = [prefix, b"/"].concat();
    let past = [prefix, b"0"].concat();
    let mut stmt = conn.prepare_cached(
        "SELECT path, size, mtime_ns, ctime_ns, id, cas_id, checksum FROM entries \
         WHERE location_id = ?1 AND kind = 0 \
         AND (?2 = x'' OR path = ?2 OR (path >= ?3 AND path < ?4))",
    )?;
    let mut rows = stmt.query(params![location_id, prefix, below, past])?;
    while let Some(row) = rows.next()? {
        let path: Vec<u8> = row.get(0)?;
        each(Below {
            rest: path.get(prefix.len()..).unwrap_or_default().to_vec(),
            size: row.get(1)?,
            mtime_ns: row.get(2)?,
            ctime_ns: row.get(3)?,
            id: row.get(4)?,
            cas_id: row.get(5)?,
            checksum: row.get(6)?,
        });
    }
    Ok(())
}

/// `LibraryStore::carry_content`: one transaction.
pub(super) fn carry_content(
    conn: &mut Connection,
    to: (i64, &[u8]),
    from: (i64, &[u8]),
    placed_since_ns: i64,
) -> Result<u64> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // What the sources had: (size, mtime, cas_id, checksum) by the path
    // below the source's root. Only as many as the copied set holds.
    let mut had: HashMap<Vec<u8>, (i64, i64, String, Option<String>)> = HashMap::new();
    files_under(&tx, from.0, from.1, |file| {
        if let Some(cas) = file.cas_id {
            had.insert(file.rest, (file.size, file.mtime_ns, cas, file.checksum));
        }
    })?;
    let mut lacking = Vec::new();
    if !had.is_empty() {
        files_under(&tx, to.0, to.1, |file| {
            // Only files the copy placed (their ctime is the placing's): a
            // file that was there before (a name skipped by the conflict
            // policy) may hold other bytes of the same size and mtime.
            if file.cas_id.is_none() && file.ctime_ns >= placed_since_ns {
                lacking.push(file);
            }
        })?;
    }
    let mut carried = 0u64;
    {
        // A copy keeps its source's size and mtime: an entry that differs
        // is not (or no longer) that copy, and is hashed by the next index.
        // Setting cas_id fires `entries_cas_changed`, which links the entry
        // to the identity its source has (keeping its first_seen).
        let mut set = tx.prepare_cached(
            "UPDATE entries SET cas_id = ?2, checksum = COALESCE(checksum, ?3) \
             WHERE id = ?1 AND cas_id IS NULL",
        )?;
        for file in lacking {
            if let Some((size, mtime_ns, cas, checksum)) = had.get(&file.rest) {
                if *size == file.size && *mtime_ns == file.mtime_ns {
                    carried += set.execute(params![file.id, cas, checksum])? as u64;
                }
            }
        }
    }
    tx.commit()?;
    Ok(carried)
}
