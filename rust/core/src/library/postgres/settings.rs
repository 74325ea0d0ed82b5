//! `library_settings`: the library's own settings, a key and a JSON text
//! each (the Python side gives them meaning:
//! python/phasekit/library/_settings.py).

use postgres::GenericClient;

use super::statements::Statements;
use crate::error::Result;

pub(super) fn get(
    c: &mut impl GenericClient,
    st: &mut Statements,
    key: &str,
) -> Result<Option<String>> {
    let stmt = st.get(c, "SELECT value FROM library_settings WHERE key = $1")?;
    Ok(c.query_opt(&stmt, &[&key])?
        .map(|row| row.try_get(0))
        .transpose()?)
}

/// One statement, so atomic by itself: `None` removes the key.
pub(super) fn set(
    c: &mut impl GenericClient,
    st: &mut Statements,
    key: &str,
    value: Option<&str>,
) -> Result<()> {
    match value {
        Some(value) => {
            let stmt = st.get(
                c,
                "INSERT INTO library_settings (key, value) VALUES ($1, $2) \
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            )?;
            c.execute(&stmt, &[&key, &value])?
        }
        None => {
            let stmt = st.get(c, "DELETE FROM library_settings WHERE key = $1")?;
            c.execute(&stmt, &[&key])?
        }
    };
    Ok(())
}
