//! `ringmaster proxy --mode tcp`: bytes pass both ways between each client connection
//! and a connection to an upstream the balancer picks for it.
//!
//! A client connection is paused from its accept until its upstream connection is
//! made; then the two are linked (each one's write backlog pauses the other's reading,
//! so a fast side cannot grow the slow side's queue without bound) and every byte read
//! on one is queued on the other. A half-close is passed on: the side that sends its
//! FIN has the other side's write shut (`Io::shutdown_write`) once what it sent is
//! delivered, while the other direction keeps flowing; a connection closes once it has
//! both read the end of its input and shut its output. An upstream that cannot be
//! reached closes the client connection at once.

use std::net::SocketAddr;
use std::time::Duration;

use ringmaster_runtime::{Close, ConnToken, Event, Handler, Input, Io, ShardEvent, ShardIo};

use super::balance::Balancer;

/// The L4 proxy, one per shard.
pub struct TcpProxy {
    ups: Vec<SocketAddr>,
    bal: Balancer,
    connect_timeout: Duration,
    /// Local addresses to connect from, in turn (none: the kernel's choice).
    sources: Vec<std::net::IpAddr>,
    next_source: usize,
    relay: Relay,
}

/// How bytes cross from one side to the other.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Relay {
    /// Each read is queued on the other side (`Io::write_to`).
    Copy,
    /// The client side is under TLS (`--tls-*`): bytes for it are posted, so that its
    /// own callback writes (and the TLS layer encrypts) them; `write_to` would put them
    /// on the socket below TLS.
    PostToTls,
    /// In the kernel, socket -> pipe -> socket (`Io::splice_to`, `--splice`).
    Splice,
}

/// Upstream bytes for a client connection under TLS.
struct ForClient(Vec<u8>);

/// What one side of a proxied pair knows.
pub struct Side {
    /// The other side, once both exist.
    peer: Option<ConnToken>,
    /// For an upstream connection, the index of its upstream (health and in-flight
    /// counts); `None` for a client connection.
    upstream: Option<usize>,
    /// This side's input ended (its FIN came).
    input_done: bool,
    /// This side's output was shut (the other side's input ended).
    output_done: bool,
}

/// Posted between the sides of a pair.
enum Msg {
    /// The upstream connection of this client connection is made.
    Paired(ConnToken),
    /// The other side's input ended: shut this side's output.
    PeerEof,
}

/// A connect tag: the client connection it is for and the upstream's index.
fn tag(client: ConnToken, up: usize) -> u64 {
    u64::from(client.slot)
        | (u64::from(client.generation & 0x00ff_ffff) << 32)
        | ((up as u64) << 56)
}

fn untag(tag: u64) -> (ConnToken, usize) {
    let client = ConnToken {
        slot: tag as u32,
        generation: ((tag >> 32) as u32) & 0x00ff_ffff,
    };
    (client, (tag >> 56) as usize)
}

impl TcpProxy {
    /// Proxies to `ups`, balanced by `bal`.
    pub fn new(
        ups: Vec<SocketAddr>,
        bal: Balancer,
        connect_timeout: Duration,
        sources: Vec<std::net::IpAddr>,
        relay: Relay,
    ) -> Self {
        TcpProxy {
            ups,
            bal,
            connect_timeout,
            sources,
            next_source: 0,
            relay,
        }
    }

    /// Closes a side once both of its directions have ended.
    fn maybe_close(side: &Side, io: &mut Io<'_>) {
        if side.input_done && side.output_done {
            io.close();
        }
    }
}

impl Handler for TcpProxy {
    type Conn = Side;

    fn on_open(&mut self, peer: SocketAddr, io: &mut Io<'_>) -> Side {
        // Nothing is read until there is somewhere to put it.
        io.pause_reading();
        match self.bal.pick(Some(peer.ip()), 0, io.now()) {
            Some(i) => {
                self.bal.standing[i].inflight += 1;
                let (addr, tag) = (self.ups[i], tag(io.token(), i));
                match self
                    .sources
                    .get(self.next_source % self.sources.len().max(1))
                {
                    Some(&ip) => io.connect_from(addr, ip, tag, self.connect_timeout),
                    None => io.connect_timeout(addr, tag, self.connect_timeout),
                }
                self.next_source = self.next_source.wrapping_add(1);
            }
            None => io.abort(),
        }
        Side {
            peer: None,
            upstream: None,
            input_done: false,
            output_done: false,
        }
    }

    fn on_connected(&mut self, tag: u64, _peer: SocketAddr, io: &mut Io<'_>) -> Side {
        let (client, up) = untag(tag);
        self.bal.succeeded(up);
        io.post(client, Msg::Paired(io.token()));
        if self.relay == Relay::Splice {
            // No send queues in between: the pipes and sockets are the backpressure.
            io.splice_to(client);
        } else {
            io.link(client);
        }
        Side {
            peer: Some(client),
            upstream: Some(up),
            input_done: false,
            output_done: false,
        }
    }

    fn on_data(&mut self, side: &mut Side, input: &mut Input<'_>, io: &mut Io<'_>) {
        if let Some(peer) = side.peer {
            if self.relay == Relay::PostToTls && side.upstream.is_some() {
                io.post(peer, ForClient(input.bytes().to_vec()));
            } else {
                io.write_to(peer, input.bytes());
            }
            input.consume_all();
        }
    }

    fn on_event(&mut self, side: &mut Side, event: Event<'_>, io: &mut Io<'_>) {
        match event {
            Event::Posted(p) if p.is::<ForClient>() => {
                if let Ok(ForClient(bytes)) = p.take::<ForClient>() {
                    io.write(&bytes);
                }
            }
            Event::Posted(p) => match p.take::<Msg>() {
                Ok(Msg::Paired(up)) => {
                    side.peer = Some(up);
                    if self.relay == Relay::Splice {
                        io.splice_to(up);
                    } else {
                        io.resume_reading();
                    }
                }
                Ok(Msg::PeerEof) => {
                    side.output_done = true;
                    io.shutdown_write();
                    Self::maybe_close(side, io);
                }
                Err(_) => {}
            },
            Event::Eof => {
                side.input_done = true;
                match side.peer {
                    Some(peer) => io.post(peer, Msg::PeerEof),
                    None => io.close(),
                }
                Self::maybe_close(side, io);
            }
            // The other side is gone (reset, or closed): so is this one.
            Event::ConnGone(_) => io.close(),
            Event::Shutdown => io.close(),
            _ => {}
        }
    }

    fn on_close(&mut self, side: Side, _why: Close) {
        if let Some(up) = side.upstream {
            if let Some(s) = self.bal.standing.get_mut(up) {
                s.inflight = s.inflight.saturating_sub(1);
            }
        }
    }

    fn on_closed(&mut self, side: Side, why: Close, shard: &mut ShardIo<'_>) {
        // One side gone for good (not a graceful end of both): the other follows.
        if let (Some(peer), false) = (side.peer, side.input_done && side.output_done) {
            shard.close_conn(peer);
        }
        self.on_close(side, why);
    }

    fn on_shard(&mut self, event: ShardEvent<'_>, shard: &mut ShardIo<'_>) {
        if let ShardEvent::ConnectFailed { tag, .. } = event {
            let (client, up) = untag(tag);
            let now = shard.now();
            self.bal.failed(up, now);
            if let Some(s) = self.bal.standing.get_mut(up) {
                s.inflight = s.inflight.saturating_sub(1);
            }
            shard.close_conn(client);
        }
    }
}
