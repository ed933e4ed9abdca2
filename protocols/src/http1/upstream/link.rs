//! One upstream connection: sending the request assigned to it, reading its response
//! into [`Reply`]s for the exchange that asked, and what its end, its timers and the
//! exchange's end mean for the request in flight.
//!
//! This part owns the client role on the wire (plain or under TLS). A response is read
//! with the client codec straight from the receive buffer (plain) or from the decrypted
//! bytes (TLS); only what the exchange must see later is copied, into the reply. A
//! connection whose response broke the rules, or whose exchange is gone mid-response,
//! is dropped, never reused.
//!
//! After a 101 the connection is one side of a tunnel. Plain, its bytes pass as they
//! are. Under TLS the session stays here and every tunnel byte goes through it: what
//! arrives is decrypted and posted to the client's side, what the client's side reads
//! is posted here and encrypted; the client's half-close becomes close_notify then FIN,
//! and the upstream's close_notify ends the tunnel's input as a FIN would.

use std::io::{Read as _, Write as _};
use std::mem;
use std::time::{Duration, Instant};

use ringmaster_runtime::{Close, ConnToken, Event, Input, Io, ShardIo};
use rustls::ClientConnection;

use super::pool::{
    link_of_tag, BodyMore, BodyPace, Dispatch, Job, Link, LinkState, Pools, Route, TunnelBytes,
    TunnelEof, BODY_HOLD,
};
use super::reply::Reply;
use super::UpstreamError;
use crate::http1::client::{ClientError, ClientEvent};

/// The timer tag of a connection's deadline (what it bounds follows from its state).
const DEADLINE_TIMER: u64 = 1;

/// How long a connection past the pool's `max_idle` stays idle before it is closed.
const EXCESS_IDLE: Duration = Duration::from_secs(2);

/// Decrypted bytes held past this are given back after use.
const PLAIN_KEEP: usize = 64 * 1024;

impl Pools {
    /// A pool's connect succeeded: this is its connection from now on. `None` if `tag`
    /// is not a pool's (or names no connect under way).
    pub(crate) fn connected(&mut self, tag: u64, io: &mut Io<'_>) -> Option<usize> {
        let l = link_of_tag(tag)?;
        let link = self.links.get_mut(l)?;
        if !matches!(link.state, LinkState::Connecting) {
            return None;
        }
        link.token = Some(io.token());
        self.link_of.insert(io.token(), l);
        let pool = &mut self.pools[link.pool];
        pool.connecting -= 1;
        let took = io.now().saturating_duration_since(link.started);
        pool.stats.connect_time_us += took.as_micros() as u64;
        if let Some(tls) = &pool.spec.tls {
            match ClientConnection::new(tls.config.clone(), tls.name.clone()) {
                Ok(c) => {
                    let mut c = Box::new(c);
                    // The response timer bounds a peer that never reads.
                    c.set_buffer_limit(None);
                    link.tls = Some(c);
                    flush_tls(link, io);
                }
                Err(e) => {
                    let p = link.pool;
                    link.state = LinkState::Dead;
                    io.abort();
                    if let Some(job) = self.pools[p].queue.pop_front() {
                        self.finish(p, job.route, Err(UpstreamError::Tls(e.to_string())), io);
                    }
                    return Some(l);
                }
            }
        }
        self.next_job(l, io);
        Some(l)
    }

    /// The connection is free: it takes the next waiting request, or goes idle.
    fn next_job(&mut self, l: usize, io: &mut Io<'_>) {
        self.unhold(io);
        let Some(link) = self.links.get_mut(l) else {
            return;
        };
        let pool = &mut self.pools[link.pool];
        if io.is_draining() {
            link.state = LinkState::Dead;
            io.close();
            return;
        }
        if let Some(job) = pool.queue.pop_front() {
            self.send(l, job, io);
        } else if pool.spec.max_idle > 0 {
            // Past `max_idle` a connection is kept only briefly: the next burst reuses it
            // instead of opening another (each close and reopen costs a connect and
            // leaves a TIME_WAIT port behind), and a quiet pool shrinks back in seconds.
            let after = if pool.idle.len() < pool.spec.max_idle {
                pool.spec.idle_timeout
            } else {
                EXCESS_IDLE.min(pool.spec.idle_timeout)
            };
            link.state = LinkState::Idle;
            pool.idle.push(l);
            set_deadline(link, io, after);
        } else {
            link.state = LinkState::Dead;
            io.close();
        }
    }

