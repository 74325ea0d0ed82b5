//! A fresh scan of a tree into a scratch library.db, sequential (walk, then
//! write, batch by batch) against pipelined ([`ScanPipeline`]: the walk runs
//! on its own thread while batches are written), alternating, with medians:
//! `cargo run --release -p phasekit-core --example scan_tree -- TREE [RUNS]`.
//!
//! On the 2-core bench machine (200,000 files, warm cache, medians of 9):
//! sequential ~0.94-1.06 s, pipelined ~0.84-0.89 s. The pipelined time is
//! about the writes alone (`write_batch` ~0.7 s): the walk is hidden behind
//! them, and the writes are now what bounds a fresh scan.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use phasekit_core::library::{IndexMode, LibraryStore, ScanPipeline, ScanWriter, SqliteStore};
use phasekit_core::walk::{WalkOptions, Walker};
use phasekit_core::CancelToken;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn library(dir: &Path, root: &Path) -> Res<(SqliteStore, i64)> {
    let file = dir.join("library.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
    }
    let mut db = SqliteStore::open(&file)?;
    let loc = db.add_location(root.as_os_str().as_bytes(), IndexMode::Shallow, true)?;
    Ok((db, loc.id))
}

/// Seconds for walk + write, and the number of entries written.
fn sequential(dir: &Path, root: &Path) -> Res<(f64, u64)> {
    let (mut db, loc) = library(dir, root)?;
    let t = Instant::now();
    let roots = [root.as_os_str().as_bytes().to_vec()];
    let mut walker = Walker::new(&roots, WalkOptions::default(), CancelToken::new())?;
    let mut writer = ScanWriter::new(&db, loc, true)?;
    while let Some(batch) = walker.next_batch()? {
        writer.write_batch(&mut db, &batch)?;
    }
    Ok((t.elapsed().as_secs_f64(), writer.stats().new))
}

fn pipelined(dir: &Path, root: &Path) -> Res<(f64, u64)> {
    let (mut db, loc) = library(dir, root)?;
    let t = Instant::now();
    let mut opts = WalkOptions::default();
    if let Some(n) = std::env::var("THREADS").ok().and_then(|t| t.parse().ok()) {
        opts.threads = n;
    }
    if let Some(n) = std::env::var("BATCH").ok().and_then(|t| t.parse().ok()) {
        opts.batch_size = n;
    }
    let mut scan = ScanPipeline::start(&db, loc, true, opts, None, CancelToken::new())?;
    while scan.step(&mut db)?.is_some() {}
    Ok((t.elapsed().as_secs_f64(), scan.stats().new))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    let root = PathBuf::from(args.get(1).ok_or("usage: scan_tree TREE [RUNS]")?);
    let runs: usize = args.get(2).map_or(Ok(5), |r| r.parse())?;
    let dir = std::env::temp_dir().join(format!("phasekit-scan-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let (mut seq, mut pipe) = (Vec::new(), Vec::new());
    for run in 0..runs {
        let (s, n1) = sequential(&dir, &root)?;
        let (p, n2) = pipelined(&dir, &root)?;
        assert_eq!(n1, n2, "both scans write every entry");
        println!("run {run}: sequential {s:.3}s, pipelined {p:.3}s ({n1} entries)");
        seq.push(s);
        pipe.push(p);
    }
    println!(
        "median of {runs}: sequential {:.3}s, pipelined {:.3}s",
        median(seq),
        median(pipe)
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
