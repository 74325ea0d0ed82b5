//! Validation: compare a location's indexed entries with what is on disk now.
//!
//! A page of entries (ids above `after_id`) is checked in parallel. Per entry:
//! the name (portable, not too long, not too deep), then an `lstat` of the
//! path (never following a symlink) against the stored kind, permissions,
//! size and mtime. In `integrity` mode a regular file whose size and mtime are
//! unchanged is opened (identity-checked: the file just stat'ed, not a link or
//! a file swapped in since) and its cas_id recomputed; `complete` mode also
//! computes the full BLAKE3 checksum and stores it where the index has none.
//! A file whose size or mtime changed was modified, which says nothing about
//! rot: its content is not compared.
//!
//! What was found goes to `validation_issues`, one row per (run, entry,
//! category), upserted in the page's one transaction together with the
//! checksums stored, so a page done again after a resume changes nothing.
//! Severities are policy and live with the Python facade; this module only
//! says what is wrong.

mod checks;
mod page;

pub use checks::{
    check_entry, format_ns, name_issues, Category, Checked, ValidateMode, ValidatePass, DEPTH_MAX,
    NAME_MAX_PORTABLE, PATH_MAX_BYTES,
};
pub use page::validate_page;

pub use crate::library::model::{IssueRow, Stored};
