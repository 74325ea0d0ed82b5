//! phasekit-core: the per-file loops of phasekit, in pure Rust.
//!
//! Everything here works on byte paths (POSIX names are arbitrary bytes), never
//! touches Python, and reports per-file problems as [`FsError`] values instead of
//! stopping. The PyO3 crate `phasekit-py` is a thin binding over this crate.

#![cfg(unix)]

pub mod cancel;
pub mod chunks;
pub mod content;
pub mod dupes;
pub mod error;
pub mod fileops;
pub mod io_pool;
pub mod library;
pub mod pool;
pub mod sys;
pub mod walk;

pub use cancel::CancelToken;
pub use error::{Error, FsError};
