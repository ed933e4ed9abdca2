//! A shard: one thread, one ring, one listener, one slab of connections.
//!
//! The loop: submit and wait (bounded by the next timer), reap every completion, apply
//! each to its connection, fire due timers, then service the connections that changed
//! (start sends, arm or cancel receives, close). Handler callbacks only change state
//! and mark the connection dirty; submissions happen in one place, `service`.

use std::mem;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use crate::close::{Close, Origin};
use crate::config::Config;
use crate::conn::{ConnIo, Phase};
use crate::counters::Counters;
use crate::ctx::{ShardCtx, TimerEvent};
use crate::features::{Descriptors, ShardFeatures};
use crate::handler::{Event, Handler, ShardEvent};
use crate::io::{Input, Io, ShardIo};
use crate::job::Job;
use crate::mailbox::{Mailboxes, ShardMsg};
use crate::sys::buf_ring::{BufRing, Pieces};
use crate::sys::fd;
use crate::sys::lend::Lent;
use crate::sys::msg::RecvTemplate;
use crate::sys::region::Slab;
use crate::sys::ring::{Completion, Ring, ZC_COPIED};
use crate::timer::TimerWheel;
use crate::token::{self, pack, pack_shard, ConnToken, OpKind};
use crate::udp::{ShardUdp, UdpSends};

mod accept;
mod by_token;
mod control;
mod io_path;
mod splice;
mod timers;
mod udp_io;

/// How long accepting pauses after EMFILE/ENFILE.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);
/// How long a closing connection keeps draining the peer's input after our FIN.
const LINGER: Duration = Duration::from_secs(2);

struct ConnSlot<C> {
    io: ConnIo,
    app: Option<C>,
}

/// Slots in the registered file table: one per connection the shard may hold, plus room
/// to accept (and reset) the ones past that limit, within the descriptor limit (the
/// kernel refuses a table larger than `RLIMIT_NOFILE`).
fn direct_table_slots(config: &Config) -> u32 {
    const REFUSAL_ROOM: u64 = 64;
    let nofile = fd::nofile_limit().unwrap_or(1024);
    (config.max_conns_per_shard as u64 + REFUSAL_ROOM)
        .min(nofile)
        .clamp(1, 1 << 20) as u32
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
    slots: Slab<ConnSlot<H::Conn>>,
    listener: Option<OwnedFd>,
    udp: Option<ShardUdp>,
    accept_armed: bool,
    accept_paused: bool,
    /// Accepted connections are direct descriptors (else plain ones).
    direct: bool,
    /// A peer address of the listener's family, before the real one is known.
    unknown_peer: std::net::SocketAddr,
    wake_fd: Arc<OwnedFd>,
    /// The wake eventfd's read lands here (lent to the kernel while the read is armed).
    wake_buf: Lent<Box<[u8; 8]>>,
    wake_armed: bool,
    rx: Receiver<ShardMsg>,
    next_generation: u32,
    cqes: Vec<Completion>,
    pieces: Pieces,
    fired: Vec<TimerEvent>,
    parked: Vec<ConnToken>,
    exiting: bool,
    drain_expired: bool,
    /// Connections whose input is spliced to another (`Io::splice_to`), by slot.
    splices: std::collections::HashMap<u32, splice::Splice>,
    /// When a turn last reaped completions, if the allocator's free pages have not been
    /// given back since (`Config::release_memory_after`).
    busy_at: Option<Instant>,
    /// Completions the last turn reaped: a busy turn lets the next one wait to batch.
    reaped: usize,
}

