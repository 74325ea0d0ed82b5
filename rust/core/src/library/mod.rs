//! A library's index: locations, entries and content identities, behind
//! one store boundary.
//!
//! [`LibraryStore`] (`store.rs`) lists every operation the jobs need of the
//! database; [`SqliteStore`] (`sqlite/`) implements it over library.db, and
//! is the only code in this crate that uses SQL. The records that cross the
//! boundary are in `model.rs`.

mod aggregate;
mod book;
mod content;
mod dupes;
mod model;
mod pipeline;
mod rows;
mod scan;
mod sqlite;
mod store;
pub mod validate;

pub use aggregate::DirSizes;
pub use book::{Gone, ScanBook, ScanStats, Seen, Unseen};
pub use content::{hash_missing, HashPass};
pub use dupes::{file_records, store_digests};
pub use model::{
    DigestText, EntryRow, FileDigest, FoundChecksum, HashedContent, IndexMode, IssueRow, Location,
    MissingContent, NewIssue, Stored, StoredFile,
};
pub use pipeline::{ScanPipeline, Step, CHANNEL_CAPACITY};
pub use scan::ScanWriter;
pub use sqlite::{SqliteStore, SCHEMA_VERSION};
pub use store::LibraryStore;
