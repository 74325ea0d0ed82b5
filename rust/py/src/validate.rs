//! Validation of a location against the disk (see the core's
//! `library::validate`): one page per call, the GIL released while it runs.

use phasekit_core::library::validate::{self, Category, ValidateMode};
use phasekit_core::library::LibraryStore;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

use crate::errors::IntoPy;
use crate::library::LibraryDb;
use crate::token::{core_token, CancelToken};

/// `(last_id, looked_at, hashed, bytes, stored, unverified, found)`, `found`
/// mapping each category seen on the page to its count.
type PassTuple<'py> = (i64, u64, u64, u64, u64, u64, Bound<'py, PyDict>);

/// Validate up to `limit` entries of a location with ids above `after_id`,
/// recording issues under `run_id`.
#[pyfunction]
#[pyo3(signature = (db, location_id, run_id, after_id=0, limit=2000, mode="basic", threads=None, cancel=None))]
#[allow(clippy::too_many_arguments)]
pub fn validate_page<'py>(
    py: Python<'py>,
    db: &LibraryDb,
    location_id: i64,
    run_id: String,
    after_id: i64,
    limit: usize,
    mode: &str,
    threads: Option<usize>,
    cancel: Option<&Bound<'_, CancelToken>>,
) -> PyResult<PassTuple<'py>> {
    let mode = ValidateMode::parse(mode).into_py(py)?;
    let token = core_token(cancel);
    // `with` releases the GIL: the page stats and reads files for a while.
    let pass = db.with(py, move |db| {
        validate::validate_page(
            db,
            location_id,
            &run_id,
            after_id,
            limit,
            mode,
            threads,
            &token,
        )
    })?;
    let found = PyDict::new(py);
    for (category, &n) in Category::ALL.iter().zip(&pass.found) {
        if n > 0 {
            found.set_item(category.as_str(), n)?;
        }
    }
    Ok((
        pass.last_id,
        pass.looked_at,
        pass.hashed,
        pass.bytes,
        pass.stored,
        pass.unverified,
        found,
    ))
}

/// Forget a location's recorded issues; the number removed.
#[pyfunction]
pub fn clear_validation(py: Python<'_>, db: &LibraryDb, location_id: i64) -> PyResult<u64> {
    db.with(py, move |db| db.clear_issues(location_id))
}

/// `[(category, count)]` of a run's issues.
#[pyfunction]
pub fn validation_counts(
    py: Python<'_>,
    db: &LibraryDb,
    run_id: String,
) -> PyResult<Vec<(String, u64)>> {
    db.with(py, move |db| db.issue_counts(&run_id))
}

/// Up to `limit` issues of a run after `(after_entry, after_category)`:
/// `[(entry_id, category, relative path bytes, detail)]`.
#[pyfunction]
#[pyo3(signature = (db, run_id, after_entry=0, after_category="", limit=1000))]
pub fn validation_issues<'py>(
    py: Python<'py>,
    db: &LibraryDb,
    run_id: String,
    after_entry: i64,
    after_category: &str,
    limit: usize,
) -> PyResult<Bound<'py, PyList>> {
    let after_category = after_category.to_owned();
    let rows = db.with(py, move |db| {
        db.issues(&run_id, (after_entry, &after_category), limit)
    })?;
    let out = PyList::empty(py);
    for r in rows {
        out.append((r.entry_id, r.category, PyBytes::new(py, &r.path), r.detail))?;
    }
    Ok(out)
}
