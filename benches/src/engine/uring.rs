//! The io_uring engine: the load runs on a ringmaster shard, as an ordinary client
//! handler of the runtime (outbound `connect`, multishot receive into the buffer ring,
//! coalesced sends, the shard's timer wheel).
//!
//! One load thread is one client-only server with one shard. Each of the thread's
//! connections is a slot `i` in `conns`; the runtime connection's state is just `i`.
//! Per-connection timers pace the open loop and watch for response timeouts; shard
//! timers open the measured window, end the run, and retry connections that failed.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ringmaster_runtime::{Close, Event, Handler, Input, Io, Origin, Server, ShardEvent, ShardIo};

use super::pipeline::{quota_room, Schedule};
use super::run_timers::{self, RunTimers, TAG_OWN_BASE};
use super::{Live, ThreadPlan, ThreadReport};
use crate::proto::Conversation;
use crate::stats::{ErrorKind, Recorder};

/// How often a connection looks for a response timeout (and publishes live counters).
const CHECK_EVERY: Duration = Duration::from_millis(50);
/// Wait before reconnecting after a refused connection, and after any other error.
const BACKOFF_REFUSED: Duration = Duration::from_millis(100);
const BACKOFF_ERROR: Duration = Duration::from_millis(10);

// Connection timer tags.
const TAG_CHECK: u64 = 0;
const TAG_DUE: u64 = 1;
// Shard timer tag of a connection's retry: `TAG_RETRY_BASE + i` (the run timers take
// the tags below it).
const TAG_RETRY_BASE: u64 = TAG_OWN_BASE;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    Connecting,
    Open,
}

struct Slot<C> {
    conv: C,
    state: State,
    sched: Schedule,
    /// Set when we closed the connection on purpose (connection per request).
    closing: bool,
    due_timer_armed: bool,
    /// Bumped by every connect: tells this slot's current connection from an old one
    /// still closing (connection per request).
    epoch: u32,
}

struct Load<C> {
    plan: ThreadPlan,
    live: Arc<Live>,
    conns: Vec<Slot<C>>,
    rec: Recorder,
    measuring: bool,
    in_flight: u64,
    live_messages: u64,
    live_errors: u64,
    scratch: Vec<u8>,
    /// Start times of the messages the last feed completed.
    done_starts: Vec<Instant>,
    /// Where the report goes when the run ends.
    out: Arc<Mutex<Option<ThreadReport>>>,
    done: bool,
    /// Connections that died unexpectedly, retried on the next tick: (slot, not before).
    retry: Vec<(usize, Instant)>,
}

/// Runs one load thread on a one-shard ringmaster client.
pub(super) fn run(plan: &ThreadPlan, live: &Arc<Live>) -> io::Result<ThreadReport> {
    let live = live.clone();
    let out = Arc::new(Mutex::new(None));
    let sink = out.clone();
    let cores = core_affinity_hint(plan);
    let server = Server::builder()
        .tcp(false)
        .shards(1)
        .cpus(cores)
        .offload_threads(0)
        .handle_signals(false)
        .idle_timeout(None)
        // Open-loop pacing wants finer timers than a server's 1 ms default.
        .timer_tick(Duration::from_micros(100))
        .drain_timeout(Duration::from_secs(1))
        .build()
        .map_err(io::Error::other)?;
    let plan = plan.clone();
    server
        .serve(move |_shard| {
            let conns = (0..plan.connections)
                .map(|k| Slot {
                    conv: plan.conversation(plan.first_conn + k),
                    state: State::Idle,
                    sched: Schedule::new(&plan, k),
                    closing: false,
                    due_timer_armed: false,
                    epoch: 0,
                })
                .collect();
            Load {
                plan: plan.clone(),
                live: live.clone(),
                conns,
                rec: Recorder::new(),
                measuring: false,
                in_flight: 0,
                live_messages: 0,
                live_errors: 0,
                scratch: Vec::new(),
                done_starts: Vec::new(),
                out: sink.clone(),
                done: false,
                retry: Vec::new(),
            }
        })
        .map_err(io::Error::other)?;
    let report = out.lock().map_err(|_| io::Error::other("poisoned"))?.take();
    report.ok_or_else(|| io::Error::other("the load shard stopped without a report"))
}

