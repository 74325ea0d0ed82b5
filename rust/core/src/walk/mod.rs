//! The resumable parallel walker.
//!
//! Worker threads ([`pool`]) read whole directories ahead of time; the
//! consumer ([`Walker::next_batch`]) hands their entries out in batches and
//! keeps the *frontier*: directories whose own entry was yielded (or roots)
//! but whose contents were not yet fully yielded, with how far the current one
//! got. [`Walker::state`] serialises exactly that, so a walker resumed from it
//! yields the entries not yet yielded, each once, for an unchanged tree.

mod listing;
mod options;
mod pool;
mod state;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use serde_bytes::ByteBuf;

pub use listing::{join, FileId};
pub use options::{compile_patterns, default_threads, WalkOptions};
pub use state::{StateDir, WalkState, STATE_VERSION};

use listing::{DirTask, Listing};
use pool::{Next, Pool};

use crate::cancel::CancelToken;
use crate::content::{self, cas_id_hex, hex, Hashes, Want};
use crate::error::{Error, FsError, Result};
use crate::sys::{self, Kind, Meta};

/// A batch of entries in columns, plus the errors met while producing them.
#[derive(Debug, Default)]
pub struct Batch {
    /// All paths back to back (see [`Batch::path`]): one buffer per batch
    /// instead of an allocation per entry.
    pub path_bytes: Vec<u8>,
    /// End offset of each path in `path_bytes`.
    pub path_ends: Vec<usize>,
    pub kinds: Vec<u8>,
    pub sizes: Vec<u64>,
    pub mtimes_ns: Vec<i64>,
    pub ctimes_ns: Vec<i64>,
    pub inodes: Vec<u64>,
    pub devices: Vec<u64>,
    pub modes: Vec<u32>,
    pub nlinks: Vec<u64>,
    /// cas_id of each entry (None for non-files, empty files, failures);
    /// filled only when the walk hashes (`WalkOptions::hash`), else empty.
    pub cas_ids: Vec<Option<String>>,
    /// Full BLAKE3 (64 hex digits) of each regular file, likewise.
    pub checksums: Vec<Option<String>>,
    pub errors: Vec<FsError>,
}

impl Batch {
    fn with_capacity(n: usize) -> Self {
        Batch {
            path_bytes: Vec::with_capacity(n * 64),
            path_ends: Vec::with_capacity(n),
            kinds: Vec::with_capacity(n),
            sizes: Vec::with_capacity(n),
            mtimes_ns: Vec::with_capacity(n),
            ctimes_ns: Vec::with_capacity(n),
            inodes: Vec::with_capacity(n),
            devices: Vec::with_capacity(n),
            modes: Vec::with_capacity(n),
            nlinks: Vec::with_capacity(n),
            cas_ids: Vec::new(),
            checksums: Vec::new(),
            errors: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.path_ends.len()
    }

    /// The path of entry `i`.
    pub fn path(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.path_ends[i - 1] };
        &self.path_bytes[start..self.path_ends[i]]
    }

    /// Every path, in order.
    pub fn paths(&self) -> impl ExactSizeIterator<Item = &[u8]> + '_ {
        (0..self.len()).map(|i| self.path(i))
    }

    pub fn is_empty(&self) -> bool {
        self.path_ends.is_empty() && self.errors.is_empty()
    }

    /// Append `other`'s entries and errors after this batch's (batches of
    /// one walk, in walk order: see `library::pipeline`, which writes
    /// batches waiting together).
    pub fn append(&mut self, mut other: Batch) {
        let offset = self.path_bytes.len();
        self.path_bytes.append(&mut other.path_bytes);
        self.path_ends
            .extend(other.path_ends.iter().map(|end| end + offset));
        self.kinds.append(&mut other.kinds);
        self.sizes.append(&mut other.sizes);
        self.mtimes_ns.append(&mut other.mtimes_ns);
        self.ctimes_ns.append(&mut other.ctimes_ns);
        self.inodes.append(&mut other.inodes);
        self.devices.append(&mut other.devices);
        self.modes.append(&mut other.modes);
        self.nlinks.append(&mut other.nlinks);
        self.cas_ids.append(&mut other.cas_ids);
        self.checksums.append(&mut other.checksums);
        self.errors.append(&mut other.errors);
    }

    fn push_hashes(&mut self, want: Want, hashes: &Hashes) {
        if want.cas_id {
            self.cas_ids.push(hashes.cas.as_ref().map(cas_id_hex));
        }
        if want.checksum {
            self.checksums
                .push(hashes.checksum.as_ref().map(|d| hex(d)));
        }
    }

    fn push_path(&mut self, dir: &[u8], name: &[u8]) {
        self.path_bytes.extend_from_slice(dir);
        if !name.is_empty() && !dir.ends_with(b"/") {
            self.path_bytes.push(b'/');
        }
        self.path_bytes.extend_from_slice(name);
        self.path_ends.push(self.path_bytes.len());
    }

    fn push(&mut self, dir: &[u8], name: &[u8], meta: &Meta) {
        self.push_path(dir, name);
        self.kinds.push(meta.kind as u8);
        self.sizes.push(meta.size);
        self.mtimes_ns.push(meta.mtime_ns);
        self.ctimes_ns.push(meta.ctime_ns);
        self.inodes.push(meta.inode);
        self.devices.push(meta.device);
        self.modes.push(meta.mode);
        self.nlinks.push(meta.nlink);
    }
}

