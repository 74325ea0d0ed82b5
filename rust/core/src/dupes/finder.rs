//! [`Finder`]: the duplicate pipeline, one page of hashing at a time.
//!
//! `new`, or `empty` + `add` (filter) → `apply_known` (digests from a cache
//! or a library) → `group_by_size` (hard links merged, then grouped) →
//! `hash_page` until the stage is [`Stage::Done`] → `into_report`.
//!
//! Walked trees (exact 256-bit cas digests) start with a [`Stage::Prefix`]:
//! in size groups of files larger than [`PREFIX_FROM`], the first
//! [`PREFIX_LEN`] bytes are hashed before anything else, and only files that
//! share them are hashed further (what jdupes calls its partial hash). Most
//! same-size files differ at once, so a search reads a fraction of their
//! bytes. A library's location skips it: there the cas_ids computed are
//! stored, and useful beyond this search. Between pages the caller may persist the
//! page's digests and checkpoint; a finder rebuilt from the same files with
//! those digests applied hashes only what is left.

use std::collections::HashMap;

use super::{FileRecord, Group, Mode, Options, Report, Stats};
use crate::cancel::CancelToken;
use crate::content::{self, cas_id_hex, hash_file, hex, Digest, Want, SMALL_FILE_MAX};
use crate::error::{Error, FsError, Result};
use crate::sys;

/// Where the pipeline is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Not grouped by size yet.
    Collected,
    /// Hashing the first bytes of larger files inside size groups (walked
    /// trees only).
    Prefix,
    /// Hashing cas_id digests inside size groups.
    Partial,
    /// Hashing full digests inside cas_id groups (`full` mode).
    Full,
    Done,
}

/// The folders of the files taken, each kept once: a file keeps its
/// folder's number and its own name (a million files lie in a few thousand
/// folders). Number 0 is the empty folder (a name that is a whole path).
#[derive(Debug)]
struct Dirs {
    names: Vec<Box<[u8]>>,
    ids: HashMap<Box<[u8]>, u32>,
    /// The folder of the file taken last: a walk or a location lists a
    /// folder's files together, so most lookups end here.
    last: u32,
}

impl Dirs {
    fn new() -> Self {
        Dirs {
            names: vec![Box::from(&b""[..])],
            ids: HashMap::from([(Box::from(&b""[..]), 0)]),
            last: 0,
        }
    }

    /// `path` as its folder (through its last `/`) and its name.
    fn intern(&mut self, mut path: Vec<u8>) -> (u32, Box<[u8]>) {
        let cut = path.iter().rposition(|&b| b == b'/').map_or(0, |i| i + 1);
        if *self.names[self.last as usize] == path[..cut] {
            return (self.last, path[cut..].into());
        }
        let id = match self.ids.get(&path[..cut]) {
            Some(&id) => id,
            None => match u32::try_from(self.names.len()) {
                Ok(id) => {
                    self.names.push(path[..cut].into());
                    self.ids.insert(path[..cut].into(), id);
                    id
                }
                // 4 billion folders: the path kept whole, as a name.
                Err(_) => return (0, path.into_boxed_slice()),
            },
        };
        self.last = id;
        let name = path.split_off(cut);
        (id, name.into_boxed_slice())
    }

    fn join(&self, dir: u32, name: &[u8]) -> Vec<u8> {
        let folder = &self.names[dir as usize];
        let mut path = Vec::with_capacity(folder.len() + name.len());
        path.extend_from_slice(folder);
        path.extend_from_slice(name);
        path
    }
}

/// One inode: its size and every path that names it.
///
/// Kept small, one per file searched (a million files, a million of
/// these): the first path as its folder's number and an exact-size name,
/// further names (hard links, rare) beside it, the first-bytes digest and
/// the full digest (a few large files) boxed.
#[derive(Debug)]
struct Inode {
    size: u64,
    /// (device, inode) as listed: hashing verifies it is still that file.
    id: (u64, u64),
    /// As listed; [`NO_MTIME`]: not known.
    mtime: i64,
    /// The first path listed (its folder in [`Dirs`], and its name), and
    /// its library entry (0: none).
    dir: u32,
    name: Box<[u8]>,
    entry_id: i64,
    /// Further paths naming it (hard links), with their entries. Boxed: 8
    /// bytes for the common file with one name, where a `Vec` takes 24.
    #[allow(clippy::box_collection)]
    links: Option<Box<Vec<Link>>>,
    /// The first 16 bytes of the digest of the first [`PREFIX_LEN`] bytes:
    /// it only splits groups, so 128 bits are plenty (walked trees only).
    prefix: Option<Box<[u8; 16]>>,
    cas: Option<Digest>,
    full: Option<Box<Digest>>,
    /// Hashing it failed: it is in no group.
    failed: bool,
    grouped: bool,
    /// A hard link of an inode listed earlier, merged into it: its record
    /// is empty and stands for nothing.
    merged: bool,
}

