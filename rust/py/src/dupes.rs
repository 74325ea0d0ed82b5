//! Duplicate finding: over roots (walked in Rust) or over given files.

use phasekit_core::dupes::{self, FileRecord, Group, Mode, Options, Report};
use phasekit_core::walk::Walker;
use phasekit_core::{CancelToken as CoreToken, Error};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};

use crate::errors::IntoPy;
use crate::gil::without_gil;
use crate::paths::{path_to_py, paths_from_py, paths_to_py};
use crate::token::{core_token, CancelToken};
use crate::walk::walk_options;

pub(crate) fn group_to_py<'py>(py: Python<'py>, g: &Group) -> PyResult<Bound<'py, PyTuple>> {
    let copies = PyList::empty(py);
    for copy in &g.copies {
        copies.append(paths_to_py(py, copy.iter().map(Vec::as_slice))?)?;
    }
    PyTuple::new(
        py,
        [
            path_to_py(py, &g.key)?,
            g.size.into_pyobject(py)?.into_any(),
            copies.into_any(),
        ],
    )
}

/// `(groups, links, errors, stats)`; see `phasekit.fs.DuplicateReport`.
pub(crate) fn report_to_py<'py>(py: Python<'py>, report: Report) -> PyResult<Bound<'py, PyTuple>> {
    let groups = PyList::empty(py);
    for g in &report.groups {
        groups.append(group_to_py(py, g)?)?;
    }
    let links = PyList::empty(py);
    for g in &report.links {
        links.append(group_to_py(py, g)?)?;
    }
    let errors = PyList::empty(py);
    for e in &report.errors {
        errors.append((path_to_py(py, &e.path)?, e.errno, e.message.as_str()))?;
    }
    let s = &report.stats;
    let stats = (
        s.files,
        s.size_candidates,
        s.partial_hashed,
        s.full_hashed,
        s.prefix_hashed,
    );
    PyTuple::new(
        py,
        [
            groups.into_any(),
            links.into_any(),
            errors.into_any(),
            stats.into_pyobject(py)?.into_any(),
        ],
    )
}

/// Walk options for collecting files to group: large batches, no hashing
/// while walking (only files that share a size get hashed).
pub(crate) fn files_walk_options(
    follow_symlinks: bool,
    max_depth: Option<u32>,
    hidden: bool,
    skip: Vec<String>,
    threads: Option<usize>,
) -> Result<phasekit_core::walk::WalkOptions, Error> {
    walk_options(
        follow_symlinks,
        max_depth,
        hidden,
        skip,
        4096,
        threads,
        Default::default(),
    )
}

pub(crate) fn options(
    mode: &str,
    min_size: u64,
    max_size: Option<u64>,
    threads: Option<usize>,
) -> Result<Options, Error> {
    Ok(Options {
        min_size,
        max_size,
        threads,
        ..Options::new(Mode::parse(mode)?)
    })
}

/// Walk `roots` and group their regular files.
#[pyfunction]
#[pyo3(signature = (roots, *, mode="full", min_size=1, max_size=None, follow_symlinks=false, max_depth=None, hidden=true, skip=Vec::new(), threads=None, cancel=None))]
#[allow(clippy::too_many_arguments)]
pub fn find_duplicates<'py>(
    py: Python<'py>,
    roots: &Bound<'py, PyAny>,
    mode: &str,
    min_size: u64,
    max_size: Option<u64>,
    follow_symlinks: bool,
    max_depth: Option<u32>,
    hidden: bool,
    skip: Vec<String>,
    threads: Option<usize>,
    cancel: Option<&Bound<'_, CancelToken>>,
) -> PyResult<Bound<'py, PyTuple>> {
    let roots = paths_from_py(roots)?;
    let opts = options(mode, min_size, max_size, threads).into_py(py)?;
    let walk_opts =
        files_walk_options(follow_symlinks, max_depth, hidden, skip, threads).into_py(py)?;
    let token = core_token(cancel);
    let report = without_gil(py, move || -> Result<Report, Error> {
        let (files, walk_errors) = collect_files(&roots, walk_opts, &token)?;
        let mut report = dupes::find(files, &opts, &token)?;
        report.errors.splice(0..0, walk_errors);
        Ok(report)
    })
    .into_py(py)?;
    report_to_py(py, report)
}

pub(crate) fn collect_files(
    roots: &[Vec<u8>],
    opts: phasekit_core::walk::WalkOptions,
    token: &CoreToken,
) -> Result<(Vec<FileRecord>, Vec<phasekit_core::FsError>), Error> {
    let mut walker = Walker::new(roots, opts, token.clone())?;
    let mut files = Vec::new();
    let mut errors = Vec::new();
    while let Some(mut batch) = walker.next_batch()? {
        errors.append(&mut batch.errors);
        files.extend(FileRecord::files_of(&batch));
    }
    Ok((files, errors))
}

/// Group files already known (e.g. from a library): parallel sequences.
#[pyfunction]
#[pyo3(signature = (paths, sizes, devices, inodes, *, mode="full", min_size=1, max_size=None, threads=None, cancel=None))]
#[allow(clippy::too_many_arguments)]
pub fn group_duplicates<'py>(
    py: Python<'py>,
    paths: &Bound<'py, PyAny>,
    sizes: Vec<u64>,
    devices: Vec<u64>,
    inodes: Vec<u64>,
    mode: &str,
    min_size: u64,
    max_size: Option<u64>,
    threads: Option<usize>,
    cancel: Option<&Bound<'_, CancelToken>>,
) -> PyResult<Bound<'py, PyTuple>> {
    let paths = paths_from_py(paths)?;
    if [sizes.len(), devices.len(), inodes.len()]
        .iter()
        .any(|&n| n != paths.len())
    {
        return Err(PyValueError::new_err(format!(
            "paths, sizes, devices and inodes must have the same length (got {}, {}, {}, {})",
            paths.len(),
            sizes.len(),
            devices.len(),
            inodes.len()
        )));
    }
    let opts = options(mode, min_size, max_size, threads).into_py(py)?;
    let files = paths
        .into_iter()
        .enumerate()
        .map(|(i, path)| FileRecord {
            path,
            size: sizes[i],
            device: devices[i],
            inode: inodes[i],
            ..FileRecord::default()
        })
        .collect();
    let token = core_token(cancel);
    let report = without_gil(py, move || dupes::find(files, &opts, &token)).into_py(py)?;
    report_to_py(py, report)
}
