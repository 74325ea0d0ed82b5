//! Opening files listed earlier through a kept folder handle
//! (`sys::ParentCache`): the same files and the same refusals as opening each
//! path on its own, for paths of any length, odd names, and files or folders
//! swapped since they were listed.

use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use phasekit_core::sys::{self, ParentCache};

fn bytes(p: &Path) -> Vec<u8> {
    p.as_os_str().as_bytes().to_vec()
}

fn id(p: &Path) -> (u64, u64) {
    let m = fs::symlink_metadata(p).expect("stat");
    (m.dev(), m.ino())
}

fn read(cache: &mut ParentCache, p: &Path, expected: (u64, u64)) -> std::io::Result<Vec<u8>> {
    let (mut file, _) = cache.open_listed(&bytes(p), expected)?;
    let mut out = Vec::new();
    file.read_to_end(&mut out)?;
    Ok(out)
}

/// A folder nested deep enough that its paths exceed the kernel's PATH_MAX,
/// made one level at a time beneath a handle on the level above (a plain
/// `mkdir` of the whole path would fail with ENAMETOOLONG).
fn deep_folder(root: &Path) -> PathBuf {
    use rustix::fs::{mkdirat, openat, Mode, OFlags};
    let piece = "d".repeat(200);
    let name = std::ffi::CString::new(piece.clone()).expect("name");
    let mut dir = root.to_path_buf();
    let mut fd = openat(
        rustix::fs::CWD,
        root,
        OFlags::DIRECTORY | OFlags::RDONLY,
        Mode::empty(),
    )
    .expect("open root");
    while dir.as_os_str().len() < 4300 {
        mkdirat(&fd, &name, Mode::from_raw_mode(0o755)).expect("mkdir level");
        fd = openat(
            &fd,
            &name,
            OFlags::DIRECTORY | OFlags::RDONLY,
            Mode::empty(),
        )
        .expect("open level");
        dir.push(&piece);
    }
    dir
}

#[test]
fn folder_runs_odd_names_and_long_paths_read_the_listed_files() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    let odd = std::ffi::OsStr::from_bytes(b"caf\xe9\nname");
    fs::create_dir(root.join("a")).expect("mkdir");
    let files: Vec<PathBuf> = vec![
        root.join("a").join("one"),
        root.join("a").join(odd),
        root.join("top"),
        root.join("a").join("two"),
    ];
    for (i, f) in files.iter().enumerate() {
        fs::write(f, format!("content {i}")).expect("write");
    }
    let mut cache = ParentCache::default();
    for (i, f) in files.iter().enumerate() {
        assert_eq!(
            read(&mut cache, f, id(f)).expect("open"),
            format!("content {i}").into_bytes()
        );
    }

    let deep = deep_folder(root);
    {
        let long = deep.join("long-file");
        // Written through a handle on its folder: its full path is too long
        // for a plain open.
        let dir = sys::open_dir(&bytes(&deep), false).expect("open deep folder");
        let name = std::ffi::CString::new("long-file").expect("name");
        let fd = rustix::fs::openat(
            &dir,
            &name,
            rustix::fs::OFlags::CREATE | rustix::fs::OFlags::WRONLY,
            rustix::fs::Mode::from_raw_mode(0o644),
        )
        .expect("create long file");
        rustix::io::write(&fd, b"deep").expect("write");
        let meta = sys::stat_path(&bytes(&long), false).expect("stat long");
        let got = read(&mut cache, &long, meta.file_id()).expect("open long");
        assert_eq!(got, b"deep");
        // And back to a short folder.
        assert_eq!(
            read(&mut cache, &files[0], id(&files[0])).expect("open"),
            b"content 0"
        );
    }
}

#[test]
fn files_and_folders_swapped_since_listing_are_refused_or_still_the_listed_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    fs::create_dir(root.join("a")).expect("mkdir");
    let one = root.join("a").join("one");
    let two = root.join("a").join("two");
    fs::write(&one, b"one").expect("write");
    fs::write(&two, b"two").expect("write");
    let (one_id, two_id) = (id(&one), id(&two));
    // Kept alive under other names: a file made later cannot reuse their
    // inode numbers and pass for them.
    fs::hard_link(&one, root.join("keep-one")).expect("link");
    fs::hard_link(&two, root.join("keep-two")).expect("link");
    let mut cache = ParentCache::default();
    assert_eq!(read(&mut cache, &one, one_id).expect("open"), b"one");

    // A file replaced by a symlink to another file: refused, never followed.
    fs::remove_file(&two).expect("rm");
    std::os::unix::fs::symlink(&one, &two).expect("symlink");
    assert!(read(&mut cache, &two, two_id).is_err());
    // A file replaced by another file: refused.
    fs::remove_file(&two).expect("rm");
    fs::write(&two, b"new").expect("write");
    assert!(read(&mut cache, &two, two_id).is_err());

    // The folder renamed away and another put in its place: the kept handle
    // still reaches the listed file (its identity is checked), and a file of
    // the new folder is refused under the old identity.
    fs::rename(root.join("a"), root.join("moved")).expect("rename");
    fs::create_dir(root.join("a")).expect("mkdir");
    fs::write(&one, b"impostor").expect("write");
    assert_eq!(read(&mut cache, &one, one_id).expect("kept handle"), b"one");
    let mut fresh = ParentCache::default();
    assert!(read(&mut fresh, &one, one_id).is_err());

    // A missing folder reports the path's own error.
    let gone = root.join("nope").join("file");
    let err = read(&mut fresh, &gone, (0, 0)).expect_err("missing");
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
}
