//! Duplicate grouping: the staged pipeline of the best tools.
//!
//! 1. group by size (or name and size), dropping sizes seen once;
//! 2. `content`/`full`: cas_id digest of one path per inode, only inside
//!    size groups that still have two or more inodes;
//! 3. `full`: for files over 100 KiB, whose cas_id only samples them, a full
//!    BLAKE3 inside cas_id groups that still have two or more inodes. Files up
//!    to 100 KiB are already hashed whole by step 2 (its 256-bit digest covers
//!    every byte), so they need no second read.
//!
//! Hard links (paths sharing device and inode) are hashed once and reported as
//! links of one copy, never as wasted space.

use std::collections::HashMap;

use crate::cancel::CancelToken;
use crate::content::{self, cas_id_hex, hex, Digest, Want, SMALL_FILE_MAX};
use crate::error::{Error, FsError, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Size,
    NameSize,
    Content,
    Full,
}

impl Mode {
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "size" => Ok(Mode::Size),
            "name_size" => Ok(Mode::NameSize),
            "content" => Ok(Mode::Content),
            "full" => Ok(Mode::Full),
            other => Err(Error::InvalidArgument(format!(
                "unknown duplicate mode {other:?}; expected one of size, name_size, content, full"
            ))),
        }
    }
}

/// A regular file to consider.
#[derive(Clone, Debug)]
pub struct FileRecord {
    pub path: Vec<u8>,
    pub size: u64,
    pub device: u64,
    pub inode: u64,
}

/// A set of files with the same key. `copies` holds one list per distinct
/// inode: the paths that are hard links to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    /// The grouping key: ASCII (a size or hex digest), or a file name's bytes.
    pub key: Vec<u8>,
    pub size: u64,
    pub copies: Vec<Vec<Vec<u8>>>,
}

