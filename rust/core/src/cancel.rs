//! A cancel token shared between the caller and worker threads.
//!
//! Signals only reach the main thread, so long calls poll this flag instead:
//! the Python side sets it (e.g. from a signal handler) and every loop checks it
//! between files or directories.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A cheap, clonable flag; all clones see the same state.
#[derive(Clone, Debug, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn new() -> Self {
        Self::default()
    }

    /// Ask every holder of this token to stop at its next check.
    pub fn cancel(&self) {
        // Relaxed is enough: the flag carries no data, and workers only need to
        // see it eventually (they check it between files).
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// Clear the flag so the token can be reused for a later call.
    pub fn reset(&self) {
        self.0.store(false, Ordering::Relaxed);
    }
}
