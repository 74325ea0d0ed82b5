//! The one place where core errors become Python exceptions.

use phasekit_core::{Error, FsError};
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyKeyError, PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

use crate::paths::path_to_py;

create_exception!(
    phasekit._core,
    PhasekitError,
    PyException,
    "Base class of phasekit's own errors."
);
create_exception!(
    phasekit._core,
    CancelledError,
    PhasekitError,
    "The call stopped at a safe point because its cancel token was set."
);
create_exception!(
    phasekit._core,
    InvalidStateError,
    PhasekitError,
    "A resume state could not be decoded (corrupt or from another version)."
);

create_exception!(
    phasekit._core,
    LibraryError,
    PhasekitError,
    "library.db could not be read or written (or is from a newer phasekit)."
);

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("LibraryError", py.get_type::<LibraryError>())?;
    m.add("PhasekitError", py.get_type::<PhasekitError>())?;
    m.add("CancelledError", py.get_type::<CancelledError>())?;
    m.add("InvalidStateError", py.get_type::<InvalidStateError>())?;
    Ok(())
}

/// `OSError(errno, message, path)`: Python picks the subclass from errno
/// (FileNotFoundError, PermissionError, IsADirectoryError, ...).
pub fn os_error(py: Python<'_>, err: &FsError) -> PyErr {
    match path_to_py(py, &err.path) {
        Ok(path) => PyOSError::new_err((err.errno, err.message.clone(), path.unbind())),
        Err(e) => e,
    }
}

/// A class of `phasekit.errors` (defined in Python, subclasses of the ones
/// above and of builtins), imported once and kept.
struct PyClass {
    cell: PyOnceLock<Py<PyType>>,
    name: &'static str,
}

impl PyClass {
    const fn new(name: &'static str) -> Self {
        PyClass {
            cell: PyOnceLock::new(),
            name,
        }
    }

    /// `self(message)`, or `fallback(message)` if `phasekit.errors` cannot
    /// be imported (the extension loaded on its own): still the base class
    /// the Python one derives from.
    fn err(&self, py: Python<'_>, message: String, fallback: fn(String) -> PyErr) -> PyErr {
        match self.cell.import(py, "phasekit.errors", self.name) {
            Ok(class) => PyErr::from_type(class.clone(), (message,)),
            Err(_) => fallback(message),
        }
    }
}

static INVALID_INPUT: PyClass = PyClass::new("InvalidInputError");
static LOCATION_NOT_FOUND: PyClass = PyClass::new("LocationNotFound");
static LIBRARY_CLOSED: PyClass = PyClass::new("LibraryClosed");
static LIBRARY_FULL: PyClass = PyClass::new("LibraryFullError");
static LIBRARY_UNAVAILABLE: PyClass = PyClass::new("LibraryUnavailable");

pub fn to_py(py: Python<'_>, err: Error) -> PyErr {
    match err {
        Error::Cancelled => CancelledError::new_err("cancelled"),
        Error::InvalidState(msg) => InvalidStateError::new_err(msg),
        Error::InvalidArgument(msg) => INVALID_INPUT.err(py, msg, PyValueError::new_err),
        Error::Fs(fs) => os_error(py, &fs),
        Error::Database { message, .. } => LibraryError::new_err(message),
        full @ Error::StorageFull(_) => {
            LIBRARY_FULL.err(py, full.to_string(), LibraryError::new_err)
        }
        Error::LocationNotFound(msg) => LOCATION_NOT_FOUND.err(py, msg, PyKeyError::new_err),
        Error::Closed(msg) => LIBRARY_CLOSED.err(py, msg, PhasekitError::new_err),
        Error::Unavailable(msg) => LIBRARY_UNAVAILABLE.err(py, msg, LibraryError::new_err),
    }
}

/// Extension for `Result<T, Error>` → `PyResult<T>`.
pub trait IntoPy<T> {
    fn into_py(self, py: Python<'_>) -> PyResult<T>;
}

impl<T> IntoPy<T> for Result<T, Error> {
    fn into_py(self, py: Python<'_>) -> PyResult<T> {
        self.map_err(|e| to_py(py, e))
    }
}
