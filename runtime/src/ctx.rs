//! The shard state that handlers reach through `Io` and `ShardIo`: clock, counters,
//! timers, the dirty list, mailboxes, the offload queue and the UDP send table. It sits
//! below the handler API and the loop, which both build on it.

use std::any::Any;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

use crate::call::{CallError, ReplyTo};
use crate::config::Config;
use crate::conn::ConnIo;
use crate::counters::Counters;
use crate::job::{try_submit, Job, OffloadError, Work};
use crate::mailbox::{Broadcast, CallRequest, Mailboxes, ReplyPath, ShardMsg};
use crate::timer::{TimerKey, TimerWheel};
use crate::token::ConnToken;
use crate::udp::UdpSends;

/// What a timer means when it fires.
#[derive(Debug)]
pub(crate) enum TimerEvent {
    Conn {
        token: ConnToken,
        tag: u64,
    },
    Idle(ConnToken),
    Linger(ConnToken),
    ResumeAccept,
    DrainDeadline,
    Shard {
        tag: u64,
    },
    /// An outbound connect still pending at this time is cancelled and reported as
    /// timed out.
    ConnectTimeout(ConnToken),
}

/// An outbound connection asked for: where, its tag, and how long it may take.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnectRequest {
    pub addr: SocketAddr,
    pub tag: u64,
    pub timeout: Option<Duration>,
    /// The local address to connect from (its port picked at connect time).
    pub source: Option<std::net::IpAddr>,
}

/// What a callback asked to do to another connection of the shard, by token: applied
/// by the shard once the callback has returned (the callback holds its own slot).
pub(crate) struct ConnOp {
    /// Who asked: a connection, or the shard's handler (`None`); told if `target` is gone.
    pub from: Option<ConnToken>,
    pub target: ConnToken,
    pub action: ConnAction,
}

/// See [`ConnOp`].
pub(crate) enum ConnAction {
    Write(Vec<u8>),
    PauseReading,
    ResumeReading,
    Close,
    Post(Box<dyn Any>),
    /// Link the asking connection and the target (see `Io::link`).
    Link,
    /// Splice the asking connection's input into the target (see `Io::splice_to`).
    Splice,
}

/// The shard state handlers reach through `Io` and `ShardIo`.
pub(crate) struct ShardCtx {
    pub id: usize,
    pub now: Instant,
    pub config: Arc<Config>,
    pub counters: Counters,
    pub timers: TimerWheel<TimerEvent>,
    /// Slots whose state changed since they were last serviced.
    pub dirty: Vec<u32>,
    pub draining: bool,
    /// Every shard's inbox (for broadcasts).
    pub mailboxes: Mailboxes,
    /// The worker pool's queue, if there is a pool.
    pub offload_tx: Option<Sender<Job>>,
    /// Jobs submitted by this shard whose results have not come back.
    pub offload_pending: usize,
    /// The kernel has SEND_ZC / SENDMSG_ZC.
    pub send_zc: bool,
    /// Outbound connects asked for this turn.
    pub pending_connects: Vec<ConnectRequest>,
    /// Actions on connections by token, applied after the callback that asked.
    pub conn_ops: Vec<ConnOp>,
    /// The id the next notifier gets.
    pub next_notifier: u64,
    /// Linked connections (`Io::link`), by slot: (the connection, the one it is linked
    /// to). Looked up only when a backlog crosses its bound, so empty costs nothing.
    pub links: HashMap<u32, (ConnToken, ConnToken)>,
    /// Connections whose backlog crossed its bound this turn (true: past it; false:
    /// drained to half, or gone), for their linked connections to pause or resume.
    pub link_changes: Vec<(ConnToken, bool)>,
    /// The UDP socket's sends (queued, then in the kernel); `None`: no UDP socket.
    pub udp_sends: Option<UdpSends>,
    /// Where output to a closing connection goes (emptied whenever handed out).
    pub discard: Vec<u8>,
}

