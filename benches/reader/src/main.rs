//! The floor a cold content index is measured against (benches/cold.py):
//! walk a tree and read, for every regular file, the bytes cas_id hashes (the
//! whole file up to 100 KiB, else an 8 KiB header, four 10 KiB samples and
//! the 8 KiB footer), hashed with BLAKE3 — with N threads and nothing else:
//! no database, no checkpoints, no identity checks.
//!
//!     sample-reader THREADS ROOT
//!
//! Prints `files bytes_read xor_of_first_digest_bytes` so the work cannot be
//! optimised away.

use std::fs::{self, File};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};

const SMALL: u64 = 100 * 1024;
const HEADER: u64 = 8 * 1024;
const SAMPLE: u64 = 10 * 1024;

struct Totals {
    files: AtomicU64,
    bytes: AtomicU64,
    mix: AtomicU64,
}

fn read_samples(path: &Path, totals: &Totals) -> std::io::Result<()> {
    let mut file = File::open(path)?;
    let size = file.metadata()?.len();
    if size == 0 {
        return Ok(());
    }
    let mut hasher = blake3::Hasher::new();
    hasher.update(&size.to_le_bytes());
    let mut read = 0;
    if size <= SMALL {
        let mut buf = Vec::with_capacity(size as usize);
        file.read_to_end(&mut buf)?;
        hasher.update(&buf);
        read = buf.len() as u64;
    } else {
        let jump = (size - 2 * HEADER) / 4;
        let mut ranges = vec![(0, HEADER)];
        ranges.extend((0..4).map(|i| (HEADER + i * jump, SAMPLE)));
        ranges.push((size - HEADER, HEADER));
        let mut buf = vec![0u8; SAMPLE as usize];
        for (at, len) in ranges {
            let part = &mut buf[..len as usize];
            file.read_exact_at(part, at)?;
            hasher.update(part);
            read += len;
        }
    }
    let digest = hasher.finalize();
    totals.files.fetch_add(1, Ordering::Relaxed);
    totals.bytes.fetch_add(read, Ordering::Relaxed);
    totals
        .mix
        .fetch_xor(u64::from(digest.as_bytes()[0]), Ordering::Relaxed);
    Ok(())
}

fn visit<'s>(scope: &rayon::Scope<'s>, dir: PathBuf, totals: &'s Totals) {
    let Ok(entries) = fs::read_dir(&dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let path = entry.path();
        if kind.is_dir() {
            scope.spawn(move |s| visit(s, path, totals));
        } else if kind.is_file() {
            scope.spawn(move |_| {
                if let Err(e) = read_samples(&path, totals) {
                    eprintln!("{}: {e}", path.display());
                }
            });
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(threads), Some(root)) = (args.get(1).and_then(|t| t.parse().ok()), args.get(2))
    else {
        eprintln!("usage: sample-reader THREADS ROOT");
        return ExitCode::from(2);
    };
    let pool = match rayon::ThreadPoolBuilder::new().num_threads(threads).build() {
        Ok(pool) => pool,
        Err(e) => {
            eprintln!("cannot start {threads} threads: {e}");
            return ExitCode::FAILURE;
        }
    };
    let totals = Totals {
        files: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
        mix: AtomicU64::new(0),
    };
    let root = PathBuf::from(root);
    pool.scope(|s| visit(s, root, &totals));
    println!(
        "{} {} {}",
        totals.files.load(Ordering::Relaxed),
        totals.bytes.load(Ordering::Relaxed),
        totals.mix.load(Ordering::Relaxed)
    );
    ExitCode::SUCCESS
}
