//! A location's files as input to the duplicate finder, and the digests it
//! computes stored back, so the next search (or validation) reads nothing
//! twice.

use rusqlite::{params, TransactionBehavior};

use super::sqlite::SqliteStore;
use super::store::LibraryStore;
use crate::content::{cas_id_hex, hex, Digest};
use crate::dupes::{FileRecord, Hashed, Stage};
use crate::error::Result;

/// `digest` from its hex form: a cas_id (16 digits) fills the first 8 bytes,
/// which is how the finder compares cas_ids over a library; a checksum (64
/// digits) fills all 32. None for anything else (a value not written by us).
fn digest_from_hex(text: &str) -> Option<Digest> {
    let bytes = text.as_bytes();
    if !(bytes.len() == 16 || bytes.len() == 64) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let high = (pair[0] as char).to_digit(16)?;
        let low = (pair[1] as char).to_digit(16)?;
        out[i] = (high * 16 + low) as u8;
    }
    Some(out)
}

/// Whether a path relative to the location has a hidden component.
fn is_hidden(rel: &[u8]) -> bool {
    rel.split(|&b| b == b'/')
        .any(|part| part.first() == Some(&b'.'))
}

/// The regular files of a location (absolute paths) with their stored cas_id
/// and checksum; `hidden` false leaves out paths with a component starting
/// with a dot (below the root).
pub fn file_records(db: &SqliteStore, location_id: i64, hidden: bool) -> Result<Vec<FileRecord>> {
    let mut root = db.location(location_id)?.path;
    if !root.ends_with(b"/") {
        root.push(b'/');
    }
    let mut stmt = db.conn.prepare_cached(
        "SELECT id, path, size, mtime_ns, inode, device, cas_id, checksum FROM entries \
         WHERE location_id = ?1 AND kind = 0",
    )?;
    let rows = stmt.query_map(params![location_id], |r| {
        let rel: Vec<u8> = r.get(1)?;
        let cas: Option<String> = r.get(6)?;
        let checksum: Option<String> = r.get(7)?;
        Ok((
            rel,
            FileRecord {
                path: Vec::new(),
                entry_id: r.get(0)?,
                size: r.get::<_, i64>(2)? as u64,
                mtime_ns: Some(r.get(3)?),
                inode: r.get::<_, i64>(4)? as u64,
                device: r.get::<_, i64>(5)? as u64,
                cas: cas.as_deref().and_then(digest_from_hex),
                full: checksum.as_deref().and_then(digest_from_hex),
            },
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (rel, mut record) = row?;
        if !hidden && is_hidden(&rel) {
            continue;
        }
        let mut path = root.clone();
        path.extend_from_slice(&rel);
        record.path = path;
        out.push(record);
    }
    Ok(out)
}

/// Store a page of digests on the entries that name each file, in one
/// transaction. An entry re-indexed since it was read (its size or mtime
/// differs) is left alone: the digest is not of what it describes now.
/// Empty files keep no cas_id. Returns the entries updated.
pub fn store_digests(db: &mut SqliteStore, hashed: &[Hashed]) -> Result<u64> {
    let tx = db
        .conn
        .transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut updated = 0u64;
    {
        let mut set_cas = tx.prepare_cached(
            "UPDATE entries SET cas_id = ?2 WHERE id = ?1 AND size = ?3 AND mtime_ns = ?4",
        )?;
        let mut set_checksum = tx.prepare_cached(
            "UPDATE entries SET checksum = ?2 WHERE id = ?1 AND size = ?3 AND mtime_ns = ?4",
        )?;
        for h in hashed {
            let (Some(mtime), true) = (h.mtime_ns, h.size > 0) else {
                continue;
            };
            let size = i64::try_from(h.size).unwrap_or(i64::MAX);
            for &id in &h.entry_ids {
                updated += match h.stage {
                    Stage::Partial => {
                        set_cas.execute(params![id, cas_id_hex(&h.digest), size, mtime])?
                    }
                    Stage::Full => {
                        set_checksum.execute(params![id, hex(&h.digest), size, mtime])?
                    }
                    _ => 0,
                } as u64;
            }
        }
    }
    tx.commit()?;
    Ok(updated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_digests_decode() {
        let cas = digest_from_hex("00ff10a0b0c0d0e0").expect("cas_id");
        assert_eq!(&cas[..8], &[0x00, 0xff, 0x10, 0xa0, 0xb0, 0xc0, 0xd0, 0xe0]);
        assert!(cas[8..].iter().all(|&b| b == 0));
        assert_eq!(cas_id_hex(&cas), "00ff10a0b0c0d0e0");
        assert!(digest_from_hex("xyz").is_none());
        assert!(digest_from_hex("zz00000000000000").is_none());
        let full = "ab".repeat(32);
        assert_eq!(hex(&digest_from_hex(&full).expect("checksum")), full);
    }

    #[test]
    fn hidden_components() {
        assert!(is_hidden(b".git/config"));
        assert!(is_hidden(b"a/.b/c"));
        assert!(!is_hidden(b"a/b.c/d"));
    }
}
