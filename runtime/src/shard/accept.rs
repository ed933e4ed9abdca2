//! Connections coming in (multishot accept) and going out (connect).

use std::mem;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use io_uring::cqueue;
use socket2::SockRef;

use super::*;
use crate::sys::lend::Lent;
use crate::sys::sock::Sock;

impl<H: Handler> Shard<H> {
    // ---- accept ----------------------------------------------------------------

    pub(super) fn arm_accept(&mut self) {
        if self.accept_armed || self.accept_paused || self.ctx.draining {
            return;
        }
        if let Some(l) = &self.listener {
            self.ring
                .accept_multi(l.as_raw_fd(), self.direct, pack_shard(OpKind::Accept));
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
            let sock = if self.direct {
                Sock::Direct(res as u32)
            } else {
                Sock::Plain(fd::adopt(res))
            };
            self.open_conn(sock);
            return;
        }
        match -res {
            // ENFILE is also what a full registered file table reports.
            libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM => {
                self.ctx.counters.emfile += 1;
                self.pause_accept();
            }
            libc::ECANCELED => {}
            // One connection's failure (it went away before it was accepted): go on.
            libc::ECONNABORTED | libc::EPROTO | libc::EPERM => {
                self.ctx.counters.accept_errors += 1;
            }
            // Anything else would fail again at once: retrying without a pause would
            // spin the shard.
            _ => {
                self.ctx.counters.accept_errors += 1;
                self.pause_accept();
            }
        }
    }

