//! Validation of an indexed location: planted faults are found by the modes
//! that can see them, an untouched tree reports nothing, a page done twice
//! changes nothing, complete mode stores missing checksums.

use std::collections::BTreeSet;
use std::fs::{self, File, FileTimes, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use phasekit_core::content::Want;
use phasekit_core::library::validate::{
    name_issues, validate_page, Category, ValidateMode, DEPTH_MAX, NAME_MAX_PORTABLE,
};
use phasekit_core::library::{hash_missing, IndexMode, LibraryStore, ScanWriter};
use phasekit_core::walk::{WalkOptions, Walker};
use phasekit_core::CancelToken;

#[macro_use]
mod common;
use common::Libraries;

on_both_stores!(
    super::common::Sqlite::files();
    planted_faults_are_found_by_the_modes_that_see_them,
    a_rotted_small_file_is_found_by_integrity_and_kind_changes_are_reported,
    a_shallow_index_leaves_content_unverified,
    bad_mode_and_unknown_location_are_errors,
);

fn bytes(p: &Path) -> Vec<u8> {
    p.as_os_str().as_bytes().to_vec()
}

fn index(db: &mut (impl LibraryStore + Send), root: &Path, mode: IndexMode) -> i64 {
    let loc = db.add_location(&bytes(root), mode, true).unwrap();
    let opts = WalkOptions {
        batch_size: 7,
        threads: 2,
        hash: Want {
            cas_id: mode != IndexMode::Shallow,
            checksum: false,
        },
        ..WalkOptions::default()
    };
    let mut walker = Walker::new(&[bytes(root)], opts, CancelToken::new()).unwrap();
    let mut writer = ScanWriter::new(db, loc.id, true).unwrap();
    while let Some(batch) = walker.next_batch().unwrap() {
        assert!(writer.write_batch(db, &batch).unwrap().is_empty());
    }
    writer.sweep(db).unwrap();
    if mode == IndexMode::Deep {
        hash_missing(db, loc.id, 0, 1000, true, None, &CancelToken::new()).unwrap();
    }
    loc.id
}

/// Validate the whole location in pages of 3; the (path, category) pairs found.
fn validate(
    db: &mut (impl LibraryStore + Send),
    loc: i64,
    run: &str,
    mode: ValidateMode,
) -> BTreeSet<(String, String)> {
    db.clear_issues(loc).unwrap();
    let mut after = 0;
    loop {
        let pass =
            validate_page(db, loc, run, after, 3, mode, Some(2), &CancelToken::new()).unwrap();
        if pass.looked_at == 0 {
            break;
        }
        after = pass.last_id;
    }
    db.issues(run, (0, ""), 10_000)
        .unwrap()
        .into_iter()
        .map(|i| (String::from_utf8_lossy(&i.path).into_owned(), i.category))
        .collect()
}

fn pairs(items: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    items
        .iter()
        .map(|(p, c)| ((*p).to_string(), (*c).to_string()))
        .collect()
}

fn big(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 131 + (i >> 9)) as u8).collect()
}

fn tree(root: &Path) {
    fs::create_dir_all(root.join("sub")).unwrap();
    fs::write(root.join("big.bin"), big(3 << 20)).unwrap();
    fs::write(root.join("small.txt"), b"small file").unwrap();
    fs::write(root.join("sub/cut.txt"), b"this file gets truncated").unwrap();
    fs::write(root.join("sub/gone.txt"), b"deleted").unwrap();
    fs::write(root.join("sub/chmod.txt"), b"mode changes").unwrap();
    fs::write(root.join("sub/zero"), b"").unwrap();
    std::os::unix::fs::symlink("small.txt", root.join("link")).unwrap();
}

/// Flip one byte in the middle of `path` (not read by cas_id's samples)
/// and put its mtime back.
fn flip_middle(path: &Path) {
    let meta = fs::metadata(path).unwrap();
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let at = meta.len() / 2 + 12_345;
    f.seek(SeekFrom::Start(at)).unwrap();
    f.write_all(&[0x5a ^ big(at as usize + 1)[at as usize]])
        .unwrap();
    f.set_times(FileTimes::new().set_modified(meta.modified().unwrap()))
        .unwrap();
}

