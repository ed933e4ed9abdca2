//! The mio (epoll) engine: one thread, one readiness loop, non-blocking sockets.
//!
//! Sockets are registered edge-triggered for reading and writing. A read that returns
//! less than the buffer has emptied the socket (TCP copies all it has), so it is not
//! followed by a read that would only say EAGAIN; a write that cannot finish waits for
//! the writable edge. Timers (open-loop due times, reconnect back-offs) sit in a heap,
//! one live entry per connection at most; response timeouts are checked by a scan every
//! [`CHECK_EVERY`].

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use mio::event::Event;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use super::pipeline::{quota_room, Schedule};
use super::{Live, ThreadPlan, ThreadReport};
use crate::proto::Conversation;
use crate::stats::{ErrorKind, Recorder};

/// Read buffer, shared by all connections of the thread.
const READ_BUF: usize = 64 * 1024;
/// How often response and connect timeouts are looked for.
const CHECK_EVERY: Duration = Duration::from_millis(50);
/// Wait before reconnecting after a refused connection...
const BACKOFF_REFUSED: Duration = Duration::from_millis(100);
/// ...and after any other error.
const BACKOFF_ERROR: Duration = Duration::from_millis(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// No socket: waiting for a reconnect or for the next due time.
    Idle,
    Connecting,
    Open,
}

struct Conn<C> {
    conv: C,
    stream: Option<TcpStream>,
    state: State,
    /// Bytes queued for the socket; `out[out_pos..]` not written yet.
    out: Vec<u8>,
    out_pos: usize,
    /// Messages in flight and when the next are due.
    sched: Schedule,
    /// The live timer entry of this connection, if any.
    wake_at: Option<Instant>,
}

struct Engine<'a, C> {
    plan: &'a ThreadPlan,
    live: &'a Live,
    poll: Poll,
    conns: Vec<Conn<C>>,
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
    buf: Vec<u8>,
    /// Start times of the messages the last feed completed.
    done_starts: Vec<Instant>,
    rec: Recorder,
    measuring: bool,
    /// Messages in flight on all connections.
    in_flight: u64,
    /// Not yet published to `live`.
    live_messages: u64,
    live_errors: u64,
}

/// Runs one load thread (see [`super::run_thread`]).
pub(super) fn run(plan: &ThreadPlan, live: &Live) -> io::Result<ThreadReport> {
    let conns = (0..plan.connections)
        .map(|k| Conn {
            conv: plan.conversation(plan.first_conn + k),
            stream: None,
            state: State::Idle,
            out: Vec::with_capacity(plan.target.request_len() * plan.pipeline),
            out_pos: 0,
            sched: Schedule::new(plan, k),
            wake_at: None,
        })
        .collect();
    let mut engine = Engine {
        plan,
        live,
        poll: Poll::new()?,
        conns,
        timers: BinaryHeap::new(),
        buf: vec![0; READ_BUF],
        done_starts: Vec::new(),
        rec: Recorder::new(),
        measuring: false,
        in_flight: 0,
        live_messages: 0,
        live_errors: 0,
    };
    engine.run()
}

fn io_kind(e: &io::Error) -> ErrorKind {
    match e.kind() {
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::ConnectionAborted => ErrorKind::Reset,
        io::ErrorKind::TimedOut => ErrorKind::Timeout,
        io::ErrorKind::ConnectionRefused => ErrorKind::ConnectRefused,
        _ => ErrorKind::Io,
    }
}

fn connect_kind(e: &io::Error) -> ErrorKind {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => ErrorKind::ConnectRefused,
        io::ErrorKind::TimedOut => ErrorKind::Timeout,
        _ => ErrorKind::ConnectError,
    }
}

/// A poll timeout that never makes us late: mio rounds timeouts *up* to whole
/// milliseconds, so sleep the whole milliseconds only and poll (without sleeping) for
/// the rest.
fn poll_timeout(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64)
}

