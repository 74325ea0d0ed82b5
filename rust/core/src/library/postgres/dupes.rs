//! The duplicate finder's reads and writes: a location's regular files,
//! and digests stored onto entries.

use postgres::fallible_iterator::FallibleIterator;
use postgres::types::ToSql;

use super::connection::Conn;
use super::locks;
use super::rounds::rounds;
use crate::error::Result;
use crate::library::model::{DigestText, FileDigest, StoredFile};

/// `LibraryStore::regular_files`: streamed, one row at a time.
pub(super) fn regular_files(
    conn: &mut Conn,
    location_id: i64,
    mut each: impl FnMut(StoredFile),
) -> Result<()> {
    let Conn {
        client, statements, ..
    } = conn;
    let stmt = statements.get(
        client,
        "SELECT id, path, size, mtime_ns, inode, device, cas_id, checksum FROM entries \
         WHERE location_id = $1 AND kind = 0",
    )?;
    let mut rows = client.query_raw(&stmt, [&location_id as &(dyn ToSql + Sync)])?;
    while let Some(r) = rows.next()? {
        each(StoredFile {
            id: r.try_get(0)?,
            path: r.try_get(1)?,
            size: r.try_get(2)?,
            mtime_ns: r.try_get(3)?,
            inode: r.try_get(4)?,
            device: r.try_get(5)?,
            cas_id: r.try_get(6)?,
            checksum: r.try_get(7)?,
        });
    }
    Ok(())
}

/// `LibraryStore::store_digests`: one transaction, one statement per kind
/// of digest (and per round of repeats, see `rounds.rs`). Returns what
/// SQLite's statement per digest counts: the digests whose entry still had
/// their size and mtime.
pub(super) fn store_digests(conn: &mut Conn, digests: &[FileDigest]) -> Result<u64> {
    let Conn {
        client, statements, ..
    } = conn;
    let mut tx = client.transaction()?;
    locks::identities_shared(&mut tx, statements)?;
    let mut updated = 0;
    let key = |d: &FileDigest| (d.id, matches!(d.digest, DigestText::Checksum(_)));
    for mut round in rounds(digests, key) {
        round.sort_by_key(|d| d.id); // rows locked in id order
        for checksums in [false, true] {
            let mut ids = Vec::new();
            let (mut sizes, mut mtimes, mut texts) = (Vec::new(), Vec::new(), Vec::new());
            for d in &round {
                match (&d.digest, checksums) {
                    (DigestText::CasId(text), false) | (DigestText::Checksum(text), true) => {
                        ids.push(d.id);
                        sizes.push(d.size);
                        mtimes.push(d.mtime_ns);
                        texts.push(text.as_str());
                    }
                    _ => {}
                }
            }
            if ids.is_empty() {
                continue;
            }
            let column = if checksums { "checksum" } else { "cas_id" };
            let update = statements.get(
                &mut tx,
                &format!(
                    "UPDATE entries e SET {column} = v.digest \
                     FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[]) \
                     AS v (id, size, mtime_ns, digest) \
                     WHERE e.id = v.id AND e.size = v.size AND e.mtime_ns = v.mtime_ns"
                ),
            )?;
            updated += tx.execute(&update, &[&ids, &sizes, &mtimes, &texts])?;
        }
    }
    tx.commit()?;
    Ok(updated)
}
