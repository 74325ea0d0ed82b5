//! File operations: copying and moving trees (a plan first, then pages of
//! transfer), and removing them (overwritten first for a secure delete).

mod newfile;
pub mod plan;
pub mod remove;
pub mod shred;
pub mod transfer;

pub use plan::{plan_copy, Action, Conflict, Item, Plan};
pub use remove::{remove_tree, RemoveOptions, Removed};
pub use transfer::{finish, transfer_page, PageDone, TransferOptions};

use crate::error::{Error, FsError, Result};

/// Rename `source` to `target` only if `target` does not exist, atomically
/// (`RENAME_NOREPLACE`): a move within one filesystem in one step.
pub fn rename_no_replace(source: &[u8], target: &[u8]) -> Result<()> {
    crate::sys::with_parent(source, |from_dir, from| {
        crate::sys::with_parent(target, |to_dir, to| {
            Ok(rustix::fs::renameat_with(
                from_dir,
                from,
                to_dir,
                to,
                rustix::fs::RenameFlags::NOREPLACE,
            )?)
        })
    })
    .map_err(|e| Error::Fs(FsError::from_io(source, &e)))
}
