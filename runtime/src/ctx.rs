//! The shard state that handlers reach through `Io` and `ShardIo`: clock, counters,
//! timers, the dirty list, mailboxes, the offload queue and the UDP send table. It sits
//! below the handler API and the loop, which both build on it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

use crate::config::Config;
use crate::conn::ConnIo;
use crate::counters::Counters;
use crate::job::{try_submit, Job, OffloadError, Work};
use crate::mailbox::{Broadcast, Mailboxes, ShardMsg};
use crate::timer::{TimerKey, TimerWheel};
use crate::token::ConnToken;
use crate::udp::UdpSends;

/// What a timer means when it fires.
#[derive(Debug)]
pub(crate) enum TimerEvent {
    Conn { token: ConnToken, tag: u64 },
    Idle(ConnToken),
    Linger(ConnToken),
    ResumeAccept,
    DrainDeadline,
    Shard { tag: u64 },
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
    /// Outbound connects asked for this turn: (address, tag).
    pub pending_connects: Vec<(std::net::SocketAddr, u64)>,
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

    pub(crate) fn broadcast(&mut self, msg: Broadcast) {
        for mb in self.mailboxes.iter() {
            mb.send(ShardMsg::Broadcast(msg.clone()));
        }
    }
}
