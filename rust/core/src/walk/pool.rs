//! The worker threads that read directories ahead of the consumer.
//!
//! Workers share a LIFO stack of directories to read (depth-first keeps the
//! stack small) and send finished listings over a bounded channel (a big
//! directory's in pieces, in order, as they are stat'ed). A worker sends a
//! listing or piece *before* it queues the subdirectories in it, so a child's
//! listing always arrives after its parent's: the consumer never holds a
//! listing whose directory it has not yielded yet. The bounded channel is the
//! backpressure that keeps memory flat when the consumer is slower.
//! A hashing walk queues subdirectories earlier, from their names, and keeps
//! the same order with a gate per subdirectory (see gate.rs).

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};

use super::gate::{Gate, Passage};
use super::listing::{read_listing, DirTask, Listing};
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

    /// Queue `children` (in name order) and wake as many sleeping workers as
    /// there is new work for, `own` of it being left to the caller.
    fn push(&self, children: Vec<DirTask>, own: usize) {
        let queued = children.len();
        if queued == 0 {
            return;
        }
        let mut queue = self.lock();
        queue.pending += queued;
        // Reverse so the first child by name is read first (LIFO stack).
        queue.tasks.extend(children.into_iter().rev());
        drop(queue);
        for _ in own..queued.min(self.opts.threads) {
            self.wake.notify_one();
        }
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
                    .spawn(move || work(&shared, &sender))
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

fn work(shared: &Shared, sender: &Sender<Listing>) {
    let follow = shared.opts.follow_symlinks;
    loop {
        let Some(task) = take_task(shared) else {
            return;
        };
        // A directory queued early waits for its parent's listing to be sent
        // before sending its own (see gate.rs); `dropped` once the parent
        // shut the gate: nothing of this directory is ever sent.
        let mut gate = task.gate.clone();
        let dropped = Cell::new(false);
        // Each listing (or piece of a big directory's) is sent first and
        // its subdirectories queued second: see the module comment.
        let mut emit = |listing: Listing| -> bool {
            if shared.halted() {
                return false;
            }
            if let Some(gate) = gate.take() {
                match gate.wait(|| shared.halted(), POLL) {
                    Passage::Open => {}
                    Passage::Shut => {
                        dropped.set(true);
                        return false;
                    }
                    Passage::Halted => return false,
                }
            }
            let more = listing.more;
            let children = listing.child_tasks(follow);
            // Subdirectories queued early pass their gates once this piece,
            // which names them, is sent; those that turned out not to be
            // directories to enter are dropped.
            let gates: Vec<(Arc<Gate>, bool)> = listing
                .items
                .iter()
                .filter_map(|item| item.gate.clone().map(|g| (g, item.descend)))
                .collect();
            if sender.send(listing).is_err() {
                shared.stop.store(true, Ordering::Relaxed);
                shared.wake.notify_all();
                return false;
            }
            for (gate, descend) in gates {
                if descend {
                    gate.open();
                } else {
                    gate.shut();
                }
            }
            // After a directory's last listing this worker takes one of the
            // new tasks itself; wake only as many sleepers as there is other
            // new work (no thundering herd). While more pieces follow, it is
            // busy: wake one per task.
            shared.push(children, usize::from(!more));
            true
        };
        // The gates of the subdirectories queued early: those still closed
        // when this directory is done are shut (their parent never sent the
        // piece naming them), so no worker waits for them forever.
        let mut early: Vec<Arc<Gate>> = Vec::new();
        let mut queue_early = |children: Vec<DirTask>| {
            early.extend(children.iter().filter_map(|c| c.gate.clone()));
            // This worker goes on with its own directory: wake one per task.
            shared.push(children, 0);
        };
        // A panic here (a bug, never user input) must not leave `pending` up
        // and the consumer waiting forever: it becomes the directory's error.
        let path = task.path.clone();
        let mut ended = false;
        let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let halted = || shared.halted();
            let mut send = |listing: Listing| {
                let last = !listing.more;
                // Ended only once the last listing is really sent: a panic
                // or failure before that leaves the directory unfinished.
                let sent = emit(listing);
                ended = sent && last;
                sent
            };
            read_listing(task, &shared.opts, &halted, &mut send, &mut queue_early);
        }));
        if read.is_err() && !ended && !dropped.get() {
            let failed = Listing::failed(path, "internal error while reading this directory");
            ended = emit(failed);
        }
        for gate in early {
            gate.shut();
        }
        // A dropped directory is done: its parent does not name it.
        ended |= dropped.get();
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

#[cfg(test)]
mod tests {
    use std::os::unix::ffi::OsStrExt;
    use std::sync::atomic::AtomicBool;

    use super::*;

    fn gated_task(path: &std::path::Path, gate: &Arc<Gate>) -> DirTask {
        DirTask {
            path: path.as_os_str().as_bytes().to_vec(),
            depth: 1,
            after: None,
            expect: None,
            ancestors: Arc::new(Vec::new()),
            gate: Some(gate.clone()),
        }
    }

    fn opts() -> Arc<WalkOptions> {
        Arc::new(WalkOptions {
            threads: 2,
            ..WalkOptions::default()
        })
    }

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temporary directory");
        std::fs::write(dir.path().join("f"), b"x").expect("write");
        dir
    }

    #[test]
    fn a_directory_whose_gate_is_shut_is_done_without_a_listing() {
        let dir = tree();
        let gate = Gate::new();
        gate.shut();
        let pool = Pool::start(
            vec![gated_task(dir.path(), &gate)],
            opts(),
            CancelToken::new(),
        );
        assert!(matches!(pool.next(|| false), Next::Done));
        assert!(pool.completed(), "a dropped directory still counts as done");
    }

    #[test]
    fn a_listing_is_sent_only_once_its_gate_opens() {
        let dir = tree();
        let gate = Gate::new();
        let pool = Pool::start(
            vec![gated_task(dir.path(), &gate)],
            opts(),
            CancelToken::new(),
        );
        let opened = Arc::new(AtomicBool::new(false));
        let opener = {
            let (gate, opened) = (gate.clone(), opened.clone());
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(100));
                opened.store(true, Ordering::SeqCst);
                gate.open();
            })
        };
        let Next::Listing(listing) = pool.next(|| false) else {
            panic!("expected the directory's listing");
        };
        assert!(opened.load(Ordering::SeqCst), "sent before its gate opened");
        assert_eq!(listing.items.len(), 1);
        assert!(matches!(pool.next(|| false), Next::Done));
        assert!(pool.completed());
        opener.join().ok();
    }

    #[test]
    fn a_cancel_ends_the_wait_at_a_gate_that_never_opens() {
        let dir = tree();
        let gate = Gate::new();
        let cancel = CancelToken::new();
        let pool = Pool::start(vec![gated_task(dir.path(), &gate)], opts(), cancel.clone());
        let canceller = {
            let cancel = cancel.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                cancel.cancel();
            })
        };
        assert!(!matches!(
            pool.next(|| cancel.is_cancelled()),
            Next::Listing(_)
        ));
        assert!(!pool.completed(), "an interrupted directory is not done");
        canceller.join().ok();
    }
}
