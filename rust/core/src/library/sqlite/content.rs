//! Content identities: the links the schema's triggers leave for later.

use rusqlite::Transaction;

use crate::error::Result;

/// Leave the location's new cas_ids to `link_identities` (see the schema).
pub(crate) fn defer_links(tx: &Transaction<'_>, location_id: i64) -> Result<()> {
    tx.execute(
        "UPDATE locations SET content_linked = 0 WHERE id = ?1",
        [location_id],
    )?;
    Ok(())
}

/// Drop the identities noted in `lost_links` that no entry is linked to.
pub(crate) fn drop_lost_identities(tx: &Transaction<'_>) -> Result<()> {
    tx.execute(
        "DELETE FROM content_identities WHERE cas_id IN (SELECT cas_id FROM lost_links) \
         AND NOT EXISTS (SELECT 1 FROM entry_content ec WHERE ec.cas_id = content_identities.cas_id)",
        [],
    )?;
    tx.execute("DELETE FROM lost_links", [])?;
    Ok(())
}