impl Inode {
    fn new(
        size: u64,
        id: (u64, u64),
        mtime_ns: Option<i64>,
        (dir, name): (u32, Box<[u8]>),
        entry_id: i64,
    ) -> Self {
        Inode {
            size,
            id,
            mtime: mtime_ns.unwrap_or(NO_MTIME),
            dir,
            name,
            entry_id,
            links: None,
            prefix: None,
            cas: None,
            full: None,
            failed: false,
            grouped: false,
            merged: false,
        }
    }

    fn mtime_ns(&self) -> Option<i64> {
        (self.mtime != NO_MTIME).then_some(self.mtime)
    }

    fn links(&self) -> &[Link] {
        self.links.as_deref().map_or(&[], Vec::as_slice)
    }

    fn add_links(&mut self, more: impl IntoIterator<Item = Link>) {
        self.links.get_or_insert_with(Box::default).extend(more);
    }

    /// The file names of its paths.
    fn names(&self) -> impl Iterator<Item = &[u8]> {
        std::iter::once(name_of(&self.name)).chain(self.links().iter().map(|(p, _)| name_of(p)))
    }

    fn first_path(&self, dirs: &Dirs) -> Vec<u8> {
        dirs.join(self.dir, &self.name)
    }

    fn paths(&self, dirs: &Dirs) -> Vec<Vec<u8>> {
        let mut out = Vec::with_capacity(self.path_count());
        out.push(self.first_path(dirs));
        out.extend(self.links().iter().map(|(p, _)| p.to_vec()));
        out
    }

    fn path_count(&self) -> usize {
        1 + self.links().len()
    }

    /// The library entries naming it.
    fn entry_ids(&self) -> Vec<i64> {
        std::iter::once(self.entry_id)
            .chain(self.links().iter().map(|&(_, id)| id))
            .filter(|&id| id != 0)
            .collect()
    }

    /// Its paths, sorted, taken out (for a report).
    fn take_paths(&mut self, dirs: &Dirs) -> Vec<Vec<u8>> {
        let mut out = Vec::with_capacity(self.path_count());
        out.push(self.first_path(dirs));
        self.name = Box::default();
        let links = self.links.take().map(|b| *b).unwrap_or_default();
        out.extend(links.into_iter().map(|(p, _)| p.into_vec()));
        out.sort_unstable();
        out
    }
}

/// A further path of an inode (a hard link) and its library entry (0: none).
type Link = (Box<[u8]>, i64);

/// [`Inode::mtime`] when the listing gave none.
const NO_MTIME: i64 = i64::MIN;

/// A digest computed by [`Finder::hash_page`], for the caller to persist.
#[derive(Clone, Debug)]
pub struct Hashed {
    pub device: u64,
    pub inode: u64,
    pub size: u64,
    pub mtime_ns: Option<i64>,
    /// The library entries naming the file (empty outside a library).
    pub entry_ids: Vec<i64>,
    /// [`Stage::Prefix`] (the first bytes' digest, in the first 16 bytes of
    /// `digest`), [`Stage::Partial`] (a cas_id digest) or [`Stage::Full`].
    pub stage: Stage,
    pub digest: Digest,
}

/// What one [`Finder::hash_page`] call did.
#[derive(Debug, Default)]
pub struct Page {
    pub hashed: Vec<Hashed>,
    /// Bytes of the files hashed (their sizes; at the prefix stage, the
    /// bytes read).
    pub bytes: u64,
    pub errors: Vec<FsError>,
}

fn name_of(path: &[u8]) -> &[u8] {
    path.rsplit(|&b| b == b'/').next().unwrap_or(path)
}

