//! Walker behaviour: completeness, exact resume at every batch boundary,
//! errors that do not stop the walk, long paths.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use phasekit_core::content::Want;
use phasekit_core::walk::{WalkOptions, Walker};
use phasekit_core::{CancelToken, Error};

fn bytes(p: &Path) -> Vec<u8> {
    p.as_os_str().as_bytes().to_vec()
}

fn make_tree(root: &Path) -> BTreeSet<Vec<u8>> {
    let mut expected = BTreeSet::new();
    for a in 0..5 {
        let da = root.join(format!("d{a}"));
        fs::create_dir(&da).unwrap();
        expected.insert(bytes(&da));
        for b in 0..4 {
            let db = da.join(format!("e{b}"));
            fs::create_dir(&db).unwrap();
            expected.insert(bytes(&db));
            for f in 0..7 {
                let file = db.join(format!("f{f}"));
                fs::write(&file, vec![b'x'; f]).unwrap();
                expected.insert(bytes(&file));
            }
        }
    }
    expected
}

fn opts(batch: usize) -> WalkOptions {
    WalkOptions {
        batch_size: batch,
        threads: 2,
        ..WalkOptions::default()
    }
}

/// A walk that hashes: it queues subdirectories before their parent's
/// listing is sent, each behind a gate (src/walk/gate.rs).
fn hashing(batch: usize) -> WalkOptions {
    WalkOptions {
        hash: Want {
            cas_id: true,
            checksum: false,
        },
        ..opts(batch)
    }
}

fn drain(walker: &mut Walker) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(batch) = walker.next_batch().unwrap() {
        out.extend(batch.paths().map(<[u8]>::to_vec));
    }
    out
}

/// Up to `n` batches' paths (fewer if the walk ends), then the state.
fn take(walker: &mut Walker, n: usize) -> (Vec<Vec<u8>>, Vec<u8>) {
    let mut out = Vec::new();
    for _ in 0..n {
        match walker.next_batch().unwrap() {
            Some(batch) => out.extend(batch.paths().map(<[u8]>::to_vec)),
            None => break,
        }
    }
    (out, walker.state())
}

/// Walk `root` in batches of `batch`, stop after `stop_after` of them, then
/// for each of `then` resume from the state, take that many batches (all,
/// for `usize::MAX`) and stop again: every path yielded, in order.
fn stop_and_resume(
    root: &Path,
    batch: usize,
    stop_after: usize,
    then: &[(usize, usize)],
    make: fn(usize) -> WalkOptions,
) -> Vec<Vec<u8>> {
    let mut walker = Walker::new(&[bytes(root)], make(batch), CancelToken::new()).unwrap();
    let (mut seen, mut state) = take(&mut walker, stop_after);
    drop(walker);
    for &(batch, n) in then {
        let mut resumed = Walker::resume(&state, make(batch), CancelToken::new()).unwrap();
        let (more, next) = take(&mut resumed, n);
        seen.extend(more);
        state = next;
    }
    seen
}

/// `seen` is `expected`, each path once.
fn assert_exact(seen: Vec<Vec<u8>>, expected: &BTreeSet<Vec<u8>>, what: &str) {
    assert_eq!(seen.len(), expected.len(), "{what}: duplicates or losses");
    assert_eq!(
        &seen.into_iter().collect::<BTreeSet<_>>(),
        expected,
        "{what}"
    );
}

#[test]
fn walks_every_entry_once_each_directory_before_its_entries() {
    let dir = tempfile::tempdir().unwrap();
    let expected = make_tree(dir.path());
    for make in [opts, hashing] {
        let mut walker = Walker::new(&[bytes(dir.path())], make(7), CancelToken::new()).unwrap();
        let got = drain(&mut walker);
        assert_eq!(got.len(), expected.len());
        // The resume frontier relies on this order (src/walk/pool.rs).
        let mut yielded = BTreeSet::from([bytes(dir.path())]);
        for path in &got {
            let parent = bytes(
                Path::new(std::ffi::OsStr::from_bytes(path))
                    .parent()
                    .unwrap(),
            );
            assert!(yielded.contains(&parent), "{path:?} before its directory");
            yielded.insert(path.clone());
        }
        assert_eq!(got.into_iter().collect::<BTreeSet<_>>(), expected);
    }
}

#[test]
fn resume_from_every_batch_boundary_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let expected = make_tree(dir.path());
    for make in [opts, hashing] {
        for stop_after in 0..25 {
            let seen = stop_and_resume(dir.path(), 6, stop_after, &[(5, usize::MAX)], make);
            assert_exact(seen, &expected, &format!("stop after {stop_after} batches"));
        }
    }
}

