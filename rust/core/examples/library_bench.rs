//! Index a tree into a new library the way the index job does (a
//! pipelined fresh scan, hashing while walking in content mode; the sweep;
//! directory sizes; the content step; the link pass) and print the wall
//! time of each step: SQLite against PostgreSQL on one tree. Then the
//! directory sizes again from the stored rows (`aggregate_sizes`, what a
//! resumed scan and `Library.index` use), timed apart.
//!
//! ```text
//! cargo run --release -p phasekit-core --example library_bench -- \
//!     TREE (shallow|content) (sqlite:FILE | postgresql://...)
//! ```
//! The library must be new (a SQLite file that does not exist, an empty
//! PostgreSQL database). `BENCH_BATCH=N` walks in batches of N entries
//! (the job's 1,000 by default); `PRELOAD=1` walks the whole tree before
//! writing any of it, to time the writes alone.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Instant;

use phasekit_core::content::Want;
use phasekit_core::library::{
    hash_missing, IndexMode, LibraryStore, PostgresStore, ScanPipeline, SqliteStore,
};
use phasekit_core::walk::WalkOptions;
use phasekit_core::{CancelToken, Error};

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [tree, mode, target] = args.as_slice() else {
        return Err(Error::InvalidArgument(
            "usage: library_bench TREE shallow|content sqlite:FILE|postgresql://URL".into(),
        ));
    };
    let mode = IndexMode::parse(mode)?;
    match target.strip_prefix("sqlite:") {
        Some(file) => index(&mut SqliteStore::open(Path::new(file))?, tree, mode),
        None => index(&mut PostgresStore::open(target)?, tree, mode),
    }
}

fn index(db: &mut (impl LibraryStore + Send), tree: &str, mode: IndexMode) -> Result<(), Error> {
    let hash = mode != IndexMode::Shallow;
    let loc = db.add_location(Path::new(tree).as_os_str().as_bytes(), mode, true)?;
    let opts = WalkOptions {
        batch_size: std::env::var("BENCH_BATCH")
            .ok()
            .and_then(|b| b.parse().ok())
            .unwrap_or(1000),
        hash: Want {
            cas_id: hash,
            checksum: false,
        },
        ..WalkOptions::default()
    };
    let cancel = CancelToken::new();
    let started = Instant::now();
    let mut step = Instant::now();
    let mut lap = |what: &str| {
        println!("{what:>10} {:.3} s", step.elapsed().as_secs_f64());
        step = Instant::now();
    };
    let mut scan = ScanPipeline::start(db, loc.id, true, opts, None, cancel.clone())?;
    // Time spent waiting for the walker, and writing: which one the scan
    // waits on.
    let (mut waiting, mut writing) = (0.0, 0.0);
    if std::env::var_os("PRELOAD").is_some() {
        let mut all = Vec::new();
        while let Some(r) = scan.receive()? {
            all.push(r);
        }
        lap("walk alone");
        for r in all {
            scan.write(db, r)?;
        }
    }
    loop {
        let t = Instant::now();
        let Some(received) = scan.receive()? else {
            break;
        };
        waiting += t.elapsed().as_secs_f64();
        let t = Instant::now();
        scan.write(db, received)?;
        writing += t.elapsed().as_secs_f64();
    }
    lap("scan");
    println!("  (waiting for the walk {waiting:.3} s, writing {writing:.3} s)");
    scan.sweep(db)?;
    lap("sweep");
    // As the index job does: the sums gathered while writing (the rows
    // themselves are summed only for a resumed scan).
    let total = scan.aggregate(db)?;
    lap("aggregate");
    if hash {
        let mut after = 0;
        loop {
            let pass = hash_missing(db, loc.id, after, 1000, false, None, &cancel)?;
            if pass.looked_at == 0 {
                break;
            }
            after = pass.last_id;
        }
        lap("content");
    }
    let linked = db.link_identities(loc.id, false)?;
    db.mark_indexed(loc.id, scan.started())?;
    lap("link");
    println!("index job {:.3} s", started.elapsed().as_secs_f64());
    db.aggregate_sizes(loc.id)?;
    lap("aggregate from rows");
    let stats = scan.stats();
    println!(
        "{} entries, {} files, {} hashed, {total:?}, {linked} identities",
        db.entry_count(loc.id)?,
        stats.files,
        stats.hashed
    );
    Ok(())
}