fn extension_of(path: &[u8]) -> Option<Vec<u8>> {
    let name = name_of(path);
    match name.iter().rposition(|&b| b == b'.') {
        Some(0) | None => None,
        Some(dot) => Some(name[dot + 1..].to_ascii_lowercase()),
    }
}

/// A file to hash as listed: path, (device, inode), size, mtime.
type Listed<'a> = (&'a [u8], (u64, u64), u64, Option<i64>);

/// Bytes the prefix stage reads from the start of each file: one page, as
/// jdupes reads.
pub const PREFIX_LEN: u64 = 4096;
/// Files up to this size skip the prefix stage: their cas digest reads them
/// whole in about the time of a prefix read, and a prefix read of a file
/// that turns out to have a copy is a second open.
pub const PREFIX_FROM: u64 = 2 * PREFIX_LEN;

fn prefix_of(digest: &Digest) -> [u8; 16] {
    let mut first = [0u8; 16];
    first.copy_from_slice(&digest[..16]);
    first
}

/// The duplicate pipeline over a fixed set of files.
pub struct Finder {
    opts: Options,
    /// Whether a partial digest is the 256-bit cas_id digest, which covers
    /// every byte of a file up to [`SMALL_FILE_MAX`] and so proves equality.
    /// A library keeps only the 64-bit cas_id, so over a library this is
    /// false: computed digests are cut to the cas_id, and `full` mode
    /// confirms small files with a full digest too.
    exact_cas: bool,
    /// One per file taken until grouping, when the paths of one inode
    /// (hard links) are merged into the first listed (see `merge_links`).
    inodes: Vec<Inode>,
    dirs: Dirs,
    stage: Stage,
    /// Inode sets that may still be duplicates, at the current stage.
    buckets: Vec<Vec<usize>>,
    /// Inodes to hash at the current stage, and how far that got.
    todo: Vec<usize>,
    cursor: usize,
    groups: Vec<(Vec<u8>, Vec<usize>)>,
    errors: Vec<FsError>,
    stats: Stats,
}

impl Finder {
    /// Keep the files `opts` selects (hard links are merged into one inode
    /// when grouping starts).
    pub fn new(files: Vec<FileRecord>, opts: Options, exact_cas: bool) -> Self {
        let mut finder = Finder::empty(opts, exact_cas);
        for file in files {
            finder.add(file);
        }
        finder
    }

    /// A finder with no files yet: [`Finder::add`] them one by one (a
    /// location's or a walk's files are never all held as records at once).
    pub fn empty(opts: Options, exact_cas: bool) -> Self {
        Finder {
            opts,
            exact_cas,
            inodes: Vec::new(),
            dirs: Dirs::new(),
            stage: Stage::Collected,
            buckets: Vec::new(),
            todo: Vec::new(),
            cursor: 0,
            groups: Vec::new(),
            errors: Vec::new(),
            stats: Stats::default(),
        }
    }

    /// Take one file, if the options select it (before grouping only; later
    /// files are ignored). A hard link is merged with the first-listed name
    /// of its inode when grouping starts.
    pub fn add(&mut self, file: FileRecord) {
        if self.stage != Stage::Collected {
            return;
        }
        self.stats.files += 1;
        let opts = &self.opts;
        if file.size < opts.min_size || opts.max_size.is_some_and(|max| file.size > max) {
            return;
        }
        if !opts.extensions.is_empty()
            && !extension_of(&file.path).is_some_and(|e| opts.extensions.contains(&e))
        {
            return;
        }
        let id = (file.device, file.inode);
        let mut inode = Inode::new(
            file.size,
            id,
            file.mtime_ns,
            self.dirs.intern(file.path),
            file.entry_id,
        );
        inode.cas = file.cas;
        inode.full = file.full.map(Box::new);
        self.inodes.push(inode);
    }

    /// Merge the inodes of one (device, inode), i.e. a file's hard links,
    /// into the first listed; the others are emptied and marked `merged`.
    /// A sort of indices rather than a map kept while collecting: 8 bytes a
    /// file for a moment instead of a lookup entry per file throughout.
    fn merge_links(&mut self) {
        let mut order: Vec<usize> = (0..self.inodes.len()).collect();
        order.sort_unstable_by_key(|&i| (self.inodes[i].id, i));
        let sets: Vec<Vec<usize>> = order
            .chunk_by(|&a, &b| self.inodes[a].id == self.inodes[b].id)
            .filter(|set| set.len() > 1)
            .map(<[usize]>::to_vec)
            .collect();
        for set in sets {
            self.merge_set(&set);
        }
    }

