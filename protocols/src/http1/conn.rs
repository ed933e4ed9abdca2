//! The per-connection state machine: bytes in, requests to the application, responses
//! out in request order.
//!
//! This module owns what one connection remembers between reads: the responses still
//! outstanding (a queue, empty and unallocated in the common case where every request is
//! answered at once), a request whose body is still arriving, and whether the connection
//! is on its way out. It owns no buffer for incoming bytes: an incomplete head is left
//! unconsumed for the driver to show again with more appended, and only a request whose
//! body spans reads is copied (its head bytes and its body).
//!
//! Invariants:
//! - the front of the queue writes straight to the port; later exchanges write into
//!   their own held buffer, released in order when they reach the front;
//! - once `closing` is set no further request is parsed; the connection closes as soon as
//!   the queue is empty, so responses queued before an error are delivered whole first.
//!
//! Parts: `partial` (a request whose body arrives over several reads), `callbacks` (the
//! application's timers, offload results and writable-again, routed to their exchange).

use std::collections::VecDeque;
use std::time::Instant;

use super::app::{App, Request, Response};
use super::body::{BodyError, ChunkedDecoder};
use super::encode::{self, ConnField};
use super::exchange::Exchange;
use super::exchange_state::{ExchangeState, Phase};
use super::head::{header_buf, parse_head, BodyKind, Head, HeadError, Version};
use super::held::Held;
use super::limits::{HttpCounters, Limits};
use super::port::Port;
use super::timer_tag::SEQ_MASK;

mod callbacks;
mod partial;

use partial::{Partial, Rest};

/// A response still outstanding.
struct Pending<T> {
    state: ExchangeState,
    task: Option<T>,
    held: Held,
}

/// Which protocol timer a deadline belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimerKind {
    /// A request head started arriving and must complete in time (408).
    HeadRead,
    /// Nothing in progress: close the keep-alive connection when it expires.
    Idle,
}

/// One connection's HTTP/1.1 state, generic over the application's task type.
pub(crate) struct Conn<T> {
    queue: VecDeque<Pending<T>>,
    partial: Option<Box<Partial>>,
    next_seq: u32,
    /// No further request will be parsed; close once the queue is empty.
    closing: bool,
    /// The peer said its last request was its last (`Connection: close`, or HTTP/1.0
    /// without keep-alive) and sent nothing after it: the close need not linger for
    /// input that could turn it into a reset.
    peer_done: bool,
    /// The server is draining: finish what is in progress, start nothing new.
    draining: bool,
    /// Reading is paused because `max_pipelined` requests wait.
    paused: bool,
    /// `Port::close` was called.
    closed: bool,
    /// An exchange switched protocols (101) and left the wire: nothing more is parsed
    /// or closed here; the bytes that follow belong to the new protocol.
    upgraded: bool,
    /// When the connection last became idle (or last received bytes).
    last_active: Instant,
    /// When the first byte of the current, still incomplete, head arrived.
    head_since: Option<Instant>,
}

fn count_head_error(e: &HeadError, c: &mut HttpCounters) {
    match e {
        HeadError::BadRequest(_) => c.bad_request += 1,
        HeadError::Smuggling(_) => {
            c.bad_request += 1;
            c.smuggling += 1;
        }
        HeadError::UriTooLong => c.uri_too_long += 1,
        HeadError::HeaderTooLarge => c.header_too_large += 1,
        HeadError::BodyTooLarge => c.body_too_large += 1,
        HeadError::VersionUnsupported => c.version_unsupported += 1,
        HeadError::NotImplemented(_) => c.not_implemented += 1,
    }
}

fn count_body_error(e: &BodyError, c: &mut HttpCounters) {
    match e {
        BodyError::BadChunk(_) => {
            c.bad_request += 1;
            c.smuggling += 1;
        }
        BodyError::TooLarge => c.body_too_large += 1,
        BodyError::TrailersTooLarge => c.header_too_large += 1,
    }
}

impl<T> Conn<T> {
    /// A fresh connection; allocates nothing.
    pub(crate) fn new(now: Instant) -> Self {
        Conn {
            queue: VecDeque::new(),
            partial: None,
            next_seq: 0,
            closing: false,
            peer_done: false,
            draining: false,
            paused: false,
            closed: false,
            upgraded: false,
            last_active: now,
            head_since: None,
        }
    }

