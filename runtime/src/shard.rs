//! A shard: one thread, one ring, one listener, one slab of connections.
//!
//! The loop: submit and wait (bounded by the next timer), reap every completion, apply
//! each to its connection, fire due timers, then service the connections that changed
//! (start sends, arm or cancel receives, close). Handler callbacks only change state
//! and mark the connection dirty; submissions happen in one place, `service`.

use std::mem;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use io_uring::cqueue;
use slab::Slab;
use socket2::SockRef;

use crate::config::Config;
use crate::conn::{ConnIo, Phase};
use crate::counters::Counters;
use crate::handler::{Close, ConnFn, Conns, Handler, Input, Io, Message, Origin, ShardIo};
use crate::mailbox::{Mailboxes, ShardMsg};
use crate::offload::{self, Job, OffloadError, Work};
use crate::sys::buf_ring::{BufRing, Pieces};
use crate::sys::fd;
use crate::sys::ring::Ring;
use crate::timer::{TimerKey, TimerWheel};
use crate::token::{self, pack, pack_shard, ConnToken, OpKind, GEN_MASK};
use crate::udp::{empty_msghdr, UdpPort, UdpSends};

mod udp_io;

/// How long accepting pauses after EMFILE/ENFILE.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);
/// How long a closing connection keeps draining the peer's input after our FIN.
const LINGER: Duration = Duration::from_secs(2);
/// Timer granularity.
const TICK: Duration = Duration::from_millis(1);

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

/// The shard state handlers reach through `Io`.
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
}

impl ShardCtx {
    /// Marks a connection for servicing at the end of this turn.
    pub(crate) fn note_output(&mut self, conn: &mut ConnIo) {
        if !conn.dirty {
            conn.dirty = true;
            self.dirty.push(conn.token.slot);
        }
    }

    pub(crate) fn timers_set(&mut self, after: Duration, token: ConnToken, tag: u64) -> TimerKey {
        self.timers
            .insert(self.now, after, TimerEvent::Conn { token, tag })
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
        match offload::try_submit(tx, job) {
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
        self.timers
            .insert(self.now, after, TimerEvent::Shard { tag })
    }

    pub(crate) fn shutdown_all(&mut self) {
        for mb in self.mailboxes.iter() {
            mb.send(ShardMsg::Shutdown);
        }
    }

    pub(crate) fn broadcast(&mut self, msg: Message) {
        for mb in self.mailboxes.iter() {
            mb.send(ShardMsg::User(msg.clone()));
        }
    }
}

struct Slot<C> {
    io: ConnIo,
    app: Option<C>,
}

/// What a shard is handed at birth.
pub(crate) struct ShardParts {
    pub id: usize,
    pub config: Arc<Config>,
    pub listener: Option<OwnedFd>,
    pub udp: Option<OwnedFd>,
    pub wake_fd: Arc<OwnedFd>,
    pub rx: Receiver<ShardMsg>,
    pub mailboxes: Mailboxes,
    pub offload_tx: Option<Sender<Job>>,
}

/// See the module docs.
pub(crate) struct Shard<H: Handler> {
    // Drop order: the ring goes first (after `finish` unregistered the buffer ring and
    // every operation has completed), then the buffers it used.
    ring: Ring,
    bufs: BufRing,
    ctx: ShardCtx,
    handler: H,
    slots: Slab<Slot<H::Conn>>,
    listener: Option<OwnedFd>,
    udp: Option<UdpPort>,
    accept_armed: bool,
    accept_paused: bool,
    wake_fd: Arc<OwnedFd>,
    wake_buf: Box<[u8; 8]>,
    wake_armed: bool,
    rx: Receiver<ShardMsg>,
    next_generation: u32,
    cqes: Vec<cqueue::Entry>,
    pieces: Pieces,
    fired: Vec<TimerEvent>,
    parked: Vec<ConnToken>,
    exiting: bool,
    drain_expired: bool,
}

impl<H: Handler> Shard<H> {
    /// Builds the shard's ring and buffer ring on the calling (shard) thread.
    pub(crate) fn new(
        parts: ShardParts,
        handler: H,
    ) -> Result<(Shard<H>, crate::server::ShardFeatures), crate::Error> {
        let config = parts.config;
        let ring = Ring::new(config.ring_entries, config.recv_bundles)?;
        let bufs = BufRing::new(
            &ring,
            0,
            config.buf_ring_entries,
            config.buf_size,
            config.buf_incremental,
        )?;
        let udp = match parts.udp {
            Some(fd) => {
                // Its own buffer group, one datagram per buffer (no incremental mode).
                let bufs = BufRing::new(&ring, 1, config.buf_ring_entries, config.buf_size, false)?;
                let mut hdr = Box::new(empty_msghdr());
                hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as u32;
                Some(UdpPort {
                    fd,
                    bufs,
                    recv_hdr: hdr,
                    recv_armed: false,
                    sends: UdpSends::new(config.udp_send_queue),
                })
            }
            None => None,
        };
        let send_zc = ring.features.send_zc;
        let features = crate::server::ShardFeatures {
            ring: ring.features,
            buf_incremental: bufs.incremental(),
        };
        let now = Instant::now();
        let shard = Shard {
            ring,
            bufs,
            ctx: ShardCtx {
                id: parts.id,
                now,
                timers: TimerWheel::new(now, 4096, TICK),
                config,
                counters: Counters::default(),
                dirty: Vec::new(),
                draining: false,
                mailboxes: parts.mailboxes,
                offload_tx: parts.offload_tx,
                offload_pending: 0,
                send_zc,
                pending_connects: Vec::new(),
            },
            handler,
            slots: Slab::new(),
            listener: parts.listener,
            udp,
            accept_armed: false,
            accept_paused: false,
            wake_fd: parts.wake_fd,
            wake_buf: Box::new([0; 8]),
            wake_armed: false,
            rx: parts.rx,
            next_generation: 1,
            cqes: Vec::with_capacity(256),
            pieces: Pieces::default(),
            fired: Vec::new(),
            parked: Vec::new(),
            exiting: false,
            drain_expired: false,
        };
        Ok((shard, features))
    }

