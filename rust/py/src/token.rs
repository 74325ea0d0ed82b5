//! `CancelToken`: set from Python (any thread, a signal handler), seen by Rust
//! worker threads between files.

use pyo3::prelude::*;

#[pyclass(module = "phasekit._core", frozen)]
#[derive(Clone, Default)]
pub struct CancelToken(pub phasekit_core::CancelToken);

#[pymethods]
impl CancelToken {
    #[new]
    fn new() -> Self {
        Self::default()
    }

    /// Ask every call holding this token to stop at its next safe point.
    fn cancel(&self) {
        self.0.cancel();
    }

    /// Clear the flag so the token can be used for another call.
    fn reset(&self) {
        self.0.reset();
    }

    #[getter]
    fn cancelled(&self) -> bool {
        self.0.is_cancelled()
    }

    fn __repr__(&self) -> String {
        format!(
            "CancelToken(cancelled={})",
            if self.0.is_cancelled() {
                "True"
            } else {
                "False"
            }
        )
    }
}

/// The core token behind an optional Python one (a fresh one if none given).
pub fn core_token(token: Option<&Bound<'_, CancelToken>>) -> phasekit_core::CancelToken {
    token.map(|t| t.get().0.clone()).unwrap_or_default()
}
