//! The I/O pool: threads that sleep between jobs, for reads handed out a few
//! dozen at a time (a hashing walk's files, one directory, or piece of one,
//! per call of [`run_each`]).
//!
//! Not rayon's pool for those (see crate::pool for the pages of work that
//! stay there): a rayon worker that runs out of work spins, calling
//! `sched_yield` a few dozen times before it sleeps, and a hashing walk
//! leaves the pool without work once per directory. A cold content index of
//! 60,000 files in 1,410 folders (benches/cold.py) made 80,000 such calls:
//! CPU that two cores, already busy with the kernel's side of 65,000 cold
//! reads, did not have. Nor a channel: crossbeam's (and std's) spin and yield
//! a few times before blocking too (20,000 calls left in the same index).
//! Here a waiting thread only sleeps on a condition variable.
//!
//! Waking a thread costs a system call and a switch, more than a file in the
//! page cache takes to read and hash. So the calling thread runs its jobs
//! too, with one worker woken to help, and a thread that finishes a job that
//! waited (took [`SLOW`] or more) wakes one more while jobs are left: on warm
//! files the caller and one helper share a directory, on a cold device the
//! helpers multiply until every worker has a read in flight. (Waking a
//! worker per job, or all of them per call, made a warm 200,000-file content
//! index 4-9 % slower than rayon's pool.)
//!
//! Sized as the reading pool ([`crate::pool::default_read_threads`], or the
//! caller's count) and kept, one per size, for the life of the process. The
//! callers read beside its threads: a walk's N walking threads and a pool of
//! N read up to 2N files at once (the default: 8 and 16). Holding the
//! callers within the pool's N instead (a count of slots) was measured: cold
//! 60,000 files 1.91 s against 1.67 s, no better than rayon's pool; the
//! reads in flight decide (benches/results/scale-issue15.md).

use std::collections::{HashMap, VecDeque};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::pool::default_read_threads;

/// A job that took this long waited for the device (a file in the page cache
/// is read and its samples hashed in tens of microseconds): one more worker
/// is woken to help with the call's other jobs.
const SLOW: Duration = Duration::from_micros(100);

/// What a worker runs: help one call with its jobs (`Call::work`).
type Job = Box<dyn FnOnce() + Send + 'static>;

/// The jobs waiting for a worker.
#[derive(Default)]
struct Queue {
    // Locked only to push or pop (never while a job runs).
    waiting: Mutex<Waiting>,
    ready: Condvar,
}

#[derive(Default)]
struct Waiting {
    jobs: VecDeque<Job>,
    /// Workers asleep on `ready`: a push wakes one only if there is one (a
    /// notification is a system call even with no one waiting).
    sleeping: usize,
    /// Set when the pool could not be built: its started threads end.
    closed: bool,
}

/// Locks that a panicking job cannot poison in a harmful way: jobs run
/// outside them, and each update under them is a single push, pop or store.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Queue {
    fn push(&self, job: Job) {
        let mut waiting = lock(&self.waiting);
        waiting.jobs.push_back(job);
        let wake = waiting.sleeping > 0;
        drop(waiting);
        if wake {
            self.ready.notify_one();
        }
    }

    /// The next job, waiting for one; `None` once the queue is closed.
    fn pop(&self) -> Option<Job> {
        let mut waiting = lock(&self.waiting);
        loop {
            if let Some(job) = waiting.jobs.pop_front() {
                return Some(job);
            }
            if waiting.closed {
                return None;
            }
            waiting.sleeping += 1;
            waiting = self
                .ready
                .wait(waiting)
                .unwrap_or_else(PoisonError::into_inner);
            waiting.sleeping -= 1;
        }
    }

    fn close(&self) {
        lock(&self.waiting).closed = true;
        self.ready.notify_all();
    }
}

struct IoPool {
    queue: Arc<Queue>,
    threads: usize,
}

impl IoPool {
    fn build(threads: usize) -> Result<IoPool> {
        if threads == 0 {
            return Err(Error::InvalidArgument("threads must be at least 1".into()));
        }
        let queue = Arc::new(Queue::default());
        for i in 0..threads {
            let worker = queue.clone();
            let started = std::thread::Builder::new()
                .name(format!("phasekit-io-{i}"))
                // Jobs catch their own panics (see `run_each`): a worker runs
                // until its queue closes, which a built pool's never does.
                .spawn(move || {
                    while let Some(job) = worker.pop() {
                        job();
                    }
                });
            if let Err(e) = started {
                queue.close();
                return Err(Error::InvalidArgument(format!(
                    "cannot start {threads} threads: {e}"
                )));
            }
        }
        Ok(IoPool { queue, threads })
    }
}

