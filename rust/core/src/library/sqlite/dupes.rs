//! The duplicate finder's reads and writes: a location's regular files,
//! and digests stored onto entries.

use rusqlite::{params, Connection, TransactionBehavior};

use super::connection::ScanCache;
use crate::error::Result;
use crate::library::model::{DigestText, FileDigest, StoredFile};

/// `LibraryStore::regular_files`.
pub(super) fn regular_files(
    conn: &Connection,
    location_id: i64,
    mut each: impl FnMut(StoredFile),
) -> Result<()> {
    let _small = ScanCache::new(conn)?;
    let mut stmt = conn.prepare_cached(
        "SELECT id, path, size, mtime_ns, inode, device, cas_id, checksum FROM entries \
         WHERE location_id = ?1 AND kind = 0",
    )?;
    let mut rows = stmt.query(params![location_id])?;
    while let Some(r) = rows.next()? {
        each(StoredFile {
            id: r.get(0)?,
            path: r.get(1)?,
            size: r.get(2)?,
            mtime_ns: r.get(3)?,
            inode: r.get(4)?,
            device: r.get(5)?,
            cas_id: r.get(6)?,
            checksum: r.get(7)?,
        });
    }
    Ok(())
}

/// `LibraryStore::store_digests`: one transaction, with the small page
/// cache of a search (see [`ScanCache`]): a search's pages of digests come
/// while its records of every file are held, and the usual 64 MiB of
/// cached index pages would come on top of them.
pub(super) fn store_digests(conn: &mut Connection, digests: &[FileDigest]) -> Result<u64> {
    ScanCache::shrink(conn)?;
    let stored = write_digests(conn, digests);
    ScanCache::restore(conn);
    stored
}

fn write_digests(conn: &mut Connection, digests: &[FileDigest]) -> Result<u64> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut updated = 0u64;
    {
        let mut set_cas = tx.prepare_cached(
            "UPDATE entries SET cas_id = ?2 WHERE id = ?1 AND size = ?3 AND mtime_ns = ?4",
        )?;
        let mut set_checksum = tx.prepare_cached(
            "UPDATE entries SET checksum = ?2 WHERE id = ?1 AND size = ?3 AND mtime_ns = ?4",
        )?;
        for d in digests {
            updated += match &d.digest {
                DigestText::CasId(text) => set_cas.execute(params![d.id, text, d.size, d.mtime_ns]),
                DigestText::Checksum(text) => {
                    set_checksum.execute(params![d.id, text, d.size, d.mtime_ns])
                }
            }? as u64;
        }
    }
    tx.commit()?;
    Ok(updated)
}
