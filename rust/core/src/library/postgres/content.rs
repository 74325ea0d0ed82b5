//! Content: the files still to hash read and their digests stored, and
//! entries linked to their content identities (`content_identities`, with
//! the lookup `entry_content`), which the schema's triggers keep in step
//! with most changes (see `schema.rs`).

use std::thread::JoinHandle;
use std::time::Duration;

use postgres::types::ToSql;
use postgres::{Client, Config, GenericClient, IsolationLevel, NoTls};

use super::connection::Conn;
use super::entries::{by_the_key, limit};
use super::locks;
use super::rounds::rounds;
use super::statements::Statements;
use crate::error::Result;
use crate::library::model::{now, HashedContent, MissingContent};

/// Non-empty regular files lacking a cas_id (or a checksum, with `$2`).
const MISSING: &str = "kind = 0 AND size > 0 AND (cas_id IS NULL OR ($2 AND checksum IS NULL))";

/// `LibraryStore::count_missing`.
pub(super) fn count_missing(
    c: &mut impl GenericClient,
    st: &mut Statements,
    location_id: i64,
    checksums: bool,
) -> Result<u64> {
    let stmt = st.get(
        c,
        &format!("SELECT COUNT(*) FROM entries WHERE location_id = $1 AND {MISSING}"),
    )?;
    let n: i64 = c
        .query_one(&stmt, &[&location_id, &checksums])?
        .try_get(0)?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// `LibraryStore::missing_content`: a page in id order (see
/// [`super::entries::page`] for `location_id + 0`).
pub(super) fn missing_content(
    c: &mut impl GenericClient,
    st: &mut Statements,
    location_id: i64,
    after_id: i64,
    n: usize,
    checksums: bool,
) -> Result<Vec<MissingContent>> {
    let mut tx = c.transaction()?;
    by_the_key(&mut tx, st)?;
    let stmt = st.get(
        &mut tx,
        &format!(
            "SELECT id, path, size, mtime_ns, inode, device FROM entries \
             WHERE id > $3 AND location_id + 0 = $1 AND {MISSING} \
             ORDER BY id LIMIT $4"
        ),
    )?;
    let rows = tx
        .query(&stmt, &[&location_id, &checksums, &after_id, &limit(n)])?
        .iter()
        .map(|r| {
            Ok(MissingContent {
                id: r.try_get(0)?,
                path: r.try_get(1)?,
                size: r.try_get(2)?,
                mtime_ns: r.try_get(3)?,
                inode: r.try_get(4)?,
                device: r.try_get(5)?,
            })
        })
        .collect();
    tx.commit()?;
    rows
}

/// `LibraryStore::store_content`: one transaction, one statement for the
/// page (an entry given twice: one more, see `rounds.rs`). The new cas_ids
/// are linked to their content identities as they are stored, by the
/// schema's trigger (or left to the link pass, see `defer_links`).
pub(super) fn store_content(conn: &mut Conn, hashed: &[HashedContent]) -> Result<()> {
    let Conn {
        client, statements, ..
    } = conn;
    let mut tx = client.transaction()?;
    locks::identities_shared(&mut tx, statements)?;
    for mut round in rounds(hashed, |h| h.id) {
        round.sort_by_key(|h| h.id); // rows locked in id order
        let ids: Vec<i64> = round.iter().map(|h| h.id).collect();
        let cas: Vec<Option<&str>> = round.iter().map(|h| h.cas_id.as_deref()).collect();
        let sums: Vec<Option<&str>> = round.iter().map(|h| h.checksum.as_deref()).collect();
        let update = statements.get(
            &mut tx,
            "UPDATE entries e SET cas_id = v.cas_id, checksum = COALESCE(v.checksum, e.checksum) \
             FROM unnest($1::bigint[], $2::text[], $3::text[]) AS v (id, cas_id, checksum) \
             WHERE e.id = v.id",
        )?;
        tx.execute(&update, &[&ids, &cas, &sums])?;
    }
    tx.commit()?;
    Ok(())
}

/// `LibraryStore::link_identities`: link the location's entries that were
/// inserted with their cas_ids (or given first ones while links were
/// deferred) to their content identities, creating new identities (first
/// seen now), and drop the identities that lost their last entry since the
/// last call. Returns the number of identities created. One transaction,
/// holding the location's row and then the identities lock (see
/// `schema.rs`); idempotent, so a rerun after a crash finishes the job.
///
/// The server sorts by cas_id and inserts in that order, so both cas_id
/// keyed indexes grow page by page (SQLite's store sorts in Rust to spare
/// its temporary B-tree; PostgreSQL's sort is fast, and the rows never
/// cross the network). Unsorted, the pass took 1.3 s instead of 0.9 s on
/// 200,000 files; more sort memory (work_mem 64 MB) gained nothing.
///
/// The two inserts fill different tables from the same rows: for a large
/// location the lookups go in through a second session, on another of the
/// server's cores, while this one creates the identities (see
/// [`links_beside`]).
pub(super) fn link_identities(
    conn: &mut Conn,
    config: &Config,
    location_id: i64,
    prune: bool,
) -> Result<u64> {
    let Conn {
        client, statements, ..
    } = conn;
    // READ COMMITTED whatever the database's default: the statements after
    // the second session's commit (below) must see its lookups. With one
    // snapshot for the whole transaction (REPEATABLE READ) they would not,
    // and the identities it linked would be dropped as lost or unused.
    let mut tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::ReadCommitted)
        .start()?;
    locks::location(&mut tx, statements, location_id, false)?;
    locks::identities(&mut tx, statements)?;
    let state = statements.get(
        &mut tx,
        "SELECT content_linked FROM locations WHERE id = $1",
    )?;
    let linked: i16 = tx.query_one(&state, &[&location_id])?.try_get(0)?;
    let mut created = 0;
    if linked != 1 {
        // Plain inserts of what is missing, not ON CONFLICT: no other
        // transaction writes identities or links while this one holds the
        // identities lock, and a conflict check per row (a speculative
        // insertion) cost more than the rest of the pass.
        let identities = statements.get(
            &mut tx,
            "INSERT INTO content_identities (cas_id, size, first_seen) \
             SELECT g.cas_id, g.size, $2 FROM (SELECT cas_id, MIN(size) AS size FROM entries \
             WHERE location_id = $1 AND cas_id IS NOT NULL GROUP BY cas_id) AS g \
             WHERE NOT EXISTS (SELECT 1 FROM content_identities ci WHERE ci.cas_id = g.cas_id) \
             ORDER BY g.cas_id",
        )?;
        let large = statements.get(
            &mut tx,
            "SELECT count(*) FROM (SELECT 1 FROM entries WHERE location_id = $1 \
             AND cas_id IS NOT NULL LIMIT $2) AS hashed",
        )?;
        let rows: i64 = tx
            .query_one(&large, &[&location_id, &LINKS_BESIDE_FROM])?
            .try_get(0)?;
        // A second session where the server takes one (else, as for a
        // small location, the lookups go in here).
        let beside = (rows >= LINKS_BESIDE_FROM)
            .then(|| {
                let mut second = config.clone();
                second.connect_timeout(BESIDE_WAIT);
                second.connect(NoTls).ok()
            })
            .flatten()
            .map(|client| links_beside(client, location_id));
        let links = statements.get(&mut tx, INSERT_LINKS)?;
        if beside.is_none() {
            tx.execute(&links, &[&location_id])?;
        }
        let identities_done = tx.execute(&identities, &[&location_id, &now()]);
        // The other session commits before this one can (joined first), so
        // the location is marked linked only with its lookups in place.
        let beside_failed = beside.is_some_and(|b| !matches!(b.join(), Ok(Ok(()))));
        created = identities_done?;
        if beside_failed {
            // It failed, or gave up waiting for a lock: the lookups go in
            // here (what it may have committed is skipped by NOT EXISTS).
            tx.execute(&links, &[&location_id])?;
        }
        let done = statements.get(
            &mut tx,
            "UPDATE locations SET content_linked = 1 WHERE id = $1",
        )?;
        tx.execute(&done, &[&location_id])?;
    }
    drop_lost_identities(&mut tx, statements)?;
    if prune {
        tx.batch_execute(
            "DELETE FROM entry_content WHERE NOT EXISTS (SELECT 1 FROM entries e \
             WHERE e.id = entry_content.entry_id AND e.cas_id = entry_content.cas_id);
             DELETE FROM content_identities WHERE NOT EXISTS (SELECT 1 FROM entry_content ec \
             WHERE ec.cas_id = content_identities.cas_id);",
        )?;
    }
    tx.commit()?;
    Ok(created)
}

