//! `settings`: the library's own settings, a key and a JSON text each (the
//! Python side gives them meaning: python/phasekit/library/_settings.py).

use rusqlite::{params, Connection, OptionalExtension};

use crate::error::Result;

pub(super) fn get(conn: &Connection, key: &str) -> Result<Option<String>> {
    Ok(conn
        .query_row(
            "SELECT value FROM settings WHERE key = ?1",
            params![key],
            |r| r.get(0),
        )
        .optional()?)
}

/// One statement, so atomic by itself: `None` removes the key.
pub(super) fn set(conn: &Connection, key: &str, value: Option<&str>) -> Result<()> {
    match value {
        Some(value) => conn.execute(
            "INSERT INTO settings (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?,
        None => conn.execute("DELETE FROM settings WHERE key = ?1", params![key])?,
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_setting_is_stored_replaced_and_removed() {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::schema::migrate(&mut conn).unwrap();
        assert_eq!(get(&conn, "k").unwrap(), None);
        set(&conn, "k", Some("[1]")).unwrap();
        set(&conn, "k", Some("[2]")).unwrap();
        assert_eq!(get(&conn, "k").unwrap().as_deref(), Some("[2]"));
        set(&conn, "k", None).unwrap();
        assert_eq!(get(&conn, "k").unwrap(), None);
    }
}