    /// Sends `job` on connection `l` and arms its response deadline.
    fn send(&mut self, l: usize, mut job: Job, io: &mut Io<'_>) {
        // A hold may have come after the last response was read whole (its client
        // took the last pieces later): this response is someone else's to pace.
        self.unhold(io);
        let Some(link) = self.links.get_mut(l) else {
            return;
        };
        let p = link.pool;
        if link.codec.push_prepared(job.sent).is_err() {
            // Not reusable after all: the request waits for another connection.
            link.state = LinkState::Dead;
            io.close();
            self.pools[p].queue.push_front(job);
            return self.pump(p, io);
        }
        let pool = &mut self.pools[p];
        job.reused = link.used;
        link.used = true;
        link.got_bytes = false;
        pool.stats.requests += 1;
        pool.stats.reused += u64::from(job.reused);
        write_link(link, io, &job.bytes);
        let mut body_done = true;
        if let Some(body) = job.body.as_mut() {
            write_link(link, io, &body.pending);
            body.pending = Vec::new();
            body_done = body.finished;
            if std::mem::take(&mut body.held) {
                pace(io, &job.route, false);
            }
        }
        // The response is timed from the end of the request: an upload may take long,
        // and no deadline stands meanwhile (not the idle one this connection had).
        if body_done {
            set_deadline(link, io, pool.spec.response_timeout);
        } else {
            link.deadline = None;
        }
        link.state = LinkState::Busy { job, head: false };
    }

    /// Bytes arrived on connection `l`.
    pub(crate) fn link_data(&mut self, l: usize, input: &mut Input<'_>, io: &mut Io<'_>) {
        let Some(link) = self.links.get_mut(l) else {
            input.consume_all();
            return;
        };
        if let LinkState::Tunnel { peer, .. } = link.state {
            if link.tls.is_some() {
                let bytes = input.bytes();
                input.consume_all();
                return tunnel_tls_data(link, peer, bytes, io);
            }
            // Posted, not written below the client's connection: under TLS its own
            // callback must encrypt them.
            io.post(peer, TunnelBytes(input.bytes().to_vec()));
            input.consume_all();
            return;
        }
        if link.tls.is_none() {
            let used = self.decode(l, input.bytes(), io);
            input.consume(used);
            return;
        }
        let bytes = input.bytes();
        input.consume_all();
        let closed = match tls_read(link, bytes) {
            Ok(closed) => closed,
            Err(e) => return self.link_failed(l, UpstreamError::Tls(e), io),
        };
        flush_tls(link, io);
        let plain = mem::take(&mut link.plain);
        let used = self.decode(l, &plain, io);
        if let Some(link) = self.links.get_mut(l) {
            let rest = plain.get(used..).unwrap_or_default();
            if !rest.is_empty() {
                link.plain = rest.to_vec();
            } else if plain.capacity() <= PLAIN_KEEP {
                link.plain = plain;
                link.plain.clear();
            }
        }
        if !closed {
            return;
        }
        match self.links.get_mut(l) {
            // close_notify came with the 101 and the new protocol's first bytes: the
            // tunnel's upstream input is over already.
            Some(
                link @ Link {
                    state: LinkState::Tunnel { .. },
                    ..
                },
            ) => tunnel_input_end(link, io),
            Some(_) => self.link_eof(l, io),
            None => {}
        }
    }

