//! `LibraryDb`: a library's store through the Rust core: library.db, or a
//! PostgreSQL database (see `store.rs`; `scan.rs` for `Scan`).
//!
//! Rows cross as plain tuples, relative paths as `bytes`; the facade
//! `phasekit.library` wraps them in dataclasses with absolute `str` paths.

use std::sync::{Mutex, MutexGuard, PoisonError};

use phasekit_core::library::{
    self, EntryRow, IndexMode, LibraryStore, LineFormat, Location, NeighbourSchema, PostgresStore,
    ScanStats, SqliteStore,
};
use phasekit_core::Error;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple, PyType};

use crate::errors::IntoPy;
use crate::gil::without_gil;
use crate::paths::{path_from_py, path_to_py};
use crate::store::Store;
use crate::token::{core_token, CancelToken};

type LocationTuple<'py> = (
    i64,
    Bound<'py, PyBytes>,
    String,
    bool,
    f64,
    Option<f64>,
    Option<i64>,
    Option<i64>,
);

fn location_to_py(py: Python<'_>, l: Location) -> LocationTuple<'_> {
    (
        l.id,
        PyBytes::new(py, &l.path),
        l.mode,
        l.recursive,
        l.created_at,
        l.indexed_at,
        l.total_size,
        l.file_count,
    )
}

/// `(id, location_id, path, parent_id, name, extension, kind, size, agg_size,
/// file_count, mtime_ns, ctime_ns, inode, device, mode, cas_id, checksum,
/// indexed_at)`, the path relative to the location's root, as bytes.
fn entry_to_py(py: Python<'_>, e: EntryRow) -> PyResult<Bound<'_, PyTuple>> {
    let items: Vec<Bound<'_, PyAny>> = vec![
        e.id.into_pyobject(py)?.into_any(),
        e.location_id.into_pyobject(py)?.into_any(),
        PyBytes::new(py, &e.path).into_any(),
        e.parent_id.into_pyobject(py)?.into_any(),
        e.name.into_pyobject(py)?.into_any(),
        e.extension.into_pyobject(py)?.into_any(),
        e.kind.into_pyobject(py)?.into_any(),
        e.size.into_pyobject(py)?.into_any(),
        e.agg_size.into_pyobject(py)?.into_any(),
        e.file_count.into_pyobject(py)?.into_any(),
        e.mtime_ns.into_pyobject(py)?.into_any(),
        e.ctime_ns.into_pyobject(py)?.into_any(),
        e.inode.into_pyobject(py)?.into_any(),
        e.device.into_pyobject(py)?.into_any(),
        e.mode.into_pyobject(py)?.into_any(),
        e.cas_id.into_pyobject(py)?.into_any(),
        e.checksum.into_pyobject(py)?.into_any(),
        e.indexed_at.into_pyobject(py)?.into_any(),
    ];
    PyTuple::new(py, items)
}

fn entries_to_py(py: Python<'_>, rows: Vec<EntryRow>) -> PyResult<Bound<'_, PyList>> {
    let out = PyList::empty(py);
    for row in rows {
        out.append(entry_to_py(py, row)?)?;
    }
    Ok(out)
}

pub(crate) fn errors_to_py<'py>(
    py: Python<'py>,
    errors: &[phasekit_core::FsError],
) -> PyResult<Bound<'py, PyList>> {
    let out = PyList::empty(py);
    for e in errors {
        out.append((path_to_py(py, &e.path)?, e.errno, e.message.as_str()))?;
    }
    Ok(out)
}

pub(crate) type StatsTuple = (u64, u64, u64, u64, u64, u64, u64, u64, u64, u64, u64);

/// `(files, dirs, symlinks, other, bytes, new, modified, unchanged, moved, deleted, hashed)`.
pub(crate) fn stats_tuple(s: ScanStats) -> StatsTuple {
    (
        s.files,
        s.dirs,
        s.symlinks,
        s.other,
        s.bytes,
        s.new,
        s.modified,
        s.unchanged,
        s.moved,
        s.deleted,
        s.hashed,
    )
}

fn closed() -> Error {
    Error::Closed("this library is closed".into())
}

