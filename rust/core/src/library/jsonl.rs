//! Entries as JSON lines, byte for byte what Python's
//! `json.dumps(entry.to_dict())` writes (python/phasekit/library/_types.py):
//! the same keys in the same order, `", "` and `": "` between them, ASCII
//! only (`ensure_ascii`), and a path's bytes decoded as `os.fsdecode` does
//! (UTF-8, each byte of an invalid sequence as the lone surrogate
//! U+DC80..U+DCFF), so a non-UTF-8 name prints as `\udcXX` either way.
//! `phasekit ls --json` streams a location with it at the store's speed,
//! without a Python object per entry; `phasekit ls` without `--json` prints
//! [`push_entry_text_line`]'s lines.

use std::io::Write;

use crate::error::Result;
use crate::library::model::EntryRow;
use crate::library::store::LibraryStore;

const KINDS: [&str; 4] = ["file", "dir", "symlink", "other"];
const HEX: &[u8; 16] = b"0123456789abcdef";

/// `\uXXXX` (lower-case hex, as Python writes it).
fn unicode_escape(out: &mut Vec<u8>, unit: u32) {
    out.extend_from_slice(b"\\u");
    for shift in [12, 8, 4, 0] {
        out.push(HEX[((unit >> shift) & 0xF) as usize]);
    }
}

fn push_char(out: &mut Vec<u8>, c: char) {
    match c {
        '"' => out.extend_from_slice(b"\\\""),
        '\\' => out.extend_from_slice(b"\\\\"),
        '\n' => out.extend_from_slice(b"\\n"),
        '\r' => out.extend_from_slice(b"\\r"),
        '\t' => out.extend_from_slice(b"\\t"),
        '\u{8}' => out.extend_from_slice(b"\\b"),
        '\u{c}' => out.extend_from_slice(b"\\f"),
        ' '..='~' => out.push(c as u8),
        _ => {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                unicode_escape(out, u32::from(*unit));
            }
        }
    }
}

/// A JSON string of `bytes` decoded as `os.fsdecode` does.
pub fn push_json_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'"');
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            push_char(out, c);
        }
        for &b in chunk.invalid() {
            unicode_escape(out, 0xDC00 | u32::from(b));
        }
    }
    out.push(b'"');
}

fn push_opt_str(out: &mut Vec<u8>, value: Option<&str>) {
    match value {
        Some(text) => push_json_bytes(out, text.as_bytes()),
        None => out.extend_from_slice(b"null"),
    }
}

fn push_opt_int(out: &mut Vec<u8>, value: Option<i64>) {
    match value {
        // Writing to a Vec cannot fail.
        Some(n) => drop(write!(out, "{n}")),
        None => out.extend_from_slice(b"null"),
    }
}

/// One entry's line (with its `\n`) for an entry of the location rooted at
/// `root`: the path is the root joined with the entry's relative path.
pub fn push_entry_line(out: &mut Vec<u8>, root: &[u8], row: &EntryRow) {
    let mut path = Vec::with_capacity(root.len() + 1 + row.path.len());
    push_path(&mut path, root, &row.path);
    out.extend_from_slice(b"{\"path\": ");
    push_json_bytes(out, &path);
    out.extend_from_slice(b", \"kind\": \"");
    out.extend_from_slice(
        KINDS
            .get(usize::from(row.kind))
            .unwrap_or(&"other")
            .as_bytes(),
    );
    // Inode and device are stored as SQLite's signed integers, bit for bit.
    drop(write!(
        out,
        "\", \"size\": {}, \"mtime_ns\": {}, \"ctime_ns\": {}, \"inode\": {}, \"device\": {}, \
         \"mode\": {}, \"cas_id\": ",
        row.size, row.mtime_ns, row.ctime_ns, row.inode as u64, row.device as u64, row.mode
    ));
    push_opt_str(out, row.cas_id.as_deref());
    out.extend_from_slice(b", \"checksum\": ");
    push_opt_str(out, row.checksum.as_deref());
    out.extend_from_slice(b", \"agg_size\": ");
    push_opt_int(out, row.agg_size);
    out.extend_from_slice(b", \"file_count\": ");
    push_opt_int(out, row.file_count);
    drop(write!(out, ", \"id\": {}, \"parent_id\": ", row.id));
    push_opt_int(out, row.parent_id);
    out.extend_from_slice(b"}\n");
}

