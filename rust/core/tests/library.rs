//! library.db: a scan writes every entry, a re-scan writes only changes,
//! deletes what is gone, carries moved content over; aggregation and content.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use phasekit_core::content::Want;
use phasekit_core::library::{hash_missing, IndexMode, LibraryStore, ScanStats, ScanWriter};
use phasekit_core::walk::{WalkOptions, Walker};
use phasekit_core::CancelToken;

#[macro_use]
mod common;
use common::Libraries;

on_both_stores!(
    super::common::Sqlite::files();
    scan_rescan_aggregate_and_content,
    sums_gathered_while_writing_equal_the_database_aggregate,
);

fn bytes(p: &Path) -> Vec<u8> {
    p.as_os_str().as_bytes().to_vec()
}

fn scan(
    db: &mut impl LibraryStore,
    location: i64,
    root: &Path,
    fresh: bool,
    hash: bool,
) -> ScanStats {
    let opts = WalkOptions {
        batch_size: 5,
        threads: 2,
        hash: Want {
            cas_id: hash,
            checksum: false,
        },
        ..WalkOptions::default()
    };
    let mut walker = Walker::new(&[bytes(root)], opts, CancelToken::new()).unwrap();
    let mut writer = ScanWriter::new(db, location, fresh).unwrap();
    while let Some(batch) = walker.next_batch().unwrap() {
        assert!(writer.write_batch(db, &batch).unwrap().is_empty());
    }
    writer.sweep(db).unwrap();
    writer.stats()
}

fn tree(root: &Path) {
    for d in ["a", "a/b", "c"] {
        fs::create_dir(root.join(d)).unwrap();
    }
    fs::write(root.join("a/one.TXT"), b"one").unwrap();
    fs::write(root.join("a/b/two"), b"two!").unwrap();
    fs::write(root.join("a/b/same"), b"two!").unwrap();
    fs::write(root.join("c/three"), vec![7u8; 300_000]).unwrap();
    fs::write(root.join("empty"), b"").unwrap();
}

fn scan_rescan_aggregate_and_content(libraries: &mut impl Libraries) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("tree");
    fs::create_dir(&root).unwrap();
    tree(&root);
    let mut db = libraries.open();
    let loc = db
        .add_location(&bytes(&root), IndexMode::Content, true)
        .unwrap();
    assert!(db
        .add_location(&bytes(&root), IndexMode::Content, true)
        .is_err());

    let first = scan(&mut db, loc.id, &root, true, true);
    assert_eq!((first.files, first.dirs, first.new), (5, 3, 8));
    let rows = db.entries(loc.id, 0, 100).unwrap();
    assert_eq!(rows.len(), 8);
    let one = db.entry_at(loc.id, b"a/one.TXT").unwrap().unwrap();
    assert_eq!(one.extension.as_deref(), Some("txt"));
    let a = db.entry_at(loc.id, b"a").unwrap().unwrap();
    assert_eq!(one.parent_id, Some(a.id));
    assert!(one.cas_id.is_some());

    assert_eq!(db.aggregate_sizes(loc.id).unwrap(), (300_011, 5));
    let a = db.entry_at(loc.id, b"a").unwrap().unwrap();
    assert_eq!((a.agg_size, a.file_count), (Some(11), Some(3)));
    assert_eq!(db.link_identities(loc.id, false).unwrap(), 3);
    let two = db.entry_at(loc.id, b"a/b/two").unwrap().unwrap();
    let same = db
        .entries_by_cas_id(two.cas_id.as_deref().unwrap())
        .unwrap();
    assert_eq!(same.len(), 2);

    // Unchanged: nothing new, nothing written.
    let again = scan(&mut db, loc.id, &root, false, false);
    assert_eq!(
        (again.new, again.modified, again.unchanged, again.deleted),
        (0, 0, 8, 0)
    );

    // Edit: modify, add, move, delete a file and a subtree.
    fs::write(root.join("a/one.TXT"), b"one, longer").unwrap();
    fs::write(root.join("new"), b"fresh").unwrap();
    fs::rename(root.join("c/three"), root.join("three")).unwrap();
    fs::remove_dir_all(root.join("a/b")).unwrap();
    fs::remove_dir(root.join("c")).unwrap();
    let edited = scan(&mut db, loc.id, &root, false, false);
    assert_eq!(edited.new, 1); // "new"
    assert_eq!(edited.modified, 2); // a/one.TXT, and "a" whose mtime changed
    assert_eq!(edited.moved, 1); // c/three -> three, counted once, as moved
    assert_eq!(edited.deleted, 4); // a/b, a/b/two, a/b/same, c
    let three = db.entry_at(loc.id, b"three").unwrap().unwrap();
    assert!(three.cas_id.is_some(), "moved file keeps its content id");
    let one = db.entry_at(loc.id, b"a/one.TXT").unwrap().unwrap();
    assert!(one.cas_id.is_none(), "modified file must be hashed again");

    let pass = hash_missing(&mut db, loc.id, 0, 100, false, Some(2), &CancelToken::new()).unwrap();
    assert_eq!((pass.hashed, pass.errors.len()), (2, 0)); // one.TXT and new
    db.link_identities(loc.id, true).unwrap();
    let fresh_cas = db.entry_at(loc.id, b"a/one.TXT").unwrap().unwrap().cas_id;
    assert_eq!(
        fresh_cas,
        phasekit_core::content::cas_id(&bytes(&root.join("a/one.TXT"))).unwrap()
    );
    assert_eq!(db.aggregate_sizes(loc.id).unwrap(), (300_016, 4));

    assert_eq!(db.remove_location(loc.id).unwrap(), 5);
    assert!(db.locations().unwrap().is_empty());
}

fn sums_gathered_while_writing_equal_the_database_aggregate<L: Libraries>(libraries: &mut L) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("tree");
    fs::create_dir(&root).unwrap();
    tree(&root);
    let mut db = libraries.open();
    let loc = db
        .add_location(&bytes(&root), IndexMode::Shallow, true)
        .unwrap();
    let dir_sums = |db: &L::Store| -> Vec<(Vec<u8>, Option<i64>, Option<i64>)> {
        let mut rows: Vec<_> = db
            .entries(loc.id, 0, 1000)
            .unwrap()
            .into_iter()
            .filter(|e| e.kind == 1)
            .map(|e| (e.path, e.agg_size, e.file_count))
            .collect();
        rows.sort();
        rows
    };
    for (fresh, edit) in [(true, false), (false, true)] {
        if edit {
            fs::write(root.join("a/b/more"), vec![1u8; 77]).unwrap();
            fs::remove_dir_all(root.join("c")).unwrap();
        }
        let opts = WalkOptions {
            batch_size: 3,
            threads: 2,
            ..WalkOptions::default()
        };
        let mut walker = Walker::new(&[bytes(&root)], opts, CancelToken::new()).unwrap();
        let mut writer = ScanWriter::new(&db, loc.id, fresh).unwrap();
        while let Some(batch) = walker.next_batch().unwrap() {
            writer.write_batch(&mut db, &batch).unwrap();
        }
        writer.sweep(&mut db).unwrap();
        let from_scan = writer.aggregate(&mut db).unwrap();
        let rows_from_scan = dir_sums(&db);
        let from_db = db.aggregate_sizes(loc.id).unwrap();
        assert_eq!(from_scan, from_db);
        assert_eq!(rows_from_scan, dir_sums(&db));
    }
}
