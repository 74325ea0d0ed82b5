//! Batching over any sliceable Python sequence (lists, tuples, numpy arrays).

use phasekit_core::chunks as core_chunks;
use pyo3::prelude::*;
use pyo3::types::{PyList, PySlice};

use crate::errors::IntoPy;

fn ranges(
    len: usize,
    size: usize,
    balanced: bool,
) -> Result<Vec<std::ops::Range<usize>>, phasekit_core::Error> {
    if balanced {
        core_chunks::balanced(len, size)
    } else {
        core_chunks::fixed(len, size)
    }
}

/// `(start, stop)` index pairs splitting `length` items into chunks.
#[pyfunction]
#[pyo3(signature = (length, size, *, balanced = false))]
pub fn chunk_ranges(
    py: Python<'_>,
    length: usize,
    size: usize,
    balanced: bool,
) -> PyResult<Vec<(usize, usize)>> {
    Ok(ranges(length, size, balanced)
        .into_py(py)?
        .into_iter()
        .map(|r| (r.start, r.end))
        .collect())
}

/// Slices of `seq` of at most `size` items each (see `phasekit.fs.chunks`).
#[pyfunction]
#[pyo3(signature = (seq, size, *, balanced = false))]
pub fn chunks<'py>(
    seq: &Bound<'py, PyAny>,
    size: usize,
    balanced: bool,
) -> PyResult<Bound<'py, PyList>> {
    let py = seq.py();
    let len = seq.len()?;
    let slices = ranges(len, size, balanced)
        .into_py(py)?
        .into_iter()
        .map(|r| {
            let slice = PySlice::new(py, r.start as isize, r.end as isize, 1);
            seq.get_item(slice)
        })
        .collect::<PyResult<Vec<_>>>()?;
    PyList::new(py, slices)
}