impl Group {
    /// Bytes that deleting all but one copy would free.
    pub fn wasted(&self) -> u64 {
        self.size * (self.copies.len() as u64).saturating_sub(1)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub files: u64,
    pub size_candidates: u64,
    pub partial_hashed: u64,
    pub full_hashed: u64,
}

#[derive(Debug, Default)]
pub struct Report {
    pub groups: Vec<Group>,
    /// Inodes with several paths that are not part of any duplicate group.
    pub links: Vec<Group>,
    pub errors: Vec<FsError>,
    pub stats: Stats,
}

#[derive(Clone, Debug)]
pub struct Options {
    pub mode: Mode,
    pub min_size: u64,
    pub max_size: Option<u64>,
    pub threads: Option<usize>,
}

/// One inode: its size and every path that names it.
struct Inode {
    size: u64,
    /// (device, inode) as listed: hashing verifies it is still that file.
    id: (u64, u64),
    paths: Vec<Vec<u8>>,
}

fn name_of(path: &[u8]) -> &[u8] {
    path.rsplit(|&b| b == b'/').next().unwrap_or(path)
}

/// Hash one path per inode in parallel and bucket the inodes by digest;
/// inodes that fail are dropped and their errors collected.
fn hash_inodes(
    inodes: Vec<Inode>,
    opts: &Options,
    cancel: &CancelToken,
    errors: &mut Vec<FsError>,
    f: impl Fn(&[u8], (u64, u64)) -> std::result::Result<Digest, FsError> + Sync + Send,
) -> Result<HashMap<Digest, Vec<Inode>>> {
    let reps: Vec<(&[u8], (u64, u64))> = inodes
        .iter()
        .map(|i| (i.paths[0].as_slice(), i.id))
        .collect();
    let digests = content::map_items(&reps, opts.threads, cancel, |(path, id)| f(path, *id))?;
    let mut buckets: HashMap<Digest, Vec<Inode>> = HashMap::new();
    for (inode, digest) in inodes.into_iter().zip(digests) {
        match digest {
            Ok(d) => buckets.entry(d).or_default().push(inode),
            Err(e) => errors.push(e),
        }
    }
    Ok(buckets)
}

/// The cas_id digest, extended to empty files (which have no cas_id) as the
/// digest of the size prefix alone, so `min_size=0` groups them like the rest.
fn cas_digest_or_empty(
    path: &[u8],
    id: (u64, u64),
    stop: &dyn Fn() -> bool,
) -> std::result::Result<Digest, FsError> {
    let want = Want {
        cas_id: true,
        checksum: false,
    };
    Ok(content::hash_listed(path, id, want, stop)?
        .cas
        .unwrap_or_else(|| *blake3::hash(&0u64.to_le_bytes()).as_bytes()))
}

/// Full-content digest of a listed file.
fn full_digest_listed(
    path: &[u8],
    id: (u64, u64),
    stop: &dyn Fn() -> bool,
) -> std::result::Result<Digest, FsError> {
    let want = Want {
        cas_id: false,
        checksum: true,
    };
    content::hash_listed(path, id, want, stop)?
        .checksum
        .ok_or_else(|| FsError::other(path, 0, "no checksum computed"))
}

/// Group `files` into duplicate sets according to `opts`.
pub fn find(files: Vec<FileRecord>, opts: &Options, cancel: &CancelToken) -> Result<Report> {
    let mut report = Report::default();
    report.stats.files = files.len() as u64;
    // Collapse hard links first: everything below works per inode.
    let mut by_inode: HashMap<(u64, u64), Inode> = HashMap::new();
    for file in files {
        if file.size < opts.min_size || opts.max_size.is_some_and(|max| file.size > max) {
            continue;
        }
        by_inode
            .entry((file.device, file.inode))
            .or_insert_with(|| Inode {
                size: file.size,
                id: (file.device, file.inode),
                paths: Vec::new(),
            })
            .paths
            .push(file.path);
    }
    let inodes: Vec<Inode> = by_inode.into_values().collect();

    let mut groups: Vec<(Vec<u8>, Vec<Inode>)> = Vec::new();
    let mut singles: Vec<Inode> = Vec::new();
    if opts.mode == Mode::NameSize {
        // Hard links may carry different names: key each path on its own.
        let mut by_key: HashMap<(Vec<u8>, u64), Vec<Inode>> = HashMap::new();
        for inode in inodes {
            let mut names: Vec<&[u8]> = inode.paths.iter().map(|p| name_of(p)).collect();
            names.sort_unstable();
            names.dedup();
            if names.len() > 1 {
                // Rare: split the inode's paths by name.
                for name in names.into_iter().map(<[u8]>::to_vec).collect::<Vec<_>>() {
                    let paths = inode
                        .paths
                        .iter()
                        .filter(|p| name_of(p) == name)
                        .cloned()
                        .collect();
                    by_key.entry((name, inode.size)).or_default().push(Inode {
                        size: inode.size,
                        id: inode.id,
                        paths,
                    });
                }
            } else {
                let name = names[0].to_vec();
                by_key.entry((name, inode.size)).or_default().push(inode);
            }
        }
        for ((name, _), bucket) in by_key {
            if bucket.len() > 1 {
                groups.push((name, bucket));
            } else {
                singles.extend(bucket);
            }
        }
    } else {
        let mut by_size: HashMap<u64, Vec<Inode>> = HashMap::new();
        for inode in inodes {
            by_size.entry(inode.size).or_default().push(inode);
        }
        let (size_groups, lone): (Vec<Vec<Inode>>, Vec<Vec<Inode>>) =
            by_size.into_values().partition(|bucket| bucket.len() > 1);
        singles.extend(lone.into_iter().flatten());
        report.stats.size_candidates = size_groups
            .iter()
            .flatten()
            .map(|i| i.paths.len() as u64)
            .sum();
        match opts.mode {
            Mode::Size => {
                for bucket in size_groups {
                    groups.push((bucket[0].size.to_string().into_bytes(), bucket));
                }
            }
            Mode::Content | Mode::Full => {
                let candidates: Vec<Inode> = size_groups.into_iter().flatten().collect();
                report.stats.partial_hashed = candidates.len() as u64;
                let by_digest =
                    hash_inodes(candidates, opts, cancel, &mut report.errors, |p, id| {
                        cas_digest_or_empty(p, id, &|| cancel.is_cancelled())
                    })?;
                let mut need_full = Vec::new();
                for (digest, bucket) in by_digest {
                    if bucket.len() < 2 {
                        singles.extend(bucket);
                    } else if opts.mode == Mode::Full && bucket[0].size > SMALL_FILE_MAX {
                        need_full.extend(bucket);
                    } else {
                        let key = if opts.mode == Mode::Full {
                            hex(&digest)
                        } else {
                            cas_id_hex(&digest)
                        };
                        groups.push((key.into_bytes(), bucket));
                    }
                }
                if cancel.is_cancelled() {
                    return Err(Error::Cancelled);
                }
                report.stats.full_hashed = need_full.len() as u64;
                let by_full = hash_inodes(need_full, opts, cancel, &mut report.errors, |p, id| {
                    full_digest_listed(p, id, &|| cancel.is_cancelled())
                })?;
                for (digest, bucket) in by_full {
                    if bucket.len() > 1 {
                        groups.push((hex(&digest).into_bytes(), bucket));
                    } else {
                        singles.extend(bucket);
                    }
                }
            }
            Mode::NameSize => unreachable!("handled above"),
        }
    }

    report.groups = groups
        .into_iter()
        .map(|(key, bucket)| into_group(key, bucket))
        .collect();
    report
        .groups
        .sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.copies.cmp(&b.copies)));
    report.links = singles
        .into_iter()
        .filter(|i| i.paths.len() > 1)
        .map(|i| into_group(i.size.to_string().into_bytes(), vec![i]))
        .collect();
    report.links.sort_by(|a, b| a.copies.cmp(&b.copies));
    Ok(report)
}

fn into_group(key: Vec<u8>, bucket: Vec<Inode>) -> Group {
    let size = bucket[0].size;
    let mut copies: Vec<Vec<Vec<u8>>> = bucket
        .into_iter()
        .map(|mut i| {
            i.paths.sort_unstable();
            i.paths
        })
        .collect();
    copies.sort_unstable();
    Group { key, size, copies }
}
