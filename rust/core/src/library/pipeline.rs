//! A pipelined scan: the walker runs on its own thread while the caller
//! writes the batches it produced, so walking and writing overlap.
//!
//! The walker thread sends each batch together with the walker's state taken
//! right after that batch was produced (before the next one is read). The
//! walker runs ahead of the writer by up to [`CHANNEL_CAPACITY`] batches, so
//! the walker's *current* state would skip batches not yet written; the state
//! that travels with batch i is exactly "everything up to batch i yielded",
//! and a checkpoint of it after batch i is written resumes right after it.
//!
//! A store that writes many rows per transaction far more cheaply than few
//! (`LibraryStore::rows_per_write`: PostgreSQL, where each transaction is
//! several round trips and a COPY) gets the batches waiting for the writer
//! merged into one, up to that many rows, with the state of the last: the
//! same as a walk with larger batches, sized by how far the writer lags.

use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use super::book::ScanStats;
use super::scan::ScanWriter;
use super::store::LibraryStore;
use crate::cancel::CancelToken;
use crate::error::{Error, FsError, Result};
use crate::walk::{Batch, WalkOptions, Walker};

/// Batches that may wait for the writer; beyond this the walker blocks. Small:
/// overlap needs only one batch in flight, and memory stays bounded. (A
/// store merging batches lets enough wait to fill one write.)
pub const CHANNEL_CAPACITY: usize = 4;

/// At most this many batches wait, merging or not: each carries the walk's
/// state, which grows with the directories still open (1 MB for a root of
/// 20,000 folders), so tiny batches must not let thousands queue up.
const MAX_WAITING: usize = 32;

/// How often a writer waiting for a batch re-checks the caller's cancel token.
const POLL: Duration = Duration::from_millis(20);

/// What the walker thread sends.
enum Message {
    /// A batch and the walker's state right after it.
    Batch(Box<Batch>, Vec<u8>),
    /// The walk is complete.
    End,
    /// The walk failed (or was stopped): its last message.
    Failed(Error),
}

/// A batch received from the walker, with the walk state after it.
pub struct Received {
    batch: Box<Batch>,
    state: Vec<u8>,
}

/// One written batch.
#[derive(Debug)]
pub struct Step {
    /// Entries in the batch (written or found unchanged).
    pub entries: usize,
    /// Walker state after this batch: checkpoint it with the batch written.
    pub state: Vec<u8>,
    /// Problems met walking this batch and writing it.
    pub errors: Vec<FsError>,
    /// The batch's last path (for progress: where the walk is).
    pub last_path: Vec<u8>,
}

/// A scan of one location whose walk runs on a background thread.
///
/// Dropping it stops the walker thread (without waiting for it);
/// [`ScanPipeline::close`] stops and joins it.
pub struct ScanPipeline {
    writer: ScanWriter,
    receiver: Option<Receiver<Message>>,
    thread: Option<JoinHandle<()>>,
    /// The caller's token: seen between batches and while waiting for one.
    cancel: CancelToken,
    /// The walker's own token: set when the scan stops (cancel, close, drop)
    /// so a walker inside a slow directory read stops too, without touching
    /// the caller's token.
    stop: CancelToken,
    finished: bool,
    /// Rows up to which batches waiting are merged into one write (0: none).
    merge_rows: usize,
    /// A message received while merging, after the merged batches: the
    /// next [`ScanPipeline::receive`] returns it first.
    held: Option<Message>,
}

impl ScanPipeline {
    /// Start scanning `location_id` (walking its root), or resume a scan from
    /// a [`Step::state`]. With `resume`, `fresh` holds only while the location
    /// still has no entries (a fresh scan interrupted after its first write
    /// continues as a re-scan: what it wrote is looked up, not inserted twice).
    pub fn start(
        db: &impl LibraryStore,
        location_id: i64,
        fresh: bool,
        opts: WalkOptions,
        resume: Option<&[u8]>,
        cancel: CancelToken,
    ) -> Result<Self> {
        let root = db.location(location_id)?.path;
        let fresh = fresh && (resume.is_none() || db.entry_count(location_id)? == 0);
        let writer = ScanWriter::new(db, location_id, fresh)?;
        let merge_rows = db.rows_per_write();
        let capacity = CHANNEL_CAPACITY
            .max(merge_rows.div_ceil(opts.batch_size.max(1)) + 1)
            .min(MAX_WAITING);
        let stop = CancelToken::new();
        let walker = match resume {
            Some(state) => Walker::resume(state, opts, stop.clone())?,
            None => Walker::new(&[root], opts, stop.clone())?,
        };
        let (sender, receiver) = crossbeam_channel::bounded(capacity);
        let thread = std::thread::Builder::new()
            .name("phasekit-scan-walk".into())
            .spawn(move || walk(walker, &sender))
            .map_err(|e| {
                Error::InvalidArgument(format!("could not start the walker thread: {e}"))
            })?;
        Ok(ScanPipeline {
            writer,
            receiver: Some(receiver),
            thread: Some(thread),
            cancel,
            stop,
            finished: false,
            merge_rows,
            held: None,
        })
    }