    /// Reads what `bytes` holds of the response in flight on `l` and posts it to its
    /// exchange; returns the bytes consumed.
    fn decode(&mut self, l: usize, bytes: &[u8], io: &mut Io<'_>) -> usize {
        let Some(link) = self.links.get_mut(l) else {
            return bytes.len();
        };
        let (route, had_head) = match &mut link.state {
            LinkState::Busy { job, head } => {
                if !bytes.is_empty() {
                    // Something of the response came: the request is never sent again.
                    link.got_bytes = true;
                    job.bytes = Vec::new();
                }
                (job.route, *head)
            }
            _ if bytes.is_empty() => return 0,
            _ => {
                // Bytes with no request in flight: the stream cannot be trusted.
                link.state = LinkState::Dead;
                io.abort();
                return bytes.len();
            }
        };
        let mut reply = Reply::new(route.fetch, route.seq);
        let mut pos = 0;
        let mut outcome = None;
        let mut upgraded = false;
        loop {
            let rest = bytes.get(pos..).unwrap_or_default();
            let d = match link.codec.decode(rest) {
                Ok(d) => d,
                Err(e) => {
                    outcome = Some(Err(UpstreamError::Protocol(e)));
                    break;
                }
            };
            let consumed = d.consumed;
            let more = match d.event {
                None => false,
                Some(ClientEvent::Informational(h)) => {
                    if !route.probe {
                        reply.push_interim(&h, rest.get(..consumed).unwrap_or_default());
                    }
                    true
                }
                Some(ClientEvent::Head(h)) => {
                    reply.set_head(&h, rest.get(..consumed).unwrap_or_default());
                    true
                }
                Some(ClientEvent::Body(b)) => {
                    reply.buf.extend_from_slice(b);
                    true
                }
                Some(ClientEvent::End(end)) => {
                    if !end.trailers.is_empty() {
                        reply.trailers = Some(Box::new(end.trailers.copied_parts()));
                    }
                    outcome = Some(Ok(end.reusable));
                    false
                }
                Some(ClientEvent::Upgraded(h)) => {
                    reply.set_head(&h, rest.get(..consumed).unwrap_or_default());
                    reply.upgraded = true;
                    // Over TLS every tunnel byte goes through this connection's session:
                    // the client's side posts what it reads here rather than writing it
                    // below this connection.
                    reply.sealed = link.tls.is_some();
                    // What follows the 101 is the new protocol's: the tunnel's first bytes.
                    reply
                        .buf
                        .extend_from_slice(rest.get(consumed..).unwrap_or_default());
                    upgraded = true;
                    false
                }
            };
            pos += consumed;
            if !more {
                break;
            }
        }
        link.leftover = pos < bytes.len();
        if reply.head.is_some() && !had_head {
            // The armed timer stays: it finds no deadline when it fires, unless the
            // next request set one by then.
            link.deadline = None;
            if let LinkState::Busy { head, .. } = &mut link.state {
                *head = true;
            }
        }
        let p = link.pool;
        if upgraded {
            // Out of the pool: from now on the connection is one side of a tunnel.
            self.pools[p].stats.completed += 1;
            self.pools[p].open -= 1;
            reply.end = Some(Ok(()));
            if route.probe {
                // A health check that switched protocols: up, and the connection goes.
                self.probe_reply(p, &reply);
                self.links[l].state = LinkState::Dead;
                io.close();
                return bytes.len();
            }
            io.post(route.conn, reply);
            // Each side's backlog pauses the other's reading, both ways.
            io.link(route.conn);
            self.links[l].state = LinkState::Tunnel {
                peer: route.conn,
                input_done: false,
                output_done: false,
            };
            return bytes.len();
        }
        match outcome {
            None => {
                if !reply.is_empty() {
                    self.deliver(p, route, reply, io);
                }
                pos
            }
            Some(Ok(reusable)) => {
                self.pools[p].stats.completed += 1;
                reply.end = Some(Ok(()));
                self.deliver(p, route, reply, io);
                let link = &mut self.links[l];
                link.state = LinkState::Dead;
                if reusable && !link.leftover {
                    self.next_job(l, io);
                } else {
                    io.close();
                }
                pos
            }
            Some(Err(e)) => {
                self.pools[p].stats.failures += 1;
                reply.end = Some(Err(e));
                self.deliver(p, route, reply, io);
                self.links[l].state = LinkState::Dead;
                io.abort();
                bytes.len()
            }
        }
    }