    /// Runs until shutdown completes; returns the shard's counters.
    pub(crate) fn run(mut self) -> Counters {
        self.arm_wake();
        self.handler.on_start(&mut ShardIo {
            shard: &mut self.ctx,
        });
        loop {
            self.start_connects();
            self.arm_accept();
            self.arm_udp();
            self.flush_udp();
            self.bufs.publish();
            if let Some(p) = self.udp.as_mut() {
                p.bufs.publish();
            }
            let timeout = self
                .ctx
                .timers
                .next_wake()
                .map(|t| t.saturating_duration_since(Instant::now()));
            if let Err(e) = self.ring.submit_and_wait(timeout) {
                eprintln!(
                    "ringmaster: shard {}: io_uring_enter failed: {e}",
                    self.ctx.id
                );
                break;
            }
            self.ctx.now = Instant::now();
            self.turn();
            if self.exiting {
                break;
            }
        }
        self.finish()
    }

    /// One turn: completions, timers, then servicing of changed connections.
    fn turn(&mut self) {
        let mut cqes = mem::take(&mut self.cqes);
        let overflow = self.ring.reap(&mut cqes);
        self.ctx.counters.cq_overflow = overflow as u64;
        for cqe in cqes.drain(..) {
            self.dispatch(cqe.user_data(), cqe.result(), cqe.flags());
        }
        self.cqes = cqes;
        self.fire_timers();
        self.service_dirty();
        self.unpark();
        self.service_dirty();
        if self.ctx.draining
            && self.slots.is_empty()
            && !self.accept_armed
            && self.udp_quiet()
            && self.ctx.pending_connects.is_empty()
            && (self.ctx.offload_pending == 0 || self.drain_expired)
        {
            self.exiting = true;
        }
    }

