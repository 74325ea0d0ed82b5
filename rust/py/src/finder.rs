//! `DupeFinder`: the duplicate pipeline a page at a time, for the dupes job.
//!
//! Files come from a walk (in steps, so the job reports progress and can
//! stop) or from a library location; `group` groups them by size; each
//! `hash_page` hashes a bounded page and persists its digests (to a digest
//! cache file for walked trees, to library.db for locations) before it
//! returns, so the job's checkpoint after a page never runs ahead of them.

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

use phasekit_core::dupes::{DigestCache, FileRecord, Finder, Known, Page, Stage};
use phasekit_core::library;
use phasekit_core::walk::Walker;
use phasekit_core::{Error, FsError};
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::dupes::{files_walk_options, options, report_to_py};
use crate::errors::IntoPy;
use crate::gil::without_gil;
use crate::library::{errors_to_py, LibraryDb};
use crate::paths::{path_from_py, paths_from_py};
use crate::token::{core_token, CancelToken};

struct State {
    /// The files collected so far, as the finder takes them (until `group`;
    /// no list of records is kept beside it).
    collecting: Option<Finder>,
    walker: Option<Walker>,
    known: Vec<Known>,
    finder: Option<Finder>,
    /// Where walked trees keep computed digests between pages.
    cache: Option<DigestCache>,
}

fn misuse(what: &str) -> Error {
    Error::InvalidArgument(what.to_string())
}

fn stage_name(stage: Stage) -> &'static str {
    match stage {
        Stage::Collected => "collected",
        Stage::Prefix => "prefix",
        Stage::Partial => "partial",
        Stage::Full => "full",
        Stage::Done => "done",
    }
}

/// One duplicate search. Used by one job at a time; the mutex makes the
/// class shareable between Python threads and is taken with the GIL
/// released (inside `without_gil`), so a waiting thread never blocks the
/// holder.
#[pyclass(module = "phasekit._core", frozen)]
pub struct DupeFinder {
    state: Mutex<State>,
    /// The library whose location is searched: computed digests are stored
    /// there. Set once, read without a lock (it is needed with the GIL held).
    library: OnceLock<Py<LibraryDb>>,
}

impl DupeFinder {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic mid-call leaves at worst a partly filled page, which the
        // job redoes after its last checkpoint.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn with<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut State) -> Result<T, Error> + Send,
    ) -> PyResult<T> {
        without_gil(py, || f(&mut self.lock())).into_py(py)
    }
}

fn page_to_py<'py>(py: Python<'py>, page: &Page, stored: u64) -> PyResult<Bound<'py, PyTuple>> {
    PyTuple::new(
        py,
        [
            page.hashed.len().into_pyobject(py)?.into_any(),
            page.bytes.into_pyobject(py)?.into_any(),
            errors_to_py(py, &page.errors)?.into_any(),
            stored.into_pyobject(py)?.into_any(),
        ],
    )
}

#[pymethods]
impl DupeFinder {
    #[new]
    #[pyo3(signature = (mode, *, min_size=1, max_size=None, extensions=Vec::new(), threads=None, exact_cas=true))]
    fn new(
        py: Python<'_>,
        mode: &str,
        min_size: u64,
        max_size: Option<u64>,
        extensions: Vec<String>,
        threads: Option<usize>,
        exact_cas: bool,
    ) -> PyResult<Self> {
        let mut opts = options(mode, min_size, max_size, threads).into_py(py)?;
        opts.extensions = extensions
            .into_iter()
            .map(|e| e.trim_start_matches('.').to_ascii_lowercase().into_bytes())
            .collect();
        Ok(DupeFinder {
            state: Mutex::new(State {
                collecting: Some(Finder::empty(opts, exact_cas)),
                walker: None,
                known: Vec::new(),
                finder: None,
                cache: None,
            }),
            library: OnceLock::new(),
        })
    }

    /// Start walking `roots`; `walk_step` collects their regular files.
    #[pyo3(signature = (roots, *, follow_symlinks=false, hidden=true, skip=Vec::new(), threads=None))]
    fn walk(
        &self,
        py: Python<'_>,
        roots: &Bound<'_, PyAny>,
        follow_symlinks: bool,
        hidden: bool,
        skip: Vec<String>,
        threads: Option<usize>,
    ) -> PyResult<()> {
        let roots = paths_from_py(roots)?;
        let opts = files_walk_options(follow_symlinks, None, hidden, skip, threads).into_py(py)?;
        self.with(py, move |s| {
            // No cancel token of its own: a step is short, and the job stops
            // between steps.
            s.walker = Some(Walker::new(&roots, opts, Default::default())?);
            Ok(())
        })
    }

