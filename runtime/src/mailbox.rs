//! How other threads reach a shard: a channel plus a wake through the eventfd its ring
//! reads. Used for shutdown, offload results, cross-shard messages and calls, and
//! notifications.
//!
//! An eventfd rather than `IORING_OP_MSG_RING`: the senders are mostly worker and
//! signal threads, which have no ring to send from; one eventfd write per message batch
//! is the whole cost, and the shard's read of it is an ordinary ring completion.
//!
//! The channel itself is unbounded, so shutdown, offload results, call outcomes and
//! notifications are never refused. Cross-shard calls, the one kind of message a busy
//! peer shard can produce without bound, are bounded by a count of calls queued
//! (`mailbox_calls`): past it a call is refused at once, never blocked on.

use std::any::Any;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crossbeam_channel::Sender;

use crate::call::{CallDone, CallError, Notification, ReplyTo};
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
    /// Run a closure with this shard's handler (a cross-shard call).
    Call(CallRequest),
    /// A call this shard made finished elsewhere.
    CallDone { to: ReplyTo, done: CallDone },
    /// A notifier of one of this shard's connections sent a value.
    Notified {
        token: ConnToken,
        notification: Notification,
    },
    /// Every clone of a notifier was dropped without a value sent.
    NotifierDropped { token: ConnToken, id: u64 },
}

/// A cross-shard call on its way: the work (an `io::CallWork`, type-erased here because
/// it names the handler API, a layer above this one) and where its outcome goes.
///
/// Dropped without having run (the target shard stopped with it still queued), it
/// tells the caller so (`CallError::ShardGone`): nothing waits for ever.
pub(crate) struct CallRequest {
    pub work: Option<Box<dyn Any + Send>>,
    pub reply: ReplyPath,
}

/// Where a call's outcome goes.
pub(crate) enum ReplyPath {
    /// To the calling shard's inbox, for one of its connections or its handler.
    Shard { mailbox: Mailbox, to: ReplyTo },
    /// To a thread outside the shards, waiting on the channel's other end.
    Thread(Sender<CallDone>),
}

impl CallRequest {
    /// The work, taken out so that dropping the request reports nothing.
    pub(crate) fn take_work(&mut self) -> Option<Box<dyn Any + Send>> {
        self.work.take()
    }

    /// Sends `done` back to the caller (a caller that has gone hears nothing).
    pub(crate) fn reply(&self, done: CallDone) {
        match &self.reply {
            ReplyPath::Shard { mailbox, to } => {
                mailbox.send(ShardMsg::CallDone { to: *to, done });
            }
            ReplyPath::Thread(tx) => {
                let _ = tx.send(done);
            }
        }
    }
}

impl Drop for CallRequest {
    fn drop(&mut self) {
        if self.work.take().is_some() {
            self.reply(CallDone::new(Err(CallError::ShardGone)));
        }
    }
}

/// One shard's inbox.
#[derive(Clone)]
pub(crate) struct Mailbox {
    pub tx: Sender<ShardMsg>,
    pub wake: Arc<OwnedFd>,
    /// Calls queued and not yet taken by the shard.
    pub calls_queued: Arc<AtomicUsize>,
    /// Most calls queued at once.
    pub call_bound: usize,
}

impl Mailbox {
    /// Queues `msg` and wakes the shard. A shard that has exited drops it (false).
    pub(crate) fn send(&self, msg: ShardMsg) -> bool {
        if self.tx.send(msg).is_ok() {
            fd::eventfd_signal(self.wake.as_raw_fd());
            true
        } else {
            false
        }
    }

    /// Queues a call within the bound, or says at once why not (the call is then
    /// dropped without reporting anything).
    pub(crate) fn send_call(&self, mut req: CallRequest) -> Result<(), CallError> {
        if self.calls_queued.fetch_add(1, Ordering::AcqRel) >= self.call_bound {
            self.calls_queued.fetch_sub(1, Ordering::AcqRel);
            req.take_work();
            return Err(CallError::MailboxFull);
        }
        match self.tx.send(ShardMsg::Call(req)) {
            Ok(()) => {
                fd::eventfd_signal(self.wake.as_raw_fd());
                Ok(())
            }
            Err(e) => {
                self.calls_queued.fetch_sub(1, Ordering::AcqRel);
                if let ShardMsg::Call(mut req) = e.into_inner() {
                    req.take_work();
                }
                Err(CallError::ShardGone)
            }
        }
    }

    /// The shard took a call off its queue.
    pub(crate) fn call_taken(&self) {
        self.calls_queued.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Every shard's inbox, indexed by shard id.
pub(crate) type Mailboxes = Arc<Vec<Mailbox>>;

#[cfg(test)]
mod tests {
    use super::*;

    fn mailbox(bound: usize) -> (Mailbox, crossbeam_channel::Receiver<ShardMsg>) {
        let (tx, rx) = crossbeam_channel::unbounded();
        let mb = Mailbox {
            tx,
            wake: Arc::new(fd::eventfd().expect("eventfd")),
            calls_queued: Default::default(),
            call_bound: bound,
        };
        (mb, rx)
    }

    fn request(reply: &Mailbox) -> CallRequest {
        CallRequest {
            work: Some(Box::new(0u8)),
            reply: ReplyPath::Shard {
                mailbox: reply.clone(),
                to: ReplyTo::Shard(9),
            },
        }
    }

    fn shard_gone_replies(rx: &crossbeam_channel::Receiver<ShardMsg>) -> usize {
        rx.try_iter()
            .filter(|m| {
                matches!(m, ShardMsg::CallDone { to: ReplyTo::Shard(9), done }
                    if matches!(done.value_ref(), Err(CallError::ShardGone)))
            })
            .count()
    }

    #[test]
    fn calls_past_the_bound_are_refused_and_taking_one_makes_room() {
        let (target, _target_rx) = mailbox(2);
        let (caller, caller_rx) = mailbox(2);
        assert!(target.send_call(request(&caller)).is_ok());
        assert!(target.send_call(request(&caller)).is_ok());
        assert_eq!(
            target.send_call(request(&caller)),
            Err(CallError::MailboxFull)
        );
        target.call_taken();
        assert!(target.send_call(request(&caller)).is_ok());
        // A refused call reports nothing: the caller was told at once.
        assert_eq!(shard_gone_replies(&caller_rx), 0);
    }

    #[test]
    fn a_call_left_queued_when_its_shard_stops_answers_shard_gone() {
        let (target, target_rx) = mailbox(8);
        let (caller, caller_rx) = mailbox(8);
        target.send_call(request(&caller)).unwrap();
        target.send_call(request(&caller)).unwrap();
        drop(target_rx); // the shard exits with both still queued
        assert_eq!(shard_gone_replies(&caller_rx), 2);
        // Later calls are refused at once.
        assert_eq!(
            target.send_call(request(&caller)),
            Err(CallError::ShardGone)
        );
        assert_eq!(shard_gone_replies(&caller_rx), 0);
    }
}
