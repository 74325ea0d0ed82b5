//! The gate a subdirectory's listing waits at until its parent's is sent.
//!
//! A hashing walk holds each directory for as long as its files take to read;
//! if its subdirectories were queued only after that (as plain walks do), the
//! other walkers would run out of directories near the top of a tree and, on
//! cold storage, the device would sit idle between them. So a hashing walk
//! queues the subdirectories that `readdir` names as directories as soon as
//! the names are read, each with a gate: its worker reads and hashes the
//! child meanwhile, and waits here only before *sending* its first listing,
//! until the parent's piece that names the child was sent. The consumer thus
//! still never receives a listing whose directory it has not yielded (see
//! pool.rs), which the resume frontier relies on.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// What a worker waiting at a gate was let through to.
#[derive(Debug, PartialEq, Eq)]
pub enum Passage {
    /// The parent's piece naming this directory was sent: send ours.
    Open,
    /// The parent will never name this directory as one to enter (it was not
    /// a directory when stat'ed, vanished, or the parent's listing failed or
    /// stopped): nothing of it is sent.
    Shut,
    /// The walk is stopping.
    Halted,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Waiting,
    Open,
    Shut,
}

#[derive(Debug)]
pub struct Gate {
    // The state changes once (Waiting -> Open or Shut); the condition
    // variable wakes the one worker that may be waiting for that.
    state: Mutex<State>,
    changed: Condvar,
}

impl Gate {
    pub fn new() -> Arc<Gate> {
        Arc::new(Gate {
            state: Mutex::new(State::Waiting),
            changed: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A plain enum cannot be left half-written by a panicking holder.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn settle(&self, to: State) {
        let mut state = self.lock();
        if *state == State::Waiting {
            *state = to;
            self.changed.notify_all();
        }
    }

    /// Let the directory's listings through (no-op once settled).
    pub fn open(&self) {
        self.settle(State::Open);
    }

    /// Drop the directory's listings (no-op once settled: an opened gate
    /// stays open).
    pub fn shut(&self) {
        self.settle(State::Shut);
    }

    /// Wait until the gate is settled or `halted` says stop; `halted` is
    /// polled every `poll`, since stops are not signalled to this gate.
    pub fn wait(&self, halted: impl Fn() -> bool, poll: Duration) -> Passage {
        let mut state = self.lock();
        loop {
            match *state {
                State::Open => return Passage::Open,
                State::Shut => return Passage::Shut,
                State::Waiting if halted() => return Passage::Halted,
                State::Waiting => {
                    state = self
                        .changed
                        .wait_timeout(state, poll)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLL: Duration = Duration::from_millis(5);

    #[test]
    fn a_gate_opened_from_another_thread_lets_the_waiter_through() {
        let gate = Gate::new();
        let opener = gate.clone();
        let handle = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            opener.open();
        });
        assert_eq!(gate.wait(|| false, POLL), Passage::Open);
        handle.join().ok();
    }

    #[test]
    fn the_first_settlement_stands() {
        let gate = Gate::new();
        gate.open();
        gate.shut();
        assert_eq!(gate.wait(|| false, POLL), Passage::Open);
        let gate = Gate::new();
        gate.shut();
        gate.open();
        assert_eq!(gate.wait(|| false, POLL), Passage::Shut);
    }

    #[test]
    fn a_halt_ends_the_wait_of_an_unsettled_gate() {
        let gate = Gate::new();
        assert_eq!(gate.wait(|| true, POLL), Passage::Halted);
    }
}
