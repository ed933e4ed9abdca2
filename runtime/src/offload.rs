//! The worker pool for CPU-bound work.
//!
//! Plain threads (not pinned to the shards' cores unless asked) take jobs from one
//! bounded crossbeam channel. A job carries its shard and connection token; its result
//! goes back through that shard's mailbox, and the handler's `on_offload_done` runs on
//! the shard that owns the connection. A full queue is refused at once (the shard never
//! blocks); a panicking job becomes an error result for its connection and the worker
//! carries on.

use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Receiver, Sender};

use crate::job::{catch_panic, Job, OffloadDone};
use crate::mailbox::{Mailboxes, ShardMsg};

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
        let done = OffloadDone::new(catch_panic(job.work));
        if let Some(mb) = mailboxes.get(job.shard) {
            mb.send(ShardMsg::OffloadDone {
                token: job.token,
                done,
            });
        }
    }
}