    /// Walk on for at least `min_entries` entries (or to the end):
    /// `(finished, entries, files_so_far, errors)`.
    fn walk_step<'py>(&self, py: Python<'py>, min_entries: usize) -> PyResult<Bound<'py, PyTuple>> {
        let (finished, entries, files, errors) = self.with(py, move |s| {
            let walker = s
                .walker
                .as_mut()
                .ok_or_else(|| misuse("walk() was not called"))?;
            let mut entries = 0usize;
            let mut errors: Vec<FsError> = Vec::new();
            let mut finished = false;
            let collecting = s
                .collecting
                .as_mut()
                .ok_or_else(|| misuse("already grouped"))?;
            while entries < min_entries.max(1) {
                let Some(mut batch) = walker.next_batch()? else {
                    finished = true;
                    break;
                };
                entries += batch.len();
                errors.append(&mut batch.errors);
                for record in FileRecord::files_of(&batch) {
                    collecting.add(record);
                }
            }
            let files = collecting.stats().files;
            if finished {
                s.walker = None;
            }
            Ok((finished, entries, files, errors))
        })?;
        PyTuple::new(
            py,
            [
                finished.into_pyobject(py)?.to_owned().into_any(),
                entries.into_pyobject(py)?.into_any(),
                files.into_pyobject(py)?.into_any(),
                errors_to_py(py, &errors)?.into_any(),
            ],
        )
    }

    /// Take a library location's regular files (with their stored digests),
    /// and keep the digests computed later in that library. Returns the
    /// number of files taken.
    #[pyo3(signature = (db, location_id, *, hidden=true))]
    fn add_location(
        &self,
        py: Python<'_>,
        db: Py<LibraryDb>,
        location_id: i64,
        hidden: bool,
    ) -> PyResult<usize> {
        if self.library.get().is_some() {
            return Err(misuse("a location was added already")).into_py(py);
        }
        // Each file goes straight to the finder (no list of them all): the
        // library's lock, then this finder's, both taken without the GIL,
        // always in that order (nothing takes them the other way round).
        let n = db.get().with(py, |d| {
            let mut state = self.lock();
            let collecting = state
                .collecting
                .as_mut()
                .ok_or_else(|| misuse("already grouped"))?;
            let before = collecting.stats().files;
            library::each_file_record(d, location_id, hidden, |record| collecting.add(record))?;
            Ok(usize::try_from(collecting.stats().files - before).unwrap_or(usize::MAX))
        })?;
        // Cannot be set already: checked above, and one job drives a finder.
        let _ = self.library.set(db);
        Ok(n)
    }

    /// Keep computed digests in the cache file at `path`, whose first
    /// `committed` bytes hold an earlier run's (the rest is cut off).
    /// Returns the number of earlier digests read.
    fn use_cache(
        &self,
        py: Python<'_>,
        path: &Bound<'_, PyAny>,
        committed: u64,
    ) -> PyResult<usize> {
        let path = PathBuf::from(std::ffi::OsString::from(
            <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&path_from_py(path)?),
        ));
        self.with(py, move |s| {
            let (cache, known) = DigestCache::open(&path, committed)?;
            let n = known.len();
            s.known = known;
            s.cache = Some(cache);
            Ok(n)
        })
    }

    /// Group the collected files by size (applying digests known from the
    /// cache). Returns the number of files considered.
    fn group(&self, py: Python<'_>) -> PyResult<u64> {
        self.with(py, |s| {
            if s.finder.is_some() {
                return Err(misuse("already grouped"));
            }
            if s.walker.is_some() {
                return Err(misuse("the walk is not finished"));
            }
            let mut finder = s
                .collecting
                .take()
                .ok_or_else(|| misuse("already grouped"))?;
            finder.apply_known(&std::mem::take(&mut s.known))?;
            finder.group_by_size()?;
            let files = finder.stats().files;
            s.finder = Some(finder);
            Ok(files)
        })
    }

    /// `collected`, `prefix`, `partial`, `full` or `done`.
    #[getter]
    fn stage(&self, py: Python<'_>) -> PyResult<&'static str> {
        self.with(py, |s| {
            Ok(stage_name(
                s.finder.as_ref().map_or(Stage::Collected, Finder::stage),
            ))
        })
    }

    /// `(files, bytes)` left to hash at the current stage.
    fn remaining(&self, py: Python<'_>) -> PyResult<(u64, u64)> {
        self.with(py, |s| {
            Ok(s.finder.as_ref().map_or((0, 0), Finder::remaining))
        })
    }

    /// `(files, size_candidates, partial_hashed, full_hashed, reused)`.
    fn stats(&self, py: Python<'_>) -> PyResult<(u64, u64, u64, u64, u64)> {
        self.with(py, |s| {
            let st = s
                .finder
                .as_ref()
                .map(Finder::stats)
                .cloned()
                .unwrap_or_default();
            Ok((
                st.files,
                st.size_candidates,
                st.partial_hashed,
                st.full_hashed,
                st.reused,
            ))
        })
    }

    /// Hash one page and persist its digests: `(hashed, bytes, errors,
    /// stored)`, `stored` being the cache length to checkpoint (or the
    /// library entries updated).
    #[pyo3(signature = (max_files, max_bytes, cancel=None))]
    fn hash_page<'py>(
        &self,
        py: Python<'py>,
        max_files: usize,
        max_bytes: u64,
        cancel: Option<&Bound<'_, CancelToken>>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let token = core_token(cancel);
        let (page, stored) = self.with(py, move |s| {
            let finder = s
                .finder
                .as_mut()
                .ok_or_else(|| misuse("group() was not called"))?;
            let page = finder.hash_page(max_files, max_bytes, &token)?;
            let stored = match &mut s.cache {
                Some(cache) => cache.append(&page.hashed)?,
                None => 0,
            };
            Ok((page, stored))
        })?;
        let stored = match self.library.get() {
            Some(db) if !page.hashed.is_empty() => {
                let hashed = &page.hashed;
                db.get().with(py, |d| library::store_digests(d, hashed))?
            }
            _ => stored,
        };
        page_to_py(py, &page, stored)
    }

    /// The groups, link sets, errors and stats (see `find_duplicates`);
    /// the finder is spent afterwards.
    fn report<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let report = self.with(py, |s| {
            let finder = s
                .finder
                .take()
                .ok_or_else(|| misuse("group() was not called"))?;
            if finder.stage() != Stage::Done {
                s.finder = Some(finder);
                return Err(misuse("hashing is not finished"));
            }
            Ok(finder.into_report())
        })?;
        report_to_py(py, report)
    }
}
