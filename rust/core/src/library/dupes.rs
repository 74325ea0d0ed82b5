//! A location's files as input to the duplicate finder, and the digests it
//! computes stored back, so the next search (or validation) reads nothing
//! twice; through a [`LibraryStore`]. The conversions between the finder's
//! records and the stored rows are here, pure.

use super::model::{DigestText, FileDigest, StoredFile};
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
pub fn file_records(
    db: &impl LibraryStore,
    location_id: i64,
    hidden: bool,
) -> Result<Vec<FileRecord>> {
    let mut out = Vec::new();
    each_file_record(db, location_id, hidden, |record| out.push(record))?;
    Ok(out)
}

/// [`file_records`] one at a time, none kept here: a duplicate finder takes
/// each as it comes ([`crate::dupes::Finder::add`]).
pub fn each_file_record(
    db: &impl LibraryStore,
    location_id: i64,
    hidden: bool,
    mut each: impl FnMut(FileRecord),
) -> Result<()> {
    let mut root = db.location(location_id)?.path;
    if !root.ends_with(b"/") {
        root.push(b'/');
    }
    db.regular_files(location_id, |f: StoredFile| {
        if !hidden && is_hidden(&f.path) {
            return;
        }
        let mut path = Vec::with_capacity(root.len() + f.path.len());
        path.extend_from_slice(&root);
        path.extend_from_slice(&f.path);
        each(FileRecord {
            path,
            entry_id: f.id,
            size: f.size as u64,
            mtime_ns: Some(f.mtime_ns),
            inode: f.inode as u64,
            device: f.device as u64,
            cas: f.cas_id.as_deref().and_then(digest_from_hex),
            full: f.checksum.as_deref().and_then(digest_from_hex),
        });
    })
}

/// The digests of a page to store on the entries that name each file: an
/// entry only while it has the size and mtime hashed, an empty file never
/// (it keeps no cas_id), a file without a known mtime never.
fn digests_to_store(hashed: &[Hashed]) -> Vec<FileDigest> {
    let mut out = Vec::new();
    for h in hashed {
        let (Some(mtime_ns), true) = (h.mtime_ns, h.size > 0) else {
            continue;
        };
        let size = i64::try_from(h.size).unwrap_or(i64::MAX);
        for &id in &h.entry_ids {
            let digest = match h.stage {
                Stage::Partial => DigestText::CasId(cas_id_hex(&h.digest)),
                Stage::Full => DigestText::Checksum(hex(&h.digest)),
                _ => continue,
            };
            out.push(FileDigest {
                id,
                size,
                mtime_ns,
                digest,
            });
        }
    }
    out
}

/// Store a page of digests on the entries that name each file, in one
/// store operation. An entry re-indexed since it was read (its size or
/// mtime differs) is left alone: the digest is not of what it describes
/// now. Empty files keep no cas_id. Returns the entries updated.
pub fn store_digests(db: &mut impl LibraryStore, hashed: &[Hashed]) -> Result<u64> {
    db.store_digests(&digests_to_store(hashed))
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

    #[test]
    fn only_digests_of_known_non_empty_files_are_stored() {
        let hashed = |size, mtime_ns, stage| Hashed {
            device: 1,
            inode: 2,
            size,
            mtime_ns,
            entry_ids: vec![7, 8],
            stage,
            digest: [0xab; 32],
        };
        let page = [
            hashed(5, Some(9), Stage::Partial),
            hashed(5, Some(9), Stage::Full),
            hashed(0, Some(9), Stage::Partial),
            hashed(5, None, Stage::Full),
        ];
        let stored = digests_to_store(&page);
        assert_eq!(stored.len(), 4);
        assert_eq!(
            stored[0],
            FileDigest {
                id: 7,
                size: 5,
                mtime_ns: 9,
                digest: DigestText::CasId("abababababababab".into()),
            }
        );
        assert_eq!(stored[3].digest, DigestText::Checksum("ab".repeat(32)));
    }
}