    /// Nothing was received yet that HTTP/1.1 acted on: the connection may still turn
    /// out to be HTTP/2 (its preface).
    pub(crate) fn is_fresh(&self) -> bool {
        self.next_seq == 0 && self.queue.is_empty() && self.partial.is_none() && !self.closing
    }

    /// Parses and dispatches every complete request at the start of `input`; returns how
    /// many bytes were consumed. The rest (an incomplete head, or requests past the
    /// pipelining bound) must be shown again, with more bytes, on the next call.
    pub(crate) fn feed<A: App<Task = T>>(
        &mut self,
        app: &mut A,
        input: &[u8],
        limits: &Limits,
        port: &mut dyn Port,
    ) -> usize {
        if self.upgraded {
            return 0;
        }
        let now = port.now();
        self.last_active = now;
        let mut pos = 0;
        let mut incomplete_head = false;
        let mut parsed_any = false;
        loop {
            let rest = input.get(pos..).unwrap_or_default();
            // The body of the request in progress comes first, even when that request
            // closes the connection (`Connection: close`, HTTP/1.0): it is still its own.
            if self.partial.is_some() {
                pos += self.continue_body(app, rest, limits, port);
                if self.partial.is_some() {
                    break;
                }
                parsed_any = true;
                continue;
            }
            if self.closing {
                // Nothing after a close-bound request or an error can be framed or
                // answered: drop it, and linger at the close (the peer is still talking).
                if pos < input.len() {
                    self.peer_done = false;
                }
                pos = input.len();
                break;
            }
            if self.draining {
                self.closing = true;
                continue;
            }
            if rest.is_empty() {
                break;
            }
            if self.queue.len() >= limits.pipelined() {
                if !self.paused {
                    self.paused = true;
                    port.counters().pipeline_paused += 1;
                    port.pause_reading();
                }
                break;
            }
            let mut header_slots = header_buf();
            let head = match parse_head(rest, &mut header_slots, limits) {
                Ok(Some(head)) => head,
                Ok(None) => {
                    incomplete_head = true;
                    break;
                }
                Err(e) => {
                    count_head_error(&e, port.counters());
                    self.reject(e.status(), port);
                    continue;
                }
            };
            parsed_any = true;
            let start = head.len();
            let after = rest.get(start..).unwrap_or_default();
            match head.body() {
                BodyKind::Empty => {
                    self.dispatch(app, &head, &[], port);
                    pos += start;
                }
                BodyKind::Length(n) => match usize::try_from(n).ok().and_then(|n| after.get(..n)) {
                    Some(body) => {
                        self.dispatch(app, &head, body, port);
                        pos += start + body.len();
                    }
                    None if self.wants_stream(app, &head) => {
                        let started = !after.is_empty();
                        self.start_streamed(app, &head, Rest::Length(n), started, port);
                        pos += start;
                        continue;
                    }
                    None => {
                        // after.len() < n here, so the subtraction cannot underflow.
                        let left = n - after.len() as u64;
                        let mut body = Vec::with_capacity(n.min(64 * 1024) as usize);
                        body.extend_from_slice(after);
                        let started = !after.is_empty();
                        self.start_partial(&head, rest, body, Rest::Length(left), started, port);
                        pos = input.len();
                        break;
                    }
                },
                BodyKind::Chunked if self.wants_stream_chunked(app, &head, after, limits) => {
                    let dec = ChunkedDecoder::new(limits.max_body, limits.max_header_bytes);
                    let started = !after.is_empty();
                    self.start_streamed(app, &head, Rest::Chunked(dec), started, port);
                    pos += start;
                    continue;
                }
                BodyKind::Chunked => {
                    let mut dec = ChunkedDecoder::new(limits.max_body, limits.max_header_bytes);
                    let mut body = Vec::new();
                    match dec.decode(after, &mut |d| body.extend_from_slice(d)) {
                        Err(e) => {
                            count_body_error(&e, port.counters());
                            self.reject(e.status(), port);
                        }
                        Ok(used) if dec.is_done() => {
                            self.dispatch(app, &head, &body, port);
                            pos += start + used;
                        }
                        Ok(_) => {
                            let started = !after.is_empty();
                            self.start_partial(
                                &head,
                                rest,
                                body,
                                Rest::Chunked(dec),
                                started,
                                port,
                            );
                            pos = input.len();
                            break;
                        }
                    }
                }
            }
        }
        self.head_since = if incomplete_head && !self.closing {
            match self.head_since {
                Some(t) if !parsed_any => Some(t),
                _ => Some(now),
            }
        } else {
            None
        };
        self.settle(limits, port);
        pos
    }