    /// Wait for the walker's next batch (no store needed: a caller sharing
    /// the store keeps it free meanwhile). `Ok(None)` once the walk is
    /// complete.
    pub fn receive(&mut self) -> Result<Option<Received>> {
        if self.finished {
            return Ok(None);
        }
        let Some(receiver) = &self.receiver else {
            return Err(Error::InvalidArgument(
                "this scan is closed (closed, cancelled or failed): resume a new one \
                 from the last state returned"
                    .into(),
            ));
        };
        let message = loop {
            if self.cancel.is_cancelled() {
                self.halt();
                return Err(Error::Cancelled);
            }
            if let Some(message) = self.held.take() {
                break message;
            }
            match receiver.recv_timeout(POLL) {
                Ok(message) => break message,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => {
                    // The walker thread sends every end (None or an error)
                    // explicitly; a silent hang-up means it panicked.
                    self.halt();
                    return Err(Error::InvalidArgument(
                        "the walker thread stopped unexpectedly".into(),
                    ));
                }
            }
        };
        let (mut batch, mut state) = match message {
            Message::Batch(batch, state) => (batch, state),
            Message::End => {
                self.finished = true;
                self.halt();
                return Ok(None);
            }
            Message::Failed(e) => {
                // The walker is cancelled only through our stop token, which
                // is set only when the caller cancelled: either way, Cancelled.
                self.halt();
                return Err(e);
            }
        };
        // Batches already waiting join this one, up to the store's rows
        // per write; whatever ends the merge waits for the next call.
        while batch.len() < self.merge_rows {
            match receiver.try_recv() {
                Ok(Message::Batch(next, next_state)) => {
                    batch.append(*next);
                    state = next_state;
                }
                Ok(other) => {
                    self.held = Some(other);
                    break;
                }
                // Nothing waiting, or the walker gone (the next call says).
                Err(_) => break,
            }
        }
        Ok(Some(Received { batch, state }))
    }

    /// Write a batch from [`ScanPipeline::receive`] in one transaction.
    pub fn write(&mut self, db: &mut impl LibraryStore, received: Received) -> Result<Step> {
        let Received { batch, state } = received;
        let mut errors = match self.writer.write_batch(db, &batch) {
            Ok(errors) => errors,
            Err(e) => {
                // The batch is lost to this scan: never step past it (resume
                // from the last state returned instead).
                self.halt();
                return Err(e);
            }
        };
        let last_path = match batch.len() {
            0 => Vec::new(),
            n => batch.path(n - 1).to_vec(),
        };
        errors.splice(0..0, batch.errors);
        Ok(Step {
            entries: batch.path_ends.len(),
            state,
            errors,
            last_path,
        })
    }

    /// The next batch, written in one transaction: [`ScanPipeline::receive`]
    /// then [`ScanPipeline::write`]. `Ok(None)` once the walk is complete.
    pub fn step(&mut self, db: &mut impl LibraryStore) -> Result<Option<Step>> {
        match self.receive()? {
            None => Ok(None),
            Some(received) => self.write(db, received).map(Some),
        }
    }

    /// After the last step: delete what the scan did not see and is gone.
    pub fn sweep(&mut self, db: &mut impl LibraryStore) -> Result<()> {
        if !self.finished {
            return Err(Error::InvalidArgument(
                "sweep only after the walk has finished (step returned None)".into(),
            ));
        }
        self.writer.sweep(db)
    }

    /// After the sweep: directory sizes and file counts, from what this scan
    /// wrote when it saw the whole location (else from the database).
    pub fn aggregate(&mut self, db: &mut impl LibraryStore) -> Result<(i64, i64)> {
        if !self.finished {
            return Err(Error::InvalidArgument(
                "aggregate after the last step and the sweep".into(),
            ));
        }
        self.writer.aggregate(db)
    }

    pub fn stats(&self) -> ScanStats {
        self.writer.stats()
    }

    /// Whether each step waits for the store's disk before it returns
    /// (default: yes); see [`crate::library::book::ScanBook::set_durable_steps`].
    pub fn set_durable_steps(&mut self, durable: bool) {
        self.writer.set_durable_steps(durable);
    }

    /// Make every step returned so far durable before its state is kept:
    /// see [`LibraryStore::flush_steps`]. Nothing to do for a scan whose
    /// steps wait for the disk.
    pub fn flush_steps(&mut self, db: &mut impl LibraryStore) -> Result<()> {
        self.writer.flush_steps(db)
    }

    /// True once the walk ended and every batch was written.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// When the scan started (unix seconds): the entries' `indexed_at`.
    pub fn started(&self) -> f64 {
        self.writer.started()
    }

    /// Stop the walker thread: it sees the stop token (or the dropped
    /// receiver, if it waits to send) and ends within one poll interval.
    fn halt(&mut self) {
        self.stop.cancel();
        self.receiver.take();
    }

    /// Stop the walker thread and wait for it to end.
    pub fn close(&mut self) {
        self.halt();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for ScanPipeline {
    fn drop(&mut self) {
        // Not joined: a drop may run where waiting is unwelcome (holding the
        // GIL); the thread ends by itself once it sees the stop.
        self.halt();
    }
}

/// The walker thread: batches with their states, then `End` or the error
/// that ended the walk.
fn walk(mut walker: Walker, sender: &Sender<Message>) {
    loop {
        let (message, last) = match walker.next_batch() {
            Ok(Some(batch)) => {
                // Taken before the next batch is read: see the module comment.
                let state = walker.state();
                (Message::Batch(Box::new(batch), state), false)
            }
            Ok(None) => (Message::End, true),
            Err(e) => (Message::Failed(e), true),
        };
        // A send fails once the receiver is gone (scan closed or dropped).
        if sender.send(message).is_err() || last {
            return;
        }
    }
}