    /// `set`: indices of one inode's records, the first listed first.
    fn merge_set(&mut self, set: &[usize]) {
        let (keep, rest) = (set[0], &set[1..]);
        for &other in rest {
            let taken = &mut self.inodes[other];
            taken.merged = true;
            let path = taken.first_path(&self.dirs).into_boxed_slice();
            taken.name = Box::default();
            let (entry, cas, full) = (taken.entry_id, taken.cas, taken.full.take());
            let links = taken.links.take().map(|b| *b).unwrap_or_default();
            let inode = &mut self.inodes[keep];
            inode.add_links(std::iter::once((path, entry)).chain(links));
            inode.cas = inode.cas.or(cas);
            if inode.full.is_none() {
                inode.full = full;
            }
        }
    }

    pub fn stage(&self) -> Stage {
        self.stage
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Inodes left to hash at this stage, and their bytes.
    pub fn remaining(&self) -> (u64, u64) {
        let left = &self.todo[self.cursor..];
        let bytes = left.iter().map(|&i| self.inodes[i].size).sum();
        (left.len() as u64, bytes)
    }

    /// Record digests computed earlier (by a run that was interrupted) for
    /// files that are still as they were then (same size and mtime). Only
    /// before grouping: afterwards the work lists are made.
    pub fn apply_known(&mut self, known: &[super::Known]) -> Result<u64> {
        if self.stage != Stage::Collected {
            return Err(Error::InvalidArgument(
                "known digests must be applied before grouping by size".into(),
            ));
        }
        // Looked up from the files' side: the known digests are as many as
        // an earlier run computed, the files can be millions.
        let mut by_id: HashMap<(u64, u64), Vec<usize>> = HashMap::with_capacity(known.len());
        for (at, k) in known.iter().enumerate() {
            by_id.entry((k.device, k.inode)).or_default().push(at);
        }
        let mut applied = 0;
        for inode in &mut self.inodes {
            let Some(found) = by_id.get(&inode.id) else {
                continue;
            };
            for k in found.iter().map(|&at| &known[at]) {
                if inode.size != k.size || inode.mtime_ns() != k.mtime_ns {
                    continue;
                }
                match k.stage {
                    Stage::Prefix => inode.prefix = Some(Box::new(prefix_of(&k.digest))),
                    Stage::Partial => inode.cas = Some(k.digest),
                    Stage::Full => inode.full = Some(Box::new(k.digest)),
                    _ => continue,
                }
                applied += 1;
            }
        }
        Ok(applied)
    }

    /// Group by size (or name and size). `size` and `name_size` modes are
    /// then done; the others have their first work list.
    pub fn group_by_size(&mut self) -> Result<()> {
        if self.stage != Stage::Collected {
            return Err(Error::InvalidArgument("already grouped by size".into()));
        }
        self.merge_links();
        if self.opts.mode == Mode::NameSize {
            self.group_by_name_and_size();
            self.stage = Stage::Done;
            return Ok(());
        }
        let mut by_size: HashMap<u64, Vec<usize>> = HashMap::new();
        for (i, inode) in self.inodes.iter().enumerate() {
            if !inode.merged {
                by_size.entry(inode.size).or_default().push(i);
            }
        }
        let buckets: Vec<Vec<usize>> = by_size.into_values().filter(|b| b.len() > 1).collect();
        self.stats.size_candidates = buckets
            .iter()
            .flatten()
            .map(|&i| self.inodes[i].path_count() as u64)
            .sum();
        if self.opts.mode == Mode::Size {
            for bucket in buckets {
                let key = self.inodes[bucket[0]].size.to_string().into_bytes();
                self.groups.push((key, bucket));
            }
            self.stage = Stage::Done;
            return Ok(());
        }
        self.buckets = buckets;
        self.start(if self.exact_cas {
            Stage::Prefix
        } else {
            Stage::Partial
        });
        Ok(())
    }

    fn group_by_name_and_size(&mut self) {
        // Hard links may carry different names: key each name on its own,
        // splitting an inode's paths by name (rare).
        let mut by_key: HashMap<(Vec<u8>, u64), Vec<usize>> = HashMap::new();
        let mut split = Vec::new();
        for (i, inode) in self.inodes.iter().enumerate() {
            if inode.merged {
                continue;
            }
            let mut names: Vec<&[u8]> = inode.names().collect();
            names.sort_unstable();
            names.dedup();
            if names.len() == 1 {
                by_key
                    .entry((names[0].to_vec(), inode.size))
                    .or_default()
                    .push(i);
            } else {
                for name in names {
                    let paths: Vec<Vec<u8>> = inode
                        .paths(&self.dirs)
                        .into_iter()
                        .filter(|p| name_of(p) == name)
                        .collect();
                    split.push((name.to_vec(), i, paths));
                }
            }
        }
        for (name, of, paths) in split {
            let (size, id, mtime_ns) = {
                let source = &self.inodes[of];
                (source.size, source.id, source.mtime_ns())
            };
            let mut paths = paths.into_iter();
            let Some(first) = paths.next() else {
                continue; // a name is taken from a path: never empty
            };
            let mut piece = Inode::new(size, id, mtime_ns, self.dirs.intern(first), 0);
            let rest: Vec<Link> = paths.map(|p| (p.into_boxed_slice(), 0)).collect();
            if !rest.is_empty() {
                piece.add_links(rest);
            }
            self.inodes.push(piece);
            by_key
                .entry((name, size))
                .or_default()
                .push(self.inodes.len() - 1);
            // The pieces stand for its paths now: it is no copy or link set.
            self.inodes[of].failed = true;
        }
        for ((name, _), bucket) in by_key {
            if bucket.len() > 1 {
                self.groups.push((name, bucket));
            }
        }
        self.stats.size_candidates = self
            .groups
            .iter()
            .flat_map(|(_, b)| b)
            .map(|&i| self.inodes[i].path_count() as u64)
            .sum();
    }

    /// Whether a size group is split by prefix first: its files are large
    /// enough, and every file with a cas digest has its prefix too. A search
    /// resumed in the cas stage has both for the files it hashed (its digest
    /// file holds the prefixes first), and splitting again by those prefixes
    /// keeps the files they ruled out from being read; cas digests taken from
    /// an index come without prefixes, and reading prefixes for them would
    /// only add reads.
    fn splits_by_prefix(&self, bucket: &[usize]) -> bool {
        bucket
            .first()
            .is_some_and(|&i| self.inodes[i].size > PREFIX_FROM)
            && bucket.iter().all(|&i| {
                let inode = &self.inodes[i];
                inode.cas.is_none() || inode.prefix.is_some()
            })
    }

    /// Make the work list of `stage`: the bucketed inodes lacking its digest.
    fn start(&mut self, stage: Stage) {
        self.stage = stage;
        self.cursor = 0;
        let mut todo = Vec::new();
        for bucket in &self.buckets {
            if stage == Stage::Prefix && !self.splits_by_prefix(bucket) {
                continue;
            }
            for &i in bucket {
                let inode = &self.inodes[i];
                let known = match stage {
                    Stage::Prefix => inode.prefix.is_some(),
                    Stage::Partial => inode.cas.is_some(),
                    _ => inode.full.is_some(),
                };
                if known {
                    self.stats.reused += 1;
                } else {
                    todo.push(i);
                }
            }
        }
        // Listing order (inodes are numbered as their first path was
        // listed): a walk lists a directory's files together, so they are
        // read one after another, and sorting numbers is far cheaper than
        // sorting paths.
        todo.sort_unstable();
        self.todo = todo;
        if self.todo.is_empty() {
            self.advance();
        }
    }

    /// The prefix stage is done: split the groups it hashed by their prefix
    /// (a file whose prefix could not be read is in no group), keep the
    /// others as they are, and start on cas digests.
    fn advance_from_prefix(&mut self) {
        let mut next = Vec::with_capacity(self.buckets.len());
        for bucket in std::mem::take(&mut self.buckets) {
            if !self.splits_by_prefix(&bucket) {
                next.push(bucket);
                continue;
            }
            let mut by_prefix: HashMap<[u8; 16], Vec<usize>> = HashMap::new();
            for i in bucket {
                let inode = &self.inodes[i];
                if let (false, Some(p)) = (inode.failed, inode.prefix.as_deref().copied()) {
                    by_prefix.entry(p).or_default().push(i);
                }
            }
            next.extend(by_prefix.into_values().filter(|sub| sub.len() > 1));
        }
        self.buckets = next;
        self.start(Stage::Partial);
    }

    /// The current stage's work is done: split its buckets by the digest.
    fn advance(&mut self) {
        let stage = self.stage;
        if stage == Stage::Prefix {
            self.advance_from_prefix();
            return;
        }
        let mut next = Vec::new();
        for bucket in std::mem::take(&mut self.buckets) {
            let mut by_digest: HashMap<Digest, Vec<usize>> = HashMap::new();
            for i in bucket {
                let inode = &self.inodes[i];
                let digest = if stage == Stage::Partial {
                    inode.cas
                } else {
                    inode.full.as_deref().copied()
                };
                if let (false, Some(d)) = (inode.failed, digest) {
                    by_digest.entry(d).or_default().push(i);
                }
            }
            for (digest, sub) in by_digest {
                if sub.len() < 2 {
                    continue;
                }
                let size = self.inodes[sub[0]].size;
                let key = match (stage, self.opts.mode) {
                    (Stage::Partial, Mode::Content) => cas_id_hex(&digest),
                    (Stage::Partial, _) if self.exact_cas && size <= SMALL_FILE_MAX => hex(&digest),
                    (Stage::Partial, _) => {
                        next.push(sub);
                        continue;
                    }
                    _ => hex(&digest),
                };
                self.groups.push((key.into_bytes(), sub));
            }
        }
        if stage == Stage::Partial && self.opts.mode == Mode::Full {
            self.buckets = next;
            self.start(Stage::Full);
        } else {
            self.stage = Stage::Done;
            self.todo.clear();
            self.cursor = 0;
        }
    }

    /// Hash the next files of the current stage, at most `max_files` of
    /// them and (beyond the first) at most `max_bytes` of file size, in
    /// parallel. Cancelled: nothing is recorded and the page can be redone.
    pub fn hash_page(
        &mut self,
        max_files: usize,
        max_bytes: u64,
        cancel: &CancelToken,
    ) -> Result<Page> {
        let stage = self.stage;
        if !matches!(stage, Stage::Prefix | Stage::Partial | Stage::Full) {
            return Ok(Page::default());
        }
        let mut end = self.cursor;
        let mut bytes = 0u64;
        while end < self.todo.len() && end - self.cursor < max_files.max(1) {
            let size = self.inodes[self.todo[end]].size;
            if end > self.cursor && bytes.saturating_add(size) > max_bytes {
                break;
            }
            bytes = bytes.saturating_add(size);
            end += 1;
        }
        let picked: Vec<usize> = self.todo[self.cursor..end].to_vec();
        let exact = self.exact_cas;
        let paths: Vec<Vec<u8>> = picked
            .iter()
            .map(|&i| self.inodes[i].first_path(&self.dirs))
            .collect();
        let jobs: Vec<Listed<'_>> = picked
            .iter()
            .zip(&paths)
            .map(|(&i, path)| {
                let n = &self.inodes[i];
                (path.as_slice(), n.id, n.size, n.mtime_ns())
            })
            .collect();
        let stop = || cancel.is_cancelled();
        let results = content::map_items(
            &jobs,
            self.opts.threads,
            cancel,
            sys::ParentCache::default,
            |dirs, job| digest_of(dirs, job, stage, exact, &stop),
        )?;
        drop(jobs);
        let mut page = Page::default();
        for (i, result) in picked.into_iter().zip(results) {
            let inode = &mut self.inodes[i];
            match result {
                Ok(digest) => {
                    match stage {
                        Stage::Prefix => {
                            inode.prefix = Some(Box::new(prefix_of(&digest)));
                            self.stats.prefix_hashed += 1;
                            page.bytes += inode.size.min(PREFIX_LEN);
                        }
                        Stage::Partial => {
                            inode.cas = Some(digest);
                            self.stats.partial_hashed += 1;
                            page.bytes += inode.size;
                        }
                        _ => {
                            inode.full = Some(Box::new(digest));
                            self.stats.full_hashed += 1;
                            page.bytes += inode.size;
                        }
                    }
                    page.hashed.push(Hashed {
                        device: inode.id.0,
                        inode: inode.id.1,
                        size: inode.size,
                        mtime_ns: inode.mtime_ns(),
                        entry_ids: inode.entry_ids(),
                        stage,
                        digest,
                    });
                }
                Err(e) => {
                    inode.failed = true;
                    page.errors.push(e);
                }
            }
        }
        self.errors.extend(page.errors.iter().cloned());
        self.cursor = end;
        if self.cursor >= self.todo.len() {
            self.advance();
        }
        Ok(page)
    }

    /// The groups (largest files first) and the hard-link sets left over.
    pub fn into_report(mut self) -> Report {
        let mut groups: Vec<Group> = Vec::with_capacity(self.groups.len());
        for (key, bucket) in std::mem::take(&mut self.groups) {
            for &i in &bucket {
                self.inodes[i].grouped = true;
            }
            groups.push(into_group(key, bucket, &mut self.inodes, &self.dirs));
        }
        groups.sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.copies.cmp(&b.copies)));
        let mut links: Vec<Group> = Vec::new();
        for i in 0..self.inodes.len() {
            let inode = &self.inodes[i];
            if !inode.grouped && !inode.failed && inode.path_count() > 1 {
                let key = inode.size.to_string().into_bytes();
                links.push(into_group(key, vec![i], &mut self.inodes, &self.dirs));
            }
        }
        links.sort_by(|a, b| a.copies.cmp(&b.copies));
        Report {
            groups,
            links,
            errors: self.errors,
            stats: self.stats,
        }
    }
}

