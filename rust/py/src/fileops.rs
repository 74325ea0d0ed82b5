//! `CopyPlan` (a planned copy or move, carried out a page at a time) and
//! `remove_tree`, for the file operation jobs.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use phasekit_core::fileops::{self, Conflict, Plan, RemoveOptions, Removed, TransferOptions};
use phasekit_core::sys::Kind;
use phasekit_core::Error;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};

use crate::errors::IntoPy;
use crate::gil::without_gil;
use crate::library::errors_to_py;
use crate::paths::{path_from_py, path_to_py, paths_from_py};
use crate::token::{core_token, CancelToken};

fn to_pathbuf(bytes: Vec<u8>) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    PathBuf::from(std::ffi::OsString::from_vec(bytes))
}

/// A copy plan: every entry of the sources, in walk order, with the
/// conflict policy applied. Shared between Python threads through a mutex
/// taken with the GIL released.
#[pyclass(module = "phasekit._core", frozen)]
pub struct CopyPlan {
    plan: Mutex<Plan>,
}

impl CopyPlan {
    fn lock(&self) -> MutexGuard<'_, Plan> {
        // A panic mid-page leaves the plan itself untouched (pages only read it).
        self.plan.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[pymethods]
impl CopyPlan {
    /// Walk `sources` and plan copying each to the matching `targets` path:
    /// `(plan, errors)`.
    #[staticmethod]
    #[pyo3(signature = (sources, targets, conflict="abort", cancel=None))]
    fn make<'py>(
        py: Python<'py>,
        sources: &Bound<'py, PyAny>,
        targets: &Bound<'py, PyAny>,
        conflict: &str,
        cancel: Option<&Bound<'_, CancelToken>>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let sources = paths_from_py(sources)?;
        let targets = paths_from_py(targets)?;
        let conflict = Conflict::parse(conflict).into_py(py)?;
        let token = core_token(cancel);
        let (plan, errors) = without_gil(py, move || {
            fileops::plan_copy(&sources, &targets, conflict, &token)
        })
        .into_py(py)?;
        let plan = Bound::new(
            py,
            CopyPlan {
                plan: Mutex::new(plan),
            },
        )?;
        PyTuple::new(py, [plan.into_any(), errors_to_py(py, &errors)?.into_any()])
    }

    /// Read a plan saved by `save`.
    #[staticmethod]
    fn load(py: Python<'_>, path: &Bound<'_, PyAny>) -> PyResult<CopyPlan> {
        let path = to_pathbuf(path_from_py(path)?);
        let plan = without_gil(py, move || Plan::load(&path)).into_py(py)?;
        Ok(CopyPlan {
            plan: Mutex::new(plan),
        })
    }

    /// Write the plan to `path` (a new file renamed into place).
    fn save(&self, py: Python<'_>, path: &Bound<'_, PyAny>) -> PyResult<()> {
        let path = to_pathbuf(path_from_py(path)?);
        without_gil(py, || self.lock().save(&path)).into_py(py)
    }

    /// `(entries, files, dirs, symlinks, others, links, bytes, skipped)`.
    fn totals(&self, py: Python<'_>) -> (u64, u64, u64, u64, u64, u64, u64, u64) {
        without_gil(py, || {
            let plan = self.lock();
            let mut t = (
                plan.items.len() as u64,
                0,
                0,
                0,
                0,
                0,
                plan.bytes,
                plan.skipped,
            );
            for item in &plan.items {
                match (item.kind(), item.link_to) {
                    (Kind::File, Some(_)) => t.5 += 1,
                    (Kind::File, None) => t.1 += 1,
                    (Kind::Dir, _) => t.2 += 1,
                    (Kind::Symlink, _) => t.3 += 1,
                    (Kind::Other, _) => t.4 += 1,
                }
            }
            t
        })
    }

