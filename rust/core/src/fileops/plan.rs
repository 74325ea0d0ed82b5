//! The plan of a copy or move: every entry to create, in walk order (a
//! folder before its contents), with the conflict policy already applied.
//!
//! Planning reads and decides; nothing is written until the plan is
//! complete, so an `abort` policy stops before the first byte and the
//! transfer can be resumed by index (the plan is saved to a file and read
//! back by a resumed job: a walk's order is not repeatable).

use std::collections::{HashMap, HashSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::cancel::CancelToken;
use crate::error::{Error, FsError, Result};
use crate::sys::{self, Kind};
use crate::walk::{join, WalkOptions, Walker};

/// What to do when a destination name is taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Conflict {
    /// Stop before writing anything (the default).
    Abort,
    Skip,
    Overwrite,
    /// Copy under a free name: "name (1).ext".
    Rename,
}

impl Conflict {
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "abort" => Ok(Conflict::Abort),
            "skip" => Ok(Conflict::Skip),
            "overwrite" => Ok(Conflict::Overwrite),
            "rename" => Ok(Conflict::Rename),
            other => Err(Error::InvalidArgument(format!(
                "unknown conflict policy {other:?}; expected abort, skip, overwrite or rename"
            ))),
        }
    }
}

/// What the transfer does with one entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    /// The destination name was free when planned.
    Create,
    /// Replace what is there (an existing folder is merged instead).
    Overwrite,
    /// Create under this other name, in the same folder.
    RenameTo(#[serde(with = "serde_bytes")] Vec<u8>),
}

/// One entry of the source, as listed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Item {
    /// Index of its source root in [`Plan::sources`].
    pub root: u32,
    /// Path below the source root ("" for the root itself).
    #[serde(with = "serde_bytes")]
    pub rel: Vec<u8>,
    /// Path below the target root when it differs from `rel` (the entry is
    /// inside a folder copied under a new name by the `rename` policy).
    pub dest_rel: Option<serde_bytes::ByteBuf>,
    /// [`Kind`] as a number.
    pub kind: u8,
    pub mode: u32,
    pub mtime_ns: i64,
    pub size: u64,
    pub device: u64,
    pub inode: u64,
    /// An earlier item that is the same file (a hard link inside the
    /// copied set): this one becomes a link to that one's copy.
    pub link_to: Option<u64>,
    pub action: Action,
}

impl Item {
    pub fn kind(&self) -> Kind {
        match self.kind {
            0 => Kind::File,
            1 => Kind::Dir,
            2 => Kind::Symlink,
            _ => Kind::Other,
        }
    }
}

/// A planned copy: sources, where each goes, and every entry.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Plan {
    #[serde(with = "serde_bytes_vecs")]
    pub sources: Vec<Vec<u8>>,
    /// Where each source root is copied to (its own new name).
    #[serde(with = "serde_bytes_vecs")]
    pub targets: Vec<Vec<u8>>,
    pub items: Vec<Item>,
    /// Bytes of the regular files to copy (hard links counted once).
    pub bytes: u64,
    /// Destination paths that were taken, with the policy's decision.
    #[serde(with = "serde_bytes_vecs")]
    pub conflicts: Vec<Vec<u8>>,
    /// Entries left out: taken names under `skip`, folders blocked by a
    /// file under `overwrite`.
    pub skipped: u64,
}

mod serde_bytes_vecs {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use serde_bytes::ByteBuf;

    pub fn serialize<S: Serializer>(v: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
        let bufs: Vec<ByteBuf> = v.iter().map(|b| ByteBuf::from(b.clone())).collect();
        bufs.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
        let bufs: Vec<ByteBuf> = Vec::deserialize(d)?;
        Ok(bufs.into_iter().map(ByteBuf::into_vec).collect())
    }
}

impl Plan {
    /// The source path of `item`.
    pub fn source(&self, item: &Item) -> Vec<u8> {
        let root = &self.sources[item.root as usize];
        if item.rel.is_empty() {
            root.clone()
        } else {
            join(root, &item.rel)
        }
    }