    /// Something other than bytes happened to connection `l`.
    pub(crate) fn link_event(&mut self, l: usize, event: Event<'_>, io: &mut Io<'_>) {
        let Some(link) = self.links.get_mut(l) else {
            return event.default_action(io);
        };
        if let LinkState::Tunnel { .. } = link.state {
            if link.tls.is_some() {
                return tunnel_tls_event(link, event, io);
            }
            if let LinkState::Tunnel {
                peer,
                input_done,
                output_done,
            } = &mut link.state
            {
                return tunnel_event(*peer, input_done, output_done, event, io);
            }
        }
        match event {
            Event::Eof => self.link_eof(l, io),
            Event::Timer(_) => {
                link.timer = None;
                let Some(at) = link.deadline else {
                    return;
                };
                let now = io.now();
                if now < at {
                    return arm(link, io, at - now, at);
                }
                link.deadline = None;
                match &link.state {
                    LinkState::Busy { head: false, .. } => {
                        self.link_failed(l, UpstreamError::Timeout, io);
                    }
                    LinkState::Idle => self.retire_idle(l, io),
                    _ => {}
                }
            }
            Event::Posted(p) if p.is::<BodyMore>() => {
                let Ok(more) = p.take::<BodyMore>() else {
                    return;
                };
                let after = self.pools[link.pool].spec.response_timeout;
                let LinkState::Busy { job, .. } = &mut link.state else {
                    return; // the request failed meanwhile: its body goes nowhere
                };
                let route = job.route;
                let Some(body) = job.body.as_mut() else {
                    return;
                };
                body.posted = body.posted.saturating_sub(more.bytes.len());
                let held = body.held;
                let caught_up = body.posted == 0;
                write_link(link, io, &more.bytes);
                if more.last {
                    set_deadline(link, io, after);
                }
                if io.backlog() > BODY_HOLD {
                    // The upstream reads slower than the client sends: the client stays
                    // held until this connection's output drains.
                    if !held {
                        pace(io, &route, true);
                        set_held(link, true);
                    }
                    io.want_writable();
                } else if held && caught_up {
                    pace(io, &route, false);
                    set_held(link, false);
                }
            }
            Event::Writable => {
                if let LinkState::Busy { job, .. } = &mut link.state {
                    if let Some(body) = job.body.as_mut() {
                        if body.held && body.posted == 0 {
                            body.held = false;
                            pace(io, &job.route, false);
                        }
                    }
                }
            }
            Event::Posted(p) if p.is::<Dispatch>() => {
                if let LinkState::Assigned(_) = link.state {
                    if let LinkState::Assigned(job) = mem::replace(&mut link.state, LinkState::Dead)
                    {
                        self.send(l, job, io);
                    }
                }
            }
            // The exchange's connection closed mid-response: what is left of the
            // response is wanted by no one, and the connection cannot be reused before
            // it is read; drop it.
            Event::ConnGone(_) => {
                if matches!(link.state, LinkState::Busy { .. }) {
                    link.state = LinkState::Dead;
                    io.abort();
                }
            }
            Event::Shutdown => {
                if matches!(link.state, LinkState::Idle) {
                    self.retire_idle(l, io);
                }
            }
            _ => {}
        }
    }

    /// An idle connection leaves the pool (its deadline, a drain).
    fn retire_idle(&mut self, l: usize, io: &mut Io<'_>) {
        let link = &mut self.links[l];
        self.pools[link.pool].idle.retain(|&i| i != l);
        link.state = LinkState::Dead;
        io.close();
    }

