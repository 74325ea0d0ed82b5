//! The one helper that releases the GIL.

use pyo3::marker::Ungil;
use pyo3::prelude::*;

/// Run `f` with the GIL released, so other Python threads (a database writer,
/// a progress bar, the event loop) run while Rust walks or hashes. `f` must not
/// touch Python objects; it gets plain Rust data in and gives plain data back.
pub fn without_gil<T: Ungil, F: Ungil + FnOnce() -> T>(py: Python<'_>, f: F) -> T {
    py.detach(f)
}
