//! The content step of indexing: hash the files that have no cas_id (or no
//! checksum, in deep mode), through a [`LibraryStore`]. Linking entries to
//! their content identities is the store's (`link_identities`).

use super::model::HashedContent;
use super::store::LibraryStore;
use crate::cancel::CancelToken;
use crate::content::{cas_id_hex, hash_file, hex, map_items, Want};
use crate::error::{FsError, Result};
use crate::sys;
use crate::walk::join;

/// What one [`hash_missing`] call did.
#[derive(Debug, Default)]
pub struct HashPass {
    /// The highest entry id looked at: pass it as `after_id` next time.
    pub last_id: i64,
    /// Files looked at, files hashed, bytes hashed.
    pub looked_at: u64,
    pub hashed: u64,
    pub bytes: u64,
    pub errors: Vec<FsError>,
}

/// Hash up to `limit` files of the location (ids above `after_id`) that lack
/// a cas_id, or a checksum when `checksums` is set, in parallel; store the
/// results in one store operation. A file that changed since it was indexed
/// is reported and left for the next index.
pub fn hash_missing(
    db: &mut impl LibraryStore,
    location_id: i64,
    after_id: i64,
    limit: usize,
    checksums: bool,
    threads: Option<usize>,
    cancel: &CancelToken,
) -> Result<HashPass> {
    let root = db.location(location_id)?.path;
    let mut todo = db.missing_content(location_id, after_id, limit, checksums)?;
    for m in &mut todo {
        m.path = join(&root, &m.path);
    }
    let mut pass = HashPass {
        last_id: todo.last().map_or(after_id, |m| m.id),
        looked_at: todo.len() as u64,
        ..HashPass::default()
    };
    let want = Want {
        cas_id: true,
        checksum: checksums,
    };
    let stop = || cancel.is_cancelled();
    let results = map_items(
        &todo,
        threads,
        cancel,
        sys::ParentCache::default,
        |dirs, m| {
            // Identity-checked open: a path now naming another file (or a
            // symlink) is refused rather than hashed under the old entry.
            let (mut file, meta) = dirs
                .open_listed(&m.path, (m.device as u64, m.inode as u64))
                .map_err(|e| FsError::from_io(&m.path, &e))?;
            if meta.size as i64 != m.size || meta.mtime_ns != m.mtime_ns {
                return Err(FsError::other(&m.path, 0, "changed since it was indexed"));
            }
            hash_file(&mut file, &meta, want, &m.path, &stop)
        },
    )?;
    let mut hashed = Vec::with_capacity(todo.len());
    for (m, result) in todo.iter().zip(results) {
        match result {
            Ok(h) => {
                hashed.push(HashedContent {
                    id: m.id,
                    cas_id: h.cas.map(|d| cas_id_hex(&d)),
                    checksum: h.checksum.map(|d| hex(&d)),
                });
                pass.hashed += 1;
                pass.bytes += m.size as u64;
            }
            Err(e) => pass.errors.push(e),
        }
    }
    db.store_content(&hashed)?;
    Ok(pass)
}

/// A cas_id as written by [`cas_id_hex`] (16 lowercase hex digits) as the
/// number it spells: numbers sort like those strings, and take a third of
/// the memory. `None` for any other text.
pub(crate) fn cas_number(text: &str) -> Option<u64> {
    let canonical =
        text.len() == 16 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    canonical
        .then(|| u64::from_str_radix(text, 16).ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cas_numbers_only_for_canonical_text() {
        assert_eq!(cas_number("00000000000000ff"), Some(255));
        assert_eq!(cas_number("00000000000000FF"), None);
        assert_eq!(cas_number("ff"), None);
        assert_eq!(cas_number("+000000000000000"), None);
        assert_eq!(
            format!("{:016x}", cas_number("a000000000000001").unwrap()),
            "a000000000000001"
        );
    }
}