    /// The request in flight on `l` failed with `e` (nothing more is read): its
    /// exchange hears of it, the connection is dropped.
    fn link_failed(&mut self, l: usize, e: UpstreamError, io: &mut Io<'_>) {
        let link = &mut self.links[l];
        let p = link.pool;
        let state = mem::replace(&mut link.state, LinkState::Dead);
        io.abort();
        if let LinkState::Busy { job, .. } = state {
            self.finish(p, job.route, Err(e), io);
        }
    }

    /// The upstream closed its side of connection `l`.
    fn link_eof(&mut self, l: usize, io: &mut Io<'_>) {
        let link = &mut self.links[l];
        let p = link.pool;
        let got_bytes = link.got_bytes;
        let unconsumed: &[u8] = if link.leftover { b"?" } else { b"" };
        let ended = link.codec.peer_closed(unconsumed);
        let state = mem::replace(&mut link.state, LinkState::Dead);
        io.close();
        match state {
            LinkState::Idle => {
                self.pools[p].idle.retain(|&i| i != l);
                self.pools[p].stats.idle_closed += 1;
            }
            LinkState::Assigned(job) => {
                self.pools[p].queue.push_front(job);
                self.pump(p, io);
            }
            LinkState::Busy { job, .. } => match ended {
                // A body delimited by the close is complete.
                Ok(Some(_)) => self.finish(p, job.route, Ok(()), io),
                Ok(None) => self.fail_job(p, job, got_bytes, UpstreamError::Closed, io),
                Err(ClientError::ClosedBeforeResponse { bytes_received }) => {
                    let got = got_bytes || bytes_received;
                    self.fail_job(p, job, got, UpstreamError::Closed, io);
                }
                Err(ClientError::ClosedMidBody) => {
                    self.finish(p, job.route, Err(UpstreamError::ClosedMidBody), io);
                }
                Err(e) => self.finish(p, job.route, Err(UpstreamError::Protocol(e)), io),
            },
            LinkState::Connecting | LinkState::Tunnel { .. } | LinkState::Dead => {}
        }
    }

    /// Connection `l` is gone: it leaves its pool, and a request it held is sent
    /// again or failed.
    pub(crate) fn link_closed(&mut self, l: usize, why: Close, shard: &mut ShardIo<'_>) {
        let Some(link) = self.links.try_remove(l) else {
            return;
        };
        if let Some(token) = link.token {
            self.paused.retain(|&(_, up)| up != token);
            self.link_of.remove(&token);
        }
        let p = link.pool;
        let pool = &mut self.pools[p];
        if let LinkState::Tunnel {
            peer,
            input_done,
            output_done,
        } = link.state
        {
            // Left the pool when it became a tunnel; its other side goes with it
            // (unless both directions ended gracefully, and it closes on its own).
            if !(input_done && output_done) {
                shard.close_conn(peer);
            }
            return;
        }
        pool.open -= 1;
        match link.state {
            LinkState::Idle => {
                pool.idle.retain(|&i| i != l);
                if why != Close::Local {
                    pool.stats.idle_closed += 1;
                }
            }
            LinkState::Assigned(job) => pool.queue.push_front(job),
            LinkState::Busy { job, head: true } => {
                self.finish(p, job.route, Err(UpstreamError::ClosedMidBody), shard);
            }
            LinkState::Busy { job, head: false } => {
                let e = match why {
                    Close::Idle => UpstreamError::Timeout,
                    _ => UpstreamError::Closed,
                };
                self.fail_job(p, job, link.got_bytes, e, shard);
            }
            LinkState::Connecting => pool.connecting -= 1,
            LinkState::Tunnel { .. } | LinkState::Dead => {}
        }
        self.pump(p, shard);
    }

