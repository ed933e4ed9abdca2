//! Spliced connections (`Io::splice_to`): a connection's input moves to another
//! connection's socket inside the kernel, socket -> pipe -> socket, one operation at
//! a time per direction: a poll for input, a splice into the pipe, a splice out of it.
//!
//! Splices run on io-wq workers (the kernel never issues them inline), so each is a
//! hand-off to a kernel thread; a poll first keeps a worker from waiting on an empty
//! socket. The state holds its own duplicates of both sockets, so the descriptors the
//! operations name stay valid until their completions, whatever the connections do
//! meanwhile; it is dropped when the source's slot is freed (every completion back).

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};

use super::*;
use crate::conn::Recv;
use crate::sys::sock::Sock;

/// At most this much is moved by one splice into the pipe (the pipe's default size).
const CHUNK: u32 = 64 * 1024;

/// One direction of a spliced pair; see the module docs.
pub(super) struct Splice {
    /// The source connection (a slot's entry belongs to this tenant only).
    owner: ConnToken,
    src: OwnedFd,
    dst: OwnedFd,
    pipe_r: OwnedFd,
    pipe_w: File,
    /// Bytes in the pipe, not yet spliced out.
    in_pipe: u32,
    /// The operation in flight, if any.
    op: Option<OpKind>,
    /// The last poll or splice said input is waiting.
    readable: bool,
    /// The source's input ended (a splice in read nothing).
    eof: bool,
    eof_told: bool,
}

impl Splice {
    /// Whether this entry is `token`'s (not an earlier tenant's of the slot).
    pub(super) fn is_for(&self, token: ConnToken) -> bool {
        self.owner == token
    }
}

/// A plain descriptor's duplicate (what a splice names), or why there is none.
fn dup(sock: Option<&Sock>) -> std::io::Result<OwnedFd> {
    match sock {
        Some(Sock::Plain(fd)) => fd.try_clone(),
        _ => Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "splicing needs plain descriptors (direct_descriptors(false))",
        )),
    }
}

impl<H: Handler> Shard<H> {
    /// Starts splicing `from`'s input into `to` (both open: checked by the caller).
    pub(super) fn start_splice(&mut self, from: ConnToken, to: ConnToken) {
        if self.splices.get(&from.slot).is_some_and(|s| s.is_for(from)) {
            // Already spliced: replacing the state would close descriptors that an
            // operation in flight still names.
            return;
        }
        let dst = live(&mut self.slots, to).map(|s| dup(s.io.sock.as_ref()));
        let Some(slot) = live(&mut self.slots, from) else {
            return;
        };
        let made = dst.unwrap_or_else(|| Err(std::io::ErrorKind::NotConnected.into()));
        let made = made.and_then(|dst| {
            let src = dup(slot.io.sock.as_ref())?;
            let (pipe_r, pipe_w) = fd::pipe()?;
            Ok(Splice {
                owner: from,
                src,
                dst,
                pipe_r,
                pipe_w: File::from(pipe_w),
                in_pipe: 0,
                op: None,
                readable: true,
                eof: false,
                eof_told: false,
            })
        });
        match made {
            Ok(sp) => {
                // The runtime's own receive stops (its cancel may still bring input,
                // which joins the carry-over and goes into the pipe first).
                slot.io.user_paused = true;
                slot.io.held = true;
                self.splices.insert(from.slot, sp);
            }
            Err(e) => slot
                .io
                .abort(Close::Error(e.raw_os_error().unwrap_or(libc::EINVAL))),
        }
        self.ctx.mark_dirty(&mut slot.io);
    }

    /// A splice operation's completion.
    pub(super) fn on_splice(&mut self, kind: OpKind, token: ConnToken, res: i32) {
        let Shard {
            slots,
            ctx,
            splices,
            ..
        } = self;
        let Some(slot) = live(slots, token) else {
            return;
        };
        slot.io.inflight -= 1;
        ctx.mark_dirty(&mut slot.io);
        let Some(sp) = splices.get_mut(&token.slot).filter(|s| s.owner == token) else {
            return;
        };
        sp.op = None;
        if res < 0 {
            match (kind, -res) {
                (_, libc::ECANCELED) => {}
                (OpKind::SpliceIn, libc::EAGAIN) => sp.readable = false,
                (_, e) => slot.io.abort(Close::Error(e)),
            }
            return;
        }
        slot.io.last_active = ctx.now;
        match kind {
            OpKind::SplicePoll => sp.readable = true,
            OpKind::SpliceIn if res == 0 => sp.eof = true,
            OpKind::SpliceIn => {
                ctx.counters.bytes_in += res as u64;
                sp.in_pipe += res as u32;
                // A full chunk says more is likely waiting: splice again without a poll.
                sp.readable = res as u32 == CHUNK;
            }
            OpKind::SpliceOut => {
                ctx.counters.bytes_out += res as u64;
                sp.in_pipe -= (res as u32).min(sp.in_pipe);
            }
            _ => {}
        }
    }
}

/// Submits a spliced connection's next operation, if it is open and has none in
/// flight; tells the handler of the end of input once all of it was passed on.
pub(super) fn drive<H: Handler>(
    handler: &mut H,
    ctx: &mut ShardCtx,
    ring: &mut Ring,
    slot: &mut ConnSlot<H::Conn>,
    sp: &mut Splice,
) {
    if sp.op.is_some()
        || slot.io.phase != Phase::Open
        || slot.io.abort_requested
        || slot.io.recv != Recv::Idle
    {
        return;
    }
    let token = slot.io.token;
    if sp.in_pipe == 0 && !slot.io.carry.is_empty() {
        // Input the runtime received before the splice started goes first.
        match sp.pipe_w.write(&slot.io.carry) {
            Ok(n) => {
                slot.io.carry.drain(..n);
                sp.in_pipe = n as u32;
            }
            Err(e) => {
                slot.io
                    .abort(Close::Error(e.raw_os_error().unwrap_or(libc::EIO)));
                ctx.mark_dirty(&mut slot.io);
                return;
            }
        }
    }
    let kind = if sp.in_pipe > 0 {
        let ud = pack(OpKind::SpliceOut, token);
        ring.splice(sp.pipe_r.as_raw_fd(), sp.dst.as_raw_fd(), sp.in_pipe, ud);
        OpKind::SpliceOut
    } else if sp.eof {
        if !sp.eof_told {
            sp.eof_told = true;
            slot.io.peer_eof = true;
            deliver_event(handler, ctx, slot, Event::Eof);
            ctx.mark_dirty(&mut slot.io);
        }
        return;
    } else if sp.readable {
        let ud = pack(OpKind::SpliceIn, token);
        ring.splice(sp.src.as_raw_fd(), sp.pipe_w.as_raw_fd(), CHUNK, ud);
        OpKind::SpliceIn
    } else {
        ring.poll_in(sp.src.as_raw_fd(), pack(OpKind::SplicePoll, token));
        OpKind::SplicePoll
    };
    sp.op = Some(kind);
    slot.io.inflight += 1;
}

/// A spliced connection is closing: end what its splice has in flight. A splice out
/// may wait on the target's full socket for as long as its peer does not read, and a
/// poll on input that never comes: shutting both sockets down ends either (the pair is
/// torn down together; the target's handler closes it on its own account).
pub(super) fn end(sp: &Splice) {
    if sp.op.is_some() {
        let _ = socket2::SockRef::from(&sp.src).shutdown(std::net::Shutdown::Both);
        let _ = socket2::SockRef::from(&sp.dst).shutdown(std::net::Shutdown::Both);
    }
}