    /// The destination path of `item` (its final name, after a rename
    /// decision for it or for a folder above it).
    pub fn target(&self, item: &Item) -> Vec<u8> {
        let root = &self.targets[item.root as usize];
        let rel: &[u8] = item.dest_rel.as_deref().unwrap_or(&item.rel);
        let path = if rel.is_empty() {
            root.clone()
        } else {
            join(root, rel)
        };
        match &item.action {
            Action::RenameTo(name) => with_name(&path, name),
            _ => path,
        }
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let bytes = rmp_serde::to_vec(self)
            .map_err(|e| Error::InvalidState(format!("cannot encode the copy plan: {e}")))?;
        // Written whole to a new name, then renamed: a crash never leaves
        // half a plan under the name a resume reads.
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, bytes)
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|e| Error::InvalidArgument(format!("cannot write {}: {e}", path.display())))
    }

    pub fn load(path: &Path) -> Result<Plan> {
        let bytes = std::fs::read(path)
            .map_err(|e| Error::InvalidState(format!("cannot read {}: {e}", path.display())))?;
        rmp_serde::from_slice(&bytes)
            .map_err(|e| Error::InvalidState(format!("damaged copy plan {}: {e}", path.display())))
    }
}

/// `path` with its last component replaced by `name`.
fn with_name(path: &[u8], name: &[u8]) -> Vec<u8> {
    match path.iter().rposition(|&b| b == b'/') {
        Some(cut) => join(&path[..cut.max(1)], name),
        None => name.to_vec(),
    }
}

/// The longest file name Linux filesystems take, in bytes.
const NAME_MAX: usize = 255;

/// "stem (n).ext", no longer than [`NAME_MAX`]: a long stem is shortened
/// (never inside a UTF-8 character), so a 255-byte name still gets a free
/// name instead of a "File name too long" error.
fn numbered(name: &[u8], n: u64) -> Vec<u8> {
    let (stem, ext) = match name.iter().rposition(|&b| b == b'.') {
        Some(dot) if dot > 0 && name.len() - dot < NAME_MAX / 2 => (&name[..dot], &name[dot..]),
        _ => (name, &b""[..]),
    };
    let number = format!(" ({n})");
    let room = NAME_MAX.saturating_sub(number.len() + ext.len());
    let mut cut = stem.len().min(room);
    // Back off continuation bytes (0b10xx_xxxx), at most three (a UTF-8
    // character is at most four bytes): cut before a character. A name
    // that is not UTF-8 is cut where it must be.
    let room_cut = cut;
    while cut > 0 && cut < stem.len() && stem[cut] & 0xC0 == 0x80 && room_cut - cut < 3 {
        cut -= 1;
    }
    if cut < stem.len() && stem[cut] & 0xC0 == 0x80 {
        cut = room_cut;
    }
    [&stem[..cut], number.as_bytes(), ext].concat()
}

/// A free name beside `path`: "name (1).ext", "name (2).ext", ...
fn free_name(path: &[u8], taken: &HashSet<Vec<u8>>) -> Vec<u8> {
    let name = path.rsplit(|&b| b == b'/').next().unwrap_or(path);
    let mut n = 1u64;
    loop {
        let candidate = numbered(name, n);
        let full = with_name(path, &candidate);
        if !taken.contains(&full) && sys::stat_path(&full, false).is_err() {
            return candidate;
        }
        n += 1;
    }
}

