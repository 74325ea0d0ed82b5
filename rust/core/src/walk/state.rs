//! The serialisable resume state of a walk: its frontier, never what it found.
//!
//! msgpack map `{"v": 1, "dirs": [{"p": bytes, "d": depth, "n": last name
//! yielded (bytes, absent if none), "a": [[dev, ino], ...]}], "files": [bytes,
//! ...], "i": [dev, ino] (absent if unknown)}`. The pure-Python twin reads and
//! writes the same format, so either can resume the other's walk.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::error::{Error, Result};

pub const STATE_VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct StateDir {
    #[serde(rename = "p")]
    pub path: ByteBuf,
    #[serde(rename = "d")]
    pub depth: u32,
    #[serde(rename = "n", default, skip_serializing_if = "Option::is_none")]
    pub after: Option<ByteBuf>,
    #[serde(rename = "a", default)]
    pub ancestors: Vec<(u64, u64)>,
    /// (device, inode) of the directory when listed: a resumed walk refuses
    /// a directory that was replaced since (e.g. by a symlink out of the tree).
    #[serde(rename = "i", default, skip_serializing_if = "Option::is_none")]
    pub id: Option<(u64, u64)>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct WalkState {
    pub v: u32,
    pub dirs: Vec<StateDir>,
    #[serde(default)]
    pub files: Vec<ByteBuf>,
}

impl WalkState {
    pub fn encode(&self) -> Vec<u8> {
        // Serialising plain structs of ints and byte strings cannot fail;
        // fall back to an empty buffer rather than panic if it ever did.
        rmp_serde::to_vec_named(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let state: WalkState = rmp_serde::from_slice(bytes)
            .map_err(|e| Error::InvalidState(format!("cannot decode: {e}")))?;
        if state.v != STATE_VERSION {
            return Err(Error::InvalidState(format!(
                "unsupported version {} (this phasekit reads version {STATE_VERSION})",
                state.v
            )));
        }
        if let Some(bad) = state
            .dirs
            .iter()
            .find(|d| d.depth == 0 || d.path.is_empty())
        {
            return Err(Error::InvalidState(format!(
                "directory entry {:?} has an empty path or depth 0",
                String::from_utf8_lossy(&bad.path)
            )));
        }
        Ok(state)
    }
}
