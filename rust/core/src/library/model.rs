//! The records of a library as the jobs and the bindings see them: a
//! location, an entry, how much an index holds. Plain data, no storage: the
//! operations on them are the [`super::store::LibraryStore`] trait's.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};

/// The parent id of entries at the top of a location.
pub(crate) const TOP: i64 = 0;

/// Now, in unix seconds (the stores' timestamps).
pub(crate) fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// How much a location's index holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IndexMode {
    /// Metadata only.
    Shallow,
    /// Plus cas_ids and content identities.
    Content,
    /// Plus full checksums, for later validation.
    Deep,
}

impl IndexMode {
    pub fn parse(text: &str) -> Result<Self> {
        match text {
            "shallow" => Ok(IndexMode::Shallow),
            "content" => Ok(IndexMode::Content),
            "deep" => Ok(IndexMode::Deep),
            other => Err(Error::InvalidArgument(format!(
                "index mode must be shallow, content or deep, not {other:?}"
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            IndexMode::Shallow => "shallow",
            IndexMode::Content => "content",
            IndexMode::Deep => "deep",
        }
    }
}

/// A location: a folder whose tree is indexed.
#[derive(Clone, Debug, PartialEq)]
pub struct Location {
    pub id: i64,
    pub path: Vec<u8>,
    pub mode: String,
    pub recursive: bool,
    pub created_at: f64,
    pub indexed_at: Option<f64>,
    pub total_size: Option<i64>,
    pub file_count: Option<i64>,
}

/// An indexed entry (file, directory, symlink, other) of a location.
#[derive(Clone, Debug, PartialEq)]
pub struct EntryRow {
    pub id: i64,
    pub location_id: i64,
    /// Relative to the location's root.
    pub path: Vec<u8>,
    pub parent_id: Option<i64>,
    pub name: String,
    pub extension: Option<String>,
    pub kind: u8,
    pub size: i64,
    pub agg_size: Option<i64>,
    pub file_count: Option<i64>,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub inode: i64,
    pub device: i64,
    pub mode: u32,
    pub cas_id: Option<String>,
    pub checksum: Option<String>,
    pub indexed_at: f64,
}

/// A file whose content the index lacks (see
/// `LibraryStore::missing_content`): where it is and what it was when
/// indexed, so a file changed since is not hashed under the old entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MissingContent {
    pub id: i64,
    /// Relative to the location's root.
    pub path: Vec<u8>,
    pub size: i64,
    pub mtime_ns: i64,
    pub inode: i64,
    pub device: i64,
}

/// An entry's content as hashed: its cas_id, and its checksum when one
/// was computed (see `LibraryStore::store_content`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HashedContent {
    pub id: i64,
    pub cas_id: Option<String>,
    pub checksum: Option<String>,
}

/// A regular file of a location as stored (see
/// `LibraryStore::regular_files`), digests as the hex text stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredFile {
    pub id: i64,
    /// Relative to the location's root.
    pub path: Vec<u8>,
    pub size: i64,
    pub mtime_ns: i64,
    pub inode: i64,
    pub device: i64,
    pub cas_id: Option<String>,
    pub checksum: Option<String>,
}

/// A digest computed for an entry (see `LibraryStore::store_digests`):
/// stored only while the entry still has this size and mtime.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileDigest {
    pub id: i64,
    pub size: i64,
    pub mtime_ns: i64,
    pub digest: DigestText,
}

/// Which digest, in the hex form stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DigestText {
    CasId(String),
    Checksum(String),
}

/// The stored facts validation compares an entry against (see
/// `LibraryStore::entries_to_validate`).
#[derive(Clone, Debug, Default)]
pub struct Stored {
    pub id: i64,
    /// Relative to the location's root.
    pub path: Vec<u8>,
    pub kind: u8,
    pub size: i64,
    pub mtime_ns: i64,
    pub inode: i64,
    pub device: i64,
    pub mode: u32,
    pub cas_id: Option<String>,
    pub checksum: Option<String>,
}

/// One recorded validation issue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssueRow {
    pub entry_id: i64,
    pub category: String,
    /// Relative to the location's root.
    pub path: Vec<u8>,
    pub detail: String,
}

/// An issue validation found, to record (see `LibraryStore::record_validation`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewIssue<'a> {
    pub entry_id: i64,
    pub category: &'a str,
    /// Relative to the location's root, as validated.
    pub path: &'a [u8],
    pub detail: &'a str,
}

/// A checksum validation computed for an entry the index had none for,
/// with the facts the entry had when validated (see
/// `LibraryStore::record_validation`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FoundChecksum<'a> {
    pub id: i64,
    pub checksum: &'a str,
    pub size: i64,
    pub mtime_ns: i64,
    pub inode: i64,
}
