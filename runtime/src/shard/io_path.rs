//! The data path of a connection: receive completions into the handler, send
//! completions back into the queue, and `service`, the one place that turns a
//! connection's new state into submissions (sends, receive arming and cancelling,
//! closing, freeing the slot).

use std::mem;
use std::os::fd::AsRawFd;
use std::time::Duration;

use io_uring::cqueue;
use socket2::SockRef;

use super::*;

impl<H: Handler> Shard<H> {
    // ---- receive ---------------------------------------------------------------

    pub(super) fn on_recv(&mut self, token: ConnToken, res: i32, flags: u32) {
        let more = cqueue::more(flags);
        let bid = cqueue::buffer_select(flags);
        if let Some(bid) = bid {
            self.bufs
                .pieces(bid, res.max(0) as u32, flags, &mut self.pieces);
        }
        let Shard {
            slots,
            ctx,
            handler,
            bufs,
            pieces,
            parked,
            ..
        } = self;
        let Some(slot) = live(slots, token) else {
            if bid.is_some() {
                bufs.finish(pieces);
            }
            return;
        };
        if !more {
            slot.io.recv_armed = false;
            slot.io.recv_cancelling = false;
            slot.io.inflight -= 1;
        }
        if res > 0 {
            ctx.counters.bytes_in += res as u64;
            ctx.counters.recv_completions += 1;
            slot.io.last_active = ctx.now;
            for p in &pieces.pieces {
                deliver(handler, ctx, slot, bufs.bytes(*p));
            }
        }
        if bid.is_some() {
            bufs.finish(pieces);
        }
        if res == 0 {
            slot.io.peer_eof = true;
            match slot.io.phase {
                Phase::Open => {
                    deliver_event(handler, ctx, slot, Event::Eof);
                }
                Phase::Lingering => slot.io.abort_requested = true,
                _ => {}
            }
        } else if res < 0 {
            match -res {
                libc::ENOBUFS => {
                    ctx.counters.enobufs += 1;
                    if !more && !slot.io.parked {
                        slot.io.parked = true;
                        parked.push(token);
                    }
                }
                libc::ECANCELED => {}
                e => {
                    if slot.io.phase == Phase::Lingering {
                        slot.io.abort_requested = true;
                    } else {
                        slot.io.abort(Close::Error(e));
                    }
                }
            }
        }
        ctx.mark_dirty(&mut slot.io);
    }

    /// Re-arms receives that found the buffer ring empty. Buffers are back by now: they
    /// are recycled right after each callback, within the turn that received them.
    pub(super) fn unpark(&mut self) {
        if self.parked.is_empty() {
            return;
        }
        for token in mem::take(&mut self.parked) {
            if let Some(slot) = live(&mut self.slots, token) {
                slot.io.parked = false;
                self.ctx.mark_dirty(&mut slot.io);
            }
        }
    }

    // ---- send ------------------------------------------------------------------

    /// A send's result (for zero-copy, without MORE when no notification follows: then
    /// it is also the final completion the send queue's zero-copy list waits for).
    pub(super) fn on_send(&mut self, token: ConnToken, c: &Completion) {
        let Shard { slots, ctx, .. } = self;
        let Some(slot) = live(slots, token) else {
            return;
        };
        slot.io.inflight -= 1;
        let res = c.result();
        if res >= 0 {
            ctx.counters.bytes_out += res as u64;
            slot.io.last_active = ctx.now;
            if slot.io.send.complete(c) {
                ctx.counters.short_sends += 1;
            }
        } else {
            slot.io.send.fail(c);
            if res != -libc::ECANCELED {
                slot.io.abort(Close::Error(-res));
            } else {
                slot.io.abort(slot.io.close_why);
            }
        }
        ctx.mark_dirty(&mut slot.io);
    }

    pub(super) fn on_zc_notif(&mut self, token: ConnToken, c: &Completion) {
        let Shard { slots, ctx, .. } = self;
        if let Some(slot) = live(slots, token) {
            if c.result() & ZC_COPIED != 0 {
                // Zero-copy that was not: pinning pages and waiting for this
                // notification bought nothing (on loopback the receiver copies).
                ctx.counters.zc_copied += 1;
                if ctx.config.zero_copy_fallback {
                    slot.io.send.zc_copied();
                }
            }
            slot.io.send.zc_notif(c);
            ctx.mark_dirty(&mut slot.io);
        }
    }