    /// Hands one complete request to the application.
    fn dispatch<A: App<Task = T>>(
        &mut self,
        app: &mut A,
        head: &Head<'_, '_>,
        body: &[u8],
        port: &mut dyn Port,
    ) {
        self.dispatch_as(app, head, body, false, port);
    }

    /// Dispatches a request; `streamed`: its body follows in pieces (`App::on_body`).
    /// Returns its sequence number.
    fn dispatch_as<A: App<Task = T>>(
        &mut self,
        app: &mut A,
        head: &Head<'_, '_>,
        body: &[u8],
        streamed: bool,
        port: &mut dyn Port,
    ) -> u32 {
        port.counters().requests += 1;
        let seq = self.next_seq;
        self.next_seq = seq.wrapping_add(1) & SEQ_MASK;
        let keep_alive = head.keep_alive() && !self.draining;
        let mut state = ExchangeState::new(
            seq,
            head.method() == "HEAD",
            head.version() == Version::Http10,
            keep_alive,
        );
        state.te_trailers = head.te_trailers();
        let req = Request {
            method: head.method(),
            target: head.target(),
            version: head.version(),
            headers: head.headers(),
            body,
            keep_alive,
            streamed,
        };
        let direct = self.queue.is_empty();
        let mut held = Held::default();
        let mut task = {
            let mut ex = Exchange::new(port, (!direct).then_some(&mut held), &mut state);
            app.on_request(&req, &mut ex)
        };
        if task.is_none() && state.phase != Phase::Done {
            // The application neither answered nor kept a task: nobody ever will.
            port.counters().app_errors += 1;
            if state.phase == Phase::Waiting {
                let mut ex = Exchange::new(port, (!direct).then_some(&mut held), &mut state);
                ex.respond(Response::text(500, "Internal Server Error\n"));
            } else {
                // A truncated stream: closing without the last chunk tells the client.
                state.close = true;
                state.phase = Phase::Done;
            }
        }
        if state.close {
            self.closing = true;
        }
        if !head.keep_alive() && !self.draining {
            self.peer_done = true;
        }
        if state.phase == Phase::Done {
            task = None;
            if direct {
                return seq;
            }
        }
        self.queue.push_back(Pending { state, task, held });
        seq
    }

    /// Answers a request that cannot be processed with `status` and `Connection: close`,
    /// after every response already queued.
    fn reject(&mut self, status: u16, port: &mut dyn Port) {
        self.closing = true;
        self.peer_done = false;
        self.partial = None;
        self.head_since = None;
        let date = *port.date();
        let body = encode::reason(status).as_bytes();
        let fields = encode::Fields::List(&[("Content-Type", "text/plain")]);
        if self.queue.is_empty() {
            encode::write_simple(
                port.buf(),
                status,
                &date,
                ConnField::Close,
                fields,
                body,
                false,
            );
        } else {
            let mut held = Held::default();
            encode::write_simple(
                held.buf(),
                status,
                &date,
                ConnField::Close,
                fields,
                body,
                false,
            );
            let mut state = ExchangeState::new(self.next_seq, false, false, false);
            state.phase = Phase::Done;
            self.queue.push_back(Pending {
                state,
                task: None,
                held,
            });
        }
    }

