//! Content carried from one place of the library to another: what a copy
//! or a move made holds the bytes its source held, so the files it placed
//! take their source's cas_id and checksum instead of being hashed again
//! (`LibraryStore::carry_content`).

use std::collections::HashMap;

use postgres::fallible_iterator::FallibleIterator;
use postgres::types::ToSql;
use postgres::GenericClient;

use super::connection::Conn;
use super::locks;
use super::statements::Statements;
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
    c: &mut impl GenericClient,
    st: &mut Statements,
    location_id: i64,
    prefix: &[u8],
    mut each: impl FnMut(Below),
) -> Result<()> {
    // Paths under `p` are `p` itself and those in [p + "/", p + "0"): '0'
    // follows '/' in byte order, and bytea compares as bytes.
    let below = [prefix, b"/"].concat();
    let past = [prefix, b"0"].concat();
    let stmt = st.get(
        c,
        "SELECT path, size, mtime_ns, ctime_ns, id, cas_id, checksum FROM entries \
         WHERE location_id = $1 AND kind = 0 \
         AND ($2 = ''::bytea OR path = $2 OR (path >= $3 AND path < $4))",
    )?;
    let params: [&(dyn ToSql + Sync); 4] = [&location_id, &prefix, &below, &past];
    let mut rows = c.query_raw(&stmt, params)?;
    while let Some(row) = rows.next()? {
        let path: &[u8] = row.try_get(0)?;
        each(Below {
            rest: path.get(prefix.len()..).unwrap_or_default().to_vec(),
            size: row.try_get(1)?,
            mtime_ns: row.try_get(2)?,
            ctime_ns: row.try_get(3)?,
            id: row.try_get(4)?,
            cas_id: row.try_get(5)?,
            checksum: row.try_get(6)?,
        });
    }
    Ok(())
}

/// `LibraryStore::carry_content`: one transaction.
pub(super) fn carry_content(
    conn: &mut Conn,
    to: (i64, &[u8]),
    from: (i64, &[u8]),
    placed_since_ns: i64,
) -> Result<u64> {
    let Conn {
        client, statements, ..
    } = conn;
    let mut tx = client.transaction()?;
    locks::identities_shared(&mut tx, statements)?;
    // What the sources had: (size, mtime, cas_id, checksum) by the path
    // below the source's root. Only as many as the copied set holds.
    let mut had: HashMap<Vec<u8>, (i64, i64, String, Option<String>)> = HashMap::new();
    files_under(&mut tx, statements, from.0, from.1, |file| {
        if let Some(cas) = file.cas_id {
            had.insert(file.rest, (file.size, file.mtime_ns, cas, file.checksum));
        }
    })?;
    let mut lacking = Vec::new();
    if !had.is_empty() {
        files_under(&mut tx, statements, to.0, to.1, |file| {
            // Only files the copy placed (their ctime is the placing's): a
            // file that was there before (a name skipped by the conflict
            // policy) may hold other bytes of the same size and mtime.
            if file.cas_id.is_none() && file.ctime_ns >= placed_since_ns {
                lacking.push(file);
            }
        })?;
    }
    // A copy keeps its source's size and mtime: an entry that differs is
    // not (or no longer) that copy, and is hashed by the next index.
    let (mut ids, mut cas, mut sums) = (Vec::new(), Vec::new(), Vec::new());
    lacking.sort_by_key(|file| file.id); // rows locked in id order
    for file in &lacking {
        if let Some((size, mtime_ns, cas_id, checksum)) = had.get(&file.rest) {
            if *size == file.size && *mtime_ns == file.mtime_ns {
                ids.push(file.id);
                cas.push(cas_id.as_str());
                sums.push(checksum.as_deref());
            }
        }
    }
    let mut carried = 0;
    if !ids.is_empty() {
        // Setting cas_id fires the trigger, which links the entry to the
        // identity its source has (keeping its first_seen).
        let set = statements.get(
            &mut tx,
            "UPDATE entries e SET cas_id = v.cas_id, checksum = COALESCE(e.checksum, v.checksum) \
             FROM unnest($1::bigint[], $2::text[], $3::text[]) AS v (id, cas_id, checksum) \
             WHERE e.id = v.id AND e.cas_id IS NULL",
        )?;
        carried = tx.execute(&set, &[&ids, &cas, &sums])?;
    }
    tx.commit()?;
    Ok(carried)
}
