//! `walk(...)` and the `Walker` iterator of batches.

use std::sync::Mutex;

use numpy::PyArray1;
use phasekit_core::content::Want;
use phasekit_core::walk::{compile_patterns, default_threads, Batch, WalkOptions};
use phasekit_core::Error;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

use crate::errors::IntoPy;
use crate::gil::without_gil;
use crate::paths::{path_to_py, paths_from_py, paths_to_py};
use crate::token::{core_token, CancelToken};

/// A running walk; iterate it for batches. Safe to drop at any time (its
/// worker threads stop and are joined).
#[pyclass(module = "phasekit._core")]
pub struct Walker {
    // The mutex makes the class shareable between Python threads; the core
    // walker is used by one caller at a time (a second one gets an error, not
    // a wait, so two threads can never deadlock on it and the GIL).
    inner: Mutex<Option<phasekit_core::walk::Walker>>,
    hash: Want,
}

fn busy() -> PyErr {
    PyRuntimeError::new_err("this walker is in use by another thread")
}

#[pymethods]
impl Walker {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// The next batch as a tuple of columns, or StopIteration at the end.
    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyTuple>>> {
        let mut guard = self.inner.try_lock().map_err(|_| busy())?;
        let Some(walker) = guard.as_mut() else {
            return Ok(None);
        };
        // Reading directories is the long part: done without the GIL.
        let batch = without_gil(py, || walker.next_batch()).into_py(py)?;
        batch.map(|b| batch_to_py(py, b, self.hash)).transpose()
    }

    /// The resume state (msgpack bytes): the frontier of directories not yet
    /// fully yielded. Take it between batches.
    fn state<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let guard = self.inner.try_lock().map_err(|_| busy())?;
        match guard.as_ref() {
            Some(walker) => Ok(PyBytes::new(py, &walker.state())),
            None => Err(PyRuntimeError::new_err("walker is closed")),
        }
    }

    /// True once every entry has been yielded.
    #[getter]
    fn finished(&self) -> PyResult<bool> {
        let guard = self.inner.try_lock().map_err(|_| busy())?;
        Ok(guard.as_ref().is_none_or(|w| w.is_finished()))
    }

    /// Stop the worker threads now; further iteration yields nothing.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let mut guard = self.inner.try_lock().map_err(|_| busy())?;
        let walker = guard.take();
        // Joining the workers can wait for a directory read in progress.
        without_gil(py, move || drop(walker));
        Ok(())
    }
}

/// A column of hex digests, or None when the walk was not asked for it.
fn hashes_to_py<'py>(
    py: Python<'py>,
    wanted: bool,
    column: Vec<Option<String>>,
) -> PyResult<Bound<'py, PyAny>> {
    if wanted {
        Ok(PyList::new(py, column)?.into_any())
    } else {
        Ok(py.None().into_bound(py))
    }
}

fn batch_to_py<'py>(py: Python<'py>, b: Batch, want: Want) -> PyResult<Bound<'py, PyTuple>> {
    let errors = PyList::empty(py);
    for e in &b.errors {
        errors.append((path_to_py(py, &e.path)?, e.errno, e.message.as_str()))?;
    }
    let items: Vec<Bound<'py, PyAny>> = vec![
        paths_to_py(py, b.paths())?.into_any(),
        PyArray1::from_vec(py, b.kinds).into_any(),
        PyArray1::from_vec(py, b.sizes).into_any(),
        PyArray1::from_vec(py, b.mtimes_ns).into_any(),
        PyArray1::from_vec(py, b.ctimes_ns).into_any(),
        PyArray1::from_vec(py, b.inodes).into_any(),
        PyArray1::from_vec(py, b.devices).into_any(),
        PyArray1::from_vec(py, b.modes).into_any(),
        PyArray1::from_vec(py, b.nlinks).into_any(),
        errors.into_any(),
        hashes_to_py(py, want.cas_id, b.cas_ids)?,
        hashes_to_py(py, want.checksum, b.checksums)?,
    ];
    PyTuple::new(py, items)
}

/// Options shared by `walk` and `find_duplicates`.
#[allow(clippy::too_many_arguments)]
pub fn walk_options(
    follow_symlinks: bool,
    max_depth: Option<u32>,
    hidden: bool,
    skip: Vec<String>,
    batch_size: usize,
    threads: Option<usize>,
    hash: Want,
) -> Result<WalkOptions, Error> {
    Ok(WalkOptions {
        follow_symlinks,
        max_depth,
        include_hidden: hidden,
        skip: compile_patterns(&skip)?,
        batch_size,
        // Directories are read by `default_threads()` walkers (8, or one per
        // core where there are more); the files a hashing walk reads go to
        // the reading pool, which a given count sizes too.
        threads: threads.unwrap_or_else(default_threads),
        hash,
        read_threads: threads,
    })
}

/// Start a walk of `roots`, or resume one from `resume` (a `Walker.state()`).
#[pyfunction]
#[pyo3(signature = (roots, *, follow_symlinks=false, max_depth=None, hidden=true, skip=Vec::new(), batch_size=1000, threads=None, cancel=None, resume=None, cas_ids=false, checksums=false))]
#[allow(clippy::too_many_arguments)]
pub fn walk(
    py: Python<'_>,
    roots: &Bound<'_, PyAny>,
    follow_symlinks: bool,
    max_depth: Option<u32>,
    hidden: bool,
    skip: Vec<String>,
    batch_size: usize,
    threads: Option<usize>,
    cancel: Option<&Bound<'_, CancelToken>>,
    resume: Option<Vec<u8>>,
    cas_ids: bool,
    checksums: bool,
) -> PyResult<Walker> {
    let roots = paths_from_py(roots)?;
    let hash = Want {
        cas_id: cas_ids,
        checksum: checksums,
    };
    let opts = walk_options(
        follow_symlinks,
        max_depth,
        hidden,
        skip,
        batch_size,
        threads,
        hash,
    )
    .into_py(py)?;
    let token = core_token(cancel);
    // Roots are stat'ed here; cheap, but it is I/O, so without the GIL.
    let walker = without_gil(py, move || match resume {
        Some(state) => phasekit_core::walk::Walker::resume(&state, opts, token),
        None => phasekit_core::walk::Walker::new(&roots, opts, token),
    })
    .into_py(py)?;
    Ok(Walker {
        inner: Mutex::new(Some(walker)),
        hash,
    })
}