fn into_group(key: Vec<u8>, bucket: Vec<usize>, inodes: &mut [Inode], dirs: &Dirs) -> Group {
    let size = inodes[bucket[0]].size;
    let mut copies: Vec<Vec<Vec<u8>>> = bucket
        .into_iter()
        .map(|i| inodes[i].take_paths(dirs))
        .collect();
    copies.sort_unstable();
    Group { key, size, copies }
}

/// The digest of `stage` for one listed file: opened only if it is still
/// that file (device, inode) with the listed size and mtime.
fn digest_of(
    dirs: &mut sys::ParentCache,
    &(path, id, size, mtime_ns): &Listed<'_>,
    stage: Stage,
    exact_cas: bool,
    stop: &dyn Fn() -> bool,
) -> std::result::Result<Digest, FsError> {
    let (mut file, meta) = dirs
        .open_listed(path, id)
        .map_err(|e| FsError::from_io(path, &e))?;
    if meta.size != size || mtime_ns.is_some_and(|m| m != meta.mtime_ns) {
        return Err(FsError::other(
            path,
            0,
            "changed since it was listed (size or modification time differs)",
        ));
    }
    if stage == Stage::Prefix {
        return content::prefix_digest(&file, size.min(PREFIX_LEN), path);
    }
    let want = Want {
        cas_id: stage == Stage::Partial,
        checksum: stage == Stage::Full,
    };
    let hashes = hash_file(&mut file, &meta, want, path, stop)?;
    if stage == Stage::Full {
        return hashes
            .checksum
            .ok_or_else(|| FsError::other(path, 0, "no checksum computed"));
    }
    // Empty files have no cas_id; with `min_size=0` they still group, by
    // the digest of their size prefix alone.
    let mut digest = hashes
        .cas
        .unwrap_or_else(|| *blake3::hash(&0u64.to_le_bytes()).as_bytes());
    if !exact_cas {
        // Comparable with the cas_ids a library stores (their first 8 bytes).
        digest[8..].fill(0);
    }
    Ok(digest)
}

#[cfg(test)]
mod tests {
    use super::{Dirs, Inode};

    #[test]
    fn a_path_is_its_folder_and_its_name() {
        let mut dirs = Dirs::new();
        for path in [
            &b"/a/b/c\xff"[..],
            b"/a/b/d",
            b"/a/e",
            b"name",
            b"/top",
            b"/a/b/",
            b"",
        ] {
            let (dir, name) = dirs.intern(path.to_vec());
            assert_eq!(dirs.join(dir, &name), path);
        }
        // One entry per folder: "", "/a/b/", "/a/", "/".
        assert_eq!(dirs.names.len(), 4);
    }

    #[test]
    fn an_inode_stays_small() {
        // One per file searched: a million files, a million of these.
        assert!(
            std::mem::size_of::<Inode>() <= 120,
            "{}",
            std::mem::size_of::<Inode>()
        );
    }
}
