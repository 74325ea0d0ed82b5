//! A scan's writes: walker batches upserted into `entries`, and after the
//! walk the entries it did not see listed, and those gone removed.

use rusqlite::{params, Connection, TransactionBehavior};

use super::content::defer_links;
use super::{fresh, rescan};
use crate::error::{FsError, Result};
use crate::library::book::{Gone, ScanBook, Seen, Unseen};
use crate::walk::Batch;

/// `LibraryStore::upsert_batch`: one transaction.
pub(super) fn upsert_batch(
    conn: &mut Connection,
    book: &mut ScanBook,
    batch: &Batch,
) -> Result<Vec<FsError>> {
    let mut problems = Vec::new();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if batch.cas_ids.iter().any(Option::is_some) {
        // Rows inserted with a cas_id are not linked to their content
        // identities by the triggers: `link_identities` links them in
        // bulk. Marked with every such batch, in its transaction: a link
        // that ran meanwhile (another job) has cleared the mark.
        defer_links(&tx, book.location_id())?;
    }
    if book.is_fresh() {
        fresh::write(&tx, book, batch, &mut problems)?;
    } else {
        rescan::write(&tx, book, batch, &mut problems)?;
    }
    tx.commit()?;
    Ok(problems)
}

/// `LibraryStore::unseen_entries`: one pass over the location's rows; the
/// path is read only for an entry not seen.
pub(super) fn unseen_entries(
    conn: &Connection,
    location_id: i64,
    seen: &Seen,
    mut each: impl FnMut(Unseen) -> Result<()>,
) -> Result<()> {
    let mut stmt = conn.prepare(
        "SELECT id, path, kind, size, mtime_ns, inode, device FROM entries \
         WHERE location_id = ?1",
    )?;
    let mut rows = stmt.query([location_id])?;
    while let Some(r) = rows.next()? {
        let id: i64 = r.get(0)?;
        if seen.contains(id) {
            continue;
        }
        each(Unseen {
            id,
            path: r.get(1)?,
            kind: r.get(2)?,
            size: r.get(3)?,
            mtime_ns: r.get(4)?,
            inode: r.get(5)?,
            device: r.get(6)?,
        })?;
    }
    Ok(())
}

/// `LibraryStore::remove_gone`: one transaction. Deleting fires the
/// schema's `entries_cas_deleted`, and carrying a cas_id over fires
/// `entries_cas_changed`, which keep the content identities in step.
pub(super) fn remove_gone(conn: &mut Connection, gone: &[Gone]) -> Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    {
        let mut carry = tx.prepare_cached(
            "UPDATE entries SET cas_id = old.cas_id, \
             checksum = old.checksum FROM (SELECT cas_id, checksum FROM entries \
             WHERE id = ?2) AS old WHERE entries.id = ?1 AND entries.cas_id IS NULL",
        )?;
        let mut delete = tx.prepare_cached("DELETE FROM entries WHERE id = ?1")?;
        for g in gone {
            if let Some(new_id) = g.moved_to {
                carry.execute(params![new_id, g.id])?;
            }
            delete.execute([g.id])?;
        }
    }
    tx.commit()?;
    Ok(())
}