/// The CPU this thread's shard should run on: the thread's turn in the process's
/// affinity mask (so `taskset -c 1 ringmaster load ...` keeps the load on CPU 1).
pub(super) fn core_affinity_hint(plan: &ThreadPlan) -> Option<Vec<usize>> {
    let mask = std::fs::read_to_string("/proc/self/status").ok()?;
    let list = mask
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))?
        .trim()
        .to_string();
    let mut cpus = Vec::new();
    for part in list.split(',') {
        match part.split_once('-') {
            Some((a, b)) => cpus.extend(a.parse::<usize>().ok()?..=b.parse::<usize>().ok()?),
            None => cpus.push(part.parse().ok()?),
        }
    }
    let thread = plan.first_conn / plan.connections.max(1);
    cpus.get(thread % cpus.len().max(1)).map(|c| vec![*c])
}

fn io_kind(errno: i32) -> ErrorKind {
    match errno {
        libc_errno::ECONNRESET | libc_errno::EPIPE | libc_errno::ECONNABORTED => ErrorKind::Reset,
        libc_errno::ETIMEDOUT => ErrorKind::Timeout,
        libc_errno::ECONNREFUSED => ErrorKind::ConnectRefused,
        _ => ErrorKind::Io,
    }
}

/// The few errno values we classify (Linux), without a libc dependency.
mod libc_errno {
    pub const EPIPE: i32 = 32;
    pub const ECONNABORTED: i32 = 103;
    pub const ECONNRESET: i32 = 104;
    pub const ETIMEDOUT: i32 = 110;
    pub const ECONNREFUSED: i32 = 111;
}

impl<C: Conversation + 'static> Load<C> {
    fn connect(&mut self, i: usize, now: Instant, shard_connect: &mut dyn FnMut(SocketAddr, u64)) {
        let plan = &self.plan;
        let c = &mut self.conns[i];
        c.sched.connecting(plan, now);
        c.state = State::Connecting;
        c.closing = false;
        c.epoch = c.epoch.wrapping_add(1);
        shard_connect(plan.addr, i as u64);
    }

    fn count_error(&mut self, kind: ErrorKind) {
        if self.measuring {
            self.rec.errors.add(kind);
        }
        self.live_errors += 1;
    }

    /// After a failure: the connection goes idle and is retried after a back-off.
    fn fail_later(&mut self, i: usize, kind: ErrorKind, now: Instant, shard: &mut ShardIo<'_>) {
        self.count_error(kind);
        self.reset_slot(i);
        let backoff = if kind == ErrorKind::ConnectRefused {
            BACKOFF_REFUSED
        } else {
            BACKOFF_ERROR
        };
        let at = if self.plan.connect_per_request && self.plan.interval.is_some() {
            self.conns[i].sched.next_due.max(now + backoff)
        } else {
            now + backoff
        };
        shard.set_timer(at.saturating_duration_since(now), TAG_RETRY_BASE + i as u64);
    }

    fn reset_slot(&mut self, i: usize) {
        let c = &mut self.conns[i];
        c.state = State::Idle;
        self.in_flight -= c.sched.starts.len() as u64;
        c.sched.starts.clear();
        c.due_timer_armed = false;
    }

    /// Queues as many messages as the mode allows and writes them in one go.
    fn fill_pipeline(&mut self, i: usize, now: Instant, io: &mut Io<'_>) {
        let c = &mut self.conns[i];
        if c.state != State::Open || c.closing || self.done {
            return;
        }
        let room = quota_room(
            &self.plan,
            self.measuring,
            self.rec.messages,
            self.in_flight,
        );
        self.scratch.clear();
        let filled = c
            .sched
            .fill(&mut c.conv, &self.plan, room, now, &mut self.scratch);
        self.in_flight += filled.requests;
        if let Some(due) = filled.wake {
            if !c.due_timer_armed {
                c.due_timer_armed = true;
                io.set_timer(due - now, TAG_DUE);
            }
        }
        if !self.scratch.is_empty() {
            if self.measuring {
                self.rec.bytes_sent += self.scratch.len() as u64;
            }
            io.write(&self.scratch);
        }
    }

    fn publish(&mut self) {
        self.live
            .publish(&mut self.live_messages, &mut self.live_errors);
    }

    /// Ends the run: hands the report over and stops the client.
    fn finish(&mut self, now: Instant, stop: &mut dyn FnMut()) {
        if self.done {
            return;
        }
        self.done = true;
        self.publish();
        if let Ok(mut out) = self.out.lock() {
            *out = Some(ThreadReport::take(&mut self.rec, now));
        }
        stop();
    }
}

/// A connection's state in the runtime: its slot and the slot's epoch when it opened.
pub(super) struct ConnRef {
    i: usize,
    epoch: u32,
}

