//! cas_id and checksum, for one path or many.

use phasekit_core::content::{self, HashResults};
use phasekit_core::{CancelToken as CoreToken, Error, FsError};
use pyo3::prelude::*;
use pyo3::types::PyList;

use crate::errors::{os_error, IntoPy};
use crate::gil::without_gil;
use crate::paths::{path_from_py, path_to_py, paths_from_py};
use crate::token::{core_token, CancelToken};

/// Files read at once by default: `PHASEKIT_READ_THREADS` when set, else
/// `READ_THREADS`; ValueError when the variable is not a positive number.
#[pyfunction]
pub fn read_threads(py: Python<'_>) -> PyResult<usize> {
    phasekit_core::pool::default_read_threads().into_py(py)
}

/// Content id of one file; None for an empty file; OSError on failure.
#[pyfunction]
pub fn cas_id(py: Python<'_>, path: &Bound<'_, PyAny>) -> PyResult<Option<String>> {
    let path = path_from_py(path)?;
    without_gil(py, || content::cas_id(&path)).map_err(|e| os_error(py, &e))
}

/// Full BLAKE3 of one file, 64 hex digits; OSError on failure.
#[pyfunction]
pub fn checksum(py: Python<'_>, path: &Bound<'_, PyAny>) -> PyResult<String> {
    let path = path_from_py(path)?;
    without_gil(py, || content::checksum(&path)).map_err(|e| os_error(py, &e))
}

/// `(values, errors)`: values aligned with the input (None where absent),
/// errors as `(index, path, errno, message)`.
type BatchOut<'py> = (Bound<'py, PyList>, Bound<'py, PyList>);

fn batch_to_py<'py, T: IntoPyObject<'py> + Clone>(
    py: Python<'py>,
    results: Vec<Result<T, FsError>>,
) -> PyResult<BatchOut<'py>> {
    let values = PyList::empty(py);
    let errors = PyList::empty(py);
    for (i, result) in results.into_iter().enumerate() {
        match result {
            Ok(v) => values.append(v)?,
            Err(e) => {
                values.append(py.None())?;
                errors.append((i, path_to_py(py, &e.path)?, e.errno, e.message))?;
            }
        }
    }
    Ok((values, errors))
}

/// A core batch hasher (`content::cas_ids`, `content::checksums`).
type BatchHasher<T> = fn(&[Vec<u8>], Option<usize>, &CoreToken) -> Result<HashResults<T>, Error>;

/// Run a batch hasher over Python paths without the GIL.
fn hash_batch<'py, T: IntoPyObject<'py> + Clone + Send>(
    py: Python<'py>,
    paths: &Bound<'py, PyAny>,
    threads: Option<usize>,
    cancel: Option<&Bound<'_, CancelToken>>,
    hasher: BatchHasher<T>,
) -> PyResult<BatchOut<'py>> {
    let paths = paths_from_py(paths)?;
    let token = core_token(cancel);
    let results = without_gil(py, || hasher(&paths, threads, &token)).into_py(py)?;
    batch_to_py(py, results)
}

#[pyfunction]
#[pyo3(signature = (paths, *, threads=None, cancel=None))]
pub fn cas_ids<'py>(
    py: Python<'py>,
    paths: &Bound<'py, PyAny>,
    threads: Option<usize>,
    cancel: Option<&Bound<'_, CancelToken>>,
) -> PyResult<BatchOut<'py>> {
    hash_batch(py, paths, threads, cancel, content::cas_ids)
}

#[pyfunction]
#[pyo3(signature = (paths, *, threads=None, cancel=None))]
pub fn checksums<'py>(
    py: Python<'py>,
    paths: &Bound<'py, PyAny>,
    threads: Option<usize>,
    cancel: Option<&Bound<'_, CancelToken>>,
) -> PyResult<BatchOut<'py>> {
    hash_batch(py, paths, threads, cancel, content::checksums)
}
