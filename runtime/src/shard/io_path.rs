//! The data path of a connection: receive completions into the handler, send
//! completions back into the queue, and `service`, the one place that turns a
//! connection's new state into submissions (sends, receive arming and cancelling,
//! closing, freeing the slot).

use std::mem;
use std::time::Duration;

use io_uring::cqueue;
use socket2::SockRef;

use super::*;
use crate::conn::{HalfClose, Recv};
use crate::sys::sock::Sock;

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
            slot.io.recv = Recv::Idle;
            slot.io.inflight -= 1;
        }
        slot.io.input_pending = cqueue::sock_nonempty(flags);
        if res > 0 && !more && !slot.io.input_pending && slot.io.reading_enabled() {
            // Caught up with the peer: back to one multishot receive.
            slot.io.recv_single = false;
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
                // Input that waits for a pause to end (or for the connection to open)
                // comes first: the end of input is shown after it, never instead of it.
                Phase::Open if !slot.io.redeliver => {
                    deliver_event(handler, ctx, slot, Event::Eof);
                }
                Phase::Open | Phase::Opening => slot.io.eof_pending = true,
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

    /// A direct descriptor was installed as a plain one for the handler.
    pub(super) fn on_fd_installed(&mut self, token: ConnToken, c: &Completion) {
        let res = c.result();
        let fd = if res >= 0 {
            Ok(fd::adopt(res))
        } else {
            Err(std::io::Error::from_raw_os_error(-res))
        };
        let Shard {
            slots,
            ctx,
            handler,
            ..
        } = self;
        if let Some(slot) = live(slots, token) {
            slot.io.inflight -= 1;
            // Dropped (closed) here if the connection is closing.
            deliver_event(handler, ctx, slot, Event::Fd(fd));
            ctx.mark_dirty(&mut slot.io);
        }
    }

    /// A ring shutdown (direct descriptors) is done.
    pub(super) fn on_shutdown(&mut self, token: ConnToken, c: &Completion) {
        let Shard { slots, ctx, .. } = self;
        if c.result() < 0 {
            ctx.counters.close_errors += 1;
        }
        if let Some(slot) = live(slots, token) {
            slot.io.inflight -= 1;
            ctx.mark_dirty(&mut slot.io);
        }
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
            splices,
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
                    ctx.link_backlog(token, true);
                } else if slot.io.backpressured && backlog <= limit / 2 {
                    slot.io.backpressured = false;
                    ctx.link_backlog(token, false);
                    slot.io.redeliver = true;
                    slot.io.want_writable = true;
                }
                if slot.io.want_writable && backlog <= limit / 2 && slot.io.phase == Phase::Open {
                    slot.io.want_writable = false;
                    deliver_event(handler, ctx, slot, Event::Writable);
                }
                if slot.io.fd_requested && slot.io.phase == Phase::Open {
                    slot.io.fd_requested = false;
                    match slot.io.sock.as_ref() {
                        Some(Sock::Plain(fd)) => {
                            let dup = fd.try_clone();
                            deliver_event(handler, ctx, slot, Event::Fd(dup));
                        }
                        Some(sock @ Sock::Direct(_)) if ring.features.fd_install => {
                            ring.fd_install(sock.target(), pack(OpKind::FdInstall, token));
                            slot.io.inflight += 1;
                        }
                        _ => {
                            let why = std::io::Error::new(
                                std::io::ErrorKind::Unsupported,
                                "a direct descriptor cannot become a plain one before \
                                 Linux 6.8: run with plain descriptors",
                            );
                            deliver_event(handler, ctx, slot, Event::Fd(Err(why)));
                        }
                    }
                }
                if slot.io.redeliver && slot.io.reading_enabled() {
                    slot.io.redeliver = false;
                    // Even with nothing carried over: a wrapping protocol (TLS) may hold
                    // decrypted input of its own that it could not pass on while paused.
                    run_carry(handler, ctx, slot);
                }
                if slot.io.eof_pending && !slot.io.redeliver && slot.io.reading_enabled() {
                    slot.io.eof_pending = false;
                    deliver_event(handler, ctx, slot, Event::Eof);
                }
                if slot.io.abort_requested {
                    close_conn(handler, ctx, ring, slot, true);
                }
            }
        }

        let target = slot.io.sock.as_ref().map(Sock::target);
        if let (Some(target), true) = (target, slot.io.phase != Phase::Closed) {
            if let Some(next) = slot.io.send.start_next() {
                let kind = if next.zc {
                    ctx.counters.zc_sends += 1;
                    OpKind::SendZc
                } else {
                    OpKind::Send
                };
                ctx.counters.sends += 1;
                next.submit(ring, target, pack(kind, token));
                slot.io.inflight += 1;
            }
            if slot.io.half == HalfClose::Asked
                && slot.io.phase == Phase::Open
                && slot.io.send.is_empty()
            {
                slot.io.half = HalfClose::Done;
                shut_write_side(ring, slot);
            }
            if slot.io.phase == Phase::Flushing && slot.io.send.is_empty() {
                // Unread input would turn a close's FIN into a reset that can destroy
                // output the peer has not read: linger then. The last receive says
                // whether input was already waiting (no peek needed). A peer that has
                // closed its side sends nothing more: no lingering either.
                if slot.io.peer_eof {
                    close_conn(handler, ctx, ring, slot, false);
                } else if slot.io.no_linger && !slot.io.input_pending {
                    ctx.counters.closed_without_linger += 1;
                    close_conn(handler, ctx, ring, slot, false);
                } else {
                    start_linger(handler, ctx, ring, slot);
                }
            }
            if slot.io.phase == Phase::Lingering && slot.io.peer_eof {
                close_conn(handler, ctx, ring, slot, false);
            }
        }

        if let (Some(target), true) = (target, slot.io.phase != Phase::Closed) {
            let want = slot.io.wants_recv();
            if want && slot.io.recv == Recv::Idle && !slot.io.parked {
                if slot.io.recv_single {
                    ring.recv_once(target, bufs.bgid(), pack(OpKind::Recv, token));
                } else {
                    ring.recv_multi(
                        target,
                        bufs.bgid(),
                        ring.features.recv_bundles,
                        pack(OpKind::Recv, token),
                    );
                }
                slot.io.recv = Recv::Armed;
                slot.io.inflight += 1;
            } else if !want && slot.io.recv == Recv::Armed {
                ring.cancel_user_data(pack(OpKind::Recv, token), pack_shard(OpKind::Cancel));
                slot.io.recv = Recv::Cancelling;
                if slot.io.backpressured || slot.io.link_paused || slot.io.held {
                    // Backpressure: from now on at most one buffer arrives after a pause.
                    slot.io.recv_single = true;
                }
            }
        }

        if let Some(sp) = splices.get_mut(&idx).filter(|s| s.is_for(token)) {
            if slot.io.phase == Phase::Closed || slot.io.abort_requested {
                splice::end(sp);
            } else {
                splice::drive(handler, ctx, ring, slot, sp);
            }
        }

        if slot.io.phase == Phase::Closed && slot.io.is_quiet() {
            if splices.get(&idx).is_some_and(|s| s.is_for(token)) {
                splices.remove(&idx);
            }
            if let Some(key) = slot.io.idle_timer.take() {
                ctx.timers.cancel(key);
            }
            // Every operation on the socket is complete: close it (through the ring, in
            // this turn's submission, with no completion unless it fails).
            ctx.link_backlog(token, false); // gone: a linked connection reads again
            let slot = slots.remove(idx as usize);
            if let Some(sock) = slot.io.sock {
                ring.close(sock, pack_shard(OpKind::Close));
                ctx.counters.sockets_closed += 1;
            }
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
    if slot.io.phase == Phase::Opening && !slot.io.abort_requested {
        // Not open yet (its peer address is on the way): shown once it is.
        append_carry(ctx, &mut slot.io, data);
        return;
    }
    if slot.io.phase != Phase::Open || slot.io.abort_requested {
        return; // closing: input is discarded
    }
    if !slot.io.reading_enabled() {
        // Paused: keep the bytes for later (bounded: the receive is being cancelled).
        if slot.io.backpressured || slot.io.link_paused || slot.io.held {
            // Paused by the runtime itself (a backlog past its bound, here or on a
            // linked connection), not by the peer's doing: what the receive brings
            // before its cancel lands is kept whole (bounded by the socket's receive
            // buffer), never held against the connection.
            slot.io.carry.extend_from_slice(data);
            slot.io.redeliver = true;
        } else if append_carry(ctx, &mut slot.io, data) {
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

/// Flushed: shut our write side down and keep reading until the peer closes.
pub(super) fn start_linger<H: Handler>(
    handler: &mut H,
    ctx: &mut ShardCtx,
    ring: &mut Ring,
    slot: &mut ConnSlot<H::Conn>,
) {
    slot.io.phase = Phase::Lingering;
    shut_write_side(ring, slot);
    if let Some(app) = slot.app.take() {
        handler.on_closed(app, slot.io.close_why, &mut ShardIo { shard: ctx });
        ctx.counters.closed += 1;
    }
    ctx.timers
        .insert(ctx.now, LINGER, TimerEvent::Linger(slot.io.token));
    ctx.mark_dirty(&mut slot.io);
}

/// Shuts a connection's write side (`Io::shutdown_write`, or the start of a lingering
/// close). A failure (the peer already reset) changes nothing: the close that follows
/// finds out.
fn shut_write_side<C>(ring: &mut Ring, slot: &mut ConnSlot<C>) {
    match &slot.io.sock {
        Some(Sock::Plain(fd)) => {
            let _ = SockRef::from(fd).shutdown(std::net::Shutdown::Write);
        }
        Some(sock @ Sock::Direct(_)) => {
            // The kernel runs a ring shutdown on a worker thread: counted in flight, so
            // the socket is not closed before the shutdown has found it.
            ring.shutdown(
                sock.target(),
                libc::SHUT_WR,
                pack(OpKind::Shutdown, slot.io.token),
            );
            slot.io.inflight += 1;
        }
        None => {}
    }
}

/// Closes a connection: tells the handler, drops unsent output, ends what is in flight.
/// The slot is freed (and the socket closed) by `service` once every completion is back.
///
/// When the receive is the only operation in flight, a graceful close of a plain
/// descriptor shuts the socket down (which sends the FIN and ends the receive, after it
/// has read whatever input was still queued), and any other close cancels the receive by
/// its own key (no completion for the cancel itself where the kernel can skip it). A
/// connection with sends or a connect in flight has everything on its socket cancelled.
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
    let Some(sock) = &slot.io.sock else {
        return;
    };
    if reset && !was_lingering {
        match sock {
            Sock::Plain(fd) => {
                let _ = SockRef::from(fd).set_linger(Some(Duration::ZERO));
            }
            Sock::Direct(_) => ring.linger_zero(sock.target(), pack_shard(OpKind::Close)),
        }
    }
    // Counted once, when the handler hears of it (a lingering connection already was;
    // one that never finished connecting never had a handler state).
    if let Some(app) = slot.app.take() {
        handler.on_closed(app, slot.io.close_why, &mut ShardIo { shard: ctx });
        ctx.counters.closed += 1;
    }
    slot.io.send.discard_unsent();
    slot.io.carry = Vec::new();
    let only_recv = slot.io.recv != Recv::Idle && slot.io.inflight == 1;
    if only_recv && slot.io.recv == Recv::Armed {
        slot.io.recv = Recv::Cancelling;
        if let (Sock::Plain(fd), false) = (sock, reset && !was_lingering) {
            let how = if was_lingering {
                std::net::Shutdown::Read
            } else {
                std::net::Shutdown::Both
            };
            if SockRef::from(fd).shutdown(how).is_ok() {
                return;
            }
        }
        ring.cancel_quietly(
            pack(OpKind::Recv, slot.io.token),
            pack_shard(OpKind::Cancel),
        );
    } else if slot.io.inflight > 0 {
        ring.cancel_fd(sock.target(), pack_shard(OpKind::Cancel));
    }
}