impl ShardCtx {
    /// Marks a connection for servicing at the end of this turn.
    pub(crate) fn mark_dirty(&mut self, conn: &mut ConnIo) {
        if !conn.dirty {
            conn.dirty = true;
            self.dirty.push(conn.token.slot);
        }
    }

    /// A scratch buffer whose contents are thrown away: output to a connection that
    /// may no longer queue any.
    pub(crate) fn discard_buf(&mut self) -> &mut Vec<u8> {
        self.discard.clear();
        if self.discard.capacity() > 64 * 1024 {
            self.discard = Vec::new();
        }
        &mut self.discard
    }

    pub(crate) fn timers_set(&mut self, after: Duration, token: ConnToken, tag: u64) -> TimerKey {
        // From a fresh clock, not the turn's: a handler that computed `after` from its own
        // `Instant::now()` must never see the timer fire before its time.
        self.timers
            .insert(Instant::now(), after, TimerEvent::Conn { token, tag })
    }

    /// Owned buffers at least this long go out zero-copy (never, if the kernel lacks it).
    pub(crate) fn zero_copy_threshold(&self) -> usize {
        if self.send_zc {
            self.config.zero_copy_threshold
        } else {
            usize::MAX
        }
    }

    pub(crate) fn timers_cancel(&mut self, key: TimerKey) -> bool {
        self.timers.cancel(key).is_some()
    }

    pub(crate) fn offload(&mut self, token: ConnToken, work: Work) -> Result<(), OffloadError> {
        let Some(tx) = &self.offload_tx else {
            return Err(OffloadError::NoPool);
        };
        let job = Job {
            shard: self.id,
            token,
            work,
        };
        match try_submit(tx, job) {
            Ok(()) => {
                self.offload_pending += 1;
                self.counters.offload_submitted += 1;
                Ok(())
            }
            Err(e) => {
                self.counters.offload_rejected += 1;
                Err(e)
            }
        }
    }

    pub(crate) fn shard_timer(&mut self, after: Duration, tag: u64) -> TimerKey {
        // A fresh clock, as in `timers_set`.
        self.timers
            .insert(Instant::now(), after, TimerEvent::Shard { tag })
    }

    pub(crate) fn shutdown_all(&mut self) {
        for mb in self.mailboxes.iter() {
            mb.send(ShardMsg::Shutdown);
        }
    }

    /// Queues a cross-shard call (`work` is an `io::CallWork`): refused at once for a
    /// shard that does not exist, a full mailbox or a stopped shard. A handler type the
    /// target has nowhere is found out there, and answered as the call's outcome.
    pub(crate) fn call(
        &mut self,
        shard: usize,
        to: ReplyTo,
        work: Box<dyn Any + Send>,
    ) -> Result<(), CallError> {
        let Some(target) = self.mailboxes.get(shard) else {
            return Err(CallError::NoShard(shard));
        };
        let req = CallRequest {
            work: Some(work),
            reply: ReplyPath::Shard {
                mailbox: self.mailboxes[self.id].clone(),
                to,
            },
        };
        let sent = target.send_call(req);
        if sent.is_err() {
            self.counters.calls_rejected += 1;
        }
        sent
    }

    /// A connection's backlog crossed its bound: its linked connection (if any) pauses
    /// or resumes reading once the turn's servicing is done.
    pub(crate) fn link_backlog(&mut self, token: ConnToken, past: bool) {
        if !self.links.is_empty() {
            self.link_changes.push((token, past));
        }
    }

    /// Queues an action on a connection of this shard by token.
    pub(crate) fn conn_op(
        &mut self,
        from: Option<ConnToken>,
        target: ConnToken,
        action: ConnAction,
    ) {
        self.conn_ops.push(ConnOp {
            from,
            target,
            action,
        });
    }

    pub(crate) fn broadcast(&mut self, msg: Broadcast) {
        for mb in self.mailboxes.iter() {
            mb.send(ShardMsg::Broadcast(msg.clone()));
        }
    }
}
