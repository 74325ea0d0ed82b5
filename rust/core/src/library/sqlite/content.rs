//! Content: the files still to hash read and their digests stored, and
//! entries linked to their content identities (`content_identities`, with
//! the lookup `entry_content`), which the schema's triggers keep in step
//! with most changes (see `schema.rs`, `V3`).

use rusqlite::{params, Connection, Transaction, TransactionBehavior};

use crate::error::Result;
use crate::library::content::cas_number;
use crate::library::model::{now, HashedContent, MissingContent};

/// `LibraryStore::count_missing`.
pub(super) fn count_missing(conn: &Connection, location_id: i64, checksums: bool) -> Result<u64> {
    // `+location_id`: one pass over the table in id order, as
    // `missing_content` reads it, not a lookup of every row through
    // `entries_name`.
    let count: i64 = conn
        .prepare_cached(
            "SELECT COUNT(*) FROM entries WHERE +location_id = ?1 AND kind = 0 AND size > 0 \
             AND (cas_id IS NULL OR (?2 AND checksum IS NULL))",
        )?
        .query_row(params![location_id, checksums], |r| r.get(0))?;
    Ok(u64::try_from(count).unwrap_or(0))
}

/// `LibraryStore::missing_content`.
pub(super) fn missing_content(
    conn: &Connection,
    location_id: i64,
    after_id: i64,
    limit: usize,
    checksums: bool,
) -> Result<Vec<MissingContent>> {
    // `+location_id`: an id range scan, not `entries_name` (which would
    // read and sort all of the location's rows for every page).
    let mut stmt = conn.prepare_cached(
        "SELECT id, path, size, mtime_ns, inode, device FROM entries \
         WHERE id > ?2 AND +location_id = ?1 AND kind = 0 AND size > 0 \
         AND (cas_id IS NULL OR (?3 AND checksum IS NULL)) ORDER BY id LIMIT ?4",
    )?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = stmt.query_map(params![location_id, after_id, checksums, limit], |r| {
        Ok(MissingContent {
            id: r.get(0)?,
            path: r.get(1)?,
            size: r.get(2)?,
            mtime_ns: r.get(3)?,
            inode: r.get(4)?,
            device: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// `LibraryStore::store_content`: one transaction. The new cas_ids are
/// linked to their content identities as they are stored, by the schema's
/// triggers. (Leaving them to one sorted pass of [`link_identities`]
/// instead was measured on a 200,000-file location switched to content
/// mode: no faster, 3.10-3.18 s against 3.17-3.24 s. At 1,000,000 files it
/// is: see `defer_hashed_links`, which the index job uses for large steps.
/// Storing a page in cas_id order instead of id order was measured there
/// too, and gained nothing: 20.6 s against 20.4 s.)
pub(super) fn store_content(conn: &mut Connection, hashed: &[HashedContent]) -> Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    {
        let mut update = tx.prepare_cached(
            "UPDATE entries SET cas_id = ?2, checksum = COALESCE(?3, checksum) WHERE id = ?1",
        )?;
        for h in hashed {
            update.execute(params![h.id, h.cas_id, h.checksum])?;
        }
    }
    tx.commit()?;
    Ok(())
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
pub(super) fn link_identities(conn: &mut Connection, location_id: i64, prune: bool) -> Result<u64> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // 1: linked; 0: rows inserted with cas_ids; 2: hashing deferred links
    // (see the schema's V3 and V6).
    let linked: i64 = tx.query_row(
        "SELECT content_linked FROM locations WHERE id = ?1",
        [location_id],
        |r| r.get(0),
    )?;
    let mut created = 0;
    if linked != 1 {
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

/// Leave the location's new cas_ids to `link_identities` (see the schema).
pub(super) fn defer_links(tx: &Transaction<'_>, location_id: i64) -> Result<()> {
    tx.execute(
        "UPDATE locations SET content_linked = 0 WHERE id = ?1",
        [location_id],
    )?;
    Ok(())
}

/// Leave the first cas_ids the location's entries get to `link_identities`
/// (see the schema's V6): `content_linked = 2`. Rows inserted with cas_ids
/// that waited for it (0) are linked by the same pass.
pub(super) fn defer_hashed_links(tx: &Transaction<'_>, location_id: i64) -> Result<()> {
    tx.execute(
        "UPDATE locations SET content_linked = 2 WHERE id = ?1",
        [location_id],
    )?;
    Ok(())
}

/// `LibraryStore::links_pending`: a location whose cas_ids wait for a link
/// pass (`content_linked` 0: inserted with them; 2: deferred hashing).
pub(super) fn links_pending(conn: &Connection) -> Result<bool> {
    Ok(conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM locations WHERE content_linked != 1)",
        [],
        |r| r.get(0),
    )?)
}

/// Drop the identities noted in `lost_links` that no entry is linked to.
///
/// Not while some location's cas_ids wait for a link pass (`content_linked`
/// 0 or 2): an identity noted lost may be one of theirs (a touched file
/// whose cas_id was cleared, then hashed to the same value, unlinked), and
/// dropping it would lose its `first_seen`. The notes are kept for the
/// first call after every location is linked.
pub(super) fn drop_lost_identities(tx: &Transaction<'_>) -> Result<()> {
    if links_pending(tx)? {
        return Ok(());
    }
    tx.execute(
        "DELETE FROM content_identities WHERE cas_id IN (SELECT cas_id FROM lost_links) \
         AND NOT EXISTS (SELECT 1 FROM entry_content ec WHERE ec.cas_id = content_identities.cas_id)",
        [],
    )?;
    tx.execute("DELETE FROM lost_links", [])?;
    Ok(())
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

/// Rows per multi-row INSERT of [`insert_sorted`]: one statement per 128
/// rows spends far less per row in SQLite's statement machinery than one
/// per row (linking 60,000 fresh entries: 73 ms with one row per
/// statement).
const LINK_ROWS: usize = 128;

/// `INSERT OR IGNORE INTO {table} ({columns}) VALUES (?, ...), ...` for `rows` rows.
fn multi_insert_sql(table_columns: &str, columns: usize, rows: usize) -> String {
    let one = format!("({})", vec!["?"; columns].join(","));
    format!(
        "INSERT OR IGNORE INTO {table_columns} VALUES {}",
        vec![one.as_str(); rows].join(",")
    )
}

/// Rows buffered for one multi-row INSERT OR IGNORE, sent [`LINK_ROWS`] at a
/// time; counts the rows the statements inserted.
struct MultiInsert<'t, 'c, const N: usize> {
    tx: &'t Transaction<'c>,
    table_columns: &'static str,
    rows: Vec<[rusqlite::types::Value; N]>,
    inserted: u64,
}

impl<'t, 'c, const N: usize> MultiInsert<'t, 'c, N> {
    fn new(tx: &'t Transaction<'c>, table_columns: &'static str) -> Self {
        Self {
            tx,
            table_columns,
            rows: Vec::with_capacity(LINK_ROWS),
            inserted: 0,
        }
    }

    fn push(&mut self, row: [rusqlite::types::Value; N]) -> Result<()> {
        self.rows.push(row);
        if self.rows.len() == LINK_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let sql = multi_insert_sql(self.table_columns, N, self.rows.len());
        let mut stmt = self.tx.prepare_cached(&sql)?;
        for (k, row) in self.rows.iter().enumerate() {
            for (c, value) in row.iter().enumerate() {
                stmt.raw_bind_parameter(k * N + c + 1, value)?;
            }
        }
        self.inserted += stmt.raw_execute()? as u64;
        self.rows.clear();
        Ok(())
    }

    /// Send what is left; the number of rows inserted in all.
    fn finish(mut self) -> Result<u64> {
        self.flush()?;
        Ok(self.inserted)
    }
}

/// Link sorted rows (see [`sorted_cas_rows`]); returns identities created.
fn insert_sorted(tx: &Transaction<'_>, rows: &[(u64, i64, i64)]) -> Result<u64> {
    use rusqlite::types::Value;
    let mut links = MultiInsert::<2>::new(tx, "entry_content (cas_id, entry_id)");
    let mut identities = MultiInsert::<3>::new(tx, "content_identities (cas_id, size, first_seen)");
    let seen_at = now();
    for group in rows.chunk_by(|a, b| a.0 == b.0) {
        let text = format!("{:016x}", group[0].0);
        for (_, id, _) in group {
            links.push([Value::Text(text.clone()), Value::Integer(*id)])?;
        }
        // An identity's size is its smallest entry's (they agree unless a
        // cas_id collides across sizes).
        let size = group.iter().map(|r| r.2).min().unwrap_or(0);
        identities.push([
            Value::Text(text),
            Value::Integer(size),
            Value::Real(seen_at),
        ])?;
    }
    links.finish()?;
    identities.finish()
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
    use crate::library::sqlite::SqliteStore;
    use crate::library::store::LibraryStore;

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
        // As a scan inserting rows with cas_ids marks their location.
        db.conn
            .execute(
                "UPDATE locations SET content_linked = 0 WHERE id = ?1",
                [loc.id],
            )
            .unwrap();
        assert_eq!(
            db.link_identities(loc.id, false).unwrap(),
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
}
