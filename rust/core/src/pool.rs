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

/// One job for an [`IoPool`]: it reports its own result.
type Job = Box<dyn FnOnce() + Send + 'static>;

/// Threads that sleep on a channel between jobs, for reads handed out a few
/// dozen at a time: a hashing walk's files, one directory (or piece of one)
/// per call of [`run_each_on_io_pool`].
///
/// Not rayon's pool for those: a rayon worker that runs out of work spins,
/// calling `sched_yield` a few dozen times, before it sleeps, and a hashing
/// walk leaves the pool's threads without work once per directory. A cold
/// content index of 60,000 files in 1,410 folders (benches/cold.py) made
/// 80,000 such calls, CPU that two cores already busy with the kernel's side
/// of 65,000 cold reads did not have: 1.71 s with rayon against 1.58 s with
/// this pool (medians of 5 alternating cold runs; warm runs unchanged).
/// Work given a page at a time (the content step, validation, the duplicate
/// finder) stays on the [`reading_pool`]: its threads run dry once a page.
struct IoPool {
    jobs: crossbeam_channel::Sender<Job>,
}

// Guards the map only while a pool is looked up or built, as `POOLS`.
static IO_POOLS: Mutex<Option<HashMap<usize, Arc<IoPool>>>> = Mutex::new(None);

impl IoPool {
    fn build(n: usize) -> Result<IoPool> {
        if n == 0 {
            return Err(Error::InvalidArgument("threads must be at least 1".into()));
        }
        let (jobs, queue) = crossbeam_channel::unbounded::<Job>();
        for i in 0..n {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("phasekit-io-{i}"))
                // Jobs catch their own panics (see `run_each_on_io_pool`), so
                // a thread lives as long as the pool's sender: the process.
                .spawn(move || {
                    while let Ok(job) = queue.recv() {
                        job();
                    }
                })
                .map_err(|e| Error::InvalidArgument(format!("cannot start {n} threads: {e}")))?;
        }
        Ok(IoPool { jobs })
    }
}

/// The kept I/O pool of `threads` threads (`None`: the default reading
/// pool's size, see [`default_read_threads`]), built on first use: a walk
/// asks for it before it starts, so a bad size or a thread that cannot start
/// is said then.
pub fn io_pool(threads: Option<usize>) -> Result<()> {
    io_pool_of(threads).map(drop)
}

fn io_pool_of(threads: Option<usize>) -> Result<Arc<IoPool>> {
    let n = match threads {
        Some(n) => n,
        None => default_read_threads()?,
    };
    let mut pools = IO_POOLS.lock().unwrap_or_else(PoisonError::into_inner);
    let pools = pools.get_or_insert_with(HashMap::new);
    if let Some(pool) = pools.get(&n) {
        return Ok(pool.clone());
    }
    let pool = Arc::new(IoPool::build(n)?);
    pools.insert(n, pool.clone());
    Ok(pool)
}

/// Run every job on the I/O pool of `threads` threads and wait for all of
/// them; their results in the jobs' order. Jobs own what they use (no
/// borrowing across threads). A job that panicked has its panic resumed
/// here, after every other job ended. Without a pool (its threads could not
/// start) the jobs run on this thread.
pub fn run_each_on_io_pool<R, J>(threads: Option<usize>, jobs: Vec<J>) -> Vec<R>
where
    R: Send + 'static,
    J: FnOnce() -> R + Send + 'static,
{
    let Ok(pool) = io_pool_of(threads) else {
        return jobs.into_iter().map(|job| job()).collect();
    };
    let n = jobs.len();
    let (done, results) = crossbeam_channel::bounded(n);
    for (i, job) in jobs.into_iter().enumerate() {
        let done = done.clone();
        let job: Job = Box::new(move || {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
            // The receiver waits for every job: the send cannot fail.
            let _ = done.send((i, result));
        });
        if let Err(unsent) = pool.jobs.send(job) {
            // The pool's threads hold its receiver for the process's life;
            // should it be gone anyway, the job still runs.
            (unsent.into_inner())();
        }
    }
    drop(done);
    let mut slots: Vec<Option<R>> = (0..n).map(|_| None).collect();
    let mut panic = None;
    // Each job sends exactly once: `n` results, then every sender is gone.
    while let Ok((i, result)) = results.recv() {
        match result {
            Ok(value) => slots[i] = Some(value),
            Err(payload) => panic = panic.or(Some(payload)),
        }
    }
    if let Some(payload) = panic {
        std::panic::resume_unwind(payload);
    }
    slots.into_iter().flatten().collect()
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
    fn the_io_pool_keeps_the_jobs_order_and_runs_them_on_its_threads() {
        let jobs: Vec<_> = (0..200u64)
            .map(|i| move || (i * 3, std::thread::current().name().map(str::to_owned)))
            .collect();
        let results = run_each_on_io_pool(Some(4), jobs);
        assert_eq!(results.len(), 200);
        for (i, (value, thread)) in results.into_iter().enumerate() {
            assert_eq!(value, i as u64 * 3);
            assert!(thread.is_some_and(|name| name.starts_with("phasekit-io-")));
        }
    }

    #[test]
    fn an_io_job_that_panics_panics_the_caller_after_the_others_ended() {
        let ended = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let jobs: Vec<Box<dyn FnOnce() + Send>> = (0..50)
            .map(|i| {
                let ended = ended.clone();
                Box::new(move || {
                    assert_ne!(i, 7, "job 7 fails");
                    std::thread::sleep(std::time::Duration::from_millis(2));
                    ended.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }) as Box<dyn FnOnce() + Send>
            })
            .collect();
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run_each_on_io_pool(Some(3), jobs)
        }));
        assert!(caught.is_err());
        assert_eq!(ended.load(std::sync::atomic::Ordering::SeqCst), 49);
        // The pool still works after a job panicked.
        assert_eq!(run_each_on_io_pool(Some(3), vec![|| 1, || 2]), vec![1, 2]);
    }

    #[test]
    fn an_io_pool_of_zero_threads_is_refused() {
        assert!(matches!(io_pool(Some(0)), Err(Error::InvalidArgument(_))));
    }

    #[test]
    fn pools_are_kept() {
        let a = pool_of(5).unwrap();
        let b = pool_of(5).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
    }
}