    // ---- servicing -------------------------------------------------------------

    pub(super) fn service_dirty(&mut self) {
        while let Some(idx) = self.ctx.dirty.pop() {
            self.service(idx);
        }
    }

    /// Applies a connection's new state: close, send, steer reading, free the slot.
    pub(super) fn service(&mut self, idx: u32) {
        let Shard {
            slots,
            ctx,
            handler,
            ring,
            bufs,
            ..
        } = self;
        let Some(slot) = slots.get_mut(idx as usize) else {
            return;
        };
        slot.io.dirty = false;
        let token = slot.io.token;
        let limit = ctx.config.write_backlog_limit;

        if slot.io.phase != Phase::Closed {
            if slot.io.abort_requested {
                close_conn(handler, ctx, ring, slot, true);
            } else {
                // Backpressure: stop reading past the bound, resume at half.
                let backlog = slot.io.send.backlog();
                if !slot.io.backpressured && backlog > limit {
                    slot.io.backpressured = true;
                    ctx.counters.backpressure_pauses += 1;
                } else if slot.io.backpressured && backlog <= limit / 2 {
                    slot.io.backpressured = false;
                    slot.io.redeliver = true;
                    slot.io.want_writable = true;
                }
                if slot.io.want_writable && backlog <= limit / 2 && slot.io.phase == Phase::Open {
                    slot.io.want_writable = false;
                    deliver_event(handler, ctx, slot, Event::Writable);
                }
                if slot.io.redeliver && slot.io.reading_enabled() {
                    slot.io.redeliver = false;
                    // Even with nothing carried over: a wrapping protocol (TLS) may hold
                    // decrypted input of its own that it could not pass on while paused.
                    run_carry(handler, ctx, slot);
                }
                if slot.io.abort_requested {
                    close_conn(handler, ctx, ring, slot, true);
                }
            }
        }

        if slot.io.phase != Phase::Closed {
            let fd = slot.io.fd.as_raw_fd();
            if let Some(next) = slot.io.send.start_next() {
                let kind = if next.zc {
                    ctx.counters.zc_sends += 1;
                    OpKind::SendZc
                } else {
                    OpKind::Send
                };
                ctx.counters.sends += 1;
                next.submit(ring, fd, pack(kind, token));
                slot.io.inflight += 1;
            }
            if slot.io.phase == Phase::Flushing && slot.io.send.is_empty() {
                if slot.io.no_linger && nothing_unread(&slot.io.fd) {
                    ctx.counters.closed_without_linger += 1;
                    close_conn(handler, ctx, ring, slot, false);
                } else {
                    start_linger(handler, ctx, slot);
                }
            }
            if slot.io.phase == Phase::Lingering && slot.io.peer_eof {
                close_conn(handler, ctx, ring, slot, false);
            }
        }

        if slot.io.phase != Phase::Closed {
            let want = slot.io.wants_recv();
            if want && !slot.io.recv_armed && !slot.io.parked {
                ring.recv_multi(
                    slot.io.fd.as_raw_fd(),
                    bufs.bgid(),
                    ring.features.recv_bundles,
                    pack(OpKind::Recv, token),
                );
                slot.io.recv_armed = true;
                slot.io.inflight += 1;
            } else if !want && slot.io.recv_armed && !slot.io.recv_cancelling {
                ring.cancel_user_data(pack(OpKind::Recv, token), pack_shard(OpKind::Cancel));
                slot.io.recv_cancelling = true;
            }
        }

        if slot.io.phase == Phase::Closed && slot.io.is_quiet() {
            if let Some(key) = slot.io.idle_timer.take() {
                ctx.timers.cancel(key);
            }
            // Dropping the slot closes the socket: every operation on it is complete.
            slots.remove(idx as usize);
        }
    }
}