    /// Destination paths that were taken when planned.
    fn conflicts<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let conflicts = self.lock().conflicts.clone();
        let out = PyList::empty(py);
        for path in &conflicts {
            out.append(path_to_py(py, path)?)?;
        }
        Ok(out)
    }

    /// Where each source root goes.
    fn targets<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let targets = self.lock().targets.clone();
        let out = PyList::empty(py);
        for path in &targets {
            out.append(path_to_py(py, path)?)?;
        }
        Ok(out)
    }

    /// Carry out the entries from `start`: `(next, files, bytes, dirs,
    /// symlinks, links, reflinked, already, errors)`.
    #[pyo3(signature = (start, max_items, max_bytes, *, tag, verify=false, durable=false, atime=false, remove_sources=false, resumed=false, threads=None, cancel=None))]
    #[allow(clippy::too_many_arguments)]
    fn transfer_page<'py>(
        &self,
        py: Python<'py>,
        start: usize,
        max_items: usize,
        max_bytes: u64,
        tag: String,
        verify: bool,
        durable: bool,
        atime: bool,
        remove_sources: bool,
        resumed: bool,
        threads: Option<usize>,
        cancel: Option<&Bound<'_, CancelToken>>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        if tag.is_empty() || !tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(Error::InvalidArgument(
                "tag must be ASCII letters, digits and dashes".into(),
            ))
            .into_py(py);
        }
        let opts = TransferOptions {
            verify,
            durable,
            atime,
            remove_sources,
            resumed,
            tag,
            threads,
        };
        let token = core_token(cancel);
        let done = without_gil(py, || {
            fileops::transfer_page(&self.lock(), start, max_items, max_bytes, &opts, &token)
        })
        .into_py(py)?;
        PyTuple::new(
            py,
            [
                done.next.into_pyobject(py)?.into_any(),
                done.files.into_pyobject(py)?.into_any(),
                done.bytes.into_pyobject(py)?.into_any(),
                done.dirs.into_pyobject(py)?.into_any(),
                done.symlinks.into_pyobject(py)?.into_any(),
                done.links.into_pyobject(py)?.into_any(),
                done.reflinked.into_pyobject(py)?.into_any(),
                done.already.into_pyobject(py)?.into_any(),
                errors_to_py(py, &done.errors)?.into_any(),
            ],
        )
    }

    /// Folders get their mode and mtime; a move removes its source folders.
    /// Stops at the next folder once `cancel` is set (a rerun finishes).
    #[pyo3(signature = (*, remove_sources=false, cancel=None))]
    fn finish<'py>(
        &self,
        py: Python<'py>,
        remove_sources: bool,
        cancel: Option<&Bound<'_, CancelToken>>,
    ) -> PyResult<Bound<'py, PyList>> {
        let opts = TransferOptions {
            remove_sources,
            ..TransferOptions::default()
        };
        let token = core_token(cancel);
        let errors =
            without_gil(py, || fileops::finish(&self.lock(), &opts, &token)).into_py(py)?;
        errors_to_py(py, &errors)
    }
}

/// Counters of a running `remove_tree`, readable from another thread.
#[pyclass(module = "phasekit._core", frozen)]
#[derive(Default)]
pub struct RemoveCounters {
    inner: Arc<Removed>,
}

#[pymethods]
impl RemoveCounters {
    #[new]
    fn new() -> Self {
        Self::default()
    }

    /// `(files, dirs)` removed so far.
    fn snapshot(&self) -> (u64, u64) {
        self.inner.snapshot()
    }
}

/// Remove `path` (and everything beneath it) for good: the per-entry
/// errors; a symlink is removed, never followed. With `overwrite_passes`,
/// each regular file's data is overwritten that many times first.
#[pyfunction]
#[pyo3(signature = (path, *, cross_filesystems=false, threads=None, overwrite_passes=0, counters=None, cancel=None))]
pub fn remove_tree<'py>(
    py: Python<'py>,
    path: &Bound<'py, PyAny>,
    cross_filesystems: bool,
    threads: Option<usize>,
    overwrite_passes: u32,
    counters: Option<&Bound<'_, RemoveCounters>>,
    cancel: Option<&Bound<'_, CancelToken>>,
) -> PyResult<Bound<'py, PyList>> {
    let path = path_from_py(path)?;
    let opts = RemoveOptions {
        cross_filesystems,
        threads,
        overwrite_passes,
    };
    let done = counters.map_or_else(|| Arc::new(Removed::default()), |c| c.get().inner.clone());
    let token = core_token(cancel);
    let errors = without_gil(py, move || {
        fileops::remove_tree(&path, &opts, &done, &token)
    })
    .into_py(py)?;
    errors_to_py(py, &errors)
}

/// Rename `source` to `target` only if `target` does not exist (atomically:
/// `RENAME_NOREPLACE`). Raises the OS error (EXDEV across filesystems,
/// EEXIST when the name is taken).
#[pyfunction]
pub fn rename_no_replace(
    py: Python<'_>,
    source: &Bound<'_, PyAny>,
    target: &Bound<'_, PyAny>,
) -> PyResult<()> {
    let source = path_from_py(source)?;
    let target = path_from_py(target)?;
    without_gil(py, move || fileops::rename_no_replace(&source, &target)).into_py(py)
}
