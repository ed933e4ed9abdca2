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

use std::collections::VecDeque;
use std::time::Instant;

use super::app::{App, ExState, Exchange, Held, Phase, Port, Request, Response, Routed, SEQ_MASK};
use super::body::{BodyError, ChunkedDecoder};
use super::encode::{self, ConnField};
use super::head::{header_buf, parse_head, BodyKind, Head, HeadError, Version};
use super::limits::{HttpCounters, Limits};

/// A response still outstanding.
struct Slot<T> {
    st: ExState,
    task: Option<T>,
    held: Held,
}

/// How much of a partly received body is still to come.
enum Rest {
    Length(u64),
    Chunked(ChunkedDecoder),
}

/// A request whose head is complete and whose body is still arriving.
struct Partial {
    /// The head's raw bytes, parsed again (cheaply) when the body is complete, so the
    /// application sees the same borrowed [`Request`] as for a request read in one go.
    head: Vec<u8>,
    body: Vec<u8>,
    rest: Rest,
    /// `100 Continue` is owed once earlier responses are out and no body byte came yet.
    continue_pending: bool,
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
    queue: VecDeque<Slot<T>>,
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
            last_active: now,
            head_since: None,
        }
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
        let now = port.now();
        self.last_active = now;
        let mut pos = 0;
        let mut incomplete_head = false;
        let mut parsed_any = false;
        loop {
            if self.closing {
                // Nothing after a close-bound request or an error can be framed or
                // answered: drop it, and linger at the close (the peer is still talking).
                if pos < input.len() {
                    self.peer_done = false;
                }
                pos = input.len();
                break;
            }
            let rest = input.get(pos..).unwrap_or_default();
            if self.partial.is_some() {
                pos += self.continue_body(app, rest, limits, port);
                if self.partial.is_some() {
                    break;
                }
                parsed_any = true;
                continue;
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
            let mut hb = header_buf();
            let head = match parse_head(rest, &mut hb, limits) {
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

    fn start_partial(
        &mut self,
        head: &Head<'_, '_>,
        raw: &[u8],
        body: Vec<u8>,
        rest: Rest,
        body_started: bool,
        port: &mut dyn Port,
    ) {
        let head_bytes = raw.get(..head.len()).unwrap_or_default().to_vec();
        // RFC 9110 10.1.1: no 100 if the body is already coming.
        let continue_pending = head.expect_continue() && !body_started;
        self.partial = Some(Box::new(Partial {
            head: head_bytes,
            body,
            rest,
            continue_pending,
        }));
        if continue_pending && self.queue.is_empty() {
            self.send_continue(port);
        }
    }

    fn send_continue(&mut self, port: &mut dyn Port) {
        if let Some(p) = self.partial.as_mut() {
            if p.continue_pending {
                p.continue_pending = false;
                port.buf().extend_from_slice(encode::CONTINUE);
                port.counters().continue_sent += 1;
            }
        }
    }

    /// Feeds body bytes to the request in progress; dispatches it when complete.
    fn continue_body<A: App<Task = T>>(
        &mut self,
        app: &mut A,
        input: &[u8],
        limits: &Limits,
        port: &mut dyn Port,
    ) -> usize {
        let Some(p) = self.partial.as_mut() else {
            return 0;
        };
        if !input.is_empty() {
            p.continue_pending = false;
        }
        let used = match &mut p.rest {
            Rest::Length(left) => {
                let take = usize::try_from(*left)
                    .unwrap_or(usize::MAX)
                    .min(input.len());
                p.body
                    .extend_from_slice(input.get(..take).unwrap_or_default());
                *left -= take as u64;
                if *left > 0 {
                    return take;
                }
                take
            }
            Rest::Chunked(dec) => {
                let body = &mut p.body;
                match dec.decode(input, &mut |d| body.extend_from_slice(d)) {
                    Err(e) => {
                        count_body_error(&e, port.counters());
                        self.reject(e.status(), port);
                        return input.len();
                    }
                    Ok(used) if !dec.is_done() => return used,
                    Ok(used) => used,
                }
            }
        };
        let Some(p) = self.partial.take() else {
            return used;
        };
        let mut hb = header_buf();
        match parse_head(&p.head, &mut hb, limits) {
            Ok(Some(head)) => self.dispatch(app, &head, &p.body, port),
            // The same bytes parsed before under the same limits; this cannot happen,
            // but a 400 is the safe answer if it ever does.
            _ => {
                port.counters().bad_request += 1;
                self.reject(400, port);
            }
        }
        used
    }

    /// Hands one complete request to the application.
    fn dispatch<A: App<Task = T>>(
        &mut self,
        app: &mut A,
        head: &Head<'_, '_>,
        body: &[u8],
        port: &mut dyn Port,
    ) {
        port.counters().requests += 1;
        let seq = self.next_seq;
        self.next_seq = seq.wrapping_add(1) & SEQ_MASK;
        let keep_alive = head.keep_alive() && !self.draining;
        let mut st = ExState::new(
            seq,
            head.method() == "HEAD",
            head.version() == Version::Http10,
            keep_alive,
        );
        let req = Request {
            method: head.method(),
            target: head.target(),
            version: head.version(),
            headers: head.headers(),
            body,
            keep_alive,
        };
        let direct = self.queue.is_empty();
        let mut held = Held::default();
        let mut task = {
            let mut ex = Exchange::new(port, (!direct).then_some(&mut held), &mut st);
            app.on_request(&req, &mut ex)
        };
        if task.is_none() && st.phase != Phase::Done {
            // The application neither answered nor kept a task: nobody ever will.
            port.counters().app_errors += 1;
            if st.phase == Phase::Waiting {
                let mut ex = Exchange::new(port, (!direct).then_some(&mut held), &mut st);
                ex.respond(Response::text(500, "Internal Server Error\n"));
            } else {
                // A truncated stream: closing without the last chunk tells the client.
                st.close = true;
                st.phase = Phase::Done;
            }
        }
        if st.close {
            self.closing = true;
        }
        if !head.keep_alive() && !self.draining {
            self.peer_done = true;
        }
        if st.phase == Phase::Done {
            task = None;
            if direct {
                return;
            }
        }
        self.queue.push_back(Slot { st, task, held });
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
            let mut st = ExState::new(self.next_seq, false, false, false);
            st.phase = Phase::Done;
            self.queue.push_back(Slot {
                st,
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
            if front.st.phase != Phase::Done {
                if front.st.wants_writable && self.queue.len() != before {
                    // It asked while it was not yet on the wire; ask again now it is.
                    port.want_writable();
                }
                break;
            }
            let close = front.st.close;
            self.queue.pop_front();
            if close {
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

    /// An application timer for exchange `seq` fired.
    pub(crate) fn app_timer<A: App<Task = T>>(
        &mut self,
        app: &mut A,
        seq: u32,
        tag: u32,
        limits: &Limits,
        port: &mut dyn Port,
    ) {
        let Some(i) = self.queue.iter().position(|s| s.st.seq == seq) else {
            return;
        };
        if let Some(Slot { st, task, held }) = self.queue.get_mut(i) {
            if let Some(t) = task.as_mut() {
                let mut ex = Exchange::new(port, (i != 0).then_some(held), st);
                app.on_timer(t, tag, &mut ex);
            }
            if st.phase == Phase::Done {
                *task = None;
            }
        }
        self.advance(app, limits, port);
    }

    /// An offloaded job's result came back for the exchange it names. A result for an
    /// exchange that already finished is counted and dropped.
    pub(crate) fn offload_done<A: App<Task = T>>(
        &mut self,
        app: &mut A,
        routed: Routed,
        limits: &Limits,
        port: &mut dyn Port,
    ) {
        let Routed { seq, result } = routed;
        if result.is_err() {
            port.counters().offload_panicked += 1;
        }
        let slot = self
            .queue
            .iter()
            .position(|s| s.st.seq == seq && s.task.is_some());
        let Some(i) = slot else {
            port.counters().offload_stale += 1;
            return;
        };
        port.counters().offload_delivered += 1;
        if let Some(Slot { st, task, held }) = self.queue.get_mut(i) {
            if let Some(t) = task.as_mut() {
                let mut ex = Exchange::new(port, (i != 0).then_some(held), st);
                app.on_offload_done(t, result, &mut ex);
            }
            if st.phase == Phase::Done {
                *task = None;
            }
        }
        self.advance(app, limits, port);
    }

    /// The output drained after a `want_writable`.
    pub(crate) fn writable<A: App<Task = T>>(
        &mut self,
        app: &mut A,
        limits: &Limits,
        port: &mut dyn Port,
    ) {
        if let Some(Slot { st, task, .. }) = self.queue.front_mut() {
            if st.wants_writable {
                st.wants_writable = false;
                if let Some(t) = task.as_mut() {
                    let mut ex = Exchange::new(port, None, st);
                    app.on_writable(t, &mut ex);
                }
                if st.phase == Phase::Done {
                    *task = None;
                }
            }
        }
        self.advance(app, limits, port);
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
pub(crate) mod tests {
    use super::*;
    use crate::http1::encode::DATE_LEN;
    use std::net::SocketAddr;
    use std::time::Duration;

    /// A driver that records everything, standing in for the runtime.
    pub(crate) struct TestPort {
        pub out: Vec<u8>,
        pub timers: Vec<(Duration, u64)>,
        pub closed: bool,
        /// The close was `close_without_linger`.
        pub closed_without_linger: bool,
        pub paused: bool,
        pub writable_asked: usize,
        pub counters: HttpCounters,
        pub now: Instant,
    }

    impl TestPort {
        pub(crate) fn new() -> Self {
            TestPort {
                out: Vec::new(),
                timers: Vec::new(),
                closed: false,
                closed_without_linger: false,
                paused: false,
                writable_asked: 0,
                counters: HttpCounters::default(),
                now: Instant::now(),
            }
        }
        pub(crate) fn take(&mut self) -> String {
            String::from_utf8(std::mem::take(&mut self.out)).unwrap()
        }
    }

    impl Port for TestPort {
        fn buf(&mut self) -> &mut Vec<u8> {
            &mut self.out
        }
        fn send_owned(&mut self, bytes: Vec<u8>) {
            self.out.extend_from_slice(&bytes);
        }
        fn date(&self) -> &[u8; DATE_LEN] {
            b"Thu, 01 Jan 1970 00:00:00 GMT"
        }
        fn set_timer(&mut self, after: Duration, tag: u64) {
            self.timers.push((after, tag));
        }
        fn want_writable(&mut self) {
            self.writable_asked += 1;
        }
        fn backlog(&self) -> usize {
            0
        }
        fn now(&self) -> Instant {
            self.now
        }
        fn peer(&self) -> Option<SocketAddr> {
            None
        }
        fn shard_id(&self) -> usize {
            0
        }
        fn close(&mut self) {
            assert!(!self.closed, "closed twice");
            self.closed = true;
        }
        fn close_without_linger(&mut self) {
            self.close();
            self.closed_without_linger = true;
        }
        fn pause_reading(&mut self) {
            self.paused = true;
        }
        fn resume_reading(&mut self) {
            self.paused = false;
        }
        fn counters(&mut self) -> &mut HttpCounters {
            &mut self.counters
        }
    }

    /// A request as the test app saw it.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub(crate) struct Seen {
        pub method: String,
        pub target: String,
        pub headers: Vec<(String, Vec<u8>)>,
        pub body: Vec<u8>,
    }

    /// Answers `/` with the path, `/later/N` with a task answered on timer tag N,
    /// `/stream` with a stream of copied, static and owned chunks finished on a timer,
    /// echoes POST bodies.
    #[derive(Default)]
    pub(crate) struct TestApp {
        pub seen: Vec<Seen>,
        pub cancelled: usize,
    }

    pub(crate) enum Task {
        Later(String),
        Stream,
    }

    impl App for TestApp {
        type Task = Task;
        fn on_request(&mut self, req: &Request<'_>, ex: &mut Exchange<'_>) -> Option<Task> {
            self.seen.push(Seen {
                method: req.method().to_string(),
                target: req.target().to_string(),
                headers: req
                    .headers()
                    .map(|(n, v)| (n.to_string(), v.to_vec()))
                    .collect(),
                body: req.body().to_vec(),
            });
            let path = req.path();
            if let Some(n) = path.strip_prefix("/later/") {
                ex.set_timer(Duration::from_millis(1), n.parse().unwrap_or(0));
                return Some(Task::Later(path.to_string()));
            }
            if path == "/stream" {
                ex.start_stream(200, &[]);
                ex.send_chunk(b"ab");
                ex.set_timer(Duration::from_millis(1), 0);
                return Some(Task::Stream);
            }
            if path == "/none" {
                return None;
            }
            if req.method() == "POST" {
                ex.respond(Response::new(200).body(req.body()));
            } else {
                ex.respond(Response::text(200, path));
            }
            None
        }

        fn on_timer(&mut self, task: &mut Task, _tag: u32, ex: &mut Exchange<'_>) {
            match task {
                Task::Later(p) => ex.respond(Response::text(200, p)),
                Task::Stream => {
                    // One static and one owned piece: both kinds held in order when
                    // an earlier response is still open.
                    ex.send_chunk_static(b"c");
                    ex.send_chunk_owned(b"d".to_vec());
                    ex.finish();
                }
            }
        }

        fn on_cancel(&mut self, _task: Task) {
            self.cancelled += 1;
        }
    }

    pub(crate) fn feed(
        conn: &mut Conn<Task>,
        app: &mut TestApp,
        port: &mut TestPort,
        limits: &Limits,
        bytes: &[u8],
    ) -> usize {
        conn.feed(app, bytes, limits, port)
    }

    /// Splits concatenated responses into (status, body) pairs; panics on bad framing.
    pub(crate) fn responses(mut s: &str) -> Vec<(u16, String)> {
        let mut out = Vec::new();
        while !s.is_empty() {
            let end = s.find("\r\n\r\n").expect("head end");
            let head = &s[..end];
            let status: u16 = head[9..12].parse().unwrap();
            s = &s[end + 4..];
            let lower = head.to_ascii_lowercase();
            if let Some(i) = lower.find("content-length: ") {
                let n: usize = lower[i + 16..]
                    .split("\r\n")
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap();
                out.push((status, s[..n].to_string()));
                s = &s[n..];
            } else if lower.contains("transfer-encoding: chunked") {
                let mut body = String::new();
                loop {
                    let line_end = s.find("\r\n").unwrap();
                    let n = usize::from_str_radix(&s[..line_end], 16).unwrap();
                    s = &s[line_end + 2..];
                    if n == 0 {
                        s = &s[2..];
                        break;
                    }
                    body.push_str(&s[..n]);
                    s = &s[n + 2..];
                }
                out.push((status, body));
            } else {
                out.push((status, String::new()));
            }
        }
        out
    }

    fn setup() -> (Conn<Task>, TestApp, TestPort, Limits) {
        let port = TestPort::new();
        (
            Conn::new(port.now),
            TestApp::default(),
            port,
            Limits::default(),
        )
    }

    #[test]
    fn pipelined_in_order_in_one_batch() {
        let (mut c, mut app, mut port, limits) = setup();
        let input = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n\
            POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello\
            POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n\
            GET /b HTTP/1.1\r\nHost: x\r\n\r\nGET /inc";
        let used = feed(&mut c, &mut app, &mut port, &limits, input);
        assert_eq!(used, input.len() - 8, "only the incomplete head is left");
        let r = responses(&port.take());
        assert_eq!(
            r,
            vec![
                (200, "/a".into()),
                (200, "hello".into()),
                (200, "abc".into()),
                (200, "/b".into())
            ]
        );
        assert!(!port.closed);
        assert_eq!(port.counters.requests, 4);
    }

    #[test]
    fn later_answers_keep_order() {
        let (mut c, mut app, mut port, limits) = setup();
        let input = b"GET /later/1 HTTP/1.1\r\nHost: x\r\n\r\n\
            GET /b HTTP/1.1\r\nHost: x\r\n\r\n\
            GET /stream HTTP/1.1\r\nHost: x\r\n\r\n\
            GET /c HTTP/1.1\r\nHost: x\r\n\r\n";
        feed(&mut c, &mut app, &mut port, &limits, input);
        assert_eq!(port.out, b"", "nothing may pass the pending first response");
        assert_eq!(c.outstanding(), 4);
        // Fire the stream's timer first: its output is held, still nothing on the wire.
        let (_, tag_stream) = port.timers[1];
        let (seq, tag) = crate::http1::app::split_app_tag(tag_stream).unwrap();
        c.app_timer(&mut app, seq, tag, &limits, &mut port);
        assert_eq!(port.out, b"");
        let (_, tag_later) = port.timers[0];
        let (seq, tag) = crate::http1::app::split_app_tag(tag_later).unwrap();
        c.app_timer(&mut app, seq, tag, &limits, &mut port);
        let r = responses(&port.take());
        assert_eq!(
            r,
            vec![
                (200, "/later/1".into()),
                (200, "/b".into()),
                (200, "abcd".into()),
                (200, "/c".into())
            ]
        );
        assert_eq!(c.outstanding(), 0);
        // A stale timer is ignored.
        c.app_timer(&mut app, seq, tag, &limits, &mut port);
        assert_eq!(port.out, b"");
    }

    #[test]
    fn unanswered_request_gets_500() {
        let (mut c, mut app, mut port, limits) = setup();
        feed(
            &mut c,
            &mut app,
            &mut port,
            &limits,
            b"GET /none HTTP/1.1\r\nHost: x\r\n\r\n",
        );
        assert_eq!(responses(&port.take())[0].0, 500);
        assert_eq!(port.counters.app_errors, 1);
    }

    #[test]
    fn pipeline_bound_pauses_and_resumes() {
        let (mut c, mut app, mut port, mut limits) = setup();
        limits.max_pipelined = 2;
        let one = b"GET /later/0 HTTP/1.1\r\nHost: x\r\n\r\n";
        let input = one.repeat(3);
        let used = feed(&mut c, &mut app, &mut port, &limits, &input);
        assert_eq!(used, one.len() * 2);
        assert!(port.paused);
        assert_eq!(port.counters.pipeline_paused, 1);
        let (seq, tag) = crate::http1::app::split_app_tag(port.timers[0].1).unwrap();
        c.app_timer(&mut app, seq, tag, &limits, &mut port);
        assert!(!port.paused, "resumed once below the bound");
        let used = feed(&mut c, &mut app, &mut port, &limits, &input[used..]);
        assert_eq!(used, one.len());
    }

    #[test]
    fn error_after_queued_responses_keeps_them_whole() {
        let (mut c, mut app, mut port, limits) = setup();
        let input = b"GET /later/0 HTTP/1.1\r\nHost: x\r\n\r\n\
            GET /a HTTP/1.1\r\nHost: x\r\n\r\n\
            POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n\
            GET /never HTTP/1.1\r\nHost: x\r\n\r\n";
        let used = feed(&mut c, &mut app, &mut port, &limits, input);
        assert_eq!(used, input.len());
        assert!(!port.closed, "waits for the earlier responses");
        let (seq, tag) = crate::http1::app::split_app_tag(port.timers[0].1).unwrap();
        c.app_timer(&mut app, seq, tag, &limits, &mut port);
        let out = port.take();
        assert_eq!(
            responses(&out),
            vec![
                (200, "/later/0".into()),
                (200, "/a".into()),
                (400, "Bad Request".into())
            ]
        );
        assert!(out.ends_with("Connection: close\r\nContent-Type: text/plain\r\n\r\nBad Request"));
        assert!(port.closed);
        assert_eq!(port.counters.smuggling, 1);
        assert_eq!(app.seen.len(), 2);
    }

    /// Only a peer that said its request was its last, and sent nothing after it, gets a
    /// close without lingering; errors and extra bytes keep the lingering close.
    #[test]
    fn close_without_linger_only_when_the_peer_is_done() {
        let cases: [(&[u8], bool); 6] = [
            (b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", true),
            (b"GET /a HTTP/1.0\r\n\r\n", true),
            (
                b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                true,
            ),
            // Bytes after the last request: the peer is still talking.
            (
                b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /b HTTP/1.1\r\n\r\n",
                false,
            ),
            // A 400: the peer may be sending more.
            (b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGARBAGE\r\n\r\n", false),
            (b"GET /a HTTP/1.1\r\nConnection: close\r\n\r\n", false), // no Host: 400
        ];
        for (input, quiet) in cases {
            let (mut c, mut app, mut port, limits) = setup();
            feed(&mut c, &mut app, &mut port, &limits, input);
            let what = String::from_utf8_lossy(input);
            assert!(port.closed, "{what}");
            assert_eq!(port.closed_without_linger, quiet, "{what}");
        }
        // Keep-alive requests never close.
        let (mut c, mut app, mut port, limits) = setup();
        feed(
            &mut c,
            &mut app,
            &mut port,
            &limits,
            b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n",
        );
        assert!(!port.closed);
    }

    #[test]
    fn connection_close_and_http10() {
        let (mut c, mut app, mut port, limits) = setup();
        feed(
            &mut c,
            &mut app,
            &mut port,
            &limits,
            b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n",
        );
        let out = port.take();
        assert!(out.contains("Connection: close"));
        assert_eq!(responses(&out).len(), 1);
        assert!(port.closed);

        let (mut c, mut app, mut port, limits) = setup();
        feed(
            &mut c,
            &mut app,
            &mut port,
            &limits,
            b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /b HTTP/1.0\r\n\r\n",
        );
        let out = port.take();
        let (first, second) = out.split_at(out.find("HTTP/1.1 200 OK").unwrap() + 1);
        assert!(second.contains("Connection: close"));
        assert!(
            first.len() < 10
                || out[..out.rfind("HTTP/1.1").unwrap()].contains("Connection: keep-alive")
        );
        assert_eq!(responses(&out).len(), 2);
        assert!(port.closed);
    }

    #[test]
    fn head_has_length_but_no_body() {
        let (mut c, mut app, mut port, limits) = setup();
        feed(
            &mut c,
            &mut app,
            &mut port,
            &limits,
            b"HEAD /abc HTTP/1.1\r\nHost: x\r\n\r\nGET /d HTTP/1.1\r\nHost: x\r\n\r\n",
        );
        let out = port.take();
        let first_end = out.find("\r\n\r\n").unwrap() + 4;
        assert!(out[..first_end].contains("Content-Length: 4\r\n"));
        assert!(
            out[first_end..].starts_with("HTTP/1.1 200 OK"),
            "no body after HEAD's head"
        );
    }

    #[test]
    fn body_across_reads_and_next_request_offset() {
        let (mut c, mut app, mut port, limits) = setup();
        let a = b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello";
        assert_eq!(feed(&mut c, &mut app, &mut port, &limits, a), a.len());
        assert_eq!(port.out, b"");
        let b = b"world!GET /n HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(feed(&mut c, &mut app, &mut port, &limits, b), b.len());
        assert_eq!(
            responses(&port.take()),
            vec![(200, "helloworld".into()), (200, "/n".into())]
        );
        assert_eq!(app.seen[0].body, b"helloworld");
        assert_eq!(app.seen[0].headers.len(), 2);
    }

    #[test]
    fn expect_continue_only_when_needed() {
        let (mut c, mut app, mut port, limits) = setup();
        let h = b"POST /p HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n";
        feed(&mut c, &mut app, &mut port, &limits, h);
        assert_eq!(port.take(), "HTTP/1.1 100 Continue\r\n\r\n");
        feed(&mut c, &mut app, &mut port, &limits, b"abc");
        assert_eq!(responses(&port.take()), vec![(200, "abc".into())]);

        // Body already here: no 100.
        let (mut c, mut app, mut port, limits) = setup();
        let mut whole = h.to_vec();
        whole.extend_from_slice(b"abc");
        feed(&mut c, &mut app, &mut port, &limits, &whole);
        assert!(!port.take().contains("100 Continue"));

        // Rejected request: no 100, just the error.
        let (mut c, mut app, mut port, limits) = setup();
        let big = b"POST /p HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 99999999\r\n\r\n";
        feed(&mut c, &mut app, &mut port, &limits, big);
        let out = port.take();
        assert!(!out.contains("100 Continue"));
        assert_eq!(responses(&out)[0].0, 413);
        assert!(port.closed);

        // Behind a pending response: the 100 waits its turn.
        let (mut c, mut app, mut port, limits) = setup();
        let mut input = b"GET /later/0 HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
        input.extend_from_slice(h);
        feed(&mut c, &mut app, &mut port, &limits, &input);
        assert_eq!(port.out, b"");
        let (seq, tag) = crate::http1::app::split_app_tag(port.timers[0].1).unwrap();
        c.app_timer(&mut app, seq, tag, &limits, &mut port);
        let out = port.take();
        assert!(
            out.ends_with("/later/0HTTP/1.1 100 Continue\r\n\r\n"),
            "{out}"
        );
    }

    #[test]
    fn each_limit_gets_its_status() {
        let cases: Vec<(Limits, Vec<u8>, u16)> = vec![
            (
                Limits { max_request_line: 24, ..Limits::default() },
                b"GET /aaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
                414,
            ),
            (
                Limits { max_header_bytes: 40, ..Limits::default() },
                b"GET / HTTP/1.1\r\nHost: x\r\nX: yyyyyyyyyyyyyyyyyy\r\n\r\n".to_vec(),
                431,
            ),
            (
                Limits { max_headers: 2, ..Limits::default() },
                b"GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\n\r\n".to_vec(),
                431,
            ),
            (
                Limits { max_body: 4, ..Limits::default() },
                b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello".to_vec(),
                413,
            ),
            (
                Limits { max_body: 4, ..Limits::default() },
                b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n".to_vec(),
                413,
            ),
            (
                Limits { max_header_bytes: 64, ..Limits::default() },
                b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy\r\n\r\n".to_vec(),
                431,
            ),
            (
                Limits::default(),
                b"GET / HTTP/2.0\r\nHost: x\r\n\r\n".to_vec(),
                505,
            ),
            (
                Limits::default(),
                b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n".to_vec(),
                501,
            ),
        ];
        for (limits, bad, status) in cases {
            let mut port = TestPort::new();
            let mut c = Conn::new(port.now);
            let mut app = TestApp::default();
            let mut input = b"GET /first HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
            input.extend_from_slice(&bad);
            input.extend_from_slice(b"GET /after HTTP/1.1\r\nHost: x\r\n\r\n");
            feed(&mut c, &mut app, &mut port, &limits, &input);
            let r = responses(&port.take());
            assert_eq!(r.len(), 2, "{status}: {r:?}");
            assert_eq!(r[0], (200, "/first".into()));
            assert_eq!(r[1].0, status);
            assert!(port.closed, "{status}");
        }
    }

    #[test]
    fn smuggling_cases_close() {
        for bad in [
            &b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 4\r\n\r\nabcd",
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3a\r\n\r\nabc",
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\n",
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n",
        ] {
            let (mut c, mut app, mut port, limits) = setup();
            feed(&mut c, &mut app, &mut port, &limits, bad);
            let r = responses(&port.take());
            assert_eq!(r.len(), 1);
            assert_eq!(r[0].0, 400, "{}", String::from_utf8_lossy(bad));
            assert!(port.closed);
            assert_eq!(port.counters.smuggling, 1);
            assert!(app.seen.is_empty());
        }
    }

    #[test]
    fn timers_header_read_and_idle() {
        let (mut c, mut app, mut port, limits) = setup();
        let t0 = port.now;
        assert_eq!(
            c.deadline(&limits),
            Some((t0 + limits.idle_timeout, TimerKind::Idle))
        );
        feed(&mut c, &mut app, &mut port, &limits, b"GET / HTT");
        assert_eq!(
            c.deadline(&limits),
            Some((t0 + limits.header_read_timeout, TimerKind::HeadRead))
        );
        // More bytes of the same head do not push the deadline back.
        port.now = t0 + Duration::from_secs(5);
        feed(&mut c, &mut app, &mut port, &limits, b"GET / HTTP/1.1\r\n");
        assert_eq!(
            c.deadline(&limits),
            Some((t0 + limits.header_read_timeout, TimerKind::HeadRead))
        );
        c.expire(TimerKind::HeadRead, &limits, &mut port);
        assert_eq!(responses(&port.take())[0].0, 408);
        assert!(port.closed);
        assert_eq!(port.counters.header_timeout, 1);

        let (mut c, _app, mut port, limits) = setup();
        c.expire(TimerKind::Idle, &limits, &mut port);
        assert_eq!(port.out, b"", "idle close is silent");
        assert!(port.closed);
    }

    #[test]
    fn eof_and_drain_finish_outstanding_work() {
        let (mut c, mut app, mut port, limits) = setup();
        feed(
            &mut c,
            &mut app,
            &mut port,
            &limits,
            b"GET /later/0 HTTP/1.1\r\nHost: x\r\n\r\n",
        );
        c.peer_closed(&limits, &mut port);
        assert!(!port.closed);
        let (seq, tag) = crate::http1::app::split_app_tag(port.timers[0].1).unwrap();
        c.app_timer(&mut app, seq, tag, &limits, &mut port);
        assert_eq!(responses(&port.take()).len(), 1);
        assert!(port.closed);

        let (mut c, mut app, mut port, limits) = setup();
        feed(
            &mut c,
            &mut app,
            &mut port,
            &limits,
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n",
        );
        c.drain(&limits, &mut port);
        assert!(!port.closed, "the request in progress may finish");
        feed(
            &mut c,
            &mut app,
            &mut port,
            &limits,
            b"okGET / HTTP/1.1\r\nHost: x\r\n\r\n",
        );
        let out = port.take();
        assert_eq!(responses(&out), vec![(200, "ok".into())]);
        assert!(out.contains("Connection: close"));
        assert!(port.closed);
    }
}
