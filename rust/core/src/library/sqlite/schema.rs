//! library.db's layout and its migrations.
//!
//! Indices are chosen for cheap inserts as well as for the queries the jobs
//! make. An entry is identified by its directory and its name (exact bytes):
//! `entries_name` (location, parent id, name) is both the unique key and the
//! list of a directory's children, and it grows where the walk writes, since
//! a new directory's children get keys after every existing one. `parent_id`
//! is 0 at the top of a location; `path` (relative, bytes) is kept for output
//! and for reaching the file, without an index. An entry's content identity
//! is its `cas_id` (the key of `content_identities`); the lookup from a
//! cas_id to its entries, `entry_content`, is filled in one pass sorted by
//! cas_id after the walk, so no index in cas_id order (random order) is
//! touched by every batch; from then on triggers keep it in step with the
//! entries (see `V3`). Lookups still check the entry's cas_id.

use rusqlite::{Connection, TransactionBehavior};

use super::errors::{DbError, DbResult};

const V1: &str = "
CREATE TABLE locations (
    id INTEGER PRIMARY KEY,
    path BLOB NOT NULL UNIQUE,
    mode TEXT NOT NULL,
    recursive INTEGER NOT NULL DEFAULT 1,
    created_at REAL NOT NULL,
    indexed_at REAL,
    total_size INTEGER,
    file_count INTEGER
);
CREATE TABLE content_identities (
    cas_id TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    first_seen REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE entry_content (
    cas_id TEXT NOT NULL,
    entry_id INTEGER NOT NULL,
    PRIMARY KEY (cas_id, entry_id)
) WITHOUT ROWID;
CREATE TABLE entries (
    id INTEGER PRIMARY KEY,
    location_id INTEGER NOT NULL REFERENCES locations(id) ON DELETE CASCADE,
    path BLOB NOT NULL,
    parent_id INTEGER NOT NULL,
    name BLOB NOT NULL,
    extension TEXT,
    kind INTEGER NOT NULL,
    size INTEGER NOT NULL,
    agg_size INTEGER,
    file_count INTEGER,
    mtime_ns INTEGER NOT NULL,
    ctime_ns INTEGER NOT NULL,
    inode INTEGER NOT NULL,
    device INTEGER NOT NULL,
    mode INTEGER NOT NULL,
    cas_id TEXT,
    checksum TEXT,
    indexed_at REAL NOT NULL
);
CREATE UNIQUE INDEX entries_name ON entries(location_id, parent_id, name);
";

/// Validation issues: what the latest validation of a location found, one
/// row per (run, entry, category), so a page validated again after a resume
/// replaces its own rows. `path` is the entry's relative path when the issue
/// was found (the entry may since be gone). A location's rows go with it.
const V2: &str = "
CREATE TABLE validation_issues (
    run_id TEXT NOT NULL,
    entry_id INTEGER NOT NULL,
    category TEXT NOT NULL,
    location_id INTEGER NOT NULL REFERENCES locations(id) ON DELETE CASCADE,
    path BLOB NOT NULL,
    detail TEXT NOT NULL,
    PRIMARY KEY (run_id, entry_id, category)
) WITHOUT ROWID;
CREATE INDEX validation_issues_location ON validation_issues(location_id);
";

/// Content identities kept in step with the entries by triggers. An entry
/// whose cas_id changes (re-indexed, hashed, a move carried over) or that is
/// deleted (swept, its location removed) loses its lookup row at once, and
/// its old cas_id is noted in `lost_links`; `link_identities` later drops
/// the noted identities nothing uses any more, so an identity whose file is
/// only touched (cas_id cleared by the re-index, then hashed to the same
/// value) keeps its `first_seen`. A new cas_id is linked by the trigger.
/// Rows *inserted* with a cas_id (a fresh content index, hashing as it
/// walks) are not: the scan marks their location `content_linked = 0`, and
/// `link_identities` links them in one pass sorted by cas_id (2x faster
/// than two SQL `ORDER BY`s), then sets it back to 1. So a re-index touches
/// the lookup only where content changed. The upgrade from version 2 drops the stale
/// rows that earlier versions left for a prune, once.
const V3: &str = "
ALTER TABLE locations ADD COLUMN content_linked INTEGER NOT NULL DEFAULT 0;
CREATE TABLE lost_links (cas_id TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TRIGGER entries_cas_changed AFTER UPDATE OF cas_id ON entries
WHEN OLD.cas_id IS NOT NEW.cas_id
BEGIN
    DELETE FROM entry_content WHERE cas_id = OLD.cas_id AND entry_id = OLD.id;
    INSERT OR IGNORE INTO lost_links (cas_id) SELECT OLD.cas_id WHERE OLD.cas_id IS NOT NULL;
    INSERT OR IGNORE INTO content_identities (cas_id, size, first_seen)
        SELECT NEW.cas_id, NEW.size, (julianday('now') - 2440587.5) * 86400.0
        WHERE NEW.cas_id IS NOT NULL;
    INSERT OR IGNORE INTO entry_content (cas_id, entry_id)
        SELECT NEW.cas_id, NEW.id WHERE NEW.cas_id IS NOT NULL;
END;
CREATE TRIGGER entries_cas_deleted AFTER DELETE ON entries
WHEN OLD.cas_id IS NOT NULL
BEGIN
    DELETE FROM entry_content WHERE cas_id = OLD.cas_id AND entry_id = OLD.id;
    INSERT OR IGNORE INTO lost_links (cas_id) VALUES (OLD.cas_id);
END;
DELETE FROM entry_content WHERE NOT EXISTS (SELECT 1 FROM entries e
    WHERE e.id = entry_content.entry_id AND e.cas_id = entry_content.cas_id);
DELETE FROM content_identities WHERE NOT EXISTS
    (SELECT 1 FROM entry_content ec WHERE ec.cas_id = content_identities.cas_id);
";

/// Empty files have neither a cas_id nor a checksum, however they were
/// indexed. Earlier versions stored a checksum for an empty file that a
/// fresh deep index hashed while walking (and none when a shallow index was
/// switched to deep): clear those, so old libraries follow the rule. (No
/// version stored a cas_id for one; the clause makes sure, and the trigger
/// unlinks it if so.)
const V4: &str = "
UPDATE entries SET cas_id = NULL, checksum = NULL
WHERE kind = 0 AND size = 0 AND (cas_id IS NOT NULL OR checksum IS NOT NULL);
";

/// The library's settings (e.g. its thumbnail variants): one row per key,
/// each value a JSON text the Python side reads (`settings.rs`).
const V5: &str = "
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
";

/// An entry given its first cas_id in a location whose hashing defers its
/// links (`content_linked = 2`, set by `defer_links`) is left to
/// `link_identities`, like a row inserted with one: a content index that
/// hashes most of a large location (one switched to content mode) then
/// links once, in cas_id order, instead of rewriting most leaves of the
/// two cas_id-keyed trees in every page's transaction (per-file cost
/// doubled from 200,000 to 1,000,000 files). A cas_id that replaces another
/// still goes through the trigger (its old link must go at once), and so
/// does every cas_id set in a location in any other state (0 only says
/// that rows were *inserted* with cas_ids, see `V3`).
const V6: &str = "
DROP TRIGGER entries_cas_changed;
CREATE TRIGGER entries_cas_changed AFTER UPDATE OF cas_id ON entries
WHEN OLD.cas_id IS NOT NEW.cas_id AND (OLD.cas_id IS NOT NULL
    OR (SELECT content_linked FROM locations WHERE id = NEW.location_id) IS NOT 2)
BEGIN
    DELETE FROM entry_content WHERE cas_id = OLD.cas_id AND entry_id = OLD.id;
    INSERT OR IGNORE INTO lost_links (cas_id) SELECT OLD.cas_id WHERE OLD.cas_id IS NOT NULL;
    INSERT OR IGNORE INTO content_identities (cas_id, size, first_seen)
        SELECT NEW.cas_id, NEW.size, (julianday('now') - 2440587.5) * 86400.0
        WHERE NEW.cas_id IS NOT NULL;
    INSERT OR IGNORE INTO entry_content (cas_id, entry_id)
        SELECT NEW.cas_id, NEW.id WHERE NEW.cas_id IS NOT NULL;
END;
";

/// Migrations by the version they produce. Never edit a shipped entry; add one.
const MIGRATIONS: &[(i64, &str)] = &[(1, V1), (2, V2), (3, V3), (4, V4), (5, V5), (6, V6)];

/// The version this code writes.
pub const SCHEMA_VERSION: i64 = 6;

/// The schema version of the open file.
pub(super) fn version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
}

/// Bring the file to [`SCHEMA_VERSION`], one step per transaction. Each step
/// re-reads the version under the write lock, so two processes opening an
/// old file upgrade it once; a newer file is refused.
pub(super) fn migrate(conn: &mut Connection) -> DbResult<()> {
    for &(target, sql) in MIGRATIONS {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(DbError::Newer {
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        if version < target {
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", target)?;
        }
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_1_file_is_upgraded_and_keeps_its_rows() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(V1).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute(
            "INSERT INTO locations (id, path, mode, created_at) VALUES (1, x'2f74', 'content', 0)",
            [],
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let kept: i64 = conn
            .query_row("SELECT COUNT(*) FROM locations", [], |r| r.get(0))
            .unwrap();
        assert_eq!(kept, 1);
        conn.execute(
            "INSERT INTO validation_issues VALUES ('run', 1, 'missing', 1, x'61', '')",
            [],
        )
        .unwrap();
        // Migrating again is a no-op.
        migrate(&mut conn).unwrap();
    }

    #[test]
    fn a_version_3_file_loses_the_checksums_of_its_empty_files() {
        let mut conn = Connection::open_in_memory().unwrap();
        for sql in [V1, V2, V3] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 3).unwrap();
        conn.execute(
            "INSERT INTO locations (id, path, mode, created_at) VALUES (1, x'2f74', 'deep', 0)",
            [],
        )
        .unwrap();
        // (name, kind, size, checksum): an empty file, a file, an empty
        // directory (size 0 too, never hashed).
        let rows: [(&str, i64, i64, Option<&str>); 3] = [
            ("empty", 0, 0, Some("af1349b9")),
            ("full", 0, 5, Some("0123abcd")),
            ("dir", 1, 0, None),
        ];
        for (name, kind, size, sum) in rows {
            conn.execute(
                "INSERT INTO entries (location_id, path, parent_id, name, kind, size, mtime_ns, \
                 ctime_ns, inode, device, mode, checksum, indexed_at) \
                 VALUES (1, ?1, 0, ?1, ?2, ?3, 0, 0, 1, 1, 33188, ?4, 0)",
                rusqlite::params![name.as_bytes(), kind, size, sum],
            )
            .unwrap();
        }
        migrate(&mut conn).unwrap();
        let mut stmt = conn
            .prepare("SELECT name, checksum FROM entries ORDER BY id")
            .unwrap();
        let sums: Vec<(Vec<u8>, Option<String>)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(
            sums,
            vec![
                (b"empty".to_vec(), None),
                (b"full".to_vec(), Some("0123abcd".into())),
                (b"dir".to_vec(), None),
            ]
        );
    }
}