/// Shows `data` to the handler, after any carry-over, keeping what it leaves.
pub(super) fn deliver<H: Handler>(
    handler: &mut H,
    ctx: &mut ShardCtx,
    slot: &mut ConnSlot<H::Conn>,
    data: &[u8],
) {
    if slot.io.phase != Phase::Open || slot.io.abort_requested {
        return; // closing: input is discarded
    }
    if !slot.io.reading_enabled() {
        // Paused: keep the bytes for later (bounded: the receive is being cancelled).
        if append_carry(ctx, &mut slot.io, data) {
            slot.io.redeliver = true;
        }
        return;
    }
    if !slot.io.carry.is_empty() {
        if append_carry(ctx, &mut slot.io, data) {
            run_carry(handler, ctx, slot);
        }
        return;
    }
    let Some(app) = slot.app.as_mut() else {
        return;
    };
    let mut input = Input::new(data);
    let mut io = Io::new(&mut slot.io, ctx);
    handler.on_data(app, &mut input, &mut io);
    let rest = input.bytes();
    if !rest.is_empty() && slot.io.phase == Phase::Open && !slot.io.abort_requested {
        append_carry(ctx, &mut slot.io, rest);
    }
}

/// Appends to the carry-over within its bound; past it the connection is aborted.
pub(super) fn append_carry(ctx: &mut ShardCtx, conn: &mut ConnIo, data: &[u8]) -> bool {
    if conn.carry.len() + data.len() > ctx.config.max_input_carry {
        ctx.counters.input_overflow += 1;
        conn.abort(Close::InputOverflow);
        ctx.mark_dirty(conn);
        return false;
    }
    conn.carry.extend_from_slice(data);
    true
}

/// Shows the carry-over to the handler and keeps what it leaves.
pub(super) fn run_carry<H: Handler>(
    handler: &mut H,
    ctx: &mut ShardCtx,
    slot: &mut ConnSlot<H::Conn>,
) {
    let Some(app) = slot.app.as_mut() else {
        return;
    };
    let mut carry = mem::take(&mut slot.io.carry);
    let mut input = Input::new(&carry);
    let mut io = Io::new(&mut slot.io, ctx);
    handler.on_data(app, &mut input, &mut io);
    let used = input.consumed();
    carry.drain(..used);
    if carry.is_empty() && carry.capacity() > 4096 {
        // Do not pin a large buffer on a connection that may now sit idle.
        carry = Vec::new();
    }
    slot.io.carry = carry;
}

/// True when the kernel holds no unread input for `fd` (a peek finds nothing, or the
/// peer's FIN): closing then sends a FIN, not a reset.
fn nothing_unread(fd: &std::os::fd::OwnedFd) -> bool {
    let mut byte = [std::mem::MaybeUninit::<u8>::uninit()];
    match SockRef::from(fd).recv_with_flags(&mut byte, libc::MSG_PEEK | libc::MSG_DONTWAIT) {
        Ok(n) => n == 0,
        Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
    }
}

/// Flushed: shut our write side down and keep reading until the peer closes.
pub(super) fn start_linger<H: Handler>(
    handler: &mut H,
    ctx: &mut ShardCtx,
    slot: &mut ConnSlot<H::Conn>,
) {
    slot.io.phase = Phase::Lingering;
    let _ = SockRef::from(&slot.io.fd).shutdown(std::net::Shutdown::Write);
    if let Some(app) = slot.app.take() {
        handler.on_close(app, slot.io.close_why);
        ctx.counters.closed += 1;
    }
    ctx.timers
        .insert(ctx.now, LINGER, TimerEvent::Linger(slot.io.token));
    ctx.mark_dirty(&mut slot.io);
}

/// Closes a connection: tells the handler, drops unsent output, cancels what is in
/// flight. The slot is freed by `service` once every completion is back.
pub(super) fn close_conn<H: Handler>(
    handler: &mut H,
    ctx: &mut ShardCtx,
    ring: &mut Ring,
    slot: &mut ConnSlot<H::Conn>,
    reset: bool,
) {
    if slot.io.phase == Phase::Closed {
        return;
    }
    let was_lingering = slot.io.phase == Phase::Lingering;
    slot.io.phase = Phase::Closed;
    if reset && !was_lingering {
        let _ = SockRef::from(&slot.io.fd).set_linger(Some(Duration::ZERO));
    }
    // Counted once, when the handler hears of it (a lingering connection already was;
    // one that never finished connecting never had a handler state).
    if let Some(app) = slot.app.take() {
        handler.on_close(app, slot.io.close_why);
        ctx.counters.closed += 1;
    }
    slot.io.send.discard_unsent();
    slot.io.carry = Vec::new();
    if slot.io.inflight > 0 {
        ring.cancel_fd(slot.io.fd.as_raw_fd(), pack_shard(OpKind::Cancel));
    }
}
