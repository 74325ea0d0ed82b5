//! Validation's reads and writes: pages of entries to compare with the
//! disk, and `validation_issues` (one row per run, entry and category).

use postgres::fallible_iterator::FallibleIterator;
use postgres::types::ToSql;
use postgres::{GenericClient, Row};

use super::connection::Conn;
use super::entries::{by_the_key, kind, limit, mode};
use super::rounds::rounds;
use super::statements::Statements;
use crate::error::Result;
use crate::library::model::{FoundChecksum, IssueRow, NewIssue, Stored};

const STORED_COLUMNS: &str =
    "id, path, kind, size, mtime_ns, inode, device, mode, cas_id, checksum";

fn stored_row(r: &Row) -> Result<Stored> {
    Ok(Stored {
        id: r.try_get(0)?,
        path: r.try_get(1)?,
        kind: kind(r, 2)?,
        size: r.try_get(3)?,
        mtime_ns: r.try_get(4)?,
        inode: r.try_get(5)?,
        device: r.try_get(6)?,
        mode: mode(r, 7)?,
        cas_id: r.try_get(8)?,
        checksum: r.try_get(9)?,
    })
}

/// `LibraryStore::entries_to_validate`: one query (a page in id order, see
/// [`super::entries::page`]), handed on in chunks as its rows arrive.
pub(super) fn entries_to_validate(
    conn: &mut Conn,
    location_id: i64,
    after_id: i64,
    n: usize,
    chunk: usize,
    mut each: impl FnMut(Vec<Stored>),
) -> Result<()> {
    let Conn {
        client, statements, ..
    } = conn;
    let mut tx = client.transaction()?;
    by_the_key(&mut tx, statements)?;
    let stmt = statements.get(
        &mut tx,
        &format!(
            "SELECT {STORED_COLUMNS} FROM entries WHERE id > $2 AND location_id + 0 = $1 \
             ORDER BY id LIMIT $3"
        ),
    )?;
    let n = limit(n);
    let params: [&(dyn ToSql + Sync); 3] = [&location_id, &after_id, &n];
    let mut query = tx.query_raw(&stmt, params)?;
    let chunk = chunk.max(1);
    let mut rows = Vec::with_capacity(chunk);
    while let Some(r) = query.next()? {
        rows.push(stored_row(&r)?);
        if rows.len() == chunk {
            each(std::mem::replace(&mut rows, Vec::with_capacity(chunk)));
        }
    }
    if !rows.is_empty() {
        each(rows);
    }
    drop(query);
    tx.commit()?;
    Ok(())
}

/// `LibraryStore::record_validation`: one transaction, a statement for the
/// issues and one for the checksums (and one per round of repeats, see
/// `rounds.rs`): an issue given twice is recorded as the last one given,
/// as SQLite's INSERT OR REPLACE per issue leaves it, and of two checksums
/// for one entry the first is stored.
pub(super) fn record(
    conn: &mut Conn,
    run_id: &str,
    location_id: i64,
    issues: &[NewIssue<'_>],
    checksums: &[FoundChecksum<'_>],
) -> Result<u64> {
    let Conn {
        client, statements, ..
    } = conn;
    let mut tx = client.transaction()?;
    for round in rounds(issues, |i| (i.entry_id, i.category)) {
        let ids: Vec<i64> = round.iter().map(|i| i.entry_id).collect();
        let categories: Vec<&str> = round.iter().map(|i| i.category).collect();
        let paths: Vec<&[u8]> = round.iter().map(|i| i.path).collect();
        let details: Vec<&str> = round.iter().map(|i| i.detail).collect();
        let insert = statements.get(
            &mut tx,
            "INSERT INTO validation_issues (run_id, entry_id, category, location_id, path, detail) \
             SELECT $1, v.entry_id, v.category, $2, v.path, v.detail \
             FROM unnest($3::bigint[], $4::text[], $5::bytea[], $6::text[]) \
             AS v (entry_id, category, path, detail) \
             ON CONFLICT (run_id, entry_id, category) DO UPDATE SET \
             location_id = EXCLUDED.location_id, path = EXCLUDED.path, detail = EXCLUDED.detail",
        )?;
        tx.execute(
            &insert,
            &[&run_id, &location_id, &ids, &categories, &paths, &details],
        )?;
    }
    let mut stored = 0;
    for mut round in rounds(checksums, |c| c.id) {
        round.sort_by_key(|c| c.id); // rows locked in id order
                                     // Only onto the row as validated: an index that changed it since
                                     // (another process) keeps what it wrote.
        let ids: Vec<i64> = round.iter().map(|c| c.id).collect();
        let sums: Vec<&str> = round.iter().map(|c| c.checksum).collect();
        let sizes: Vec<i64> = round.iter().map(|c| c.size).collect();
        let mtimes: Vec<i64> = round.iter().map(|c| c.mtime_ns).collect();
        let inodes: Vec<i64> = round.iter().map(|c| c.inode).collect();
        let update = statements.get(
            &mut tx,
            "UPDATE entries e SET checksum = v.checksum \
             FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[]) \
             AS v (id, checksum, size, mtime_ns, inode) \
             WHERE e.id = v.id AND e.checksum IS NULL AND e.size = v.size \
             AND e.mtime_ns = v.mtime_ns AND e.inode = v.inode",
        )?;
        stored += tx.execute(&update, &[&ids, &sums, &sizes, &mtimes, &inodes])?;
    }
    tx.commit()?;
    Ok(stored)
}

/// `LibraryStore::clear_issues`.
pub(super) fn clear_issues(
    c: &mut impl GenericClient,
    st: &mut Statements,
    location_id: i64,
) -> Result<u64> {
    let stmt = st.get(c, "DELETE FROM validation_issues WHERE location_id = $1")?;
    Ok(c.execute(&stmt, &[&location_id])?)
}

/// `LibraryStore::issue_counts`.
pub(super) fn issue_counts(
    c: &mut impl GenericClient,
    st: &mut Statements,
    run_id: &str,
) -> Result<Vec<(String, u64)>> {
    let stmt = st.get(
        c,
        "SELECT category, COUNT(*) FROM validation_issues WHERE run_id = $1 \
         GROUP BY category ORDER BY category",
    )?;
    c.query(&stmt, &[&run_id])?
        .iter()
        .map(|r| {
            let n: i64 = r.try_get(1)?;
            Ok((r.try_get(0)?, u64::try_from(n).unwrap_or(0)))
        })
        .collect()
}

/// `LibraryStore::issues`.
pub(super) fn issues(
    c: &mut impl GenericClient,
    st: &mut Statements,
    run_id: &str,
    after: (i64, &str),
    n: usize,
) -> Result<Vec<IssueRow>> {
    let stmt = st.get(
        c,
        "SELECT entry_id, category, path, detail FROM validation_issues \
         WHERE run_id = $1 AND (entry_id, category) > ($2, $3::text COLLATE \"C\") \
         ORDER BY entry_id, category LIMIT $4",
    )?;
    c.query(&stmt, &[&run_id, &after.0, &after.1, &limit(n)])?
        .iter()
        .map(|r| {
            Ok(IssueRow {
                entry_id: r.try_get(0)?,
                category: r.try_get(1)?,
                path: r.try_get(2)?,
                detail: r.try_get(3)?,
            })
        })
        .collect()
}