/// `phasekit ls`'s line: the kind (7 wide), the size (a directory's total
/// when aggregated; 14 wide, with thousands separators), two spaces and the
/// path's own bytes.
pub fn push_entry_text_line(out: &mut Vec<u8>, root: &[u8], row: &EntryRow) {
    let kind = KINDS.get(usize::from(row.kind)).unwrap_or(&"other");
    let size = row.agg_size.unwrap_or(row.size);
    let digits = size.unsigned_abs().to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if size < 0 {
        grouped.push('-');
    }
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(d);
    }
    drop(write!(out, "{kind:7} {grouped:>14}  "));
    push_path(out, root, &row.path);
    out.push(b'\n');
}

fn push_path(out: &mut Vec<u8>, root: &[u8], rel: &[u8]) {
    out.extend_from_slice(root);
    if !rel.is_empty() {
        if !root.ends_with(b"/") {
            out.push(b'/');
        }
        out.extend_from_slice(rel);
    }
}

/// How [`entries_lines`] writes an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineFormat {
    /// [`push_entry_line`]: JSON, as Python's `json.dumps(entry.to_dict())`.
    Json,
    /// [`push_entry_text_line`].
    Text,
}

/// Up to `limit` entries of a location with id greater than `after_id`, in
/// id order, as lines appended to `out`; returns the last id written and
/// how many were (0: the end). One short read per page, so a slow reader of
/// the output never holds a read transaction open.
pub fn entries_lines(
    store: &impl LibraryStore,
    location_id: i64,
    after_id: i64,
    limit: usize,
    format: LineFormat,
    out: &mut Vec<u8>,
) -> Result<(i64, usize)> {
    let root = store.location(location_id)?.path;
    let rows = store.entries(location_id, after_id, limit)?;
    for row in &rows {
        match format {
            LineFormat::Json => push_entry_line(out, &root, row),
            LineFormat::Text => push_entry_text_line(out, &root, row),
        }
    }
    Ok((rows.last().map_or(after_id, |r| r.id), rows.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(bytes: &[u8]) -> String {
        let mut out = Vec::new();
        push_json_bytes(&mut out, bytes);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn strings_are_escaped_as_python_writes_them() {
        assert_eq!(text(b"a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(text(b"n\nl\t\x01\x7f"), r#""n\nl\t\u0001\u007f""#);
        assert_eq!(text("café 😀".as_bytes()), r#""caf\u00e9 \ud83d\ude00""#);
        // Invalid UTF-8: each byte of the bad sequence its own surrogate.
        assert_eq!(text(b"caf\xe9.bin"), r#""caf\udce9.bin""#);
        assert_eq!(text(b"\xe2\x82a\xff"), r#""\udce2\udc82a\udcff""#);
        assert_eq!(text(b"\xed\xa0\x80"), r#""\udced\udca0\udc80""#);
    }

    #[test]
    fn text_lines_group_thousands_and_keep_the_path_bytes() {
        let row = EntryRow {
            id: 2,
            location_id: 1,
            path: b"d/caf\xe9".to_vec(),
            parent_id: Some(1),
            name: String::new(),
            extension: None,
            kind: 0,
            size: 1_234_567,
            agg_size: None,
            file_count: None,
            mtime_ns: 0,
            ctime_ns: 0,
            inode: -1,
            device: 3,
            mode: 0o644,
            cas_id: None,
            checksum: None,
            indexed_at: 0.0,
        };
        let mut out = Vec::new();
        push_entry_text_line(&mut out, b"/r", &row);
        assert_eq!(out, b"file         1,234,567  /r/d/caf\xe9\n");
        out.clear();
        push_entry_line(&mut out, b"/r/", &row);
        let line = String::from_utf8(out).unwrap();
        assert!(line.starts_with(r#"{"path": "/r/d/caf\udce9", "kind": "file", "size": 1234567"#));
        assert!(line.contains(r#""inode": 18446744073709551615, "device": 3, "mode": 420"#));
        assert!(line.ends_with("\"id\": 2, \"parent_id\": 1}\n"));
    }
}