/// Roots without repeats: trailing slashes trimmed, duplicates dropped, and
/// roots inside another root dropped (their entries are yielded once, under
/// the outer root). Each entry is then yielded once and the frontier, keyed
/// by path, stays exact.
pub fn distinct_roots(roots: &[Vec<u8>]) -> Result<Vec<Vec<u8>>> {
    let mut trimmed: Vec<Vec<u8>> = Vec::with_capacity(roots.len());
    for root in roots {
        if root.is_empty() {
            return Err(Error::InvalidArgument("a root path is empty".into()));
        }
        let mut end = root.len();
        while end > 1 && root[end - 1] == b'/' {
            end -= 1;
        }
        let root = root[..end].to_vec();
        if !trimmed.contains(&root) {
            trimmed.push(root);
        }
    }
    let inside = |inner: &Vec<u8>, outer: &Vec<u8>| {
        inner != outer
            && inner.starts_with(outer)
            && (outer.ends_with(b"/") || inner.get(outer.len()) == Some(&b'/'))
    };
    Ok(trimmed
        .iter()
        .filter(|r| !trimmed.iter().any(|o| inside(r, o)))
        .cloned()
        .collect())
}

/// A directory in the frontier.
#[derive(Clone, Debug)]
struct OpenDir {
    depth: u32,
    /// Name of the last entry yielded before a resume (see `DirTask::after`).
    after: Option<Vec<u8>>,
    ancestors: Arc<Vec<FileId>>,
    /// (device, inode) the directory had when it was listed.
    id: Option<FileId>,
}

/// A root that is not a directory: yielded as a single entry.
struct RootFile {
    path: Vec<u8>,
    meta: Option<Meta>,
    error: Option<FsError>,
}

pub struct Walker {
    opts: Arc<WalkOptions>,
    cancel: CancelToken,
    pool: Pool,
    root_files: VecDeque<RootFile>,
    /// The listing being handed out and the index of its next item.
    current: Option<(Box<Listing>, usize)>,
    frontier: BTreeMap<Vec<u8>, OpenDir>,
    finished: bool,
    /// Set once the walk was interrupted: it never continues, even if the
    /// token is reset (workers have stopped; resume from `state()` instead).
    stopped: bool,
}

impl Walker {
    /// Start walking `roots`. Roots that are directories (or symlinks to
    /// them) are walked but not yielded themselves; other roots are yielded
    /// as single entries; missing roots become errors in the first batch.
    pub fn new(roots: &[Vec<u8>], opts: WalkOptions, cancel: CancelToken) -> Result<Self> {
        opts.check()?;
        let follow = opts.follow_symlinks;
        let mut tasks = Vec::new();
        let mut root_files = VecDeque::new();
        let mut seen_dirs = std::collections::HashSet::new();
        for root in &distinct_roots(roots)? {
            match sys::stat_path(root, true) {
                // The same directory under two names would be walked twice.
                Ok(meta) if meta.kind == Kind::Dir && !seen_dirs.insert(meta.file_id()) => {}
                Ok(meta) if meta.kind == Kind::Dir => tasks.push(DirTask {
                    path: root.clone(),
                    depth: 1,
                    after: None,
                    ancestors: Arc::new(if follow { vec![meta.file_id()] } else { vec![] }),
                    expect: Some(meta.file_id()),
                }),
                Ok(meta) => root_files.push_back(RootFile {
                    path: root.clone(),
                    meta: Some(meta),
                    error: None,
                }),
                Err(err) => root_files.push_back(RootFile {
                    path: root.clone(),
                    // A dangling symlink root is still an entry.
                    meta: sys::stat_path(root, false).ok(),
                    error: Some(FsError::from_io(root, &err)),
                }),
            }
        }
        Ok(Self::start(tasks, root_files, opts, cancel))
    }