impl<H: Handler> Shard<H> {
    /// Builds the shard's ring and buffer ring on the calling (shard) thread.
    pub(crate) fn new(
        parts: ShardParts,
        handler: H,
    ) -> Result<(Shard<H>, ShardFeatures), crate::error::Error> {
        let config = parts.config;
        let mut ring = Ring::new(config.ring_entries, config.recv_bundles)?;
        let descriptors = if !config.direct_descriptors {
            Descriptors::Plain("turned off".into())
        } else if parts.listener.is_none() {
            Descriptors::Plain("no listener".into())
        } else {
            let slots = direct_table_slots(&config);
            match ring.enable_direct(slots) {
                Ok(()) => Descriptors::Direct(slots),
                Err(why) => Descriptors::Plain(why),
            }
        };
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
                Some(ShardUdp {
                    fd,
                    bufs,
                    recv_hdr: Lent::new(RecvTemplate::new()),
                    recv_armed: false,
                })
            }
            None => None,
        };
        let udp_sends = udp
            .as_ref()
            .map(|_| UdpSends::new(config.udp_send_queue, config.udp_gso));
        let send_zc = ring.features.send_zc;
        let config_max_conns = config.max_conns_per_shard.min(1 << 20);
        let config_shards = config.shards;
        let direct = matches!(descriptors, Descriptors::Direct(_));
        let features = ShardFeatures {
            ring: ring.features,
            buf_incremental: bufs.incremental(),
            descriptors,
        };
        let unknown_peer = match config.listen {
            std::net::SocketAddr::V4(_) => std::net::SocketAddr::from(([0, 0, 0, 0], 0)),
            std::net::SocketAddr::V6(_) => std::net::SocketAddr::from(([0u16; 8], 0)),
        };
        // Address space for every connection the shard may hold, reserved now; pages
        // become resident as connections arrive and go back as they leave (sys::region).
        let slots =
            Slab::with_capacity(config_max_conns).map_err(|e| crate::sys::SetupError::Io {
                what: "reserving the connection slab",
                source: e,
            })?;
        let now = Instant::now();
        let shard = Shard {
            ring,
            bufs,
            ctx: ShardCtx {
                id: parts.id,
                now,
                // Two per connection (the idle timeout, and a protocol's own) and some.
                timers: TimerWheel::new(now, 4096, config.timer_tick, 2 * config_max_conns + 1024),
                config,
                counters: Counters::default(),
                dirty: Vec::new(),
                draining: false,
                mailboxes: parts.mailboxes,
                offload_tx: parts.offload_tx,
                offload_pending: 0,
                send_zc,
                pending_connects: Vec::new(),
                conn_ops: Vec::new(),
                next_notifier: 0,
                links: Default::default(),
                link_changes: Vec::new(),
                udp_sends,
                discard: Vec::new(),
            },
            handler,
            slots,
            listener: parts.listener,
            udp,
            accept_armed: false,
            accept_paused: false,
            direct,
            unknown_peer,
            wake_fd: parts.wake_fd,
            wake_buf: Lent::new(Box::new([0; 8])),
            wake_armed: false,
            rx: parts.rx,
            next_generation: token::first_generation(parts.id, config_shards),
            cqes: Vec::with_capacity(256),
            pieces: Pieces::default(),
            fired: Vec::new(),
            parked: Vec::new(),
            exiting: false,
            drain_expired: false,
            splices: std::collections::HashMap::new(),
            busy_at: None,
            reaped: 0,
        };
        Ok((shard, features))
    }

    /// Runs until shutdown completes; returns the shard's counters.
    pub(crate) fn run(mut self) -> Counters {
        self.arm_wake();
        self.shard_event(ShardEvent::Start);
        loop {
            self.start_connects();
            self.arm_accept();
            self.arm_udp();
            self.flush_udp();
            self.bufs.publish();
            if let Some(p) = self.udp.as_mut() {
                p.bufs.publish();
            }
            let timeout = if self.ctx.conn_ops.is_empty() && self.ctx.link_changes.is_empty() {
                self.ctx
                    .timers
                    .next_wake()
                    .map(|t| t.saturating_duration_since(Instant::now()))
            } else {
                // Actions by token or link changes still queued (late in the last
                // turn): apply them at once.
                Some(Duration::ZERO)
            };
            let timeout = self.until_quiet(timeout);
            let (batch, wait) = self.batching();
            if let Err(e) = self.ring.submit_and_wait_batch(timeout, batch, wait) {
                say!(
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
            self.release_if_quiet();
        }
        self.finish()
    }

    /// How many completions this turn waits for, and how long (µs) it may wait to gather
    /// them: `Config::batch` and `batch_wait_us` only after a turn that reaped at least
    /// half a batch. Under light load a shard wakes on its first completion, so a lone
    /// request never waits for company; under heavy load each wake-up takes more.
    fn batching(&self) -> (usize, u32) {
        let (batch, wait) = (self.ctx.config.batch, self.ctx.config.batch_wait_us);
        if self.reaped >= batch / 2 {
            (batch, wait)
        } else {
            (1, 0)
        }
    }

    /// The wait, shortened to end when the shard will have been quiet long enough to
    /// give its free memory back.
    fn until_quiet(&self, timeout: Option<Duration>) -> Option<Duration> {
        let Some(quiet) = self.quiet_at() else {
            return timeout;
        };
        // The turn's clock, not a fresh read: off by the turn's own length at most,
        // which a one-second quiet spell does not notice.
        let left = quiet.saturating_duration_since(self.ctx.now);
        Some(timeout.map_or(left, |t| t.min(left)))
    }

    /// When the shard will have been quiet long enough to give memory back, if it did
    /// something since it last did.
    fn quiet_at(&self) -> Option<Instant> {
        Some(self.busy_at? + self.ctx.config.release_memory_after?)
    }

    /// Gives the allocator's free pages back once no completion has come for
    /// `release_memory_after`: a quiet shard makes no allocator calls that would.
    fn release_if_quiet(&mut self) {
        if self.quiet_at().is_some_and(|quiet| self.ctx.now >= quiet) {
            self.busy_at = None;
            crate::sys::alloc::release_free_memory();
            self.ctx.counters.memory_releases += 1;
        }
    }

    /// One turn: completions, timers, then servicing of changed connections.
    fn turn(&mut self) {
        let mut cqes = mem::take(&mut self.cqes);
        let overflow = self.ring.reap(&mut cqes);
        self.ctx.counters.cq_overflow = overflow as u64;
        self.reaped = cqes.len();
        if !cqes.is_empty() {
            self.busy_at = Some(self.ctx.now);
        }
        for c in cqes.drain(..) {
            self.dispatch(&c);
        }
        self.cqes = cqes;
        self.fire_timers();
        self.apply_conn_ops();
        self.apply_link_changes();
        self.service_dirty();
        self.unpark();
        self.service_dirty();
        // Actions by token asked for by callbacks that servicing made (writable,
        // redelivered input).
        if !self.ctx.conn_ops.is_empty() || !self.ctx.link_changes.is_empty() {
            self.apply_conn_ops();
            self.apply_link_changes();
            self.service_dirty();
        }
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

    fn dispatch(&mut self, c: &Completion) {
        let Some((kind, token)) = token::unpack(c.user_data()) else {
            return;
        };
        let (res, flags) = (c.result(), c.flags());
        match kind {
            OpKind::Accept => self.on_accept(res, flags),
            OpKind::Recv => self.on_recv(token, res, flags),
            OpKind::Send => self.on_send(token, c),
            OpKind::SendZc if c.notif() => self.on_zc_notif(token, c),
            OpKind::SendZc => self.on_send(token, c),
            OpKind::Cancel => {}
            OpKind::Wake => self.on_wake(c),
            OpKind::UdpRecv => self.on_udp_recv(c),
            OpKind::UdpSend => self.on_udp_send(token, c),
            OpKind::Connect => self.on_connect(token, c),
            OpKind::PeerName => self.on_peer_name(token, c),
            OpKind::Shutdown => self.on_shutdown(token, c),
            OpKind::FdInstall => self.on_fd_installed(token, c),
            OpKind::SplicePoll | OpKind::SpliceIn | OpKind::SpliceOut => {
                self.on_splice(kind, token, res)
            }
            OpKind::Close => {
                if c.result() < 0 {
                    self.ctx.counters.close_errors += 1;
                }
            }
        }
    }
}

impl<H: Handler> Shard<H> {
    /// Tells the handler about the shard.
    fn shard_event(&mut self, event: ShardEvent<'_>) {
        self.handler.on_shard(
            event,
            &mut ShardIo {
                shard: &mut self.ctx,
            },
        );
    }

    /// Tells the handler about one of its connections, if that connection is still
    /// open (the token's generation matches, it is not closing): the one place where a
    /// token from a timer, a worker or the mailbox becomes a callback.
    fn conn_event(&mut self, token: ConnToken, event: Event<'_>) -> bool {
        let Shard {
            slots,
            ctx,
            handler,
            ..
        } = self;
        let Some(slot) = live(slots, token) else {
            return false;
        };
        deliver_event(handler, ctx, slot, event)
    }
}

/// Shows `event` to the handler for a connection's slot; false (and nothing called)
/// if the connection is closing. A timer still fires while queued output flushes
/// before a close; everything else needs the connection open.
fn deliver_event<H: Handler>(
    handler: &mut H,
    ctx: &mut ShardCtx,
    slot: &mut ConnSlot<H::Conn>,
    event: Event<'_>,
) -> bool {
    let wanted = match event {
        Event::Timer(_) => slot.io.phase != Phase::Closed,
        _ => slot.io.phase == Phase::Open,
    };
    if !wanted || slot.io.abort_requested {
        return false;
    }
    if let Some(app) = slot.app.as_mut() {
        let mut io = Io::new(&mut slot.io, ctx);
        handler.on_event(app, event, &mut io);
    }
    ctx.mark_dirty(&mut slot.io);
    true
}

/// The connection `token` names, if its slot still holds that generation: a completion
/// or timer for a connection that is gone (its slot maybe reused) finds nothing.
fn live<C>(slots: &mut Slab<ConnSlot<C>>, token: ConnToken) -> Option<&mut ConnSlot<C>> {
    slots
        .get_mut(token.slot as usize)
        .filter(|s| s.io.token.generation == token.generation)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::sock::Sock;

    fn slot(slots: &mut Slab<ConnSlot<u32>>, generation: u32, app: u32) -> ConnToken {
        let entry = slots.vacant_entry().unwrap();
        let token = ConnToken {
            slot: entry.key() as u32,
            generation,
        };
        let fd = fd::eventfd().expect("eventfd");
        let peer = std::net::SocketAddr::from(([127, 0, 0, 1], 1));
        entry.insert(ConnSlot {
            io: ConnIo::new(token, Sock::Plain(fd), peer, Instant::now()),
            app: Some(app),
        });
        token
    }

    #[test]
    fn a_stale_token_does_not_reach_the_slots_next_occupant() {
        let mut slots = Slab::with_capacity(16).unwrap();
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