/// An open library (the core's `SqliteStore` or `PostgresStore`, reached
/// through their `LibraryStore` operations). Thread-safe: calls from
/// several Python threads take turns on the one connection.
#[pyclass(module = "phasekit._core", frozen)]
pub struct LibraryDb {
    // Neither store's connection is Sync, and a pyclass must be: the mutex
    // gives one caller at a time the connection. It is taken with the GIL
    // released (inside `without_gil`), so a thread waiting for it never
    // blocks the thread holding it from finishing. None once closed.
    db: Mutex<Option<Store>>,
}

impl LibraryDb {
    fn lock(&self) -> MutexGuard<'_, Option<Store>> {
        // A panic inside a call rolled its transaction back (both clients
        // roll back on drop): the connection is still consistent.
        self.db.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn holding(store: Store) -> Self {
        LibraryDb {
            db: Mutex::new(Some(store)),
        }
    }

    /// Run `f` on the connection with the GIL released.
    pub(crate) fn with<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut Store) -> Result<T, Error> + Send,
    ) -> PyResult<T> {
        without_gil(py, || match self.lock().as_mut() {
            Some(db) => f(db).map_err(|err| db.explain(err)),
            None => Err(closed()),
        })
        .into_py(py)
    }
}

/// The job store's migrations as Python gives them: `(lock_keys,
/// version_table, [(version, sql)])` (see `LibraryDb.postgres`).
type JobsSchema = ((i32, i32), String, Vec<(i32, String)>);

fn mode(text: &str) -> Result<IndexMode, Error> {
    IndexMode::parse(text)
}

#[pymethods]
impl LibraryDb {
    /// Open (creating or migrating) the library.db at `path`.
    #[new]
    fn new(py: Python<'_>, path: &Bound<'_, PyAny>) -> PyResult<Self> {
        let path = path_from_py(path)?;
        let db = without_gil(py, move || {
            use std::os::unix::ffi::OsStrExt;
            SqliteStore::open(std::path::Path::new(std::ffi::OsStr::from_bytes(&path)))
        })
        .into_py(py)?;
        Ok(LibraryDb::holding(Store::Sqlite(db)))
    }

    /// A library kept in memory only.
    #[staticmethod]
    fn in_memory(py: Python<'_>) -> PyResult<Self> {
        let db = SqliteStore::in_memory().into_py(py)?;
        Ok(LibraryDb::holding(Store::Sqlite(db)))
    }

    /// Open (creating or migrating) the library in the PostgreSQL database
    /// at `url` (`postgresql://user[:password]@host[:port]/dbname`), which
    /// workers on several hosts may share.
    ///
    /// `jobs_schema`: the job store's migrations when it keeps its tables in
    /// the same database, `(lock_keys, version_table, [(version, sql)])`,
    /// run on this connection after the library's (see the core's
    /// `NeighbourSchema`): the job store, opening later, finds them done.
    #[staticmethod]
    #[pyo3(signature = (url, jobs_schema=None))]
    fn postgres(py: Python<'_>, url: String, jobs_schema: Option<JobsSchema>) -> PyResult<Self> {
        let neighbour = jobs_schema.map(|(lock, table, migrations)| NeighbourSchema {
            lock,
            table,
            migrations,
        });
        let db = without_gil(py, move || {
            PostgresStore::open_beside(&url, neighbour.as_ref())
        })
        .into_py(py)?;
        Ok(LibraryDb::holding(Store::Postgres(db)))
    }

    /// Close the connection; later calls raise LibraryClosed.
    fn close(&self, py: Python<'_>) {
        let db = without_gil(py, || self.lock().take());
        without_gil(py, move || drop(db));
    }

    #[getter]
    fn closed(&self, py: Python<'_>) -> bool {
        without_gil(py, || self.lock().is_none())
    }

    fn schema_version(&self, py: Python<'_>) -> PyResult<i64> {
        self.with(py, |db| db.schema_version())
    }

