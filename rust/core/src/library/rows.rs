//! What a walked entry becomes as a row of `entries`, before any SQL: its
//! parent and name, its extension, the digests the walk computed, and stat
//! fields as SQLite's integers. Pure functions, shared by the writers of a
//! scan (`scan.rs`, `fresh.rs`, `rescan.rs`).

use crate::sys::Kind;
use crate::walk::Batch;

/// u64 stat fields are stored as SQLite's signed 64-bit integers, bit for bit.
pub(crate) fn signed(v: u64) -> i64 {
    v as i64
}

/// The cas_id and checksum the walk computed for entry `i` of `batch` (none
/// when it did not hash). An empty file has neither, however it is indexed
/// (the walker's hashing gives it a checksum; `hash_missing` never looks at
/// it), so a fresh deep index and a shallow one switched to deep agree.
pub(crate) fn digests(batch: &Batch, i: usize) -> (Option<&str>, Option<&str>) {
    if batch.sizes[i] == 0 {
        return (None, None);
    }
    let cas = batch.cas_ids.get(i).and_then(|c| c.as_deref());
    let sum = batch.checksums.get(i).and_then(|c| c.as_deref());
    (cas, sum)
}

/// A relative path's parent (None at the top) and last component.
pub(crate) fn split_name(rel: &[u8]) -> (Option<&[u8]>, &[u8]) {
    match rel.iter().rposition(|&b| b == b'/') {
        Some(cut) => (Some(&rel[..cut]), &rel[cut + 1..]),
        None => (None, rel),
    }
}

/// Lower-case extension of a file's name; none for other kinds, dot-files
/// and names without a dot.
pub(crate) fn extension(name: &[u8], kind: u8) -> Option<String> {
    if kind != Kind::File as u8 {
        return None;
    }
    match name.iter().rposition(|&b| b == b'.') {
        Some(dot) if dot > 0 && dot + 1 < name.len() => {
            Some(String::from_utf8_lossy(&name[dot + 1..]).to_lowercase())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::{extension, split_name};

    #[test]
    fn names_and_extensions() {
        assert_eq!(
            split_name(b"a/b/IMG.JPG"),
            (Some(&b"a/b"[..]), &b"IMG.JPG"[..])
        );
        assert_eq!(split_name(b"top"), (None, &b"top"[..]));
        assert_eq!(extension(b"IMG.JPG", 0), Some("jpg".into()));
        assert_eq!(extension(b".bashrc", 0), None);
        assert_eq!(extension(b"noext", 0), None);
        assert_eq!(extension(b"dir.d", 1), None);
        assert_eq!(extension(b"trail.", 0), None);
    }
}