/// Plan copying each of `sources` to the matching path of `targets`.
/// Returns the plan and the entries that could not be listed.
pub fn plan_copy(
    sources: &[Vec<u8>],
    targets: &[Vec<u8>],
    conflict: Conflict,
    cancel: &CancelToken,
) -> Result<(Plan, Vec<FsError>)> {
    if sources.len() != targets.len() {
        return Err(Error::InvalidArgument(
            "sources and targets must have the same length".into(),
        ));
    }
    let mut planner = Planner {
        plan: Plan {
            sources: sources.to_vec(),
            targets: targets.to_vec(),
            ..Plan::default()
        },
        conflict,
        absent: HashSet::new(),
        dropped: Vec::new(),
        renamed: Vec::new(),
        first_of_inode: HashMap::new(),
        taken: HashSet::new(),
    };
    let mut errors = Vec::new();
    for (root, source) in sources.iter().enumerate() {
        let meta =
            sys::stat_path(source, false).map_err(|e| Error::Fs(FsError::from_io(source, &e)))?;
        planner.add(root as u32, Vec::new(), &meta);
        if meta.kind != Kind::Dir || planner.dropped.iter().any(|d| d.0 == root as u32) {
            continue;
        }
        let opts = WalkOptions {
            batch_size: 4096,
            ..WalkOptions::default()
        };
        let mut walker = Walker::new(std::slice::from_ref(source), opts, cancel.clone())?;
        while let Some(mut batch) = walker.next_batch()? {
            errors.append(&mut batch.errors);
            for i in 0..batch.len() {
                let path = batch.path(i);
                let rel = path[source.len()..]
                    .strip_prefix(b"/")
                    .unwrap_or(&path[source.len()..])
                    .to_vec();
                let meta = sys::Meta {
                    kind: match batch.kinds[i] {
                        0 => Kind::File,
                        1 => Kind::Dir,
                        2 => Kind::Symlink,
                        _ => Kind::Other,
                    },
                    size: batch.sizes[i],
                    mtime_ns: batch.mtimes_ns[i],
                    ctime_ns: batch.ctimes_ns[i],
                    inode: batch.inodes[i],
                    device: batch.devices[i],
                    mode: batch.modes[i],
                    nlink: batch.nlinks[i],
                };
                planner.add(root as u32, rel, &meta);
            }
        }
    }
    if cancel.is_cancelled() {
        return Err(Error::Cancelled);
    }
    Ok((planner.plan, errors))
}

struct Planner {
    plan: Plan,
    conflict: Conflict,
    /// Folders (root, rel) whose destination does not exist: nothing below
    /// them can be taken, so their entries need no look.
    absent: HashSet<(u32, Vec<u8>)>,
    /// Folders left out (and their contents with them).
    dropped: Vec<(u32, Vec<u8>)>,
    /// Folders copied under another name: (root, rel, new name).
    renamed: Vec<(u32, Vec<u8>, Vec<u8>)>,
    first_of_inode: HashMap<(u64, u64), u64>,
    /// Under `rename`: every destination path planned so far, so that two
    /// entries never get one name (a new "f (1).txt" and a source file of
    /// that name).
    taken: HashSet<Vec<u8>>,
}

fn parent_rel(rel: &[u8]) -> Option<&[u8]> {
    if rel.is_empty() {
        return None;
    }
    Some(match rel.iter().rposition(|&b| b == b'/') {
        Some(cut) => &rel[..cut],
        None => b"",
    })
}

fn under(rel: &[u8], dir: &[u8]) -> bool {
    dir.is_empty() && !rel.is_empty()
        || rel.len() > dir.len() && rel.starts_with(dir) && rel[dir.len()] == b'/'
        || rel == dir
}

