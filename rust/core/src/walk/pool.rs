//! The worker threads that read directories ahead of the consumer.
//!
//! Workers share a LIFO stack of directories to read (depth-first keeps the
//! stack small) and send finished listings over a bounded channel (a big
//! directory's in pieces, in order, as they are stat'ed). A worker sends a
//! listing or piece *before* it queues the subdirectories in it, so a child's
//! listing always arrives after its parent's: the consumer never holds a
//! listing whose directory it has not yielded yet. The bounded channel is the
//! backpressure that keeps memory flat when the consumer is slower.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};

use super::listing::{read_listing, DirTask, Halted, Listing};
use super::options::WalkOptions;
use crate::cancel::CancelToken;

/// Listings that may wait for the consumer; beyond this, workers block.
const CHANNEL_CAPACITY: usize = 64;
/// How often a waiting worker re-checks the cancel token, which is set from
/// outside without notifying our condition variable.
const POLL: Duration = Duration::from_millis(20);

struct Queue {
    tasks: Vec<DirTask>,
    /// Tasks queued or being read; zero means the walk is complete.
    pending: usize,
}

struct Shared {
    // The mutex guards the stack and the pending count together, so "stack
    // empty and nothing pending" is observed atomically (no lost wakeups).
    queue: Mutex<Queue>,
    wake: Condvar,
    stop: AtomicBool,
    cancel: CancelToken,
    opts: Arc<WalkOptions>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A worker that panicked mid-update cannot leave the queue in a state
        // worse than "some tasks lost"; keep going rather than propagate.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn halted(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || self.cancel.is_cancelled()
    }
}

/// Running workers; dropping the pool stops and joins them.
pub struct Pool {
    shared: Arc<Shared>,
    receiver: Option<Receiver<Listing>>,
    handles: Vec<JoinHandle<()>>,
}

impl Pool {
    pub fn start(tasks: Vec<DirTask>, opts: Arc<WalkOptions>, cancel: CancelToken) -> Self {
        let (sender, receiver) = crossbeam_channel::bounded(CHANNEL_CAPACITY);
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                pending: tasks.len(),
                tasks: tasks.into_iter().rev().collect(),
            }),
            wake: Condvar::new(),
            stop: AtomicBool::new(false),
            cancel,
            opts: opts.clone(),
        });
        let handles = (0..opts.threads)
            .filter_map(|i| {
                let shared = shared.clone();
                let sender = sender.clone();
                std::thread::Builder::new()
                    .name(format!("phasekit-walk-{i}"))
                    .spawn(move || work(shared, &sender))
                    .ok()
            })
            .collect();
        Pool {
            shared,
            receiver: Some(receiver),
            handles,
        }
    }

    /// True when every queued directory was read (the walk ran out of work),
    /// false when workers stopped early.
    pub fn completed(&self) -> bool {
        self.shared.lock().pending == 0
    }

    /// Whether any worker thread could be started.
    pub fn has_workers(&self) -> bool {
        !self.handles.is_empty()
    }

    /// The next finished listing. `None` when the walk is complete or all
    /// workers stopped (check the cancel token to tell which); `Some(Err)`
    /// never happens: waiting polls `should_stop` so a cancel is seen promptly.
    pub fn next(&self, should_stop: impl Fn() -> bool) -> Next {
        let Some(receiver) = &self.receiver else {
            return Next::Done;
        };
        loop {
            match receiver.recv_timeout(POLL) {
                Ok(listing) => return Next::Listing(Box::new(listing)),
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return Next::Done,
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                    if should_stop() {
                        return Next::Interrupted;
                    }
                }
            }
        }
    }
}

pub enum Next {
    Listing(Box<Listing>),
    Done,
    Interrupted,
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.shared.wake.notify_all();
        // Dropping the receiver makes any blocked `send` fail. Workers are
        // not joined: one may be inside a long read, and the caller (often
        // holding the GIL) must not wait for it; each stops at its next check
        // of the stop flag and only touches memory it shares through `Arc`.
        self.receiver.take();
        self.handles.clear();
    }
}

fn work(shared: Arc<Shared>, sender: &Sender<Listing>) {
    let halted: Halted = {
        let shared = shared.clone();
        Arc::new(move || shared.halted())
    };
    let shared = &*shared;
    let follow = shared.opts.follow_symlinks;
    loop {
        let Some(task) = take_task(shared) else {
            return;
        };
        // Each listing (or piece of a big directory's) is sent first and
        // its subdirectories queued second: see the module comment.
        let emit = |listing: Listing| -> bool {
            if shared.halted() {
                return false;
            }
            let more = listing.more;
            let children = listing.child_tasks(follow);
            if sender.send(listing).is_err() {
                shared.stop.store(true, Ordering::Relaxed);
                shared.wake.notify_all();
                return false;
            }
            let queued = children.len();
            if queued > 0 {
                let mut queue = shared.lock();
                queue.pending += queued;
                // Reverse so the first child by name is read first (LIFO stack).
                queue.tasks.extend(children.into_iter().rev());
                drop(queue);
                // After a directory's last listing this worker takes one of
                // the new tasks itself; wake only as many sleepers as there
                // is other new work (no thundering herd). While more pieces
                // follow, it is busy: wake one per task.
                let own = usize::from(!more);
                for _ in own..queued.min(shared.opts.threads) {
                    shared.wake.notify_one();
                }
            }
            true
        };
        // A panic here (a bug, never user input) must not leave `pending` up
        // and the consumer waiting forever: it becomes the directory's error.
        let path = task.path.clone();
        let mut ended = false;
        let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            read_listing(task, &shared.opts, &halted, &mut |listing| {
                let last = !listing.more;
                // Ended only once the last listing is really sent: a panic
                // or failure before that leaves the directory unfinished.
                let sent = emit(listing);
                ended = sent && last;
                sent
            });
        }));
        if read.is_err() && !ended {
            let failed = Listing::failed(path, "internal error while reading this directory");
            ended = emit(failed);
        }
        if !ended || shared.halted() {
            // Stopped part-way (halted, or the consumer went away): the
            // directory stays in the consumer's frontier and is read again,
            // after its last item handed out, on resume.
            return;
        }
        let mut queue = shared.lock();
        queue.pending -= 1;
        let finished = queue.pending == 0;
        drop(queue);
        if finished {
            shared.wake.notify_all(); // everyone may exit
            return;
        }
    }
}

fn take_task(shared: &Shared) -> Option<DirTask> {
    let mut queue = shared.lock();
    loop {
        if shared.halted() || queue.pending == 0 {
            return None;
        }
        if let Some(task) = queue.tasks.pop() {
            return Some(task);
        }
        queue = shared
            .wake
            .wait_timeout(queue, POLL)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
}
