//! A scan's writes: walker batches upserted into `entries`, and after the
//! walk the entries it did not see listed, and those gone removed.

use postgres::fallible_iterator::FallibleIterator;
use postgres::types::ToSql;

use super::connection::Conn;
use super::content::defer_links;
use super::entries::kind;
use super::{fresh, locks, rescan};
use crate::error::{Error, FsError, Result};
use crate::library::book::{Gone, ScanBook, Seen, Unseen};
use crate::walk::Batch;

/// Rows up to which a scan's waiting batches go in one transaction
/// (`LibraryStore::rows_per_write`): each transaction is five round trips
/// (begin, the location's lock, ids, COPY, commit) and the server's commit.
/// A fresh shallow index of 200,000 files with the walker's batches of
/// 1,000 each written alone took 2.2-2.6 s, with batches of 10,000
/// 1.5-1.7 s (SQLite: 0.8 s either way).
pub(super) const ROWS_PER_WRITE: usize = 10_000;

/// Unseen entries read back per query (see [`unseen_entries`]).
const UNSEEN_PER_QUERY: usize = 10_000;

/// `LibraryStore::upsert_batch`: one transaction, holding the location's
/// row so that writes of one location take turns (see `schema.rs`).
pub(super) fn upsert_batch(
    conn: &mut Conn,
    book: &mut ScanBook,
    batch: &Batch,
) -> Result<Vec<FsError>> {
    let mut problems = Vec::new();
    let Conn {
        client,
        statements,
        ids,
        session,
    } = conn;
    let mut tx = client.transaction()?;
    if !book.durable_steps() {
        same_session(book, *session)?;
        // The commit returns once its record is in the server's log, not
        // on disk (see `ScanBook::set_durable_steps`): the server flushes it
        // while the next step is walked and copied (a fresh index of
        // 200,000 files: 37 commits waiting 0.2 s in all for 72 MB of log).
        let relax = statements.get(
            &mut tx,
            "SELECT set_config('synchronous_commit', 'off', true)",
        )?;
        tx.execute(&relax, &[])?;
    }
    locks::location(&mut tx, statements, book.location_id(), false)?;
    if batch.cas_ids.iter().any(Option::is_some) {
        // Rows inserted with a cas_id are not linked to their content
        // identities by the triggers: `link_identities` links them in
        // bulk. Marked with every such batch, in its transaction: a link
        // that ran meanwhile (another job) has cleared the mark.
        defer_links(&mut tx, statements, book.location_id())?;
    }
    if book.is_fresh() {
        fresh::write(&mut tx, statements, ids, book, batch, &mut problems)?;
    } else {
        // A changed entry loses its cas_id: a write of cas_ids.
        locks::identities_shared(&mut tx, statements)?;
        rescan::write(&mut tx, statements, ids, book, batch, &mut problems)?;
    }
    tx.commit()?;
    Ok(problems)
}

/// Refuse a step or a flush on another session than the one that wrote
/// the scan's steps not yet flushed: the server was restarted since, and
/// may have lost them (see `ScanBook::set_durable_steps`); the scan must be
/// resumed from the last state kept. Else this session is noted as theirs.
fn same_session(book: &mut ScanBook, session: u64) -> Result<()> {
    match book.unflushed_session {
        Some(earlier) if earlier != session => Err(Error::Unavailable(
            "the PostgreSQL server ended this scan's session since its last steps, which were \
             not yet on disk and may be lost: resume the scan (or its job) from its last \
             kept state"
                .into(),
        )),
        _ => {
            book.unflushed_session = Some(session);
            Ok(())
        }
    }
}

