//! Where per-file work runs: the reading pool, sized for storage latency.
//!
//! Reading a file that is not in the page cache waits on the device (a
//! fraction of a millisecond on an SSD, several on a network disk or a
//! spinning one), and a thread that waits uses no core. One thread per core
//! leaves only that many reads in flight and the device mostly idle: on this
//! project's cold benchmark (benches/cold.py, 60,000 files) a plain reader of
//! cas_id's samples takes 4.3 s with 2 threads and 1.7 s with 16. So per-file
//! reads (cas_id and checksums, the dupes finder's hashing, validation) run
//! on a pool of [`READ_THREADS`] threads unless the caller names a count.
//!
//! Warm files do not pay for the extra threads: each one runs until its
//! batch of work is gone, and threads that outnumber the cores only take
//! turns (a warm 200,000-file content pass measured the same with 2, 8 and 16
//! threads). The pools are built once and kept, one per size for the life of
//! the process (their idle threads sleep): building 16 threads for every page
//! of work would cost more than a warm page takes. Jobs asking for the same
//! size share its pool.
//!
//! A hashing walk, which hands out one directory's files at a time, reads
//! them on the I/O pool instead (crate::io_pool, same sizes): rayon's idle
//! workers spin before they sleep, once per directory there.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use rayon::{ThreadPool, ThreadPoolBuilder};

use crate::error::{Error, Result};

/// Reads in flight by default: enough to keep an SSD's or a network disk's
/// queue busy, few enough that a warm run's scheduling cost stays unmeasurable.
pub const READ_THREADS: usize = 16;

/// Environment variable that sets the default reading pool's size (read once,
/// when a first default pool is wanted).
pub const READ_THREADS_ENV: &str = "PHASEKIT_READ_THREADS";

// Guards the map only while a pool is looked up or built (never while work
// runs), so callers on different threads never wait on each other's work.
static POOLS: Mutex<Option<HashMap<usize, Arc<ThreadPool>>>> = Mutex::new(None);

/// The size of the default reading pool: [`READ_THREADS_ENV`] when set to a
/// positive whole number, else [`READ_THREADS`]. Read once per process: the
/// environment is not read again on every page (Python may change it from
/// another thread), and a walk never switches pools part-way.
pub fn default_read_threads() -> Result<usize> {
    static DEFAULT: OnceLock<std::result::Result<usize, String>> = OnceLock::new();
    DEFAULT
        .get_or_init(read_env)
        .clone()
        .map_err(Error::InvalidArgument)
}

fn read_env() -> std::result::Result<usize, String> {
    match std::env::var(READ_THREADS_ENV) {
        Err(_) => Ok(READ_THREADS),
        Ok(text) => match text.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!(
                "{READ_THREADS_ENV} must be a whole number of threads, at least 1 (got {text:?})"
            )),
        },
    }
}

fn build(n: usize) -> Result<ThreadPool> {
    ThreadPoolBuilder::new()
        .num_threads(n)
        .thread_name(|i| format!("phasekit-read-{i}"))
        .build()
        .map_err(|e| Error::InvalidArgument(format!("cannot start {n} threads: {e}")))
}

/// A kept pool of exactly `n` threads, built on first use.
fn pool_of(n: usize) -> Result<Arc<ThreadPool>> {
    if n == 0 {
        return Err(Error::InvalidArgument("threads must be at least 1".into()));
    }
    // A panic elsewhere while the map was held cannot leave it half-updated
    // (inserts are single operations): keep using it.
    let mut pools = POOLS.lock().unwrap_or_else(PoisonError::into_inner);
    let pools = pools.get_or_insert_with(HashMap::new);
    if let Some(pool) = pools.get(&n) {
        return Ok(pool.clone());
    }
    let pool = Arc::new(build(n)?);
    pools.insert(n, pool.clone());
    Ok(pool)
}

/// The reading pool: exactly `threads` workers when given, else the default
/// reading pool (see the module comment).
pub fn reading_pool(threads: Option<usize>) -> Result<Arc<ThreadPool>> {
    pool_of(match threads {
        Some(n) => n,
        None => default_read_threads()?,
    })
}

/// Run `f` on the [`reading_pool`]: work `f` spreads with rayon (`par_iter`,
/// `scope`) runs on that pool's threads.
pub fn in_reading_pool<T: Send>(threads: Option<usize>, f: impl FnOnce() -> T + Send) -> Result<T> {
    Ok(reading_pool(threads)?.install(f))
}

/// Run `f` on `threads` workers, or on rayon's global pool (one thread per
/// core) when `None`: for work bound by the CPU or by writes (copies,
/// removals), where more threads than cores gain nothing.
pub fn in_pool<T: Send>(threads: Option<usize>, f: impl FnOnce() -> T + Send) -> Result<T> {
    match threads {
        None => Ok(f()),
        Some(n) => Ok(pool_of(n)?.install(f)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_named_count_is_exactly_that_many_workers() {
        for n in [1, 3, 17] {
            let seen = in_reading_pool(Some(n), rayon::current_num_threads).unwrap();
            assert_eq!(seen, n);
        }
    }

    #[test]
    fn the_default_reading_pool_is_sized_for_latency() {
        let seen = in_reading_pool(None, rayon::current_num_threads).unwrap();
        assert_eq!(seen, default_read_threads().unwrap());
    }

    #[test]
    fn zero_threads_is_refused() {
        assert!(matches!(
            in_reading_pool(Some(0), || ()),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            in_pool(Some(0), || ()),
            Err(Error::InvalidArgument(_))
        ));
    }

    #[test]
    fn pools_are_kept() {
        let a = pool_of(5).unwrap();
        let b = pool_of(5).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
    }
}