#[test]
fn a_big_directory_comes_in_pieces_and_resumes_exactly() {
    // More entries than a piece (4,096) twice over, with subdirectories in
    // every piece: each stop point resumes without duplicates or losses.
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big");
    fs::create_dir(&big).unwrap();
    let mut expected = BTreeSet::from([bytes(&big)]);
    for i in 0..9000 {
        let path = big.join(format!("n{i:05}"));
        if i % 1000 == 7 {
            fs::create_dir(&path).unwrap();
            let inner = path.join("inside");
            fs::write(&inner, b"x").unwrap();
            expected.insert(bytes(&inner));
        } else {
            fs::write(&path, b"").unwrap();
        }
        expected.insert(bytes(&path));
    }
    let whole =
        drain(&mut Walker::new(&[bytes(dir.path())], opts(1000), CancelToken::new()).unwrap());
    assert_eq!(whole.len(), expected.len());
    for make in [opts, hashing] {
        for stop_after in [1, 4, 5, 8, 9] {
            let then = [(700, usize::MAX)];
            let seen = stop_and_resume(dir.path(), 1000, stop_after, &then, make);
            assert_exact(seen, &expected, &format!("stop after {stop_after} batches"));
        }
    }
}

#[test]
fn state_taken_exactly_at_piece_boundaries_resumes_exactly() {
    // The big directory is the root, so batches of 4,096 end exactly where
    // its pieces do, and the frontier's record of the last piece handed out
    // is what the state carries.
    for n in [4096usize, 8192, 8200] {
        let dir = tempfile::tempdir().unwrap();
        let mut expected = BTreeSet::new();
        for i in 0..n {
            let path = dir.path().join(format!("n{i:05}"));
            fs::write(&path, b"").unwrap();
            expected.insert(bytes(&path));
        }
        for batch in [4096, 2048, 4095, 4097] {
            for stop_after in 1..=4 {
                // Resume, stop again after one batch, resume again.
                let then = [(4096, 1), (4096, usize::MAX)];
                let seen = stop_and_resume(dir.path(), batch, stop_after, &then, opts);
                assert_exact(
                    seen,
                    &expected,
                    &format!("n {n} batch {batch} stop {stop_after}"),
                );
            }
        }
    }
}

#[test]
fn state_stays_small() {
    let dir = tempfile::tempdir().unwrap();
    make_tree(dir.path());
    let mut walker = Walker::new(&[bytes(dir.path())], opts(3), CancelToken::new()).unwrap();
    let mut max_state = 0;
    while walker.next_batch().unwrap().is_some() {
        max_state = max_state.max(walker.state().len());
    }
    // The frontier here is at most a few directories, never the 165 entries.
    assert!(max_state < 2000, "state grew to {max_state} bytes");
}

#[test]
fn cancel_returns_gathered_entries_then_fails() {
    let dir = tempfile::tempdir().unwrap();
    make_tree(dir.path());
    let cancel = CancelToken::new();
    let mut walker = Walker::new(&[bytes(dir.path())], opts(4), cancel.clone()).unwrap();
    assert!(walker.next_batch().unwrap().is_some());
    cancel.cancel();
    assert!(matches!(walker.next_batch(), Err(Error::Cancelled)));
}

#[test]
fn missing_root_is_an_error_not_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let missing = bytes(&dir.path().join("nope"));
    let mut walker =
        Walker::new(std::slice::from_ref(&missing), opts(4), CancelToken::new()).unwrap();
    let batch = walker.next_batch().unwrap().unwrap();
    assert_eq!(batch.len(), 0);
    assert_eq!(batch.errors[0].path, missing);
    assert_eq!(batch.errors[0].errno, 2);
    assert!(walker.next_batch().unwrap().is_none());
}

#[test]
fn paths_longer_than_path_max_are_walked() {
    let dir = tempfile::tempdir().unwrap();
    let name = "n".repeat(200);
    // 30 levels of 200-byte names: ~6 KB, over PATH_MAX. Created relative to
    // each parent (chdir one level at a time), since the full path cannot be
    // passed to mkdir.
    let saved = std::env::current_dir().unwrap();
    std::env::set_current_dir(dir.path()).unwrap();
    for _ in 0..30 {
        fs::create_dir(&name).unwrap();
        std::env::set_current_dir(&name).unwrap();
    }
    fs::write("leaf", b"data").unwrap();
    std::env::set_current_dir(saved).unwrap();
    let mut walker = Walker::new(&[bytes(dir.path())], opts(100), CancelToken::new()).unwrap();
    let got = drain(&mut walker);
    assert_eq!(got.len(), 31);
    let leaf = got.iter().find(|p| p.ends_with(b"/leaf")).unwrap();
    assert!(leaf.len() > 4096);
    assert_eq!(
        phasekit_core::content::checksum(leaf).unwrap(),
        blake3::hash(b"data").to_hex().to_string()
    );
}

#[test]
fn bad_options_are_rejected() {
    let o = WalkOptions {
        batch_size: 0,
        ..WalkOptions::default()
    };
    assert!(matches!(
        Walker::new(&[b"/".to_vec()], o, CancelToken::new()),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        Walker::resume(b"garbage", WalkOptions::default(), CancelToken::new()),
        Err(Error::InvalidState(_))
    ));
}
