//! A page of validation: the location's entries read through the
//! library's store, checked in parallel (`checks.rs`), and what was found
//! recorded back in one store operation.

use super::checks::{check_rows, Checked, ValidateMode, ValidatePass};
use crate::cancel::CancelToken;
use crate::error::{Error, Result};
use crate::library::model::{FoundChecksum, NewIssue, Stored};
use crate::library::store::LibraryStore;
use crate::pool::in_reading_pool;

/// Rows per chunk of a page (see [`validate_page`]).
const READ_CHUNK: usize = 2048;

/// Validate up to `limit` entries of the location (ids above `after_id`) in
/// parallel; record the issues under `run_id` and, in complete mode, the
/// checksums the index lacked, in one store operation (none when there is
/// nothing to write, so a clean page never takes the write lock).
#[allow(clippy::too_many_arguments)]
pub fn validate_page<S: LibraryStore + Send>(
    db: &mut S,
    location_id: i64,
    run_id: &str,
    after_id: i64,
    limit: usize,
    mode: ValidateMode,
    threads: Option<usize>,
    cancel: &CancelToken,
) -> Result<ValidatePass> {
    let root = db.location(location_id)?.path;
    // The page is read in chunks, and each chunk is checked by the pool
    // while the next is read: reading 16,000 rows takes ~7 ms, during which
    // the other thread would otherwise wait.
    let (sender, receiver) = std::sync::mpsc::channel();
    // Moved in as `&mut`: the store is used by this one thread only (a
    // SQLite connection may move between threads, not be shared).
    let (store, root_ref) = (&mut *db, &root);
    let read: Result<()> = in_reading_pool(threads, move || {
        rayon::scope(move |scope| {
            let mut index = 0;
            store.entries_to_validate(location_id, after_id, limit, READ_CHUNK, |rows| {
                let sender = sender.clone();
                scope.spawn(move |_| {
                    let checked = check_rows(root_ref, &rows, mode, cancel);
                    // The receiver outlives the scope: sending cannot fail.
                    let _ = sender.send((index, rows, checked));
                });
                index += 1;
            })
        })
    })?;
    read?;
    let mut chunks: Vec<(usize, Vec<Stored>, Vec<Checked>)> = receiver.into_iter().collect();
    if cancel.is_cancelled() {
        return Err(Error::Cancelled);
    }
    chunks.sort_unstable_by_key(|c| c.0);
    let mut rows = Vec::new();
    let mut checked = Vec::new();
    for (_, r, c) in chunks {
        rows.extend(r);
        checked.extend(c);
    }
    let mut pass = ValidatePass {
        last_id: rows.last().map_or(after_id, |e| e.id),
        looked_at: rows.len() as u64,
        ..ValidatePass::default()
    };
    let mut issues = Vec::new();
    let mut checksums = Vec::new();
    for (e, c) in rows.iter().zip(&checked) {
        pass.hashed += u64::from(c.hashed);
        pass.bytes += c.bytes;
        pass.unverified += u64::from(c.unverified);
        for (category, detail) in &c.issues {
            pass.found[*category as usize] += 1;
            issues.push(NewIssue {
                entry_id: e.id,
                category: category.as_str(),
                path: &e.path,
                detail,
            });
        }
        if let Some(sum) = &c.store_checksum {
            checksums.push(FoundChecksum {
                id: e.id,
                checksum: sum,
                size: e.size,
                mtime_ns: e.mtime_ns,
                inode: e.inode,
            });
        }
    }
    if issues.is_empty() && checksums.is_empty() {
        return Ok(pass);
    }
    pass.stored = db.record_validation(run_id, location_id, &issues, &checksums)?;
    Ok(pass)
}
