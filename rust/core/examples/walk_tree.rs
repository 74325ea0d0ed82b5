//! Walk a tree with the core walker alone (no Python) and print the count and
//! time: the floor the bindings are measured against.
//!
//!     cargo run --release -p phasekit-core --example walk_tree -- PATH [THREADS]

use std::os::unix::ffi::OsStrExt;
use std::time::Instant;

use phasekit_core::walk::{WalkOptions, Walker};
use phasekit_core::CancelToken;

fn main() {
    let mut args = std::env::args_os().skip(1);
    let Some(root) = args.next() else {
        eprintln!("usage: walk_tree PATH [THREADS]");
        std::process::exit(2);
    };
    let threads = args
        .next()
        .and_then(|t| t.to_str().and_then(|t| t.parse().ok()))
        .unwrap_or_else(phasekit_core::walk::default_threads);
    for _ in 0..5 {
        let start = Instant::now();
        let opts = WalkOptions {
            threads,
            ..WalkOptions::default()
        };
        let mut walker = match Walker::new(&[root.as_bytes().to_vec()], opts, CancelToken::new()) {
            Ok(w) => w,
            Err(e) => {
                eprintln!("walk_tree: {e}");
                std::process::exit(1);
            }
        };
        let mut entries = 0;
        let mut errors = 0;
        loop {
            match walker.next_batch() {
                Ok(Some(batch)) => {
                    entries += batch.len();
                    errors += batch.errors.len();
                }
                Ok(None) => break,
                Err(e) => {
                    eprintln!("walk_tree: {e}");
                    std::process::exit(1);
                }
            }
        }
        println!(
            "{entries} entries, {errors} errors, {:.3} s",
            start.elapsed().as_secs_f64()
        );
    }
}
