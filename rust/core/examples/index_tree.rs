//! Index a tree into a scratch library.db and re-index it, with timings:
//! `cargo run --release -p phasekit-core --example index_tree -- TREE [content]`.

use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::Instant;

use phasekit_core::content::Want;
use phasekit_core::library::{IndexMode, LibraryStore, ScanWriter, SqliteStore};
use phasekit_core::walk::{WalkOptions, Walker};
use phasekit_core::CancelToken;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let root = PathBuf::from(args.get(1).ok_or("usage: index_tree TREE [content]")?);
    let content = args.get(2).is_some_and(|a| a == "content");
    let dir = tempfile_dir()?;
    let mut db = SqliteStore::open(&dir.join("library.db"))?;
    let loc = db.add_location(root.as_os_str().as_bytes(), IndexMode::Content, true)?;
    for (label, fresh, hash) in [("first", true, content), ("again", false, false)] {
        let t = Instant::now();
        let opts = WalkOptions {
            hash: Want {
                cas_id: hash,
                checksum: false,
            },
            batch_size: std::env::var("BATCH")
                .ok()
                .and_then(|b| b.parse().ok())
                .unwrap_or(1000),
            ..WalkOptions::default()
        };
        let mut walker = Walker::new(
            &[root.as_os_str().as_bytes().to_vec()],
            opts,
            CancelToken::new(),
        )?;
        let mut writer = ScanWriter::new(&db, loc.id, fresh)?;
        let (mut in_walk, mut in_write) = (0.0, 0.0);
        loop {
            let t0 = Instant::now();
            let Some(batch) = walker.next_batch()? else {
                break;
            };
            let t1 = Instant::now();
            writer.write_batch(&mut db, &batch)?;
            in_walk += (t1 - t0).as_secs_f64();
            in_write += t1.elapsed().as_secs_f64();
        }
        println!("  in next_batch {in_walk:.2}s, in write_batch {in_write:.2}s");
        let walked = t.elapsed();
        writer.sweep(&mut db)?;
        let swept = t.elapsed();
        db.aggregate_sizes(loc.id)?;
        let aggregated = t.elapsed();
        if hash {
            db.link_identities(loc.id, false)?;
        }
        println!(
            "{label}: walk+write {:.2}s, sweep {:.2}s, aggregate {:.2}s, total {:.2}s; {:?}",
            walked.as_secs_f64(),
            (swept - walked).as_secs_f64(),
            (aggregated - swept).as_secs_f64(),
            t.elapsed().as_secs_f64(),
            writer.stats()
        );
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

fn tempfile_dir() -> std::io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("phasekit-index-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
