//! Path conversions at the boundary: in as bytes, out as `os.fsdecode` str.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString};

/// One path from `str` (encoded like `os.fsencode`), `bytes` or `os.PathLike`.
pub fn path_from_py(obj: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if let Ok(bytes) = obj.cast::<PyBytes>() {
        return Ok(bytes.as_bytes().to_vec());
    }
    if obj.is_instance_of::<PyString>() {
        return Ok(obj.extract::<OsString>()?.into_vec());
    }
    let fspath = obj.py().import("os")?.getattr("fspath")?;
    match fspath.call1((obj,)) {
        Ok(inner) if inner.is_instance_of::<PyBytes>() || inner.is_instance_of::<PyString>() => {
            path_from_py(&inner)
        }
        _ => Err(PyTypeError::new_err(format!(
            "expected a path (str, bytes or os.PathLike), got {}",
            obj.get_type().name()?
        ))),
    }
}

/// Many paths from any iterable of path objects.
pub fn paths_from_py(obj: &Bound<'_, PyAny>) -> PyResult<Vec<Vec<u8>>> {
    if obj.is_instance_of::<PyString>() || obj.is_instance_of::<PyBytes>() {
        return Err(PyTypeError::new_err(
            "expected a sequence of paths, got a single path; wrap it in a list",
        ));
    }
    obj.try_iter()?.map(|item| path_from_py(&item?)).collect()
}

pub fn path_to_py<'py>(py: Python<'py>, path: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    Ok(OsStr::from_bytes(path).into_pyobject(py)?.into_any())
}

pub fn paths_to_py<'py, 'a>(
    py: Python<'py>,
    paths: impl ExactSizeIterator<Item = &'a [u8]>,
) -> PyResult<Bound<'py, PyList>> {
    PyList::new(py, paths.map(OsStr::from_bytes))
}