    /// Pauses reading from upstream connection `up` until server connection `server`
    /// has drained its output (it asks for writable-again), while `up` still carries a
    /// request of `server`'s. The server asks as it takes a piece of a response, which
    /// may be after `up` read that response whole and took another request, maybe
    /// another client's: that client's response must not wait on this one's backlog
    /// (nor for ever, if this client closes without draining).
    pub(crate) fn hold(&mut self, server: ConnToken, up: ConnToken, io: &mut Io<'_>) {
        let serving = self
            .link_of
            .get(&up)
            .and_then(|&l| self.links.get(l))
            .is_some_and(|link| match &link.state {
                LinkState::Busy { job, .. } | LinkState::Assigned(job) => job.route.conn == server,
                _ => false,
            });
        if !serving {
            return;
        }
        if !self.paused.contains(&(server, up)) {
            self.paused.push((server, up));
            io.pause_reading_of(up);
        }
        io.want_writable();
    }

    /// This upstream connection (`io`'s) is done with its response: the server
    /// connection whose backlog held its reading back has nothing more to wait for from
    /// it, and what it reads next (the next request's response, maybe for another
    /// client, or the upstream's close) must be read. That client may never drain: one
    /// that asked to close goes without a writable event, and its holds would stay.
    fn unhold(&mut self, io: &mut Io<'_>) {
        let up = io.token();
        let before = self.paused.len();
        self.paused.retain(|&(_, u)| u != up);
        if self.paused.len() != before {
            // Queued as the pause was (`pause_reading_of`), so it lands after a pause
            // still pending from this turn, not before it.
            io.resume_reading_of(up);
        }
    }

    /// Whether server connection `server` holds any upstream connection.
    pub(crate) fn holds_for(&self, server: ConnToken) -> bool {
        self.paused.iter().any(|&(s, _)| s == server)
    }

    /// Whether any upstream connection is held for a server connection's sake.
    pub(crate) fn holds_any(&self) -> bool {
        !self.paused.is_empty()
    }

    /// Server connection `server` drained: the upstream connections it held read again.
    pub(crate) fn release(&mut self, server: ConnToken, io: &mut Io<'_>) {
        if self.paused.is_empty() {
            return;
        }
        self.paused.retain(|&(s, up)| {
            if s == server {
                io.resume_reading_of(up);
                false
            } else {
                true
            }
        });
    }
}

/// One side of a tunnel (either the server connection or the upstream one, after a
/// 101): an end of input is passed on to the other side, which shuts its output once
/// what it was given is sent; a side closes once both its directions have ended, and
/// a side whose other side is gone closes too.
pub(crate) fn tunnel_event(
    peer: ConnToken,
    input_done: &mut bool,
    output_done: &mut bool,
    event: Event<'_>,
    io: &mut Io<'_>,
) {
    match event {
        Event::Eof => {
            *input_done = true;
            io.post(peer, TunnelEof);
        }
        Event::Posted(p) if p.is::<TunnelEof>() => {
            *output_done = true;
            io.shutdown_write();
        }
        Event::Posted(p) if p.is::<TunnelBytes>() => {
            if let Ok(TunnelBytes(bytes)) = p.take::<TunnelBytes>() {
                io.write(&bytes);
            }
            return;
        }
        Event::ConnGone(_) | Event::Shutdown => io.close(),
        _ => return,
    }
    if *input_done && *output_done {
        io.close();
    }
}

/// Bytes that arrived on the upstream side of a tunnel over TLS: decrypted through the
/// connection's session and posted to the client's side as plaintext; a close_notify
/// ends the tunnel's upstream input as a FIN would. A broken record stream ends the
/// tunnel (the client's side is closed with it, see `link_closed`).
fn tunnel_tls_data(link: &mut Link, peer: ConnToken, bytes: &[u8], io: &mut Io<'_>) {
    let closed = match tls_read(link, bytes) {
        Ok(closed) => closed,
        // Still a tunnel (it left the pool's count when it became one): its end
        // closes the client's side too.
        Err(_) => return io.abort(),
    };
    // What the session has to say back (a key update's answer, say).
    flush_tls(link, io);
    if !link.plain.is_empty() {
        io.post(peer, TunnelBytes(mem::take(&mut link.plain)));
    }
    if closed {
        tunnel_input_end(link, io);
    }
}

