//! `phasekit._core`: thin PyO3 bindings over `phasekit-core`.
//!
//! Conventions: paths come in as `str`, `bytes` or path-like and go to Rust
//! as bytes (`os.fsencode`); they come back as `str` (`os.fsdecode`, so
//! non-UTF-8 names round-trip). Numbers come back as numpy arrays. Results are
//! plain tuples and lists; the public Python facade (`phasekit.fs`) wraps them
//! in typed dataclasses. Every long call releases the GIL through
//! [`gil::without_gil`] and maps errors through [`errors`].

#![cfg(unix)]

mod chunks;
mod dupes;
mod entries;
mod errors;
mod fileops;
mod finder;
mod gil;
mod hashing;
mod library;
mod paths;
mod scan;
mod store;
mod token;
mod validate;
mod walk;

use pyo3::prelude::*;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("READ_THREADS", phasekit_core::pool::READ_THREADS)?;
    errors::register(m)?;
    m.add_class::<token::CancelToken>()?;
    m.add_class::<walk::Walker>()?;
    m.add_class::<library::LibraryDb>()?;
    m.add_class::<scan::Scan>()?;
    m.add_class::<finder::DupeFinder>()?;
    m.add_class::<fileops::CopyPlan>()?;
    m.add_class::<fileops::RemoveCounters>()?;
    m.add_function(wrap_pyfunction!(fileops::remove_tree, m)?)?;
    m.add_function(wrap_pyfunction!(fileops::rename_no_replace, m)?)?;
    m.add_function(wrap_pyfunction!(walk::walk, m)?)?;
    m.add_function(wrap_pyfunction!(hashing::read_threads, m)?)?;
    m.add_function(wrap_pyfunction!(hashing::cas_id, m)?)?;
    m.add_function(wrap_pyfunction!(hashing::cas_ids, m)?)?;
    m.add_function(wrap_pyfunction!(hashing::checksum, m)?)?;
    m.add_function(wrap_pyfunction!(hashing::checksums, m)?)?;
    m.add_function(wrap_pyfunction!(chunks::chunks, m)?)?;
    m.add_function(wrap_pyfunction!(chunks::chunk_ranges, m)?)?;
    m.add_function(wrap_pyfunction!(dupes::find_duplicates, m)?)?;
    m.add_function(wrap_pyfunction!(dupes::group_duplicates, m)?)?;
    m.add_function(wrap_pyfunction!(validate::validate_page, m)?)?;
    m.add_function(wrap_pyfunction!(validate::clear_validation, m)?)?;
    m.add_function(wrap_pyfunction!(validate::validation_counts, m)?)?;
    m.add_function(wrap_pyfunction!(validate::validation_issues, m)?)?;
    Ok(())
}