/// The callbacks' work, one method an event.
impl<C: Conversation + 'static> Load<C> {
    /// The shard is up: the run timers, and every connection opens (or waits for its
    /// first due time).
    fn start(&mut self, shard: &mut ShardIo<'_>) {
        let now = Instant::now();
        self.measuring = run_timers::arm(&self.plan, shard, now, CHECK_EVERY);
        for i in 0..self.conns.len() {
            if self.plan.connect_per_request && self.plan.interval.is_some() {
                let due = self.conns[i].sched.next_due;
                shard.set_timer(
                    due.saturating_duration_since(now),
                    TAG_RETRY_BASE + i as u64,
                );
            } else {
                self.connect(i, now, &mut |a, t| shard.connect(a, t));
            }
        }
    }

    /// An outbound connect failed: the slot retries after a back-off.
    fn connect_failed(&mut self, tag: u64, err: &io::Error, shard: &mut ShardIo<'_>) {
        let i = tag as usize;
        let kind = match err.raw_os_error() {
            Some(libc_errno::ECONNREFUSED) => ErrorKind::ConnectRefused,
            Some(libc_errno::ETIMEDOUT) => ErrorKind::Timeout,
            _ => ErrorKind::ConnectError,
        };
        if i < self.conns.len() {
            self.fail_later(i, kind, Instant::now(), shard);
        }
    }

    /// A connection's timer: the response-timeout check, or the next message due.
    fn conn_timer(&mut self, conn: &ConnRef, tag: u64, io: &mut Io<'_>) {
        let i = conn.i;
        if i >= self.conns.len() || self.done {
            return;
        }
        // A connection-per-request connection waiting for its successor's due time is
        // the only old connection whose timer still matters (TAG_DUE below).
        if self.conns[i].epoch != conn.epoch && tag != TAG_DUE {
            return;
        }
        let now = Instant::now();
        match tag {
            TAG_CHECK => {
                self.publish();
                let c = &self.conns[i];
                // A handshake not yet answered waits for the server as a request does.
                let waiting = c.state == State::Open
                    && (!c.sched.starts.is_empty() || !c.conv.ready())
                    && !c.closing;
                if waiting
                    && now.saturating_duration_since(c.sched.last_progress) > self.plan.timeout
                {
                    self.count_error(ErrorKind::Timeout);
                    self.conns[i].closing = true;
                    io.abort();
                } else {
                    io.set_timer(CHECK_EVERY, TAG_CHECK);
                }
            }
            TAG_DUE => {
                self.conns[i].due_timer_armed = false;
                if self.plan.connect_per_request && self.conns[i].closing {
                    self.connect(i, now, &mut |a, t| io.connect(a, t));
                } else {
                    self.fill_pipeline(i, now, io);
                }
            }
            _ => {}
        }
    }

    /// The server shut its side: unless we were closing anyway, that is an error.
    fn eof(&mut self, conn: &ConnRef, io: &mut Io<'_>) {
        let i = conn.i;
        if i < self.conns.len()
            && self.conns[i].epoch == conn.epoch
            && !self.conns[i].closing
            && !self.done
        {
            self.count_error(ErrorKind::Closed);
            self.conns[i].closing = true;
        }
        io.close();
    }
}

impl<C: Conversation + 'static> RunTimers for Load<C> {
    fn warmup_end(&mut self) {
        self.measuring = true;
        self.rec.reset();
    }

    fn deadline(&mut self, now: Instant, shard: &mut ShardIo<'_>) {
        self.finish(now, &mut || shard.shutdown_all());
    }

    /// Publishes the live counters and reconnects the slots whose back-off is over.
    fn tick(&mut self, now: Instant, shard: &mut ShardIo<'_>) {
        self.publish();
        let due: Vec<usize> = self
            .retry
            .iter()
            .filter(|(_, at)| *at <= now)
            .map(|(i, _)| *i)
            .collect();
        self.retry.retain(|(_, at)| *at > now);
        for i in due {
            if self.conns[i].state == State::Idle && !self.done {
                self.connect(i, now, &mut |a, t| shard.connect(a, t));
            }
        }
        if !self.done {
            run_timers::rearm_tick(shard, CHECK_EVERY);
        }
    }

    /// A slot's retry (or, connection per request in the open loop, its first connect).
    fn own_timer(&mut self, tag: u64, now: Instant, shard: &mut ShardIo<'_>) {
        let i = (tag - TAG_RETRY_BASE) as usize;
        if i < self.conns.len() && self.conns[i].state == State::Idle && !self.done {
            self.connect(i, now, &mut |a, t| shard.connect(a, t));
        }
    }
}