/// The lookups of a location's entries that lack them, in cas_id order.
const INSERT_LINKS: &str = "INSERT INTO entry_content (cas_id, entry_id) \
     SELECT e.cas_id, e.id FROM entries e \
     WHERE e.location_id = $1 AND e.cas_id IS NOT NULL AND NOT EXISTS \
     (SELECT 1 FROM entry_content ec WHERE ec.cas_id = e.cas_id AND ec.entry_id = e.id) \
     ORDER BY e.cas_id, e.id";

/// Rows with cas_ids from which a link pass inserts the lookups through a
/// second session: below, a session's start-up (a few milliseconds) is
/// more than the insert. On a fresh content index of 200,000 files the two
/// inserts take about 0.4 s of the server's time each.
const LINKS_BESIDE_FROM: i64 = 20_000;

/// How long the second session of a link pass may take to connect, or
/// wait for a lock, before the first does its work itself.
const BESIDE_WAIT: Duration = Duration::from_secs(2);

/// Insert the location's missing lookups ([`INSERT_LINKS`]) through `client`,
/// a session of their own, on a thread, and commit. Started by a link pass
/// that holds the identities lock exclusively: no other transaction writes
/// identities or lookups until it ends, and it ends (joining this) only
/// after this commits. Nothing here waits for a lock that pass holds (it
/// takes none, and writes only `entry_content`, which no trigger watches);
/// but a lock request queued behind that pass (DDL asking for `entries`
/// whole) would hold this one back while the pass waits for it here, a
/// wait the server cannot see: so it waits [`BESIDE_WAIT`] at most, and on
/// any failure the pass inserts the lookups itself.
fn links_beside(mut client: Client, location_id: i64) -> JoinHandle<Result<()>> {
    std::thread::spawn(move || {
        let timeout = format!("SET lock_timeout = {}", BESIDE_WAIT.as_millis());
        client.batch_execute(&timeout)?;
        let mut tx = client.transaction()?;
        tx.execute(INSERT_LINKS, &[&location_id])?;
        tx.commit()?;
        Ok(())
    })
}