/// `LibraryStore::flush_steps`: a synchronous commit on the session that
/// wrote the scan's steps not yet on disk. The server flushes its log up to
/// that commit, so up to every step before it; a session ended meanwhile
/// fails here instead (see [`same_session`]). The transaction must write to
/// the log: PostgreSQL commits one that wrote nothing without waiting,
/// whatever `synchronous_commit` says (an id alone is not enough). So it
/// rewrites the location's row as it is.
pub(super) fn flush_steps(conn: &mut Conn, book: &mut ScanBook) -> Result<()> {
    if book.unflushed_session.is_none() {
        return Ok(());
    }
    same_session(book, conn.session)?;
    let Conn {
        client, statements, ..
    } = conn;
    let mut tx = client.transaction()?;
    let on = statements.get(
        &mut tx,
        "SELECT set_config('synchronous_commit', 'on', true)",
    )?;
    tx.execute(&on, &[])?;
    let rewrite = statements.get(
        &mut tx,
        "UPDATE locations SET indexed_at = indexed_at WHERE id = $1",
    )?;
    if tx.execute(&rewrite, &[&book.location_id()])? == 0 {
        return Err(Error::LocationNotFound(format!(
            "no location with id {}",
            book.location_id()
        )));
    }
    tx.commit()?;
    book.unflushed_session = None;
    Ok(())
}

/// `LibraryStore::unseen_entries`: the location's ids streamed and checked
/// against `seen`, then the unseen ones read whole, some thousands per
/// query (a re-scan's sweep usually finds few, and the paths of the
/// others never cross the network).
pub(super) fn unseen_entries(
    conn: &mut Conn,
    location_id: i64,
    seen: &Seen,
    mut each: impl FnMut(Unseen) -> Result<()>,
) -> Result<()> {
    let Conn {
        client, statements, ..
    } = conn;
    let ids = statements.get(client, "SELECT id FROM entries WHERE location_id = $1")?;
    let mut unseen: Vec<i64> = Vec::new();
    let mut rows = client.query_raw(&ids, [&location_id as &(dyn ToSql + Sync)])?;
    while let Some(row) = rows.next()? {
        let id: i64 = row.try_get(0)?;
        if !seen.contains(id) {
            unseen.push(id);
        }
    }
    drop(rows);
    let read = statements.get(
        client,
        "SELECT id, path, kind, size, mtime_ns, inode, device FROM entries \
         WHERE id = ANY($1) AND location_id = $2",
    )?;
    for chunk in unseen.chunks(UNSEEN_PER_QUERY) {
        for r in client.query(&read, &[&chunk, &location_id])? {
            each(Unseen {
                id: r.try_get(0)?,
                path: r.try_get(1)?,
                kind: kind(&r, 2)?,
                size: r.try_get(3)?,
                mtime_ns: r.try_get(4)?,
                inode: r.try_get(5)?,
                device: r.try_get(6)?,
            })?;
        }
    }
    Ok(())
}

/// `LibraryStore::remove_gone`: one transaction of two statements. Moved
/// files first take their old entry's cas_id and checksum (unless they
/// have a cas_id of their own), then every gone entry is deleted; the
/// triggers keep the content identities in step. (SQLite runs the pair
/// per entry; as sets they do the same, since an entry gone is never one
/// moved to: the scan saw those.)
pub(super) fn remove_gone(conn: &mut Conn, gone: &[Gone]) -> Result<()> {
    if gone.is_empty() {
        return Ok(());
    }
    let Conn {
        client, statements, ..
    } = conn;
    let mut tx = client.transaction()?;
    locks::identities_shared(&mut tx, statements)?;
    let (moved_to, moved_from): (Vec<i64>, Vec<i64>) = gone
        .iter()
        .filter_map(|g| g.moved_to.map(|to| (to, g.id)))
        .unzip();
    if !moved_to.is_empty() {
        let carry = statements.get(
            &mut tx,
            "UPDATE entries SET cas_id = old.cas_id, checksum = old.checksum \
             FROM unnest($1::bigint[], $2::bigint[]) AS m (new_id, old_id) \
             JOIN entries old ON old.id = m.old_id \
             WHERE entries.id = m.new_id AND entries.cas_id IS NULL",
        )?;
        tx.execute(&carry, &[&moved_to, &moved_from])?;
    }
    let ids: Vec<i64> = gone.iter().map(|g| g.id).collect();
    let delete = statements.get(&mut tx, "DELETE FROM entries WHERE id = ANY($1)")?;
    tx.execute(&delete, &[&ids])?;
    tx.commit()?;
    Ok(())
}
