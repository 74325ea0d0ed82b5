//! `Scan`: the pipelined scan of one location (walk on a background thread,
//! batches written by `step()`), over a `LibraryDb`.

use std::sync::Mutex;

use phasekit_core::content::Want;
use phasekit_core::library::ScanPipeline;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use crate::errors::IntoPy;
use crate::gil::without_gil;
use crate::library::{errors_to_py, stats_tuple, LibraryDb, StatsTuple};
use crate::paths::path_to_py;
use crate::token::{core_token, CancelToken};
use crate::walk::walk_options;

/// A scan of one location: the walk runs on a background thread, `step()`
/// writes the next batch. Close it (or drop it) to stop the walker thread.
#[pyclass(module = "phasekit._core", frozen)]
pub struct Scan {
    db: Py<LibraryDb>,
    // One caller at a time: a second thread gets an error, not a wait.
    inner: Mutex<ScanPipeline>,
}

fn busy() -> PyErr {
    PyRuntimeError::new_err("this scan is in use by another thread")
}

/// `(entries, state, errors, stats)` of one written batch.
type StepTuple<'py> = (
    usize,
    Bound<'py, PyBytes>,
    Bound<'py, PyList>,
    StatsTuple,
    Bound<'py, PyAny>,
);

#[pymethods]
impl Scan {
    #[new]
    #[pyo3(signature = (db, location_id, *, fresh=false, max_depth=None, hidden=true, skip=Vec::new(), batch_size=1000, threads=None, cas_ids=false, checksums=false, resume=None, cancel=None, durable_steps=true))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        db: Py<LibraryDb>,
        location_id: i64,
        fresh: bool,
        max_depth: Option<u32>,
        hidden: bool,
        skip: Vec<String>,
        batch_size: usize,
        threads: Option<usize>,
        cas_ids: bool,
        checksums: bool,
        resume: Option<Vec<u8>>,
        cancel: Option<&Bound<'_, CancelToken>>,
        durable_steps: bool,
    ) -> PyResult<Self> {
        let hash = Want {
            cas_id: cas_ids,
            checksum: checksums,
        };
        let opts =
            walk_options(false, max_depth, hidden, skip, batch_size, threads, hash).into_py(py)?;
        let token = core_token(cancel);
        let pipeline = db.get().with(py, move |conn| {
            let mut pipeline =
                ScanPipeline::start(conn, location_id, fresh, opts, resume.as_deref(), token)?;
            pipeline.set_durable_steps(durable_steps);
            Ok(pipeline)
        })?;
        Ok(Scan {
            db,
            inner: Mutex::new(pipeline),
        })
    }

    /// Write the next batch: `(entries, state, errors, stats)`, or None when
    /// the walk is complete. Checkpoint `state` after this returns.
    fn step<'py>(&self, py: Python<'py>) -> PyResult<Option<StepTuple<'py>>> {
        let mut guard = self.inner.try_lock().map_err(|_| busy())?;
        let pipeline = &mut *guard;
        // Wait for the walker without holding the library's connection, so
        // other users of this LibraryDb (another job) are not held up by a
        // walk or by hashing; only the write takes it.
        let Some(received) = without_gil(py, || pipeline.receive()).into_py(py)? else {
            return Ok(None);
        };
        let (s, stats) = self.db.get().with(py, |db| {
            Ok((pipeline.write(db, received)?, pipeline.stats()))
        })?;
        Ok(Some((
            s.entries,
            PyBytes::new(py, &s.state),
            errors_to_py(py, &s.errors)?,
            stats_tuple(stats),
            path_to_py(py, &s.last_path)?,
        )))
    }

    /// Make the steps written so far durable before their state is kept
    /// (a scan made with `durable_steps=False`; otherwise nothing to do).
    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        let mut guard = self.inner.try_lock().map_err(|_| busy())?;
        let pipeline = &mut *guard;
        self.db.get().with(py, |db| pipeline.flush_steps(db))
    }

    /// After the last step: remove the entries that are gone from disk.
    fn sweep(&self, py: Python<'_>) -> PyResult<StatsTuple> {
        let mut guard = self.inner.try_lock().map_err(|_| busy())?;
        let pipeline = &mut *guard;
        self.db.get().with(py, |db| {
            pipeline.sweep(db)?;
            Ok(stats_tuple(pipeline.stats()))
        })
    }

    /// After the sweep: set directory sizes and file counts; returns the
    /// location's (total bytes, regular files).
    fn aggregate(&self, py: Python<'_>) -> PyResult<(i64, i64)> {
        let mut guard = self.inner.try_lock().map_err(|_| busy())?;
        let pipeline = &mut *guard;
        self.db.get().with(py, |db| pipeline.aggregate(db))
    }

    #[getter]
    fn stats(&self) -> PyResult<StatsTuple> {
        let guard = self.inner.try_lock().map_err(|_| busy())?;
        Ok(stats_tuple(guard.stats()))
    }

    /// When the scan started (unix seconds), the `indexed_at` of what it wrote.
    #[getter]
    fn started(&self) -> PyResult<f64> {
        let guard = self.inner.try_lock().map_err(|_| busy())?;
        Ok(guard.started())
    }

    #[getter]
    fn finished(&self) -> PyResult<bool> {
        let guard = self.inner.try_lock().map_err(|_| busy())?;
        Ok(guard.is_finished())
    }

    /// Stop the walker thread and wait for it (a fraction of a second).
    /// `stats` stay readable; `sweep` still works if the walk had finished.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let mut guard = self.inner.try_lock().map_err(|_| busy())?;
        let pipeline = &mut *guard;
        without_gil(py, || pipeline.close());
        Ok(())
    }
}