/// Set the location's link state (see the schema's `content_linked`).
fn set_linked(
    c: &mut impl GenericClient,
    st: &mut Statements,
    location_id: i64,
    state: i16,
) -> Result<()> {
    let stmt = st.get(c, "UPDATE locations SET content_linked = $2 WHERE id = $1")?;
    c.execute(&stmt, &[&location_id as &(dyn ToSql + Sync), &state])?;
    Ok(())
}

/// Leave the location's inserted cas_ids to `link_identities`: 0.
pub(super) fn defer_links(
    c: &mut impl GenericClient,
    st: &mut Statements,
    location_id: i64,
) -> Result<()> {
    set_linked(c, st, location_id, 0)
}

/// `LibraryStore::defer_links`: leave the first cas_ids the location's
/// entries get to `link_identities` (2); rows inserted with cas_ids that
/// waited for it (0) are linked by the same pass.
pub(super) fn defer_hashed_links(conn: &mut Conn, location_id: i64) -> Result<()> {
    let Conn {
        client, statements, ..
    } = conn;
    let mut tx = client.transaction()?;
    set_linked(&mut tx, statements, location_id, 2)?;
    tx.commit()?;
    Ok(())
}

/// `LibraryStore::links_pending`: a location whose cas_ids wait for a link
/// pass (`content_linked` 0: inserted with them; 2: deferred hashing).
pub(super) fn links_pending(c: &mut impl GenericClient, st: &mut Statements) -> Result<bool> {
    let stmt = st.get(
        c,
        "SELECT EXISTS (SELECT 1 FROM locations WHERE content_linked != 1)",
    )?;
    Ok(c.query_one(&stmt, &[])?.try_get(0)?)
}

/// Drop the identities noted in `lost_links` that no entry is linked to;
/// the caller holds the identities lock exclusively, so no link is being
/// written meanwhile.
///
/// Not while some location's cas_ids wait for a link pass (`content_linked`
/// 0 or 2): an identity noted lost may be one of theirs (a touched file
/// whose cas_id was cleared, then hashed to the same value, unlinked), and
/// dropping it would lose its `first_seen`. The notes are kept for the
/// first call after every location is linked.
pub(super) fn drop_lost_identities(c: &mut impl GenericClient, st: &mut Statements) -> Result<()> {
    if links_pending(c, st)? {
        return Ok(());
    }
    let drop = st.get(
        c,
        "DELETE FROM content_identities ci USING lost_links l WHERE ci.cas_id = l.cas_id \
         AND NOT EXISTS (SELECT 1 FROM entry_content ec WHERE ec.cas_id = ci.cas_id)",
    )?;
    c.execute(&drop, &[])?;
    let forget = st.get(c, "DELETE FROM lost_links")?;
    c.execute(&forget, &[])?;
    Ok(())
}