// Guards the map only while a pool is looked up or built.
static POOLS: Mutex<Option<HashMap<usize, Arc<IoPool>>>> = Mutex::new(None);

/// Build (or find) the I/O pool of `threads` threads (`None`: the default
/// reading pool's size): a walk asks for it before it starts, so a bad size
/// or a thread that cannot start is said then, not mid-listing.
pub fn ensure(threads: Option<usize>) -> Result<()> {
    pool_of(threads).map(drop)
}

fn pool_of(threads: Option<usize>) -> Result<Arc<IoPool>> {
    let n = match threads {
        Some(n) => n,
        None => default_read_threads()?,
    };
    let mut pools = lock(&POOLS);
    let pools = pools.get_or_insert_with(HashMap::new);
    if let Some(pool) = pools.get(&n) {
        return Ok(pool.clone());
    }
    let pool = Arc::new(IoPool::build(n)?);
    pools.insert(n, pool.clone());
    Ok(pool)
}

/// One call's jobs, shared by the caller and the workers helping it, and
/// their results. Jobs are claimed by an atomic counter and results stored
/// in their own slots, so threads sharing a call never wait on one another's
/// lock (one shared lock per job, taken by three or more threads on files in
/// the page cache, made them sleep and wake).
struct Call<R, J> {
    jobs: Vec<Mutex<Option<J>>>,
    /// The next job to claim.
    next: AtomicUsize,
    results: Vec<Mutex<Option<std::thread::Result<R>>>>,
    /// Jobs not ended yet; the thread ending the last one says so.
    left: AtomicUsize,
    all_done: Mutex<bool>,
    done: Condvar,
    /// Workers asked to help so far, and at most.
    helpers: AtomicUsize,
    most_helpers: usize,
    queue: Arc<Queue>,
}

impl<R: Send + 'static, J: FnOnce() -> R + Send + 'static> Call<R, J> {
    /// Run the call's jobs until none is left to claim.
    fn work(self: &Arc<Self>) {
        loop {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            let Some(slot) = self.jobs.get(i) else {
                return;
            };
            // Claimed by this thread alone: the lock is never contended.
            let Some(job) = lock(slot).take() else {
                continue;
            };
            let started = Instant::now();
            let result = catch_unwind(AssertUnwindSafe(job));
            if started.elapsed() >= SLOW && self.next.load(Ordering::Relaxed) < self.jobs.len() {
                self.ask_for_help();
            }
            *lock(&self.results[i]) = Some(result);
            // AcqRel: the thread that sees the count reach zero sees every
            // result stored before it.
            if self.left.fetch_sub(1, Ordering::AcqRel) == 1 {
                *lock(&self.all_done) = true;
                self.done.notify_one();
            }
        }
    }

    /// Wake one more worker to take this call's jobs, unless all it may
    /// have are already asked.
    fn ask_for_help(self: &Arc<Self>) {
        if self.helpers.fetch_add(1, Ordering::Relaxed) >= self.most_helpers {
            return;
        }
        let call = self.clone();
        self.queue.push(Box::new(move || call.work()));
    }
}