/// The upstream's input of a tunnel ended (close_notify, or a FIN): passed on to the
/// client's side once, which shuts its output when what it was given is sent.
fn tunnel_input_end(link: &mut Link, io: &mut Io<'_>) {
    if let LinkState::Tunnel {
        peer,
        input_done,
        output_done,
    } = &mut link.state
    {
        if !*input_done {
            *input_done = true;
            io.post(*peer, TunnelEof);
        }
        if *output_done {
            io.close();
        }
    }
}

/// [`tunnel_event`] for the upstream side of a tunnel over TLS: bytes from the client's
/// side are encrypted through the session before they are written, and its half-close
/// sends close_notify before the FIN, so the upstream reads a clean end of stream.
fn tunnel_tls_event(link: &mut Link, event: Event<'_>, io: &mut Io<'_>) {
    match event {
        Event::Posted(p) if p.is::<TunnelBytes>() => {
            if let Ok(TunnelBytes(bytes)) = p.take::<TunnelBytes>() {
                // The backlog this adds pauses the client's reading (the two are
                // linked), as for a plain tunnel.
                write_link(link, io, &bytes);
            }
        }
        Event::Posted(p) if p.is::<TunnelEof>() => {
            if let Some(tls) = link.tls.as_mut() {
                tls.send_close_notify();
            }
            flush_tls(link, io);
            if let LinkState::Tunnel {
                input_done,
                output_done,
                ..
            } = &mut link.state
            {
                *output_done = true;
                io.shutdown_write();
                if *input_done {
                    io.close();
                }
            }
        }
        Event::Eof => tunnel_input_end(link, io),
        event => {
            if let LinkState::Tunnel {
                peer,
                input_done,
                output_done,
            } = &mut link.state
            {
                tunnel_event(*peer, input_done, output_done, event, io);
            }
        }
    }
}

/// Tells the server connection of `route` to hold its streamed request body, or to
/// take it again (applied once this callback returns, as a post).
fn pace(io: &mut Io<'_>, route: &Route, hold: bool) {
    io.post(
        route.conn,
        BodyPace {
            seq: route.seq,
            hold,
        },
    );
}

/// Marks the streamed body of the request in flight on `link` as holding its client.
fn set_held(link: &mut Link, held: bool) {
    if let LinkState::Busy { job, .. } = &mut link.state {
        if let Some(body) = job.body.as_mut() {
            body.held = held;
        }
    }
}

/// Writes request bytes on an upstream connection (through its TLS session if any).
fn write_link(link: &mut Link, io: &mut Io<'_>, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    match link.tls.as_mut() {
        Some(tls) => {
            // The buffer limit is lifted: this takes everything.
            let _ = tls.writer().write_all(bytes);
            flush_tls(link, io);
        }
        None => io.write(bytes),
    }
}

/// Sets the connection's deadline `after` from now. The armed timer is kept when it
/// fires no later: it then finds the deadline ahead and re-arms for the rest. So a
/// busy connection, whose deadline moves with every request, costs one timer per
/// deadline reached instead of two set and two cancelled per request.
fn set_deadline(link: &mut Link, io: &mut Io<'_>, after: Duration) {
    let at = io.now() + after;
    link.deadline = Some(at);
    if link.timer.is_none_or(|(_, due)| due > at) {
        arm(link, io, after, at);
    }
}

/// Re-arms the connection's one timer to fire `after` from now (`due` by the turn's
/// clock).
fn arm(link: &mut Link, io: &mut Io<'_>, after: Duration, due: Instant) {
    if let Some((key, _)) = link.timer.take() {
        io.cancel_timer(key);
    }
    link.timer = Some((io.set_timer(after, DEADLINE_TIMER), due));
}