    /// Releases finished responses at the front of the queue, then applies the
    /// consequences: 100 Continue owed, close when done, reading resumed.
    fn advance<A: App<Task = T>>(&mut self, app: &mut A, limits: &Limits, port: &mut dyn Port) {
        let before = self.queue.len();
        while let Some(front) = self.queue.front_mut() {
            front.held.release(port);
            if front.state.phase != Phase::Done {
                if front.state.wants_writable && self.queue.len() != before {
                    // It asked while it was not yet on the wire; ask again now it is.
                    port.want_writable();
                }
                break;
            }
            let close = front.state.close;
            let upgrade = front.state.upgrade;
            self.queue.pop_front();
            if upgrade {
                // Nothing after a switch of protocols is HTTP/1.1 (a client waits for
                // the 101 before it speaks the new protocol).
                self.upgraded = true;
                self.closing = true;
                for slot in self.queue.drain(..) {
                    if let Some(task) = slot.task {
                        app.on_cancel(task);
                    }
                }
            } else if close {
                self.closing = true;
                for slot in self.queue.drain(..) {
                    if let Some(task) = slot.task {
                        app.on_cancel(task);
                    }
                }
            }
        }
        if self.queue.is_empty() && before > 0 {
            self.last_active = port.now();
            // Between requests a keep-alive connection holds no storage: memory per idle
            // connection is what lets a shard keep many of them.
            self.queue = VecDeque::new();
        }
        self.settle(limits, port);
    }

    fn settle(&mut self, limits: &Limits, port: &mut dyn Port) {
        if self.upgraded {
            return;
        }
        if self.queue.is_empty() {
            self.send_continue(port);
        }
        if self.closed {
            return;
        }
        if self.closing && self.queue.is_empty() {
            self.closed = true;
            if self.peer_done {
                port.close_without_linger();
            } else {
                port.close();
            }
            return;
        }
        if self.paused && !self.closing && self.queue.len() < limits.pipelined() {
            self.paused = false;
            port.resume_reading();
        }
    }

    /// The next protocol deadline, if one applies now.
    pub(crate) fn deadline(&self, limits: &Limits) -> Option<(Instant, TimerKind)> {
        if self.closed || self.closing {
            return None;
        }
        if let Some(since) = self.head_since {
            return since
                .checked_add(limits.header_read_timeout)
                .map(|t| (t, TimerKind::HeadRead));
        }
        if self.queue.is_empty() && self.partial.is_none() {
            return self
                .last_active
                .checked_add(limits.idle_timeout)
                .map(|t| (t, TimerKind::Idle));
        }
        None
    }

    /// A deadline returned by [`Conn::deadline`] passed.
    pub(crate) fn expire(&mut self, kind: TimerKind, limits: &Limits, port: &mut dyn Port) {
        match kind {
            TimerKind::HeadRead => {
                port.counters().header_timeout += 1;
                self.reject(408, port);
            }
            TimerKind::Idle => {
                port.counters().idle_closed += 1;
                self.closing = true;
            }
        }
        self.settle(limits, port);
    }

    /// The peer will send nothing more: finish the responses owed, then close.
    pub(crate) fn peer_closed(&mut self, limits: &Limits, port: &mut dyn Port) {
        self.partial = None;
        self.head_since = None;
        self.closing = true;
        self.settle(limits, port);
    }

    /// The server is draining: close now if idle, else after the work in progress.
    pub(crate) fn drain(&mut self, limits: &Limits, port: &mut dyn Port) {
        self.draining = true;
        if self.partial.is_none() {
            self.closing = true;
        }
        self.settle(limits, port);
    }

    /// The tasks still held, for [`App::on_cancel`] when the connection goes away.
    /// Whether an exchange switched protocols and its 101 has gone out: the connection
    /// now carries the new protocol (its driver takes it over).
    pub(crate) fn is_upgraded(&self) -> bool {
        self.upgraded
    }

    /// The upstream connections streaming responses to this connection's exchanges.
    pub(crate) fn upstream_links(
        &self,
    ) -> impl Iterator<Item = ringmaster_runtime::ConnToken> + '_ {
        self.queue.iter().filter_map(|s| s.state.upstream)
    }

    pub(crate) fn into_tasks(self) -> impl Iterator<Item = T> {
        self.queue.into_iter().filter_map(|s| s.task)
    }

    /// Responses outstanding (parsed requests not yet fully answered on the wire).
    #[cfg(test)]
    pub(crate) fn outstanding(&self) -> usize {
        self.queue.len()
    }
}

#[cfg(test)]
pub(crate) mod tests;