impl Planner {
    fn add(&mut self, root: u32, rel: Vec<u8>, meta: &sys::Meta) {
        // Below a folder copied under a new name, the destination's rel
        // path differs from the source's: `dest` is the one that counts for
        // everything on the destination side.
        let dest = self.renamed_rel(root, rel.clone());
        if self
            .dropped
            .iter()
            .any(|(r, d)| *r == root && under(&dest, d))
        {
            self.plan.skipped += 1;
            return;
        }
        let parent_absent =
            parent_rel(&dest).is_some_and(|p| self.absent.contains(&(root, p.to_vec())));
        let dest_rel = (dest != rel).then(|| serde_bytes::ByteBuf::from(dest.clone()));
        let item = Item {
            root,
            rel,
            dest_rel,
            kind: meta.kind as u8,
            mode: meta.mode,
            mtime_ns: meta.mtime_ns,
            size: meta.size,
            device: meta.device,
            inode: meta.inode,
            link_to: None,
            action: Action::Create,
        };
        let target = self.plan.target(&item);
        let existing = if self.conflict == Conflict::Rename && self.taken.contains(&target) {
            // Planned for another entry already: taken as surely as on disk.
            Some(sys::Meta {
                kind: Kind::File,
                ..*meta
            })
        } else if parent_absent {
            None
        } else {
            sys::stat_path(&target, false).ok()
        };
        let mut item = item;
        match existing {
            None => {
                if meta.kind == Kind::Dir {
                    self.absent.insert((root, dest.clone()));
                }
                if self.conflict == Conflict::Rename {
                    self.taken.insert(target.clone());
                }
            }
            Some(there) if meta.kind == Kind::Dir && there.kind == Kind::Dir => {
                // Folders merge: their entries are looked at one by one.
            }
            Some(there) => {
                self.plan.conflicts.push(target.clone());
                let blocked = there.kind == Kind::Dir || meta.kind == Kind::Dir;
                match self.conflict {
                    // The job refuses the whole plan; keep listing so every
                    // conflict is reported at once.
                    Conflict::Abort => {}
                    Conflict::Skip => {
                        self.drop_entry(root, &item, meta.kind);
                        return;
                    }
                    // A file never replaces a folder, nor a folder a file.
                    Conflict::Overwrite if blocked => {
                        self.drop_entry(root, &item, meta.kind);
                        return;
                    }
                    Conflict::Overwrite => item.action = Action::Overwrite,
                    Conflict::Rename => {
                        let name = free_name(&target, &self.taken);
                        let new_target = with_name(&target, &name);
                        self.taken.insert(new_target.clone());
                        if item.rel.is_empty() {
                            // A root: everything below follows its target.
                            self.plan.targets[root as usize] = new_target;
                            if meta.kind == Kind::Dir {
                                self.absent.insert((root, Vec::new()));
                            }
                        } else {
                            if meta.kind == Kind::Dir {
                                // Keyed by the source rel: entries below it
                                // find it before their own rel is rewritten.
                                self.renamed.push((root, item.rel.clone(), name.clone()));
                                self.absent.insert((root, with_name(&dest, &name)));
                            }
                            item.action = Action::RenameTo(name);
                        }
                    }
                }
            }
        }
        if meta.kind == Kind::File && meta.nlink > 1 {
            let index = self.plan.items.len() as u64;
            match self.first_of_inode.get(&(meta.device, meta.inode)) {
                Some(&first) => item.link_to = Some(first),
                None => {
                    self.first_of_inode.insert((meta.device, meta.inode), index);
                }
            }
        }
        if meta.kind == Kind::File && item.link_to.is_none() {
            self.plan.bytes += meta.size;
        }
        self.plan.items.push(item);
    }

    fn drop_entry(&mut self, root: u32, item: &Item, kind: Kind) {
        self.plan.skipped += 1;
        if kind == Kind::Dir {
            let dest: &[u8] = item.dest_rel.as_deref().unwrap_or(&item.rel);
            self.dropped.push((root, dest.to_vec()));
        }
    }

    /// `rel` with a renamed folder above it replaced by its new name.
    fn renamed_rel(&self, root: u32, rel: Vec<u8>) -> Vec<u8> {
        for (r, dir, name) in self.renamed.iter().rev() {
            if *r == root && rel.len() > dir.len() && under(&rel, dir) {
                let mut out = with_name(dir, name);
                out.extend_from_slice(&rel[dir.len()..]);
                return out;
            }
        }
        rel
    }
}

#[cfg(test)]
mod tests {
    use super::{numbered, NAME_MAX};

    #[test]
    fn numbered_names_fit_and_keep_characters_whole() {
        assert_eq!(numbered(b"f.txt", 1), b"f (1).txt");
        assert_eq!(numbered(b".hidden", 2), b".hidden (2)");
        assert_eq!(numbered(b"noext", 10), b"noext (10)");
        let long = [vec![b'x'; 251], b".jpg".to_vec()].concat();
        let got = numbered(&long, 1);
        assert_eq!(got.len(), NAME_MAX);
        assert!(got.ends_with(b"x (1).jpg"));
        // 'é' is two bytes: a cut never splits one.
        let accents = [b"\xc3\xa9".repeat(126), b".png".to_vec()].concat();
        let got = numbered(&accents, 7);
        assert!(got.len() <= NAME_MAX);
        assert!(std::str::from_utf8(&got).is_ok());
        assert!(got.ends_with(" (7).png".as_bytes()));
        // Not UTF-8 at all: still fits.
        let raw = vec![0xFFu8; 255];
        assert_eq!(numbered(&raw, 3).len(), NAME_MAX);
        // Bytes that look like continuations only: the stem is kept.
        let odd = vec![0x80u8; 255];
        assert_eq!(numbered(&odd, 1).len(), NAME_MAX);
    }
}