    /// Continue a walk from [`Walker::state`] bytes (same options expected).
    pub fn resume(state: &[u8], opts: WalkOptions, cancel: CancelToken) -> Result<Self> {
        opts.check()?;
        let state = WalkState::decode(state)?;
        let tasks = state
            .dirs
            .into_iter()
            .map(|d| DirTask {
                path: d.path.into_vec(),
                depth: d.depth,
                after: d.after.map(ByteBuf::into_vec),
                ancestors: Arc::new(d.ancestors),
                expect: d.id,
            })
            .collect();
        let root_files = state
            .files
            .into_iter()
            .map(|path| {
                let path = path.into_vec();
                match sys::stat_path(&path, true) {
                    Ok(meta) => RootFile {
                        path,
                        meta: Some(meta),
                        error: None,
                    },
                    Err(err) => RootFile {
                        meta: sys::stat_path(&path, false).ok(),
                        error: Some(FsError::from_io(&path, &err)),
                        path,
                    },
                }
            })
            .collect();
        Ok(Self::start(tasks, root_files, opts, cancel))
    }

    fn start(
        tasks: Vec<DirTask>,
        root_files: VecDeque<RootFile>,
        opts: WalkOptions,
        cancel: CancelToken,
    ) -> Self {
        let frontier = tasks
            .iter()
            .map(|t| {
                let open = OpenDir {
                    depth: t.depth,
                    after: t.after.clone(),
                    ancestors: t.ancestors.clone(),
                    id: t.expect,
                };
                (t.path.clone(), open)
            })
            .collect();
        let opts = Arc::new(opts);
        let pool = Pool::start(tasks, opts.clone(), cancel.clone());
        Walker {
            opts,
            cancel,
            pool,
            root_files,
            current: None,
            frontier,
            finished: false,
            stopped: false,
        }
    }

    /// The next batch of up to `batch_size` entries, `Ok(None)` at the end.
    ///
    /// On cancel: entries already gathered are returned first (they count as
    /// yielded, so the state stays exact); the call after that fails with
    /// [`Error::Cancelled`]. A cancelled walker cannot continue; resume a new
    /// one from [`Walker::state`].
    pub fn next_batch(&mut self) -> Result<Option<Batch>> {
        if self.finished {
            return Ok(None);
        }
        if self.stopped || self.cancel.is_cancelled() {
            self.stopped = true;
            return Err(Error::Cancelled);
        }
        if !self.pool.has_workers() && !self.frontier.is_empty() {
            return Err(Error::InvalidArgument(
                "could not start any walker thread".into(),
            ));
        }
        let limit = self.opts.batch_size;
        let mut batch = Batch::with_capacity(limit);
        while batch.len() < limit {
            if let Some(root) = self.root_files.pop_front() {
                self.hand_out_root(&mut batch, root);
                continue;
            }
            if self.current.is_some() {
                self.hand_out(&mut batch, limit);
                continue;
            }
            let cancel = self.cancel.clone();
            match self.pool.next(|| cancel.is_cancelled()) {
                Next::Listing(listing) => {
                    batch.errors.extend(listing.error.clone());
                    self.current = Some((listing, 0));
                }
                // Workers that stopped before the work ran out were interrupted
                // (cancel, or a worker that died): never report that as the end.
                Next::Done if self.cancel.is_cancelled() || !self.pool.completed() => {
                    return self.interrupted(batch)
                }
                Next::Done => {
                    self.finished = true;
                    break;
                }
                Next::Interrupted => return self.interrupted(batch),
            }
        }
        if batch.is_empty() && self.finished {
            return Ok(None);
        }
        Ok(Some(batch))
    }

    fn interrupted(&mut self, batch: Batch) -> Result<Option<Batch>> {
        self.stopped = true;
        if batch.is_empty() {
            Err(Error::Cancelled)
        } else {
            Ok(Some(batch))
        }
    }

    fn hand_out_root(&self, batch: &mut Batch, root: RootFile) {
        batch.errors.extend(root.error);
        let Some(meta) = root.meta else { return };
        let want = self.opts.hash;
        let mut hashes = Hashes::default();
        if want.any() && meta.kind == Kind::File {
            let cancel = &self.cancel;
            match content::hash_path(&root.path, want, &|| cancel.is_cancelled()) {
                Ok(h) => hashes = h,
                Err(err) => batch.errors.push(err),
            }
        }
        batch.push_hashes(want, &hashes);
        batch.push(&root.path, b"", &meta);
    }

