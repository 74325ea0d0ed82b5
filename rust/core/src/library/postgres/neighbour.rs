//! The job store's tables, made by the library's connection when both live
//! in one database.
//!
//! A command's start-up in PostgreSQL waits for psycopg's import (the job
//! store's client, ~0.09 s of Python holding the GIL) while the library's
//! connection, made here without the GIL, is done in a fraction of that.
//! In a new database the job store then spends ~20-30 ms creating its
//! tables: made here instead, in that idle time, the job store finds them
//! current. The layout and its rules stay the job store's
//! (`python/phasekit/jobs/postgres/_connect.py`'s `migrate`, whose steps
//! this follows exactly: the same advisory lock, version table and one
//! transaction per version); the job store still checks and migrates on
//! its own, so anything not done here (an error, a newer layout) is done or
//! reported there, with its own errors.

use postgres::Client;

use crate::error::Result;

/// Another schema's migrations, run the way its owner runs them.
pub struct NeighbourSchema {
    /// The two keys of its session-level migration lock.
    pub lock: (i32, i32),
    /// Its version table: one row, one `INTEGER` column `version`.
    pub table: String,
    /// `(version, SQL)` in order; the SQL may hold several statements.
    pub migrations: Vec<(i32, String)>,
}

impl NeighbourSchema {
    /// Bring it to its last version, under its lock (released however the
    /// migrations end). A version table newer than the last known is left
    /// as it is.
    pub(super) fn migrate(&self, client: &mut Client) -> Result<()> {
        let (namespace, key) = self.lock;
        client.execute("SELECT pg_advisory_lock($1, $2)", &[&namespace, &key])?;
        let applied = self.apply(client);
        // An error left a transaction open: its rollback (on drop) came
        // first, so the unlock runs outside it.
        let unlocked = client.execute("SELECT pg_advisory_unlock($1, $2)", &[&namespace, &key]);
        applied?;
        unlocked?;
        Ok(())
    }

    fn apply(&self, client: &mut Client) -> Result<()> {
        let table = &self.table;
        client.batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {table} (version INTEGER)"
        ))?;
        let version: i32 = client
            .query_opt(&format!("SELECT version FROM {table}"), &[])?
            .map(|row| row.try_get(0))
            .transpose()?
            .unwrap_or(0);
        for (target, sql) in &self.migrations {
            if *target <= version {
                continue;
            }
            let mut tx = client.transaction()?;
            tx.batch_execute(sql)?;
            tx.batch_execute(&format!("DELETE FROM {table}"))?;
            tx.execute(&format!("INSERT INTO {table} VALUES ($1)"), &[target])?;
            tx.commit()?;
        }
        Ok(())
    }
}