    /// Stops accepting for `ACCEPT_PAUSE`: the listener's queue keeps the connections
    /// that arrive meanwhile.
    fn pause_accept(&mut self) {
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

    pub(super) fn cancel_accept(&mut self) {
        self.ring
            .cancel_user_data(pack_shard(OpKind::Accept), pack_shard(OpKind::Cancel));
    }

    /// Closes a connection the shard will not hold, with a reset: that tells the client
    /// at once, where a FIN would look like a server that accepted and then hung up.
    fn refuse(&mut self, sock: Sock) {
        if !self.ctx.draining {
            self.ctx.counters.refused += 1;
        }
        match &sock {
            Sock::Plain(fd) => {
                let _ = SockRef::from(fd).set_linger(Some(Duration::ZERO));
            }
            Sock::Direct(_) => self
                .ring
                .linger_zero(sock.target(), pack_shard(OpKind::Close)),
        }
        self.ring.close(sock, pack_shard(OpKind::Close));
        self.ctx.counters.sockets_closed += 1;
    }

    pub(super) fn open_conn(&mut self, sock: Sock) {
        if self.ctx.draining || self.slots.len() >= self.ctx.config.max_conns_per_shard {
            self.refuse(sock);
            return;
        }
        // TCP_NODELAY is inherited from the listener; nothing to set per socket.
        let peer = match &sock {
            Sock::Plain(fd) => SockRef::from(fd)
                .peer_addr()
                .ok()
                .and_then(|a| a.as_socket()),
            Sock::Direct(_) => None,
        };
        let peer = peer.unwrap_or(self.unknown_peer);
        let generation = self.next_generation;
        let Some(entry) = self.slots.vacant_entry() else {
            // The kernel would not commit another page of the slab.
            self.refuse(sock);
            return;
        };
        self.next_generation = token::next_generation(self.next_generation, self.ctx.config.shards);
        let token = ConnToken {
            slot: entry.key() as u32,
            generation,
        };
        let direct = matches!(sock, Sock::Direct(_));
        let slot = entry.insert(ConnSlot {
            io: ConnIo::new(token, sock, peer, self.ctx.now),
            app: None,
        });
        if let Some(t) = self.ctx.config.idle_timeout {
            slot.io.idle_timer = Some(self.ctx.timers.insert(
                self.ctx.now,
                t,
                TimerEvent::Idle(token),
            ));
        }
        if direct {
            // Only the ring can ask a direct descriptor for its peer: the handler hears
            // of the connection when the answer comes (the receive is armed meanwhile).
            slot.io.phase = Phase::Opening;
            let mut addr = Lent::new(Box::new(socket2::SockAddr::from(self.unknown_peer)));
            if let Some(target) = slot.io.sock.as_ref().map(Sock::target) {
                self.ring
                    .peer_name(target, &mut addr, pack(OpKind::PeerName, token));
                slot.io.inflight += 1;
            }
            slot.io.addr = Some(addr);
            self.ctx.mark_dirty(&mut slot.io);
            return;
        }
        self.ctx.counters.accepted += 1;
        let mut io = Io::new(&mut slot.io, &mut self.ctx);
        let app = self.handler.on_open(peer, &mut io);
        slot.app = Some(app);
        self.ctx.mark_dirty(&mut slot.io);
    }

    /// A direct descriptor's peer address arrived: the connection opens.
    pub(super) fn on_peer_name(&mut self, token: ConnToken, c: &Completion) {
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
        let peer = settle_addr(&mut slot.io, c)
            .filter(|_| c.result() > 0)
            .and_then(|a| a.as_socket());
        if slot.io.phase != Phase::Opening {
            ctx.mark_dirty(&mut slot.io); // aborted meanwhile: let service free it
            return;
        }
        if ctx.draining {
            // Not opened before the drain began: refused, as a new accept would be.
            slot.io.abort(Close::Local);
            ctx.mark_dirty(&mut slot.io);
            return;
        }
        let Some(peer) = peer else {
            // The peer reset before we asked (ENOTCONN): nothing to open.
            ctx.counters.accept_errors += 1;
            slot.io.abort(Close::Error(-c.result().min(0)));
            ctx.mark_dirty(&mut slot.io);
            return;
        };
        slot.io.peer = peer;
        slot.io.phase = Phase::Open;
        ctx.counters.accepted += 1;
        let mut io = Io::new(&mut slot.io, ctx);
        let app = handler.on_open(peer, &mut io);
        slot.app = Some(app);
        if !slot.io.carry.is_empty() {
            slot.io.redeliver = true;
        }
        ctx.mark_dirty(&mut slot.io);
    }

    /// Opens the outbound connections asked for since the last turn.
    pub(super) fn start_connects(&mut self) {
        if self.ctx.pending_connects.is_empty() {
            return;
        }
        for req in mem::take(&mut self.ctx.pending_connects) {
            let (addr, tag) = (req.addr, req.tag);
            if self.ctx.draining {
                // Whoever asked hears of it: a request waiting on this connect must not
                // wait for ever.
                self.ctx.counters.connect_errors += 1;
                let error = std::io::Error::other("the server is draining");
                self.shard_event(ShardEvent::ConnectFailed { tag, addr, error });
                continue;
            }
            let sock = socket2::Socket::new(
                socket2::Domain::for_address(addr),
                socket2::Type::STREAM.cloexec(),
                Some(socket2::Protocol::TCP),
            )
            .and_then(|s| match req.source {
                Some(ip) => bind_source(&s, ip).map(|()| s),
                None => Ok(s),
            });
            let sock = match sock {
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
            let sock = Sock::Plain(sock.into());
            let generation = self.next_generation;
            let full = self.slots.len() >= self.ctx.config.max_conns_per_shard;
            let entry = match self.slots.vacant_entry() {
                Some(entry) if !full => entry,
                _ => {
                    self.ctx.counters.connect_errors += 1;
                    let error = std::io::Error::other("the shard holds its most connections");
                    self.shard_event(ShardEvent::ConnectFailed { tag, addr, error });
                    continue;
                }
            };
            self.next_generation =
                token::next_generation(self.next_generation, self.ctx.config.shards);
            let token = ConnToken {
                slot: entry.key() as u32,
                generation,
            };
            let target = sock.target();
            let mut io = ConnIo::new(token, sock, addr, self.ctx.now);
            io.phase = Phase::Connecting;
            io.origin = Origin::Connected { tag };
            io.addr = Some(Lent::new(Box::new(socket2::SockAddr::from(addr))));
            io.inflight = 1;
            let slot = entry.insert(ConnSlot { io, app: None });
            if let Some(a) = slot.io.addr.as_mut() {
                self.ring.connect(target, a, pack(OpKind::Connect, token));
            }
            if let Some(after) = req.timeout {
                // Held in the idle timer's place while connecting (no idle timer runs
                // yet): cancelled when the connect completes, or with the slot.
                let key = self.ctx.timers.insert(
                    Instant::now(),
                    after,
                    TimerEvent::ConnectTimeout(token),
                );
                if let Some(slot) = self.slots.get_mut(token.slot as usize) {
                    slot.io.idle_timer = Some(key);
                }
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
        settle_addr(&mut slot.io, c);
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
            // A connect still `Connecting` is cancelled only by its timeout (a close
            // moves it out of that phase first).
            let errno = if res == -libc::ECANCELED {
                ctx.counters.connect_timeouts += 1;
                libc::ETIMEDOUT
            } else {
                -res
            };
            handler.on_shard(
                ShardEvent::ConnectFailed {
                    tag,
                    addr,
                    error: std::io::Error::from_raw_os_error(errno),
                },
                &mut ShardIo { shard: ctx },
            );
            return;
        }
        ctx.counters.connected += 1;
        slot.io.phase = Phase::Open;
        slot.io.last_active = ctx.now;
        // The connect timeout, if one was set, has nothing left to time.
        if let Some(key) = slot.io.idle_timer.take() {
            ctx.timers.cancel(key);
        }
        if let Some(t) = ctx.config.idle_timeout {
            slot.io.idle_timer = Some(ctx.timers.insert(ctx.now, t, TimerEvent::Idle(token)));
        }
        let peer = slot.io.peer;
        let mut io = Io::new(&mut slot.io, ctx);
        let app = handler.on_connected(tag, peer, &mut io);
        slot.app = Some(app);
        ctx.mark_dirty(&mut slot.io);
    }
}

/// Takes back the address buffer a connect or a peer-name request lent the kernel, now
/// that `c`, its completion, has come. (Dropped while still owed, `sys` leaks it and
/// counts that rather than free memory the kernel may write.)
fn settle_addr(io: &mut ConnIo, c: &Completion) -> Option<socket2::SockAddr> {
    let mut a = io.addr.take()?;
    a.settle(c);
    a.into_inner().ok().map(|b| *b)
}

/// Binds an outbound socket to `ip` with its port left to the connect
/// (`IP_BIND_ADDRESS_NO_PORT`): the kernel then picks a port free for this very
/// destination, so one source address serves as many connections as it has ports per
/// destination rather than per machine.
fn bind_source(sock: &socket2::Socket, ip: std::net::IpAddr) -> std::io::Result<()> {
    if ip.is_ipv4() {
        crate::sys::fd::set_bind_address_no_port(sock)?;
    }
    sock.bind(&std::net::SocketAddr::new(ip, 0).into())
}