/// Queues every TLS record rustls has ready.
fn flush_tls(link: &mut Link, io: &mut Io<'_>) {
    if let Some(tls) = link.tls.as_mut() {
        while tls.wants_write() {
            match tls.write_tls(io.out_buf()) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }
}

/// Feeds received TLS records to rustls, appending the plaintext to `link.plain`;
/// true once the upstream sent close_notify.
fn tls_read(link: &mut Link, mut rd: &[u8]) -> Result<bool, String> {
    let Some(tls) = link.tls.as_mut() else {
        return Ok(false);
    };
    let mut closed = false;
    while !rd.is_empty() {
        tls.read_tls(&mut rd).map_err(|e| e.to_string())?;
        let state = tls.process_new_packets().map_err(|e| e.to_string())?;
        let n = state.plaintext_bytes_to_read();
        if n > 0 {
            let start = link.plain.len();
            link.plain.resize(start + n, 0);
            let got = tls
                .reader()
                .read(link.plain.get_mut(start..).unwrap_or_default())
                .unwrap_or(0);
            link.plain.truncate(start + got);
        }
        closed |= state.peer_has_closed();
    }
    Ok(closed)
}

impl Pools {
    /// A piece of the streamed body of request `fetch` of server connection `conn`
    /// (the last if `last`), from that connection's callback: framed, then queued on the
    /// request while it waits for a connection (the client held past [`BODY_HOLD`]) or
    /// posted to the upstream connection carrying it. `Ok(true)`: the client's body is to
    /// be held from now on, until a [`BodyPace`] posted to its connection takes it
    /// again. `Err` when the request is gone (it failed, or was answered): the rest of
    /// the body goes nowhere.
    pub(crate) fn body(
        &mut self,
        conn: ConnToken,
        fetch: super::Fetch,
        piece: &[u8],
        last: bool,
        trailers: &[(&str, &str)],
        io: &mut Io<'_>,
    ) -> Result<bool, UpstreamError> {
        let mine = |job: &Job| job.route.fetch == fetch && job.route.conn == conn;
        // Waiting for a connection, or assigned one and not sent yet: kept on the job.
        let waiting = self
            .pools
            .iter_mut()
            .flat_map(|p| p.queue.iter_mut())
            .find(|j| mine(j));
        let job = match waiting {
            Some(job) => Some(job),
            None => self.links.iter_mut().find_map(|(_, k)| match &mut k.state {
                LinkState::Assigned(job) if mine(job) => Some(job),
                _ => None,
            }),
        };
        if let Some(job) = job {
            let body = job.body.as_mut().ok_or(UpstreamError::Closed)?;
            frame(body, piece, last, trailers)?;
            let hold = body.pending.len() > BODY_HOLD && !body.held;
            body.held |= hold;
            return Ok(hold);
        }
        // On the wire: the upstream connection writes it, from its own callback.
        for (_, link) in self.links.iter_mut() {
            let LinkState::Busy { job, .. } = &mut link.state else {
                continue;
            };
            if !mine(job) {
                continue;
            }
            let (Some(token), Some(body)) = (link.token, job.body.as_mut()) else {
                return Err(UpstreamError::Closed);
            };
            frame(body, piece, last, trailers)?;
            let bytes = std::mem::take(&mut body.pending);
            body.posted += bytes.len();
            // More than the upstream connection has taken yet: the client is held now,
            // in this turn, rather than once the posts are applied.
            let hold = body.posted > BODY_HOLD && !body.held;
            body.held |= hold;
            io.post(token, BodyMore { bytes, last });
            return Ok(hold);
        }
        Err(UpstreamError::Closed)
    }
}

/// Frames a body piece (and the end, if `last`, with `trailers` when chunked) onto
/// `body.pending`.
fn frame(
    body: &mut super::pool::BodyOut,
    piece: &[u8],
    last: bool,
    trailers: &[(&str, &str)],
) -> Result<(), UpstreamError> {
    if body.finished {
        return Err(UpstreamError::InvalidRequest(ClientError::InvalidRequest(
            "the body already ended",
        )));
    }
    crate::http1::client::write_body(&mut body.out, piece, &mut body.pending)
        .map_err(UpstreamError::InvalidRequest)?;
    if last {
        body.finished = true;
        crate::http1::client::finish_body(&mut body.out, trailers, &mut body.pending)
            .map_err(UpstreamError::InvalidRequest)?;
    }
    Ok(())
}
