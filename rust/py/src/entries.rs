//! A page of entries as `phasekit.library.Entry` objects, made here rather
//! than from a tuple per row in Python: a frozen dataclass's generated
//! `__init__` costs more than the whole read of the row (`Library.entries`
//! over a million entries took ~6 s that way). The class and the `Kind`
//! members come from Python (python/phasekit/library/_types.py), so the
//! type an application sees stays the dataclass it always was.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use phasekit_core::library::EntryRow;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString, PyTuple, PyType};
use pyo3::{ffi, intern};

/// `object.__setattr__(obj, name, value)`: how a frozen dataclass's own
/// `__init__` writes its fields (its `__setattr__` refuses every write).
fn set_field(
    obj: &Bound<'_, PyAny>,
    name: &Bound<'_, PyString>,
    value: &Bound<'_, PyAny>,
) -> PyResult<()> {
    // SAFETY: the three pointers are live for the call (borrowed from
    // `Bound`s held by the caller, with the GIL held: `Bound` proves it);
    // PyObject_GenericSetAttr borrows them (no reference is stolen) and
    // returns -1 with an exception set on failure, fetched below.
    let rc = unsafe { ffi::PyObject_GenericSetAttr(obj.as_ptr(), name.as_ptr(), value.as_ptr()) };
    if rc < 0 {
        Err(PyErr::fetch(obj.py()))
    } else {
        Ok(())
    }
}

fn joined(root: &[u8], rel: &[u8]) -> Vec<u8> {
    let mut path = Vec::with_capacity(root.len() + 1 + rel.len());
    path.extend_from_slice(root);
    if !rel.is_empty() {
        if !root.ends_with(b"/") {
            path.push(b'/');
        }
        path.extend_from_slice(rel);
    }
    path
}

/// The rows as instances of `cls` (the Entry dataclass) for a location
/// rooted at `root`; `kinds` are the `Kind` members by value.
pub(crate) fn entry_objects<'py>(
    py: Python<'py>,
    rows: Vec<EntryRow>,
    root: &[u8],
    cls: &Bound<'py, PyType>,
    kinds: &Bound<'py, PyTuple>,
) -> PyResult<Bound<'py, PyList>> {
    let new = py.get_type::<PyAny>().getattr(intern!(py, "__new__"))?;
    let other = kinds.get_item(kinds.len().saturating_sub(1))?;
    let out = PyList::empty(py);
    for e in rows {
        let obj = new.call1((cls,))?;
        let path = joined(root, &e.path);
        let kind = match kinds.get_item(usize::from(e.kind)) {
            Ok(kind) => kind,
            Err(_) => other.clone(),
        };
        let fields: [(&Bound<'py, PyString>, Bound<'py, PyAny>); 18] = [
            (intern!(py, "id"), e.id.into_pyobject(py)?.into_any()),
            (
                intern!(py, "location_id"),
                e.location_id.into_pyobject(py)?.into_any(),
            ),
            (
                intern!(py, "path"),
                OsStr::from_bytes(&path).into_pyobject(py)?.into_any(),
            ),
            (
                intern!(py, "parent_id"),
                e.parent_id.into_pyobject(py)?.into_any(),
            ),
            (intern!(py, "name"), e.name.into_pyobject(py)?.into_any()),
            (
                intern!(py, "extension"),
                e.extension.into_pyobject(py)?.into_any(),
            ),
            (intern!(py, "kind"), kind),
            (intern!(py, "size"), e.size.into_pyobject(py)?.into_any()),
            (
                intern!(py, "agg_size"),
                e.agg_size.into_pyobject(py)?.into_any(),
            ),
            (
                intern!(py, "file_count"),
                e.file_count.into_pyobject(py)?.into_any(),
            ),
            (
                intern!(py, "mtime_ns"),
                e.mtime_ns.into_pyobject(py)?.into_any(),
            ),
            (
                intern!(py, "ctime_ns"),
                e.ctime_ns.into_pyobject(py)?.into_any(),
            ),
            // Stored as SQLite's signed integers, bit for bit.
            (
                intern!(py, "inode"),
                (e.inode as u64).into_pyobject(py)?.into_any(),
            ),
            (
                intern!(py, "device"),
                (e.device as u64).into_pyobject(py)?.into_any(),
            ),
            (intern!(py, "mode"), e.mode.into_pyobject(py)?.into_any()),
            (
                intern!(py, "cas_id"),
                e.cas_id.into_pyobject(py)?.into_any(),
            ),
            (
                intern!(py, "checksum"),
                e.checksum.into_pyobject(py)?.into_any(),
            ),
            (
                intern!(py, "indexed_at"),
                e.indexed_at.into_pyobject(py)?.into_any(),
            ),
        ];
        for (name, value) in &fields {
            set_field(&obj, name, value)?;
        }
        out.append(obj)?;
    }
    Ok(out)
}