    /// Move items of the current listing into `batch` until it is full or the
    /// listing is exhausted; newly yielded directories join the frontier.
    fn hand_out(&mut self, batch: &mut Batch, limit: usize) {
        let Some((listing, cursor)) = self.current.as_mut() else {
            return;
        };
        let follow = self.opts.follow_symlinks;
        while *cursor < listing.items.len() && batch.len() < limit {
            let item = &listing.items[*cursor];
            *cursor += 1;
            if let Some((errno, message)) = &item.error {
                let path = join(&listing.task.path, &item.name);
                batch
                    .errors
                    .push(FsError::other(&path, *errno, message.clone()));
            }
            let Some(meta) = item.meta else { continue };
            batch.push_hashes(self.opts.hash, &item.hashes);
            if item.descend {
                let child = listing.child_task(item, follow);
                let open = OpenDir {
                    depth: child.depth,
                    after: None,
                    ancestors: child.ancestors,
                    id: Some(meta.file_id()),
                };
                self.frontier.insert(child.path, open);
            }
            batch.push(&listing.task.path, &item.name, &meta);
        }
        if *cursor >= listing.items.len() {
            if !listing.more {
                self.frontier.remove(&listing.task.path);
            } else if let (Some(last), Some(open)) = (
                listing.items.last(),
                self.frontier.get_mut(&listing.task.path),
            ) {
                // More pieces follow: a resume continues after this one.
                open.after = Some(last.name.clone());
            }
            self.current = None;
        }
    }

    /// The frontier as bytes (see [`state`]): small, whatever was walked.
    pub fn state(&self) -> Vec<u8> {
        // The current listing resumes after the last name it handed out.
        let current = self.current.as_ref().map(|(l, cursor)| {
            let last = cursor
                .checked_sub(1)
                .and_then(|i| l.items.get(i))
                .map(|it| it.name.clone());
            (&l.task.path, last)
        });
        let dirs = self
            .frontier
            .iter()
            .map(|(path, open)| {
                let after = match &current {
                    Some((p, last)) if *p == path => last.clone().or_else(|| open.after.clone()),
                    _ => open.after.clone(),
                };
                StateDir {
                    path: ByteBuf::from(path.clone()),
                    depth: open.depth,
                    after: after.map(ByteBuf::from),
                    ancestors: open.ancestors.to_vec(),
                    id: open.id,
                }
            })
            .collect();
        let files = self
            .root_files
            .iter()
            .map(|r| ByteBuf::from(r.path.clone()))
            .collect();
        WalkState {
            v: STATE_VERSION,
            dirs,
            files,
        }
        .encode()
    }

    /// True once every entry has been yielded.
    pub fn is_finished(&self) -> bool {
        self.finished
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(dir: &[u8], names: &[&[u8]], hashed: bool) -> Batch {
        let mut b = Batch::default();
        for (i, name) in names.iter().enumerate() {
            let meta = Meta {
                kind: Kind::File,
                size: i as u64,
                mtime_ns: 0,
                ctime_ns: 0,
                inode: i as u64,
                device: 1,
                mode: 0o644,
                nlink: 1,
            };
            b.push(dir, name, &meta);
            if hashed {
                b.cas_ids.push(Some(format!("{i:016x}")));
            }
        }
        b
    }

    #[test]
    fn an_appended_batch_keeps_its_paths_and_columns_in_order() {
        let mut a = batch(b"/r", &[b"a", b"\xff\n"], true);
        a.errors.push(FsError {
            path: b"/r/x".to_vec(),
            errno: 13,
            message: "denied".into(),
        });
        let mut b = batch(b"/r/d", &[b"c"], true);
        b.errors.push(FsError {
            path: b"/r/y".to_vec(),
            errno: 2,
            message: "gone".into(),
        });
        a.append(b);
        let paths: Vec<&[u8]> = a.paths().collect();
        assert_eq!(paths, [&b"/r/a"[..], b"/r/\xff\n", b"/r/d/c"]);
        assert_eq!(a.sizes, [0, 1, 0]);
        assert_eq!(a.kinds.len(), 3);
        assert_eq!(a.nlinks.len(), 3);
        assert_eq!(a.cas_ids.len(), 3);
        assert_eq!(a.cas_ids[2].as_deref(), Some("0000000000000000"));
        assert_eq!(a.errors.len(), 2);
        a.append(Batch::default());
        assert_eq!(a.len(), 3);
    }
}