/// Run every job on the I/O pool of `threads` threads (`None`: the default
/// size) and wait for all of them; their results in the jobs' order. The
/// calling thread runs jobs too, with workers helping as the jobs prove
/// slow (see the module comment). Jobs own what they use: nothing is
/// borrowed across threads. A job that panicked has its panic resumed here,
/// after every other job ended. Without a pool (its threads could not
/// start) the caller runs them all.
pub fn run_each<R, J>(threads: Option<usize>, jobs: Vec<J>) -> Vec<R>
where
    R: Send + 'static,
    J: FnOnce() -> R + Send + 'static,
{
    let n = jobs.len();
    let pool = pool_of(threads).ok();
    let call = Arc::new(Call {
        jobs: jobs.into_iter().map(|job| Mutex::new(Some(job))).collect(),
        next: AtomicUsize::new(0),
        results: (0..n).map(|_| Mutex::new(None)).collect(),
        left: AtomicUsize::new(n),
        all_done: Mutex::new(n == 0),
        done: Condvar::new(),
        helpers: AtomicUsize::new(0),
        most_helpers: pool
            .as_ref()
            .map_or(0, |p| p.threads.min(n.saturating_sub(1))),
        queue: pool.map_or_else(|| Arc::new(Queue::default()), |p| p.queue.clone()),
    });
    if n > 1 {
        call.ask_for_help();
    }
    call.work();
    let mut all_done = lock(&call.all_done);
    while !*all_done {
        all_done = call
            .done
            .wait(all_done)
            .unwrap_or_else(PoisonError::into_inner);
    }
    drop(all_done);
    let mut values = Vec::with_capacity(n);
    let mut panic = None;
    for slot in &call.results {
        match lock(slot).take() {
            Some(Ok(value)) => values.push(value),
            Some(Err(payload)) => panic = panic.or(Some(payload)),
            None => {}
        }
    }
    if let Some(payload) = panic {
        resume_unwind(payload);
    }
    values
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_keep_their_order_and_run_many_at_once() {
        // Jobs that wait (as reads from a slow device do): the workers join
        // the caller, so 40 of them take far less than 40 waits.
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let jobs: Vec<_> = (0..40u64)
            .map(|i| {
                let (running, most) = (running.clone(), most.clone());
                move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    running.fetch_sub(1, Ordering::SeqCst);
                    (i * 3, std::thread::current().name().map(str::to_owned))
                }
            })
            .collect();
        let results = run_each(Some(4), jobs);
        assert_eq!(results.len(), 40);
        let mut on_pool = 0;
        for (i, (value, thread)) in results.into_iter().enumerate() {
            assert_eq!(value, i as u64 * 3);
            on_pool += usize::from(thread.is_some_and(|name| name.starts_with("phasekit-io-")));
        }
        assert!(on_pool > 0, "no worker helped");
        assert!(
            most.load(Ordering::SeqCst) > 1,
            "never more than one at once"
        );
        assert!(
            most.load(Ordering::SeqCst) <= 5,
            "more than the caller and 4 workers"
        );
    }

    #[test]
    fn callers_read_beside_the_pool_and_no_more() {
        // Eight callers (a walk's walking threads) on a pool of one: each
        // runs its own jobs, the pool's one thread helps: at most 8 + 1.
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        std::thread::scope(|s| {
            for _ in 0..8 {
                let (running, most) = (running.clone(), most.clone());
                s.spawn(move || {
                    let jobs: Vec<_> = (0..10)
                        .map(|_| {
                            let (running, most) = (running.clone(), most.clone());
                            move || {
                                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                                most.fetch_max(now, Ordering::SeqCst);
                                std::thread::sleep(std::time::Duration::from_millis(1));
                                running.fetch_sub(1, Ordering::SeqCst);
                            }
                        })
                        .collect();
                    assert_eq!(run_each(Some(1), jobs).len(), 10);
                });
            }
        });
        assert!(most.load(Ordering::SeqCst) <= 9);
    }

    #[test]
    fn a_job_may_run_jobs_on_its_own_pool() {
        let outer: Vec<_> = (0..3u32)
            .map(|i| move || run_each(Some(1), (0..2).map(|j| move || i * 10 + j).collect()))
            .collect();
        assert_eq!(
            run_each(Some(1), outer),
            vec![vec![0, 1], vec![10, 11], vec![20, 21]]
        );
    }

    #[test]
    fn a_job_that_panics_panics_the_caller_after_the_others_ended() {
        let ended = Arc::new(AtomicUsize::new(0));
        let jobs: Vec<Box<dyn FnOnce() + Send>> = (0..50)
            .map(|i| {
                let ended = ended.clone();
                Box::new(move || {
                    assert_ne!(i, 7, "job 7 fails");
                    std::thread::sleep(std::time::Duration::from_millis(2));
                    ended.fetch_add(1, Ordering::SeqCst);
                }) as Box<dyn FnOnce() + Send>
            })
            .collect();
        let caught = catch_unwind(AssertUnwindSafe(|| run_each(Some(3), jobs)));
        assert!(caught.is_err());
        assert_eq!(ended.load(Ordering::SeqCst), 49);
        // The pool still works after a job panicked.
        assert_eq!(run_each(Some(3), vec![|| 1, || 2]), vec![1, 2]);
    }

    #[test]
    fn callers_on_many_threads_share_a_pool() {
        let totals: Vec<u64> = std::thread::scope(|s| {
            let callers: Vec<_> = (0..8u64)
                .map(|c| {
                    s.spawn(move || {
                        (0..20)
                            .map(|round| {
                                let jobs: Vec<_> =
                                    (0..(round % 7)).map(|j| move || c * 1000 + j).collect();
                                run_each(Some(2), jobs).into_iter().sum::<u64>()
                            })
                            .sum()
                    })
                })
                .collect();
            callers.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (c, total) in totals.into_iter().enumerate() {
            let expected: u64 = (0..20u64)
                .map(|round| (0..(round % 7)).map(|j| c as u64 * 1000 + j).sum::<u64>())
                .sum();
            assert_eq!(total, expected);
        }
    }

    #[test]
    fn no_jobs_return_at_once_and_zero_threads_is_refused() {
        assert!(run_each(Some(2), Vec::<fn() -> u8>::new()).is_empty());
        assert!(matches!(ensure(Some(0)), Err(Error::InvalidArgument(_))));
    }
}
