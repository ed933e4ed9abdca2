//! Connections coming in (multishot accept) and going out (connect).

use std::mem;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use io_uring::cqueue;
use socket2::SockRef;

use super::*;
use crate::sys::lend::Lent;

impl<H: Handler> Shard<H> {
    // ---- accept ----------------------------------------------------------------

    pub(super) fn arm_accept(&mut self) {
        if self.accept_armed || self.accept_paused || self.ctx.draining {
            return;
        }
        if let Some(l) = &self.listener {
            self.ring
                .accept_multi(l.as_raw_fd(), pack_shard(OpKind::Accept));
            self.accept_armed = true;
        }
    }

    pub(super) fn on_accept(&mut self, res: i32, flags: u32) {
        if !cqueue::more(flags) {
            self.accept_armed = false;
            if self.ctx.draining {
                // The multishot accept is gone: close the listener so new connections
                // are refused instead of waiting in a queue nobody reads.
                self.listener = None;
            }
        }
        if res >= 0 {
            self.open_conn(fd::adopt(res));
            return;
        }
        match -res {
            libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM => {
                self.ctx.counters.emfile += 1;
                if !self.accept_paused {
                    self.accept_paused = true;
                    if self.accept_armed {
                        self.cancel_accept();
                    }
                    self.ctx
                        .timers
                        .insert(self.ctx.now, ACCEPT_PAUSE, TimerEvent::ResumeAccept);
                }
            }
            libc::ECANCELED => {}
            _ => self.ctx.counters.accept_errors += 1,
        }
    }

    pub(super) fn cancel_accept(&mut self) {
        self.ring
            .cancel_user_data(pack_shard(OpKind::Accept), pack_shard(OpKind::Cancel));
    }

    pub(super) fn open_conn(&mut self, fd: OwnedFd) {
        if self.ctx.draining {
            return;
        }
        if self.slots.len() >= self.ctx.config.max_conns_per_shard {
            self.ctx.counters.refused += 1;
            // A reset tells the client at once; a FIN would look like a server that
            // accepted and then hung up mid-request.
            let _ = SockRef::from(&fd).set_linger(Some(Duration::ZERO));
            return;
        }
        let sock = SockRef::from(&fd);
        let _ = sock.set_tcp_nodelay(true);
        let peer = sock
            .peer_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .unwrap_or_else(|| std::net::SocketAddr::from(([0, 0, 0, 0], 0)));
        let generation = self.next_generation;
        self.next_generation = (self.next_generation + 1) & GEN_MASK;
        let entry = self.slots.vacant_entry();
        let token = ConnToken {
            slot: entry.key() as u32,
            generation,
        };
        let slot = entry.insert(ConnSlot {
            io: ConnIo::new(token, fd, peer, self.ctx.now),
            app: None,
        });
        self.ctx.counters.accepted += 1;
        if let Some(t) = self.ctx.config.idle_timeout {
            slot.io.idle_timer = Some(self.ctx.timers.insert(
                self.ctx.now,
                t,
                TimerEvent::Idle(token),
            ));
        }
        let mut io = Io::new(&mut slot.io, &mut self.ctx);
        let app = self.handler.on_open(peer, &mut io);
        slot.app = Some(app);
        self.ctx.mark_dirty(&mut slot.io);
    }

    /// Opens the outbound connections asked for since the last turn.
    pub(super) fn start_connects(&mut self) {
        if self.ctx.pending_connects.is_empty() {
            return;
        }
        for (addr, tag) in mem::take(&mut self.ctx.pending_connects) {
            if self.ctx.draining {
                continue;
            }
            let sock = match socket2::Socket::new(
                socket2::Domain::for_address(addr),
                socket2::Type::STREAM.cloexec(),
                Some(socket2::Protocol::TCP),
            ) {
                Ok(s) => s,
                Err(e) => {
                    self.ctx.counters.connect_errors += 1;
                    self.shard_event(ShardEvent::ConnectFailed {
                        tag,
                        addr,
                        error: e,
                    });
                    continue;
                }
            };
            let _ = sock.set_tcp_nodelay(true);
            let generation = self.next_generation;
            self.next_generation = (self.next_generation + 1) & GEN_MASK;
            let entry = self.slots.vacant_entry();
            let token = ConnToken {
                slot: entry.key() as u32,
                generation,
            };
            let mut io = ConnIo::new(token, sock.into(), addr, self.ctx.now);
            io.phase = Phase::Connecting;
            io.origin = Origin::Connected { tag };
            io.connect_addr = Some(Lent::new(Box::new(socket2::SockAddr::from(addr))));
            io.inflight = 1;
            let slot = entry.insert(ConnSlot { io, app: None });
            let fd = slot.io.fd.as_raw_fd();
            if let Some(a) = slot.io.connect_addr.as_mut() {
                self.ring.connect(fd, a, pack(OpKind::Connect, token));
            }
        }
    }

    pub(super) fn on_connect(&mut self, token: ConnToken, c: &Completion) {
        let res = c.result();
        let Shard {
            slots,
            ctx,
            handler,
            ..
        } = self;
        let Some(slot) = live(slots, token) else {
            return;
        };
        slot.io.inflight -= 1;
        if let Some(a) = slot.io.connect_addr.as_mut() {
            a.settle(c);
        }
        slot.io.connect_addr = None;
        if slot.io.phase != Phase::Connecting {
            ctx.mark_dirty(&mut slot.io); // closed meanwhile: let service free it
            return;
        }
        let Origin::Connected { tag } = slot.io.origin else {
            return;
        };
        if res < 0 {
            ctx.counters.connect_errors += 1;
            slot.io.phase = Phase::Closed;
            let addr = slot.io.peer;
            ctx.mark_dirty(&mut slot.io);
            handler.on_shard(
                ShardEvent::ConnectFailed {
                    tag,
                    addr,
                    error: std::io::Error::from_raw_os_error(-res),
                },
                &mut ShardIo { shard: ctx },
            );
            return;
        }
        ctx.counters.connected += 1;
        slot.io.phase = Phase::Open;
        slot.io.last_active = ctx.now;
        if let Some(t) = ctx.config.idle_timeout {
            slot.io.idle_timer = Some(ctx.timers.insert(ctx.now, t, TimerEvent::Idle(token)));
        }
        let peer = slot.io.peer;
        let mut io = Io::new(&mut slot.io, ctx);
        let app = handler.on_open(peer, &mut io);
        slot.app = Some(app);
        ctx.mark_dirty(&mut slot.io);
    }
}