    #[pyo3(signature = (path, mode="content", recursive=true))]
    fn add_location<'py>(
        &self,
        py: Python<'py>,
        path: &Bound<'py, PyAny>,
        mode: &str,
        recursive: bool,
    ) -> PyResult<LocationTuple<'py>> {
        let path = path_from_py(path)?;
        let mode = self::mode(mode).into_py(py)?;
        let loc = self.with(py, move |db| db.add_location(&path, mode, recursive))?;
        Ok(location_to_py(py, loc))
    }

    fn locations<'py>(&self, py: Python<'py>) -> PyResult<Vec<LocationTuple<'py>>> {
        let locs = self.with(py, |db| db.locations())?;
        Ok(locs.into_iter().map(|l| location_to_py(py, l)).collect())
    }

    /// LocationNotFound (a KeyError) if there is no such location.
    fn location<'py>(&self, py: Python<'py>, id: i64) -> PyResult<LocationTuple<'py>> {
        let loc = self.with(py, move |db| db.location(id))?;
        Ok(location_to_py(py, loc))
    }

    fn location_by_path<'py>(
        &self,
        py: Python<'py>,
        path: &Bound<'py, PyAny>,
    ) -> PyResult<Option<LocationTuple<'py>>> {
        let path = path_from_py(path)?;
        let loc = self.with(py, move |db| db.location_by_path(&path))?;
        Ok(loc.map(|l| location_to_py(py, l)))
    }

    fn set_location_mode(&self, py: Python<'_>, id: i64, mode: &str) -> PyResult<()> {
        let mode = self::mode(mode).into_py(py)?;
        self.with(py, move |db| db.set_location_mode(id, mode))
    }

    /// Remove a location and its entries; the number of entries removed.
    fn remove_location(&self, py: Python<'_>, id: i64) -> PyResult<u64> {
        self.with(py, move |db| db.remove_location(id))
    }

    /// The JSON text stored under `key`, if any.
    fn setting(&self, py: Python<'_>, key: &str) -> PyResult<Option<String>> {
        self.with(py, move |db| db.setting(key))
    }

    /// Store a JSON text under `key` (None removes it).
    #[pyo3(signature = (key, value))]
    fn set_setting(&self, py: Python<'_>, key: &str, value: Option<&str>) -> PyResult<()> {
        self.with(py, move |db| db.set_setting(key, value))
    }

    #[pyo3(signature = (location_id, after_id=0, limit=1000))]
    fn entries<'py>(
        &self,
        py: Python<'py>,
        location_id: i64,
        after_id: i64,
        limit: usize,
    ) -> PyResult<Bound<'py, PyList>> {
        let rows = self.with(py, move |db| db.entries(location_id, after_id, limit))?;
        entries_to_py(py, rows)
    }

    /// A page of a location's entries as lines (`json`: what
    /// `json.dumps(entry.to_dict())` writes; else `phasekit ls`'s text):
    /// `(lines, last_id, count)`.
    fn entries_lines<'py>(
        &self,
        py: Python<'py>,
        location_id: i64,
        after_id: i64,
        limit: usize,
        json: bool,
    ) -> PyResult<(Bound<'py, PyBytes>, i64, usize)> {
        let format = if json {
            LineFormat::Json
        } else {
            LineFormat::Text
        };
        let (lines, last, count) = self.with(py, move |db| {
            let mut out = Vec::with_capacity(limit.min(100_000) * 256);
            let (last, count) =
                library::entries_lines(&*db, location_id, after_id, limit, format, &mut out)?;
            Ok((out, last, count))
        })?;
        Ok((PyBytes::new(py, &lines), last, count))
    }

    /// A page of a location's entries as `cls` objects (the Entry
    /// dataclass; `kinds`: the Kind members by value), made here.
    fn entry_objects<'py>(
        &self,
        py: Python<'py>,
        location_id: i64,
        after_id: i64,
        limit: usize,
        cls: &Bound<'py, PyType>,
        kinds: &Bound<'py, PyTuple>,
    ) -> PyResult<Bound<'py, PyList>> {
        let (root, rows) = self.with(py, move |db| {
            let root = db.location(location_id)?.path;
            Ok((root, db.entries(location_id, after_id, limit)?))
        })?;
        crate::entries::entry_objects(py, rows, &root, cls, kinds)
    }

    fn entry_at<'py>(
        &self,
        py: Python<'py>,
        location_id: i64,
        rel_path: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyTuple>>> {
        let rel = path_from_py(rel_path)?;
        let row = self.with(py, move |db| db.entry_at(location_id, &rel))?;
        row.map(|r| entry_to_py(py, r)).transpose()
    }

    fn entries_by_cas_id<'py>(
        &self,
        py: Python<'py>,
        cas_id: String,
    ) -> PyResult<Bound<'py, PyList>> {
        let rows = self.with(py, move |db| db.entries_by_cas_id(&cas_id))?;
        entries_to_py(py, rows)
    }

    fn entry_count(&self, py: Python<'_>, location_id: i64) -> PyResult<u64> {
        self.with(py, move |db| db.entry_count(location_id))
    }

    /// `(cas_id, size, first_seen)` or None.
    fn content_identity(
        &self,
        py: Python<'_>,
        cas_id: String,
    ) -> PyResult<Option<(String, i64, f64)>> {
        self.with(py, move |db| db.content_identity(&cas_id))
    }

    fn mark_indexed(&self, py: Python<'_>, location_id: i64, at: f64) -> PyResult<()> {
        self.with(py, move |db| db.mark_indexed(location_id, at))
    }

    /// Directory sizes and file counts; returns the location's `(total_size, file_count)`.
    fn aggregate(&self, py: Python<'_>, location_id: i64) -> PyResult<(i64, i64)> {
        self.with(py, move |db| db.aggregate_sizes(location_id))
    }

    /// Hash up to `limit` files lacking a cas_id (or checksum); returns
    /// `(last_id, looked_at, hashed, bytes, errors)`.
    #[pyo3(signature = (location_id, after_id=0, limit=1000, checksums=false, threads=None, cancel=None))]
    #[allow(clippy::too_many_arguments, clippy::type_complexity)]
    fn hash_missing<'py>(
        &self,
        py: Python<'py>,
        location_id: i64,
        after_id: i64,
        limit: usize,
        checksums: bool,
        threads: Option<usize>,
        cancel: Option<&Bound<'_, CancelToken>>,
    ) -> PyResult<(i64, u64, u64, u64, Bound<'py, PyList>)> {
        let token = core_token(cancel);
        let pass = self.with(py, move |db| {
            library::hash_missing(db, location_id, after_id, limit, checksums, threads, &token)
        })?;
        let errors = errors_to_py(py, &pass.errors)?;
        Ok((
            pass.last_id,
            pass.looked_at,
            pass.hashed,
            pass.bytes,
            errors,
        ))
    }

    /// Files `hash_missing` has yet to hash in a location.
    #[pyo3(signature = (location_id, checksums=false))]
    fn count_missing(&self, py: Python<'_>, location_id: i64, checksums: bool) -> PyResult<u64> {
        self.with(py, move |db| db.count_missing(location_id, checksums))
    }

    /// Give files a copy or move placed under `to_path` of location
    /// `to_location` the cas_id and checksum of the files at the same places
    /// under `from_path` of `from_location` (same size and mtime); the
    /// number given one. Paths relative to the locations' roots; only files
    /// placed (ctime) at or after `placed_since_ns`.
    fn carry_content(
        &self,
        py: Python<'_>,
        to_location: i64,
        to_path: &Bound<'_, PyAny>,
        from_location: i64,
        from_path: &Bound<'_, PyAny>,
        placed_since_ns: i64,
    ) -> PyResult<u64> {
        let to_path = path_from_py(to_path)?;
        let from_path = path_from_py(from_path)?;
        self.with(py, move |db| {
            db.carry_content(
                (to_location, &to_path),
                (from_location, &from_path),
                placed_since_ns,
            )
        })
    }

    /// Link hashed entries to content identities; the number created.
    #[pyo3(signature = (location_id, prune=false))]
    fn link_identities(&self, py: Python<'_>, location_id: i64, prune: bool) -> PyResult<u64> {
        self.with(py, move |db| db.link_identities(location_id, prune))
    }

    /// Whether some location's cas_ids wait for a link pass.
    fn links_pending(&self, py: Python<'_>) -> PyResult<bool> {
        self.with(py, |db| db.links_pending())
    }

    /// Leave the location's new cas_ids to the next `link_identities`.
    fn defer_links(&self, py: Python<'_>, location_id: i64) -> PyResult<()> {
        self.with(py, move |db| db.defer_links(location_id))
    }
}