fn planted_faults_are_found_by_the_modes_that_see_them(libraries: &mut impl Libraries) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("tree");
    tree(&root);
    let mut db = libraries.open();
    let loc = index(&mut db, &root, IndexMode::Content);

    for mode in [
        ValidateMode::Basic,
        ValidateMode::Integrity,
        ValidateMode::Complete,
    ] {
        assert!(validate(&mut db, loc, "clean", mode).is_empty(), "{mode:?}");
    }
    // The first complete run stored every file's checksum, except the
    // empty file's: it has none, and that is no issue either.
    let rows = db.entries(loc, 0, 100).unwrap();
    assert!(rows
        .iter()
        .filter(|e| e.kind == 0)
        .all(|e| e.checksum.is_some() == (e.size > 0)));
    assert!(rows.iter().any(|e| e.kind == 0 && e.size == 0));

    flip_middle(&root.join("big.bin"));
    let f = OpenOptions::new()
        .write(true)
        .open(root.join("sub/cut.txt"))
        .unwrap();
    f.set_len(4).unwrap();
    fs::remove_file(root.join("sub/gone.txt")).unwrap();
    fs::set_permissions(
        root.join("sub/chmod.txt"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    File::create(root.join("small.txt")).unwrap(); // emptied

    let metadata = pairs(&[
        ("small.txt", "empty"),
        ("small.txt", "modified"),
        ("sub/cut.txt", "size_changed"),
        ("sub/cut.txt", "modified"),
        ("sub/gone.txt", "missing"),
        ("sub/chmod.txt", "permissions_changed"),
    ]);
    assert_eq!(validate(&mut db, loc, "b", ValidateMode::Basic), metadata);
    // cas_id samples never read the flipped byte.
    assert_eq!(
        validate(&mut db, loc, "i", ValidateMode::Integrity),
        metadata
    );
    let mut complete = metadata.clone();
    complete.insert(("big.bin".into(), "content_changed".into()));
    assert_eq!(
        validate(&mut db, loc, "c", ValidateMode::Complete),
        complete
    );

    let counts = db.issue_counts("c").unwrap();
    assert_eq!(counts.iter().map(|(_, n)| n).sum::<u64>(), 7);
    // Redoing a page (a resumed run) changes nothing.
    validate_page(
        &mut db,
        loc,
        "c",
        0,
        100,
        ValidateMode::Complete,
        None,
        &CancelToken::new(),
    )
    .unwrap();
    assert_eq!(db.issue_counts("c").unwrap(), counts);
    // Removing the location takes its issues along.
    db.remove_location(loc).unwrap();
    assert!(db.issue_counts("c").unwrap().is_empty());
}

fn a_rotted_small_file_is_found_by_integrity_and_kind_changes_are_reported(
    libraries: &mut impl Libraries,
) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("tree");
    tree(&root);
    let mut db = libraries.open();
    let loc = index(&mut db, &root, IndexMode::Content);
    let path = root.join("sub/chmod.txt");
    let mtime = fs::metadata(&path).unwrap().modified().unwrap();
    fs::write(&path, b"mode CHANGES").unwrap(); // same size
    File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_times(FileTimes::new().set_modified(mtime))
        .unwrap();
    fs::remove_file(root.join("link")).unwrap();
    fs::create_dir(root.join("link")).unwrap();
    assert_eq!(
        validate(&mut db, loc, "r", ValidateMode::Integrity),
        pairs(&[
            ("sub/chmod.txt", "content_changed"),
            ("link", "kind_changed"),
        ])
    );
    assert_eq!(
        validate(&mut db, loc, "r", ValidateMode::Basic),
        pairs(&[("link", "kind_changed")])
    );
}

fn a_shallow_index_leaves_content_unverified(libraries: &mut impl Libraries) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("tree");
    tree(&root);
    let mut db = libraries.open();
    let loc = index(&mut db, &root, IndexMode::Shallow);
    let pass = validate_page(
        &mut db,
        loc,
        "s",
        0,
        100,
        ValidateMode::Integrity,
        None,
        &CancelToken::new(),
    )
    .unwrap();
    // big.bin, small.txt, cut, gone, chmod: non-empty files without a cas_id.
    assert_eq!((pass.unverified, pass.hashed), (5, 0));
    assert_eq!(pass.found.iter().sum::<u64>(), 0);
}

#[test]
fn name_checks() {
    let cats = |rel: &[u8]| -> Vec<Category> {
        name_issues(rel, rel.len() + 5)
            .into_iter()
            .map(|(c, _)| c)
            .collect()
    };
    assert!(cats(b"dir/plain name.txt").is_empty());
    assert_eq!(cats(b"a/bad-\xff"), [Category::ProblematicName]);
    assert_eq!(cats(b"line\nbreak"), [Category::ProblematicName]);
    assert_eq!(cats(b"tab\there"), [Category::ProblematicName]);
    assert_eq!(cats(b" lead"), [Category::ProblematicName]);
    assert_eq!(cats(b"trail "), [Category::ProblematicName]);
    assert_eq!(cats(b"-rf"), [Category::ProblematicName]);
    let long = vec![b'n'; NAME_MAX_PORTABLE + 1];
    assert_eq!(cats(&long), [Category::NameTooLong]);
    assert!(cats(&[b'n'; NAME_MAX_PORTABLE]).is_empty());
    let deep = vec!["d"; DEPTH_MAX + 1].join("/");
    assert_eq!(cats(deep.as_bytes()), [Category::PathTooDeep]);
    assert!(cats(vec!["d"; DEPTH_MAX].join("/").as_bytes()).is_empty());
    assert_eq!(
        name_issues(b"x", 5000)
            .into_iter()
            .map(|(c, _)| c)
            .collect::<Vec<_>>(),
        [Category::PathTooLong]
    );
    let (_, why) = &name_issues(b"-\n ", 3)[0];
    assert_eq!(
        why,
        "contains a newline; ends with a space; starts with '-' (read as an option by command-line tools)"
    );
}

fn bad_mode_and_unknown_location_are_errors(libraries: &mut impl Libraries) {
    assert!(ValidateMode::parse("everything").is_err());
    let mut db = libraries.open();
    assert!(validate_page(
        &mut db,
        42,
        "x",
        0,
        10,
        ValidateMode::Basic,
        None,
        &CancelToken::new()
    )
    .is_err());
    let cancel = CancelToken::new();
    cancel.cancel();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("tree");
    tree(&root);
    let loc = index(&mut db, &root, IndexMode::Content);
    assert!(matches!(
        validate_page(&mut db, loc, "x", 0, 10, ValidateMode::Basic, None, &cancel),
        Err(phasekit_core::Error::Cancelled)
    ));
}
