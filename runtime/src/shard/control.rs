//! The shard's control plane: its wake eventfd and mailbox (shutdown, offload results,
//! cross-shard messages), the graceful drain, and the final quiescing before exit.

use std::mem;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use super::*;
use crate::call::{CallDone, CallError, ReplyTo};
use crate::io::CallWork;
use crate::mailbox::{Broadcast, CallRequest};

impl<H: Handler> Shard<H> {
    // ---- wake and shutdown -----------------------------------------------------

    pub(super) fn arm_wake(&mut self) {
        if !self.wake_armed {
            self.ring.read_eventfd(
                self.wake_fd.as_raw_fd(),
                &mut self.wake_buf,
                pack_shard(OpKind::Wake),
            );
            self.wake_armed = true;
        }
    }

    pub(super) fn on_wake(&mut self, c: &Completion) {
        let res = c.result();
        self.wake_buf.settle(c);
        self.wake_armed = false;
        while let Ok(msg) = self.rx.try_recv() {
            match msg {
                ShardMsg::Shutdown => self.begin_drain(),
                ShardMsg::Broadcast(msg) => self.on_broadcast(msg),
                ShardMsg::OffloadDone { token, done } => {
                    self.ctx.offload_pending = self.ctx.offload_pending.saturating_sub(1);
                    if done.is_panic() {
                        self.ctx.counters.offload_panicked += 1;
                    } else {
                        self.ctx.counters.offload_completed += 1;
                    }
                    // A connection that closed meanwhile never hears of it.
                    if !self.conn_event(token, Event::Offloaded(done)) {
                        self.ctx.counters.offload_dropped += 1;
                    }
                }
                ShardMsg::Call(req) => self.on_call(req),
                ShardMsg::CallDone { to, done } => match to {
                    ReplyTo::Conn(token) => {
                        if !self.conn_event(token, Event::CallDone(done)) {
                            self.ctx.counters.call_replies_dropped += 1;
                        }
                    }
                    ReplyTo::Shard(tag) => self.shard_event(ShardEvent::CallDone { tag, done }),
                },
                ShardMsg::Notified {
                    token,
                    notification,
                } => {
                    // Generation-checked: never a later tenant of the slot.
                    if !self.conn_event(token, Event::Notified(notification)) {
                        self.ctx.counters.notify_dropped += 1;
                    }
                }
                ShardMsg::NotifierDropped { token, id } => {
                    self.conn_event(token, Event::NotifierDropped(id));
                }
            }
        }
        if res != -libc::ECANCELED && !self.exiting {
            self.arm_wake();
        }
    }

    /// A cross-shard call: run it with the handler it names (this shard's handler, or
    /// one nested in it: `Handler::find`), send its value back.
    fn on_call(&mut self, mut req: CallRequest) {
        self.ctx.mailboxes[self.ctx.id].call_taken();
        let Some(work) = req.take_work() else {
            return;
        };
        self.ctx.counters.calls_served += 1;
        let value = match work.downcast::<CallWork>() {
            Ok(work) => {
                let mut shard = ShardIo {
                    shard: &mut self.ctx,
                };
                work(&mut self.handler, &mut shard)
            }
            // Never: every call's work is a `CallWork`.
            Err(_) => Err(CallError::WrongHandler(std::any::type_name::<H>())),
        };
        req.reply(CallDone::new(value));
    }

    /// A broadcast: the handler hears of it once for the shard, then once per open
    /// connection.
    pub(super) fn on_broadcast(&mut self, msg: Broadcast) {
        self.shard_event(ShardEvent::Broadcast(&msg));
        let Shard {
            slots,
            ctx,
            handler,
            ..
        } = self;
        for (_, slot) in slots.iter_mut() {
            deliver_event(handler, ctx, slot, Event::Broadcast(&msg));
        }
    }

    pub(super) fn begin_drain(&mut self) {
        if self.ctx.draining {
            return;
        }
        self.ctx.draining = true;
        if self.accept_armed {
            self.cancel_accept();
        } else {
            self.listener = None;
        }
        if self.udp.as_ref().is_some_and(|p| p.recv_armed) {
            self.ring
                .cancel_user_data(pack_shard(OpKind::UdpRecv), pack_shard(OpKind::Cancel));
        }
        let Shard {
            slots,
            ctx,
            handler,
            ..
        } = self;
        for (_, slot) in slots.iter_mut() {
            if slot.io.phase == Phase::Lingering {
                slot.io.abort_requested = true;
            } else {
                deliver_event(handler, ctx, slot, Event::Shutdown);
            }
            ctx.mark_dirty(&mut slot.io);
        }
        let deadline = self.ctx.config.drain_timeout;
        self.ctx
            .timers
            .insert(self.ctx.now, deadline, TimerEvent::DrainDeadline);
    }

    pub(super) fn force_close_all(&mut self) {
        let Shard { slots, ctx, .. } = self;
        for (_, slot) in slots.iter_mut() {
            if slot.io.phase != Phase::Closed {
                if slot.io.phase != Phase::Lingering {
                    ctx.counters.drain_forced += 1;
                }
                slot.io.abort(Close::Shutdown);
                ctx.mark_dirty(&mut slot.io);
            }
        }
    }

    /// Waits for the last operations (the wake read), then releases the buffer ring
    /// while the ring is still alive.
    pub(super) fn finish(mut self) -> Counters {
        if self.wake_armed {
            self.ring
                .cancel_user_data(pack_shard(OpKind::Wake), pack_shard(OpKind::Cancel));
            let start = Instant::now();
            while self.wake_armed && start.elapsed() < Duration::from_secs(2) {
                let _ = self.ring.submit_and_wait(Some(Duration::from_millis(50)));
                let mut cqes = mem::take(&mut self.cqes);
                self.ring.reap(&mut cqes);
                for c in cqes.drain(..) {
                    if self.wake_buf.settle(&c) {
                        self.wake_armed = false;
                    }
                }
                self.cqes = cqes;
            }
        }
        let _ = self.ring.submit();
        self.bufs.unregister(&self.ring);
        if let Some(p) = self.udp.as_mut() {
            p.bufs.unregister(&self.ring);
        }
        mem::take(&mut self.ctx.counters)
    }
}
