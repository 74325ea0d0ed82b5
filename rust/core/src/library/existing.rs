//! A re-scan's view of the location as it was: every entry read in one
//! sequential pass, then looked up in memory by (parent id, name) instead of
//! with one index lookup per walked entry (two B-tree descents each), which
//! was most of a re-scan's writer time.
//!
//! The map keeps a 64-bit hash of the key, not the name itself, so it costs
//! about 60 bytes per entry. Two keys with one hash are both left out, and a
//! key the map does not hold (a new entry, or one of those) is looked up in
//! the database as before: the map only ever saves work, it never decides
//! that an entry is new.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;

use rusqlite::params;
use rusqlite::types::ValueRef;

use super::LibraryDb;
use crate::error::Result;

/// An existing row, as far as change detection needs it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Known {
    pub id: i64,
    pub kind: u8,
    pub size: i64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub inode: i64,
    pub device: i64,
    pub mode: u32,
}

pub(crate) struct Existing {
    hasher: RandomState,
    rows: HashMap<u64, Known>,
}

impl Existing {
    /// Read every entry of the location. `NOT INDEXED`: a pass over the
    /// table in rowid order, not one lookup per row through the name index.
    pub fn load(db: &LibraryDb, location_id: i64) -> Result<Self> {
        let hasher = RandomState::new();
        let mut rows: HashMap<u64, Known> = HashMap::new();
        let mut clashes: HashSet<u64> = HashSet::new();
        let mut stmt = db.conn.prepare(
            "SELECT id, parent_id, name, kind, size, mtime_ns, ctime_ns, inode, device, mode \
             FROM entries NOT INDEXED WHERE location_id = ?1",
        )?;
        let mut query = stmt.query(params![location_id])?;
        while let Some(r) = query.next()? {
            let parent: i64 = r.get(1)?;
            let name = match r.get_ref(2)? {
                ValueRef::Blob(b) | ValueRef::Text(b) => b,
                _ => continue, // not written by us; looked up in the database
            };
            let key = hasher.hash_one((parent, name));
            let known = Known {
                id: r.get(0)?,
                kind: r.get(3)?,
                size: r.get(4)?,
                mtime_ns: r.get(5)?,
                ctime_ns: r.get(6)?,
                inode: r.get(7)?,
                device: r.get(8)?,
                mode: r.get(9)?,
            };
            if rows.insert(key, known).is_some() {
                clashes.insert(key);
            }
        }
        for key in clashes {
            rows.remove(&key);
        }
        rows.shrink_to_fit();
        Ok(Existing { hasher, rows })
    }

    /// The row at (parent, name) as it was, if the map holds it; taken out,
    /// so the map shrinks as the scan goes.
    pub fn take(&mut self, parent: i64, name: &[u8]) -> Option<Known> {
        self.rows.remove(&self.hasher.hash_one((parent, name)))
    }
}
