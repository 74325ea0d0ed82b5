//! Duplicate grouping: the staged pipeline of the best tools.
//!
//! 1. group by size (or name and size), dropping sizes seen once;
//! 2. walked trees, `content`/`full`: a digest of the first 4 KiB of files
//!    over 8 KiB, inside size groups, dropping first pages seen once;
//! 3. `content`/`full`: cas_id digest of one path per inode, only inside
//!    groups that still have two or more inodes;
//! 4. `full`: for files over 100 KiB, whose cas_id only samples them, a full
//!    BLAKE3 inside cas_id groups that still have two or more inodes. Files up
//!    to 100 KiB are already hashed whole by step 3 (its 256-bit digest covers
//!    every byte), so they need no second read.
//!
//! Hard links (paths sharing device and inode) are hashed once and reported as
//! links of one copy, never as wasted space.
//!
//! [`Finder`] runs the stages a page at a time, so a job can checkpoint and
//! pause between pages and persist each page's digests ([`cache`] for trees
//! walked on the spot, library.db for indexed locations); [`find`] runs them
//! all in one call.

mod cache;
mod finder;

pub use cache::{DigestCache, Known};
pub use finder::{Finder, Hashed, Page, Stage};

use crate::cancel::CancelToken;
use crate::content::Digest;
use crate::error::{Error, FsError, Result};
use crate::sys::Kind;
use crate::walk::Batch;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Size,
    NameSize,
    Content,
    Full,
}

impl Mode {
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "size" => Ok(Mode::Size),
            "name_size" => Ok(Mode::NameSize),
            "content" => Ok(Mode::Content),
            "full" => Ok(Mode::Full),
            other => Err(Error::InvalidArgument(format!(
                "unknown duplicate mode {other:?}; expected one of size, name_size, content, full"
            ))),
        }
    }
}

/// A regular file to consider.
#[derive(Clone, Debug, Default)]
pub struct FileRecord {
    pub path: Vec<u8>,
    pub size: u64,
    pub device: u64,
    pub inode: u64,
    /// As listed; a file whose size or mtime differs when it is hashed is
    /// reported as changed instead of hashed under the old listing.
    /// `None`: not known (only the identity is checked).
    pub mtime_ns: Option<i64>,
    /// The library entry this path is (0: none).
    pub entry_id: i64,
    /// Digests known already (e.g. stored in a library).
    pub cas: Option<Digest>,
    pub full: Option<Digest>,
}

impl FileRecord {
    /// The regular files of a walker batch, as listed (mtime included).
    pub fn files_of(batch: &Batch) -> impl Iterator<Item = FileRecord> + '_ {
        batch
            .paths()
            .enumerate()
            .filter(|&(i, _)| batch.kinds[i] == Kind::File as u8)
            .map(|(i, path)| FileRecord {
                path: path.to_vec(),
                size: batch.sizes[i],
                device: batch.devices[i],
                inode: batch.inodes[i],
                mtime_ns: Some(batch.mtimes_ns[i]),
                ..FileRecord::default()
            })
    }
}

/// A set of files with the same key. `copies` holds one list per distinct
/// inode: the paths that are hard links to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    /// The grouping key: ASCII (a size or hex digest), or a file name's bytes.
    pub key: Vec<u8>,
    pub size: u64,
    pub copies: Vec<Vec<Vec<u8>>>,
}

impl Group {
    /// Bytes that deleting all but one copy would free.
    pub fn wasted(&self) -> u64 {
        self.size * (self.copies.len() as u64).saturating_sub(1)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Files (paths) given, before the size and extension filters.
    pub files: u64,
    /// Paths in size (or name and size) groups of two or more inodes.
    pub size_candidates: u64,
    /// Inodes whose first bytes were hashed to split size groups (walked
    /// trees only).
    pub prefix_hashed: u64,
    /// Inodes whose cas_id digest (full digest) was computed by this run.
    pub partial_hashed: u64,
    pub full_hashed: u64,
    /// Inodes whose needed digest was known already (not read again).
    pub reused: u64,
}

#[derive(Debug, Default)]
pub struct Report {
    pub groups: Vec<Group>,
    /// Inodes with several paths that are not part of any duplicate group.
    pub links: Vec<Group>,
    pub errors: Vec<FsError>,
    pub stats: Stats,
}

#[derive(Clone, Debug)]
pub struct Options {
    pub mode: Mode,
    pub min_size: u64,
    pub max_size: Option<u64>,
    /// Lower-case extensions (without the dot) to keep; empty keeps all.
    pub extensions: Vec<Vec<u8>>,
    pub threads: Option<usize>,
}

impl Options {
    pub fn new(mode: Mode) -> Self {
        Options {
            mode,
            min_size: 1,
            max_size: None,
            extensions: Vec::new(),
            threads: None,
        }
    }
}

/// Group `files` into duplicate sets according to `opts`, in one call.
pub fn find(files: Vec<FileRecord>, opts: &Options, cancel: &CancelToken) -> Result<Report> {
    let mut finder = Finder::new(files, opts.clone(), true);
    finder.group_by_size()?;
    while finder.stage() != Stage::Done {
        finder.hash_page(usize::MAX, u64::MAX, cancel)?;
    }
    Ok(finder.into_report())
}
