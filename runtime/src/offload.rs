//! The worker pool for CPU-bound work.
//!
//! Plain threads (not pinned to the shards' cores unless asked) take jobs from one
//! bounded crossbeam channel. A job carries its shard and connection token; its result
//! goes back through that shard's mailbox, and the handler's `on_offload_done` runs on
//! the shard that owns the connection. A full queue is refused at once (the shard never
//! blocks); a panicking job becomes an error result for its connection and the worker
//! carries on.

use std::any::Any;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};

use crate::mailbox::{Mailboxes, ShardMsg};
use crate::token::ConnToken;

/// What an offloaded job returns: its value, or the panic that stopped it.
pub type OffloadResult = Result<Box<dyn Any + Send>, OffloadPanic>;

/// An offloaded job panicked; the message is the panic's payload when it was a string.
#[derive(Debug, Clone)]
pub struct OffloadPanic {
    /// The panic message.
    pub message: String,
}

impl fmt::Display for OffloadPanic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "offloaded job panicked: {}", self.message)
    }
}

/// Why `Io::offload` refused a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OffloadError {
    /// The pool's queue is full: answer "busy" (e.g. HTTP 503) and let the client retry.
    #[error("the offload queue is full")]
    QueueFull,
    /// The server was configured without a worker pool.
    #[error("no offload pool is configured")]
    NoPool,
}

/// A boxed job.
pub(crate) type Work = Box<dyn FnOnce() -> Box<dyn Any + Send> + Send>;

pub(crate) struct Job {
    pub shard: usize,
    pub token: ConnToken,
    pub work: Work,
}

/// The pool: the job queue's sending side and the workers.
pub(crate) struct OffloadPool {
    tx: Option<Sender<Job>>,
    workers: Vec<JoinHandle<()>>,
}

impl OffloadPool {
    /// Starts `threads` workers (pinned to `cpus` in turn, if given) on a queue of `depth`.
    pub(crate) fn start(
        threads: usize,
        depth: usize,
        cpus: Option<Vec<usize>>,
        mailboxes: Mailboxes,
    ) -> std::io::Result<OffloadPool> {
        let (tx, rx) = bounded::<Job>(depth.max(1));
        let mut workers = Vec::with_capacity(threads);
        for i in 0..threads {
            let rx = rx.clone();
            let mailboxes = mailboxes.clone();
            let cpu = cpus.as_ref().map(|c| c[i % c.len()]);
            workers.push(
                std::thread::Builder::new()
                    .name(format!("offload-{i}"))
                    .spawn(move || {
                        if let Some(id) = cpu {
                            core_affinity::set_for_current(core_affinity::CoreId { id });
                        }
                        work_loop(rx, mailboxes)
                    })?,
            );
        }
        Ok(OffloadPool {
            tx: Some(tx),
            workers,
        })
    }

    /// A sender for shards to submit on.
    pub(crate) fn sender(&self) -> Option<Sender<Job>> {
        self.tx.clone()
    }

    /// Closes the queue and lets workers finish what they hold. Workers still busy are
    /// left to end with the process rather than hold up its exit.
    pub(crate) fn stop(mut self) {
        self.tx = None;
        for w in self.workers.drain(..) {
            if w.is_finished() {
                let _ = w.join();
            }
        }
    }
}

fn work_loop(rx: Receiver<Job>, mailboxes: Mailboxes) {
    while let Ok(job) = rx.recv() {
        let result = catch_unwind(AssertUnwindSafe(job.work)).map_err(|payload| {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic payload".into());
            OffloadPanic { message }
        });
        if let Some(mb) = mailboxes.get(job.shard) {
            mb.send(ShardMsg::OffloadDone {
                token: job.token,
                result,
            });
        }
    }
}

/// Submits without blocking.
pub(crate) fn try_submit(tx: &Sender<Job>, job: Job) -> Result<(), OffloadError> {
    tx.try_send(job).map_err(|e| match e {
        TrySendError::Full(_) => OffloadError::QueueFull,
        TrySendError::Disconnected(_) => OffloadError::NoPool,
    })
}
