//! A library's index: locations, entries and content identities, behind
//! one store boundary.
//!
//! [`LibraryStore`] (`store.rs`) lists every operation the jobs and the
//! bindings need of the database; [`SqliteStore`] (`sqlite/`) implements it
//! over library.db, [`PostgresStore`] (`postgres/`) over a PostgreSQL
//! database shared by workers on several hosts, and they are the only code
//! in this crate that uses SQL. The
//! callers are generic over the trait: a scan ([`ScanWriter`] in `scan.rs`,
//! [`ScanPipeline`] in `pipeline.rs`), content hashing ([`hash_missing`] in
//! `content.rs`), the duplicate finder's records ([`file_records`],
//! [`store_digests`] in `dupes.rs`) and validation
//! ([`validate::validate_page`]). The pure parts, without storage: the
//! records crossing the boundary (`model.rs`), row shaping and change
//! detection (`rows.rs`), a scan's bookkeeping (`book.rs`), directory sums
//! (`aggregate.rs`), validation's checks (`validate/checks.rs`), entries as
//! JSON lines (`jsonl.rs`).

mod aggregate;
mod book;
mod content;
mod dupes;
mod jsonl;
mod model;
mod pipeline;
mod postgres;
mod rows;
mod scan;
mod sqlite;
mod store;
pub mod validate;

pub use self::postgres::{
    NeighbourSchema, PostgresStore, SCHEMA_VERSION as POSTGRES_SCHEMA_VERSION,
};
pub use aggregate::DirSizes;
pub use book::{Gone, ScanBook, ScanStats, Seen, Unseen};
pub use content::{hash_missing, HashPass};
pub use dupes::{each_file_record, file_records, store_digests};
pub use jsonl::{
    entries_lines, push_entry_line, push_entry_text_line, push_json_bytes, LineFormat,
};
pub use model::{
    DigestText, EntryRow, FileDigest, FoundChecksum, HashedContent, IndexMode, IssueRow, Location,
    MissingContent, NewIssue, Stored, StoredFile,
};
pub use pipeline::{ScanPipeline, Step, CHANNEL_CAPACITY};
pub use scan::ScanWriter;
pub use sqlite::{SqliteStore, SCHEMA_VERSION};
pub use store::LibraryStore;