impl<C: Conversation> Engine<'_, C> {
    fn run(&mut self) -> io::Result<ThreadReport> {
        let plan = self.plan;
        let now = Instant::now();
        for i in 0..self.conns.len() {
            if plan.connect_per_request && plan.interval.is_some() {
                let due = self.conns[i].sched.next_due;
                self.schedule(i, due);
            } else {
                self.connect(i, now);
            }
        }
        let mut events = Events::with_capacity(1024);
        let mut next_check = now + CHECK_EVERY;
        loop {
            let now = Instant::now();
            if !self.measuring && now >= plan.warmup_end {
                self.measuring = true;
                self.rec.reset();
            }
            let quota_done = self.measuring && plan.quota.is_some_and(|q| self.rec.messages >= q);
            if now >= plan.deadline || quota_done {
                self.publish();
                return Ok(ThreadReport::take(&mut self.rec, now));
            }
            while let Some(&Reverse((t, i))) = self.timers.peek() {
                if t > now {
                    break;
                }
                self.timers.pop();
                if self.conns[i].wake_at == Some(t) {
                    self.conns[i].wake_at = None;
                    self.on_wake(i, now);
                }
            }
            if now >= next_check {
                self.check_timeouts(now);
                next_check = now + CHECK_EVERY;
            }
            self.publish();

            let mut until = plan.deadline.min(next_check);
            if !self.measuring {
                until = until.min(plan.warmup_end);
            }
            if let Some(&Reverse((t, _))) = self.timers.peek() {
                until = until.min(t);
            }
            let timeout = poll_timeout(until.saturating_duration_since(now));
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            for ev in events.iter() {
                self.on_event(ev.token().0, ev);
            }
        }
    }

    fn publish(&mut self) {
        self.live
            .publish(&mut self.live_messages, &mut self.live_errors);
    }

    fn schedule(&mut self, i: usize, at: Instant) {
        let c = &mut self.conns[i];
        if c.wake_at != Some(at) {
            c.wake_at = Some(at);
            self.timers.push(Reverse((at, i)));
        }
    }

    fn on_wake(&mut self, i: usize, now: Instant) {
        match self.conns[i].state {
            State::Idle => self.connect(i, now),
            State::Open => self.fill_pipeline(i, now),
            State::Connecting => {}
        }
    }

    fn connect(&mut self, i: usize, now: Instant) {
        let plan = self.plan;
        let c = &mut self.conns[i];
        c.sched.connecting(plan, now);
        let mut stream = match TcpStream::connect(plan.addr) {
            Ok(s) => s,
            Err(e) => return self.fail(i, connect_kind(&e), now),
        };
        // Latency over Nagle. Setting it on a connecting socket is fine.
        let _ = stream.set_nodelay(true);
        if let Err(e) = self.poll.registry().register(
            &mut stream,
            Token(i),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            return self.fail(i, io_kind(&e), now);
        }
        c.stream = Some(stream);
        c.state = State::Connecting;
    }

    fn on_event(&mut self, i: usize, ev: &Event) {
        match self.conns[i].state {
            // A late event for a socket already closed.
            State::Idle => {}
            State::Connecting => self.on_connecting(i),
            State::Open => {
                let c = &self.conns[i];
                if ev.is_writable() && c.out_pos < c.out.len() {
                    self.flush(i, Instant::now());
                    if self.conns[i].state != State::Open {
                        return;
                    }
                }
                if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                    self.on_readable(i);
                }
            }
        }
    }

    fn on_connecting(&mut self, i: usize) {
        let now = Instant::now();
        let Some(stream) = self.conns[i].stream.as_ref() else {
            return;
        };
        match stream.take_error() {
            Ok(None) => {}
            Ok(Some(e)) | Err(e) => return self.fail(i, connect_kind(&e), now),
        }
        match stream.peer_addr() {
            Ok(_) => {
                let c = &mut self.conns[i];
                c.state = State::Open;
                c.conv.reset();
                c.sched.last_progress = now;
                self.fill_pipeline(i, now);
            }
            // Not connected yet (an event left over from a previous socket).
            Err(e) if e.kind() == io::ErrorKind::NotConnected => {}
            Err(e) => self.fail(i, connect_kind(&e), now),
        }
    }

    /// Queues as many messages as the mode allows, then writes them.
    fn fill_pipeline(&mut self, i: usize, now: Instant) {
        let c = &mut self.conns[i];
        if c.state != State::Open {
            return;
        }
        let room = quota_room(self.plan, self.measuring, self.rec.messages, self.in_flight);
        let before = c.out.len();
        let filled = c.sched.fill(&mut c.conv, self.plan, room, now, &mut c.out);
        self.in_flight += filled.requests;
        let queued = c.out.len() > before || filled.requests > 0;
        if let Some(at) = filled.wake {
            self.schedule(i, at);
        }
        if queued {
            self.flush(i, now);
        }
    }

    /// Writes queued bytes until done or the socket is full.
    fn flush(&mut self, i: usize, now: Instant) {
        let c = &mut self.conns[i];
        let Some(stream) = c.stream.as_mut() else {
            return;
        };
        let mut error = None;
        while c.out_pos < c.out.len() {
            match stream.write(&c.out[c.out_pos..]) {
                Ok(0) => {
                    error = Some(ErrorKind::Io);
                    break;
                }
                Ok(n) => {
                    c.out_pos += n;
                    if self.measuring {
                        self.rec.bytes_sent += n as u64;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    error = Some(io_kind(&e));
                    break;
                }
            }
        }
        match error {
            None => {
                c.out.clear();
                c.out_pos = 0;
            }
            Some(kind) => self.fail(i, kind, now),
        }
    }

    /// Reads until the socket is empty, completing messages as they arrive.
    fn on_readable(&mut self, i: usize) {
        let mut now = Instant::now();
        let mut completed = false;
        loop {
            let c = &mut self.conns[i];
            let Some(stream) = c.stream.as_mut() else {
                return;
            };
            let n = match stream.read(&mut self.buf) {
                Ok(0) => return self.fail(i, ErrorKind::Closed, now),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return self.fail(i, io_kind(&e), now),
            };
            now = Instant::now();
            c.sched.last_progress = now;
            if self.measuring {
                self.rec.bytes_received += n as u64;
            }
            let done = match c.conv.feed(&self.buf[..n]) {
                Ok(done) => done,
                Err(_) => {
                    let kind = c.conv.fault();
                    return self.fail(i, kind, now);
                }
            };
            // The conversation never completes more messages than were sent.
            self.done_starts.clear();
            if !c.sched.complete(&mut c.conv, done, &mut self.done_starts) {
                return self.fail(i, ErrorKind::BadResponse, now);
            }
            for &start in &self.done_starts {
                self.in_flight -= 1;
                self.live_messages += 1;
                completed = true;
                if self.measuring {
                    let ns = now.saturating_duration_since(start).as_nanos();
                    self.rec.message(u64::try_from(ns).unwrap_or(u64::MAX));
                }
            }
            if n < self.buf.len() {
                break; // the socket is empty
            }
        }
        if self.plan.connect_per_request && completed && self.conns[i].sched.starts.is_empty() {
            self.close(i);
            self.next_connection(i, now);
        } else {
            // More requests, and whatever the conversation has to say (TLS records,
            // a pong); with a connection per request, its one message once a
            // handshake has made the conversation ready.
            self.fill_pipeline(i, now);
        }
    }

    /// Connection per request: the next connection, now or when it is due.
    fn next_connection(&mut self, i: usize, now: Instant) {
        match self.plan.interval {
            Some(_) if self.conns[i].sched.next_due > now => {
                let due = self.conns[i].sched.next_due;
                self.schedule(i, due);
            }
            _ => self.connect(i, now),
        }
    }

    fn close(&mut self, i: usize) {
        let c = &mut self.conns[i];
        // Dropping the socket closes it, which also takes it out of the epoll set.
        c.stream = None;
        c.state = State::Idle;
        self.in_flight -= c.sched.starts.len() as u64;
        c.sched.starts.clear();
        c.out.clear();
        c.out_pos = 0;
    }

    /// Counts the error, closes the connection and reconnects after a back-off.
    fn fail(&mut self, i: usize, kind: ErrorKind, now: Instant) {
        if self.measuring {
            self.rec.errors.add(kind);
        }
        self.live_errors += 1;
        self.close(i);
        let backoff = if kind == ErrorKind::ConnectRefused {
            BACKOFF_REFUSED
        } else {
            BACKOFF_ERROR
        };
        if self.plan.connect_per_request && self.plan.interval.is_some() {
            // The schedule goes on: reconnect when the next message is due, but not
            // sooner than the back-off.
            let due = self.conns[i].sched.next_due.max(now + backoff);
            self.schedule(i, due);
        } else {
            self.schedule(i, now + backoff);
        }
    }

    fn check_timeouts(&mut self, now: Instant) {
        let timeout = self.plan.timeout;
        for i in 0..self.conns.len() {
            let c = &self.conns[i];
            let waiting = match c.state {
                State::Idle => false,
                State::Connecting => true,
                // A handshake not yet answered waits for the server as a request does.
                State::Open => !c.sched.starts.is_empty() || !c.conv.ready(),
            };
            if waiting && now.saturating_duration_since(c.sched.last_progress) > timeout {
                self.fail(i, ErrorKind::Timeout, now);
            }
        }
    }
}