    fn dispatch(&mut self, user_data: u64, res: i32, flags: u32) {
        let Some((kind, token)) = token::unpack(user_data) else {
            return;
        };
        match kind {
            OpKind::Accept => self.on_accept(res, flags),
            OpKind::Recv => self.on_recv(token, res, flags),
            OpKind::Send => self.on_send(token, res, false, flags),
            OpKind::SendZc if cqueue::notif(flags) => self.on_zc_notif(token),
            OpKind::SendZc => self.on_send(token, res, true, flags),
            OpKind::Cancel => {}
            OpKind::Wake => self.on_wake(res),
            OpKind::UdpRecv => self.on_udp_recv(res, flags),
            OpKind::UdpSend => self.on_udp_send(token, res, flags),
            OpKind::Connect => self.on_connect(token, res),
        }
    }

    // ---- accept ----------------------------------------------------------------

    fn arm_accept(&mut self) {
        if self.accept_armed || self.accept_paused || self.ctx.draining {
            return;
        }
        if let Some(l) = &self.listener {
            self.ring
                .accept_multi(l.as_raw_fd(), pack_shard(OpKind::Accept));
            self.accept_armed = true;
        }
    }

    fn on_accept(&mut self, res: i32, flags: u32) {
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

    fn cancel_accept(&mut self) {
        self.ring
            .cancel_user_data(pack_shard(OpKind::Accept), pack_shard(OpKind::Cancel));
    }

    fn open_conn(&mut self, fd: OwnedFd) {
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
        let slot = entry.insert(Slot {
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
        self.ctx.note_output(&mut slot.io);
    }

    /// Opens the outbound connections asked for since the last turn.
    fn start_connects(&mut self) {
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
                    self.handler.on_connect_failed(
                        tag,
                        addr,
                        e,
                        &mut ShardIo {
                            shard: &mut self.ctx,
                        },
                    );
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
            io.connect_addr = Some(Box::new(socket2::SockAddr::from(addr)));
            io.inflight = 1;
            let slot = entry.insert(Slot { io, app: None });
            if let Some(a) = slot.io.connect_addr.as_deref() {
                self.ring
                    .connect(slot.io.fd.as_raw_fd(), a, pack(OpKind::Connect, token));
            }
        }
    }

    fn on_connect(&mut self, token: ConnToken, res: i32) {
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
        slot.io.connect_addr = None;
        if slot.io.phase != Phase::Connecting {
            ctx.note_output(&mut slot.io); // closed meanwhile: let service free it
            return;
        }
        let Origin::Connected { tag } = slot.io.origin else {
            return;
        };
        if res < 0 {
            ctx.counters.connect_errors += 1;
            slot.io.phase = Phase::Closed;
            let addr = slot.io.peer;
            ctx.note_output(&mut slot.io);
            handler.on_connect_failed(
                tag,
                addr,
                std::io::Error::from_raw_os_error(-res),
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
        ctx.note_output(&mut slot.io);
    }

    // ---- receive ---------------------------------------------------------------

    fn on_recv(&mut self, token: ConnToken, res: i32, flags: u32) {
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
                Phase::Open if !slot.io.abort_requested => {
                    if let Some(app) = slot.app.as_mut() {
                        let mut io = Io::new(&mut slot.io, ctx);
                        handler.on_eof(app, &mut io);
                    }
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
        ctx.note_output(&mut slot.io);
    }

    /// Re-arms receives that found the buffer ring empty. Buffers are back by now: they
    /// are recycled right after each callback, within the turn that received them.
    fn unpark(&mut self) {
        if self.parked.is_empty() {
            return;
        }
        for token in mem::take(&mut self.parked) {
            if let Some(slot) = live(&mut self.slots, token) {
                slot.io.parked = false;
                self.ctx.note_output(&mut slot.io);
            }
        }
    }

    // ---- send ------------------------------------------------------------------

    fn on_send(&mut self, token: ConnToken, res: i32, zc: bool, flags: u32) {
        let Shard { slots, ctx, .. } = self;
        let Some(slot) = live(slots, token) else {
            return;
        };
        slot.io.inflight -= 1;
        if zc && !cqueue::more(flags) {
            slot.io.send.zc_no_notif();
        }
        if res >= 0 {
            ctx.counters.bytes_out += res as u64;
            slot.io.last_active = ctx.now;
            if slot.io.send.complete(res as usize) {
                ctx.counters.short_sends += 1;
            }
        } else {
            slot.io.send.fail();
            if res != -libc::ECANCELED {
                slot.io.abort(Close::Error(-res));
            } else {
                slot.io.abort(slot.io.close_why);
            }
        }
        ctx.note_output(&mut slot.io);
    }

    fn on_zc_notif(&mut self, token: ConnToken) {
        let Shard { slots, ctx, .. } = self;
        if let Some(slot) = live(slots, token) {
            slot.io.send.zc_notif();
            ctx.note_output(&mut slot.io);
        }
    }

    // ---- servicing -------------------------------------------------------------

    fn service_dirty(&mut self) {
        while let Some(idx) = self.ctx.dirty.pop() {
            self.service(idx);
        }
    }

    /// Applies a connection's new state: close, send, steer reading, free the slot.
    fn service(&mut self, idx: u32) {
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
                    if let Some(app) = slot.app.as_mut() {
                        let mut io = Io::new(&mut slot.io, ctx);
                        handler.on_writable(app, &mut io);
                    }
                }
                if slot.io.redeliver && slot.io.reading_enabled() {
                    slot.io.redeliver = false;
                    if !slot.io.carry.is_empty() {
                        run_carry(handler, ctx, slot);
                    }
                }
                if slot.io.abort_requested {
                    close_conn(handler, ctx, ring, slot, true);
                }
            }
        }

        if slot.io.phase != Phase::Closed {
            if let Some(next) = slot.io.send.start_next() {
                let kind = if next.zc {
                    ctx.counters.zc_sends += 1;
                    OpKind::SendZc
                } else {
                    OpKind::Send
                };
                ctx.counters.sends += 1;
                ring.send(slot.io.fd.as_raw_fd(), next, pack(kind, token));
                slot.io.inflight += 1;
            }
            if slot.io.phase == Phase::Flushing && slot.io.send.is_empty() {
                start_linger(handler, ctx, slot);
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

    // ---- timers ----------------------------------------------------------------

    fn fire_timers(&mut self) {
        let mut fired = mem::take(&mut self.fired);
        self.ctx.timers.advance(self.ctx.now, &mut fired);
        for ev in fired.drain(..) {
            self.on_timer(ev);
        }
        self.fired = fired;
    }

    fn on_timer(&mut self, ev: TimerEvent) {
        match ev {
            TimerEvent::ResumeAccept => self.accept_paused = false,
            TimerEvent::Shard { tag } => {
                self.handler.on_shard_timer(
                    tag,
                    &mut ShardIo {
                        shard: &mut self.ctx,
                    },
                );
            }
            TimerEvent::DrainDeadline => {
                self.drain_expired = true;
                self.force_close_all();
            }
            TimerEvent::Conn { token, tag } => {
                let Shard {
                    slots,
                    ctx,
                    handler,
                    ..
                } = self;
                let Some(slot) = live(slots, token) else {
                    return;
                };
                if slot.io.phase == Phase::Closed || slot.io.abort_requested {
                    return;
                }
                if let Some(app) = slot.app.as_mut() {
                    let mut io = Io::new(&mut slot.io, ctx);
                    handler.on_timer(app, tag, &mut io);
                }
                ctx.note_output(&mut slot.io);
            }
            TimerEvent::Idle(token) => {
                let now = self.ctx.now;
                let Some(timeout) = self.ctx.config.idle_timeout else {
                    return;
                };
                let Shard { slots, ctx, .. } = self;
                let Some(slot) = live(slots, token) else {
                    return;
                };
                slot.io.idle_timer = None;
                if slot.io.phase == Phase::Closed {
                    return;
                }
                let idle = now.saturating_duration_since(slot.io.last_active);
                if idle >= timeout {
                    ctx.counters.idle_closed += 1;
                    slot.io.abort(Close::Idle);
                    ctx.note_output(&mut slot.io);
                } else {
                    slot.io.idle_timer = Some(ctx.timers.insert(
                        now,
                        timeout - idle,
                        TimerEvent::Idle(token),
                    ));
                }
            }
            TimerEvent::Linger(token) => {
                let Shard { slots, ctx, .. } = self;
                if let Some(slot) = live(slots, token) {
                    if slot.io.phase == Phase::Lingering {
                        slot.io.abort_requested = true;
                        ctx.note_output(&mut slot.io);
                    }
                }
            }
        }
    }

    // ---- wake and shutdown -----------------------------------------------------

    fn arm_wake(&mut self) {
        if !self.wake_armed {
            self.ring.read_eventfd(
                self.wake_fd.as_raw_fd(),
                &mut self.wake_buf,
                pack_shard(OpKind::Wake),
            );
            self.wake_armed = true;
        }
    }

    fn on_wake(&mut self, res: i32) {
        self.wake_armed = false;
        while let Ok(msg) = self.rx.try_recv() {
            match msg {
                ShardMsg::Shutdown => self.begin_drain(),
                ShardMsg::User(msg) => self.on_message(msg),
                ShardMsg::OffloadDone { token, result } => {
                    self.ctx.offload_pending = self.ctx.offload_pending.saturating_sub(1);
                    match &result {
                        Ok(_) => self.ctx.counters.offload_completed += 1,
                        Err(_) => self.ctx.counters.offload_panicked += 1,
                    }
                    let Shard {
                        slots,
                        ctx,
                        handler,
                        ..
                    } = self;
                    let Some(slot) = live(slots, token) else {
                        continue; // the connection closed meanwhile: drop the result
                    };
                    if slot.io.phase != Phase::Open || slot.io.abort_requested {
                        continue;
                    }
                    if let Some(app) = slot.app.as_mut() {
                        let mut io = Io::new(&mut slot.io, ctx);
                        handler.on_offload_done(app, result, &mut io);
                    }
                    ctx.note_output(&mut slot.io);
                }
            }
        }
        if res != -libc::ECANCELED && !self.exiting {
            self.arm_wake();
        }
    }

    fn on_message(&mut self, msg: Message) {
        let Shard {
            slots,
            ctx,
            handler,
            ..
        } = self;
        let mut visit = |f: &mut ConnFn<'_, H::Conn>| {
            for (_, slot) in slots.iter_mut() {
                if slot.io.phase != Phase::Open || slot.io.abort_requested {
                    continue;
                }
                if let Some(app) = slot.app.as_mut() {
                    let mut io = Io::new(&mut slot.io, ctx);
                    f(app, &mut io);
                }
                ctx.note_output(&mut slot.io);
            }
        };
        let mut conns = Conns { visit: &mut visit };
        handler.on_message(&msg, &mut conns);
    }

    fn begin_drain(&mut self) {
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
        let keys: Vec<usize> = self.slots.iter().map(|(k, _)| k).collect();
        let Shard {
            slots,
            ctx,
            handler,
            ..
        } = self;
        for k in keys {
            let slot = &mut slots[k];
            if slot.io.phase == Phase::Open && !slot.io.abort_requested {
                if let Some(app) = slot.app.as_mut() {
                    let mut io = Io::new(&mut slot.io, ctx);
                    handler.on_shutdown(app, &mut io);
                }
            } else if slot.io.phase == Phase::Lingering {
                slot.io.abort_requested = true;
            }
            ctx.note_output(&mut slot.io);
        }
        let deadline = self.ctx.config.drain_timeout;
        self.ctx
            .timers
            .insert(self.ctx.now, deadline, TimerEvent::DrainDeadline);
    }

    fn force_close_all(&mut self) {
        let Shard { slots, ctx, .. } = self;
        for (_, slot) in slots.iter_mut() {
            if slot.io.phase != Phase::Closed {
                if slot.io.phase != Phase::Lingering {
                    ctx.counters.drain_forced += 1;
                }
                slot.io.abort(Close::Shutdown);
                ctx.note_output(&mut slot.io);
            }
        }
    }

    /// Waits for the last operations (the wake read), then releases the buffer ring
    /// while the ring is still alive.
    fn finish(mut self) -> Counters {
        if self.wake_armed {
            self.ring
                .cancel_user_data(pack_shard(OpKind::Wake), pack_shard(OpKind::Cancel));
            let start = Instant::now();
            while self.wake_armed && start.elapsed() < Duration::from_secs(2) {
                let _ = self.ring.submit_and_wait(Some(Duration::from_millis(50)));
                let mut cqes = mem::take(&mut self.cqes);
                self.ring.reap(&mut cqes);
                for cqe in cqes.drain(..) {
                    if cqe.user_data() == pack_shard(OpKind::Wake) {
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

/// The connection `token` names, if its slot still holds that generation: a completion
/// or timer for a connection that is gone (its slot maybe reused) finds nothing.
fn live<C>(slots: &mut Slab<Slot<C>>, token: ConnToken) -> Option<&mut Slot<C>> {
    slots
        .get_mut(token.slot as usize)
        .filter(|s| s.io.token.generation == token.generation)
}

/// Shows `data` to the handler, after any carry-over, keeping what it leaves.
fn deliver<H: Handler>(handler: &mut H, ctx: &mut ShardCtx, slot: &mut Slot<H::Conn>, data: &[u8]) {
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
fn append_carry(ctx: &mut ShardCtx, conn: &mut ConnIo, data: &[u8]) -> bool {
    if conn.carry.len() + data.len() > ctx.config.max_input_carry {
        ctx.counters.input_overflow += 1;
        conn.abort(Close::InputOverflow);
        ctx.note_output(conn);
        return false;
    }
    conn.carry.extend_from_slice(data);
    true
}

/// Shows the carry-over to the handler and keeps what it leaves.
fn run_carry<H: Handler>(handler: &mut H, ctx: &mut ShardCtx, slot: &mut Slot<H::Conn>) {
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
fn start_linger<H: Handler>(handler: &mut H, ctx: &mut ShardCtx, slot: &mut Slot<H::Conn>) {
    slot.io.phase = Phase::Lingering;
    let _ = SockRef::from(&slot.io.fd).shutdown(std::net::Shutdown::Write);
    if let Some(app) = slot.app.take() {
        handler.on_close(app, slot.io.close_why);
        ctx.counters.closed += 1;
    }
    ctx.timers
        .insert(ctx.now, LINGER, TimerEvent::Linger(slot.io.token));
    ctx.note_output(&mut slot.io);
}

/// Closes a connection: tells the handler, drops unsent output, cancels what is in
/// flight. The slot is freed by `service` once every completion is back.
fn close_conn<H: Handler>(
    handler: &mut H,
    ctx: &mut ShardCtx,
    ring: &mut Ring,
    slot: &mut Slot<H::Conn>,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(slots: &mut Slab<Slot<u32>>, generation: u32, app: u32) -> ConnToken {
        let entry = slots.vacant_entry();
        let token = ConnToken {
            slot: entry.key() as u32,
            generation,
        };
        let fd = fd::eventfd().expect("eventfd");
        let peer = std::net::SocketAddr::from(([127, 0, 0, 1], 1));
        entry.insert(Slot {
            io: ConnIo::new(token, fd, peer, Instant::now()),
            app: Some(app),
        });
        token
    }

    #[test]
    fn a_stale_token_does_not_reach_the_slots_next_occupant() {
        let mut slots = Slab::new();
        let old = slot(&mut slots, 1, 10);
        assert_eq!(live(&mut slots, old).and_then(|s| s.app), Some(10));
        slots.remove(old.slot as usize);
        assert!(live(&mut slots, old).is_none(), "freed slot");
        let new = slot(&mut slots, 2, 20);
        assert_eq!(new.slot, old.slot, "the slab reuses the slot");
        assert!(
            live(&mut slots, old).is_none(),
            "old generation must not match"
        );
        assert_eq!(live(&mut slots, new).and_then(|s| s.app), Some(20));
        let beyond = ConnToken {
            slot: 99,
            generation: 2,
        };
        assert!(live(&mut slots, beyond).is_none());
    }
}
