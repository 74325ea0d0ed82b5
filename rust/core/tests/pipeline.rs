//! The pipelined scan: the same entries as a sequential one, and a resume
//! from the state of any written batch loses and repeats nothing, although
//! the walker thread runs batches ahead of the writer, and a store that
//! merges the batches waiting (PostgreSQL) writes them as one step.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use phasekit_core::library::{IndexMode, LibraryStore, ScanPipeline};
use phasekit_core::walk::WalkOptions;
use phasekit_core::{CancelToken, Error};

#[macro_use]
mod common;
use common::Libraries;

on_both_stores!(
    super::common::Sqlite::memory();
    resume_from_every_batch_gives_every_entry_once,
    cancel_and_close_stop_the_walker,
    batches_waiting_are_merged_where_the_store_asks,
);

fn opts() -> WalkOptions {
    WalkOptions {
        batch_size: 7,
        threads: 2,
        ..WalkOptions::default()
    }
}

fn tree(root: &Path) {
    for d in 0..6 {
        let dir = root.join(format!("d{d}"));
        fs::create_dir_all(dir.join("sub")).unwrap();
        for f in 0..9 {
            fs::write(dir.join(format!("f{f}")), vec![b'x'; f]).unwrap();
            fs::write(dir.join("sub").join(format!("g{f}")), b"g").unwrap();
        }
    }
}

/// Every (path, kind, size) of the location, sorted.
fn rows(db: &impl LibraryStore, loc: i64) -> Vec<(Vec<u8>, u8, i64)> {
    let mut out: Vec<_> = db
        .entries(loc, 0, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|e| (e.path, e.kind, e.size))
        .collect();
    out.sort();
    out
}

/// Run a scan to its end; returns the state after every written batch.
fn run(db: &mut impl LibraryStore, loc: i64, fresh: bool, resume: Option<&[u8]>) -> Vec<Vec<u8>> {
    let mut scan = ScanPipeline::start(db, loc, fresh, opts(), resume, CancelToken::new()).unwrap();
    let mut states = Vec::new();
    while let Some(step) = scan.step(db).unwrap() {
        assert!(step.errors.is_empty(), "{:?}", step.errors);
        states.push(step.state);
    }
    scan.sweep(db).unwrap();
    states
}

fn library<L: Libraries>(libraries: &mut L, root: &Path) -> (L::Store, i64) {
    let mut db = libraries.open();
    let loc = db
        .add_location(root.as_os_str().as_bytes(), IndexMode::Shallow, true)
        .unwrap();
    (db, loc.id)
}

fn resume_from_every_batch_gives_every_entry_once(libraries: &mut impl Libraries) {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path());
    let (mut db, loc) = library(libraries, dir.path());
    let states = run(&mut db, loc, true, None);
    let full = rows(&db, loc);
    assert_eq!(full.len(), 6 * (2 + 18));
    if db.rows_per_write() == 0 {
        assert!(states.len() > 10);
    }

    for i in 0..states.len() {
        // A scan interrupted after batch i: batches 0..=i are written, and
        // the walker thread has already produced some of the next ones.
        let (mut db, loc) = library(libraries, dir.path());
        let mut scan =
            ScanPipeline::start(&db, loc, true, opts(), None, CancelToken::new()).unwrap();
        let mut state = Vec::new();
        for _ in 0..=i {
            // A store that merges waiting batches may take fewer steps
            // than the first run: then this one ran to its end.
            match scan.step(&mut db).unwrap() {
                Some(step) => state = step.state,
                None => break,
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(2)); // let it run ahead
        drop(scan); // the walker thread must just stop
        run(&mut db, loc, true, Some(&state));
        assert_eq!(rows(&db, loc), full, "resumed after batch {i}");
    }
}

fn cancel_and_close_stop_the_walker(libraries: &mut impl Libraries) {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path());
    let (mut db, loc) = library(libraries, dir.path());
    let cancel = CancelToken::new();
    let mut scan = ScanPipeline::start(&db, loc, true, opts(), None, cancel.clone()).unwrap();
    let first = scan.step(&mut db).unwrap().unwrap();
    cancel.cancel();
    assert!(matches!(scan.step(&mut db), Err(Error::Cancelled)));
    scan.close();
    assert!(scan.sweep(&mut db).is_err(), "sweep needs a finished walk");
    cancel.reset();
    run(&mut db, loc, true, Some(&first.state));
    assert_eq!(rows(&db, loc).len(), 6 * 20);

    // Closing a scan whose walker waits on a full channel returns promptly.
    let (mut db, loc) = library(libraries, dir.path());
    let mut scan = ScanPipeline::start(&db, loc, true, opts(), None, CancelToken::new()).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(50));
    scan.close();
    assert!(scan.step(&mut db).is_err());
}

/// A writer that falls behind (here: waits before each step) finds batches
/// waiting: a store with `rows_per_write` writes them as one step, with the
/// state of the last (a resume from it repeats nothing, see above); SQLite
/// keeps one step per walker batch.
fn batches_waiting_are_merged_where_the_store_asks(libraries: &mut impl Libraries) {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path());
    let (mut db, loc) = library(libraries, dir.path());
    let merge = db.rows_per_write();
    let mut scan = ScanPipeline::start(&db, loc, true, opts(), None, CancelToken::new()).unwrap();
    let mut sizes = Vec::new();
    loop {
        // Long enough for the walker (2 threads, 120 entries) to queue more.
        std::thread::sleep(std::time::Duration::from_millis(100));
        let Some(step) = scan.step(&mut db).unwrap() else {
            break;
        };
        sizes.push(step.entries);
    }
    scan.sweep(&mut db).unwrap();
    assert_eq!(sizes.iter().sum::<usize>(), 6 * 20);
    assert_eq!(rows(&db, loc).len(), 6 * 20);
    let batch = opts().batch_size;
    if merge == 0 {
        assert!(sizes.iter().all(|&n| n <= batch), "{sizes:?}");
    } else {
        assert!(sizes.iter().all(|&n| n < merge + batch), "{sizes:?}");
        assert!(
            sizes.iter().any(|&n| n > batch),
            "nothing merged: {sizes:?}"
        );
    }
}
