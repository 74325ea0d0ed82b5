//! The statements a connection keeps prepared.

use std::collections::HashMap;

use postgres::{GenericClient, Statement};

use crate::error::Result;

/// Statements prepared on this connection, by their SQL text: a statement
/// given as text is prepared on every call (one more round trip to the
/// server each time), a prepared one is only bound and run.
#[derive(Default)]
pub(super) struct Statements(HashMap<String, Statement>);

impl Statements {
    /// `sql` prepared on `client` (the connection or one of its
    /// transactions: statements outlive transactions), once.
    pub(super) fn get(&mut self, client: &mut impl GenericClient, sql: &str) -> Result<Statement> {
        if let Some(stmt) = self.0.get(sql) {
            return Ok(stmt.clone());
        }
        let stmt = client.prepare(sql)?;
        self.0.insert(sql.to_owned(), stmt.clone());
        Ok(stmt)
    }
}