impl<C: Conversation + 'static> Handler for Load<C> {
    type Conn = ConnRef;

    fn on_open(&mut self, _peer: SocketAddr, io: &mut Io<'_>) -> ConnRef {
        let Origin::Connected { tag } = io.origin() else {
            io.abort();
            return ConnRef {
                i: usize::MAX,
                epoch: 0,
            };
        };
        let i = tag as usize;
        if i >= self.conns.len() {
            io.abort();
            return ConnRef { i, epoch: 0 };
        }
        let now = Instant::now();
        let c = &mut self.conns[i];
        c.state = State::Open;
        c.conv.reset();
        c.sched.last_progress = now;
        let epoch = c.epoch;
        io.set_timer(CHECK_EVERY, TAG_CHECK);
        self.fill_pipeline(i, now, io);
        ConnRef { i, epoch }
    }

    fn on_data(&mut self, conn: &mut ConnRef, input: &mut Input<'_>, io: &mut Io<'_>) {
        let i = conn.i;
        let data = input.bytes();
        input.consume_all();
        if i >= self.conns.len() || self.done || self.conns[i].epoch != conn.epoch {
            return;
        }
        let now = Instant::now();
        if self.measuring {
            self.rec.bytes_received += data.len() as u64;
        }
        let c = &mut self.conns[i];
        c.sched.last_progress = now;
        let done = match c.conv.feed(data) {
            Ok(n) => n,
            Err(_) => {
                let kind = c.conv.fault();
                self.count_error(kind);
                self.conns[i].closing = true;
                io.abort();
                return;
            }
        };
        self.done_starts.clear();
        if !c.sched.complete(&mut c.conv, done, &mut self.done_starts) {
            self.count_error(ErrorKind::BadResponse);
            self.conns[i].closing = true;
            io.abort();
            return;
        }
        for &start in &self.done_starts {
            self.in_flight -= 1;
            self.live_messages += 1;
            if self.measuring {
                let ns = now.saturating_duration_since(start).as_nanos();
                self.rec.message(u64::try_from(ns).unwrap_or(u64::MAX));
            }
        }
        if self.measuring && self.plan.quota.is_some_and(|q| self.rec.messages >= q) {
            self.finish(now, &mut || io.shutdown_all());
            return;
        }
        if self.plan.connect_per_request && done > 0 && self.conns[i].sched.starts.is_empty() {
            // This connection carried its message: close it, open the next.
            self.conns[i].closing = true;
            io.close();
            let due = self.conns[i].sched.next_due;
            match self.plan.interval {
                Some(_) if due > now => {
                    self.conns[i].state = State::Idle;
                    io.set_timer(due - now, TAG_DUE);
                }
                _ => self.connect(i, now, &mut |a, t| io.connect(a, t)),
            }
        } else {
            // More requests, and whatever the conversation has to say (TLS records,
            // a pong); with a connection per request, its one message once a
            // handshake has made the conversation ready.
            self.fill_pipeline(i, now, io);
        }
    }

    fn on_event(&mut self, conn: &mut ConnRef, event: Event<'_>, io: &mut Io<'_>) {
        match event {
            Event::Timer(tag) => self.conn_timer(conn, tag, io),
            Event::Eof => self.eof(conn, io),
            Event::Shutdown => io.abort(),
            other => other.default_action(io),
        }
    }

    fn on_close(&mut self, conn: ConnRef, why: Close) {
        let i = conn.i;
        if i >= self.conns.len() || self.conns[i].epoch != conn.epoch || self.done {
            return; // an old connection of this slot, or the run is over
        }
        let unexpected = !self.conns[i].closing;
        if unexpected {
            if let Close::Error(e) = why {
                self.count_error(io_kind(e));
            }
        }
        if self.conns[i].state == State::Open {
            self.reset_slot(i);
            if !self.plan.connect_per_request || unexpected {
                // Died (or was timed out, or answered wrong): retry after a back-off.
                self.retry.push((i, Instant::now() + BACKOFF_ERROR));
            }
        }
    }

    fn on_shard(&mut self, event: ShardEvent<'_>, shard: &mut ShardIo<'_>) {
        match event {
            ShardEvent::Start => self.start(shard),
            ShardEvent::Timer(tag) => run_timers::dispatch(self, tag, shard),
            ShardEvent::ConnectFailed { tag, error, .. } => self.connect_failed(tag, &error, shard),
            _ => {}
        }
    }
}
