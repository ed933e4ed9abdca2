//! How other threads reach a shard: a channel plus a wake through the eventfd its ring
//! reads. Used for shutdown, offload results and cross-shard messages.
//!
//! An eventfd rather than `IORING_OP_MSG_RING`: the senders are mostly worker and
//! signal threads, which have no ring to send from; one eventfd write per message batch
//! is the whole cost, and the shard's read of it is an ordinary ring completion.

use std::any::Any;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

use crossbeam_channel::Sender;

use crate::job::OffloadDone;
use crate::sys::fd;
use crate::token::ConnToken;

/// A message between shards: shared, immutable, of any type the protocol chooses.
pub type Broadcast = Arc<dyn Any + Send + Sync>;

/// What can be sent to a shard.
pub(crate) enum ShardMsg {
    /// Start a graceful shutdown.
    Shutdown,
    /// A protocol message from `Io::broadcast`.
    Broadcast(Broadcast),
    /// An offloaded job finished.
    OffloadDone { token: ConnToken, done: OffloadDone },
}

/// One shard's inbox.
pub(crate) struct Mailbox {
    pub tx: Sender<ShardMsg>,
    pub wake: Arc<OwnedFd>,
}

impl Mailbox {
    /// Queues `msg` and wakes the shard. A shard that has exited drops it.
    pub(crate) fn send(&self, msg: ShardMsg) {
        if self.tx.send(msg).is_ok() {
            fd::eventfd_signal(self.wake.as_raw_fd());
        }
    }
}

/// Every shard's inbox, indexed by shard id.
pub(crate) type Mailboxes = Arc<Vec<Mailbox>>;
