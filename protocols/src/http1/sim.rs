//! A connection driven from memory: the whole HTTP/1.1 state machine with no socket and
//! no runtime, for an application's route tests, for fuzzing, and for reproducing a
//! client's byte stream exactly.
//!
//! It behaves like the runtime towards the protocol: bytes left unconsumed are kept and
//! shown again with the next bytes appended; output is collected in order; timers are
//! recorded and fired when the test says so (earliest first), never by a clock.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ringmaster_runtime::OffloadError;

use super::app::App;
use super::conn::Conn;
use super::encode::{imf_fixdate, DATE_LEN};
use super::limits::{HttpCounters, Limits};
use super::offload::{OffloadJob, Routed};
use super::port::{Port, PortTimer};
use super::timer_tag::split_app_tag;

/// A timer armed on a [`SimPort`], waiting for the test to fire it.
#[derive(Debug, Clone, Copy)]
struct SimTimer {
    due: Instant,
    tag: u64,
    /// Its key, as [`PortTimer::Local`].
    id: u64,
}

/// The recording port behind a [`SimConn`].
struct SimPort {
    out: Vec<u8>,
    date: [u8; DATE_LEN],
    /// Application timers neither fired nor cancelled yet.
    timers: Vec<SimTimer>,
    /// The number the next timer armed gets (its key).
    next_timer: u64,
    closed: bool,
    paused: bool,
    writable_asked: bool,
    counters: HttpCounters,
    now: Instant,
    /// Offloaded jobs not run yet, in submission order.
    jobs: Vec<OffloadJob>,
    /// Jobs the simulated pool queue holds before refusing more.
    offload_depth: usize,
}

impl std::fmt::Debug for SimPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimPort")
            .field("out", &self.out.len())
            .field("timers", &self.timers.len())
            .field("closed", &self.closed)
            .field("paused", &self.paused)
            .field("jobs", &self.jobs.len())
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl Port for SimPort {
    fn buf(&mut self) -> &mut Vec<u8> {
        &mut self.out
    }
    fn date(&self) -> &[u8; DATE_LEN] {
        &self.date
    }
    fn set_timer(&mut self, after: Duration, tag: u64) -> PortTimer {
        let due = self.now.checked_add(after).unwrap_or(self.now);
        let id = self.next_timer;
        self.next_timer += 1;
        self.timers.push(SimTimer { due, tag, id });
        PortTimer::Local(id)
    }
    fn cancel_timer(&mut self, key: PortTimer) -> bool {
        let PortTimer::Local(id) = key else {
            return false;
        };
        match self.timers.iter().position(|t| t.id == id) {
            Some(i) => {
                self.timers.remove(i);
                true
            }
            None => false,
        }
    }
    fn want_writable(&mut self) {
        self.writable_asked = true;
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
        self.closed = true;
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
    fn offload(&mut self, job: OffloadJob) -> Result<(), OffloadError> {
        if self.jobs.len() >= self.offload_depth {
            return Err(OffloadError::QueueFull);
        }
        self.jobs.push(job);
        Ok(())
    }
}

/// One simulated connection to an [`App`].
///
/// ```
/// use ringmaster_protocols::http1::sim::SimConn;
/// use ringmaster_protocols::http1::{App, Exchange, Limits, Request, Response};
///
/// struct Hello;
/// impl App for Hello {
///     type Task = ();
///     fn on_request(&mut self, _req: &Request<'_>, ex: &mut Exchange<'_>) -> Option<()> {
///         ex.respond(Response::text(200, "hi"));
///         None
///     }
/// }
///
/// let mut app = Hello;
/// let mut conn = SimConn::new(Limits::default());
/// conn.send(&mut app, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
/// let out = String::from_utf8(conn.take_output()).unwrap();
/// assert!(out.starts_with("HTTP/1.1 200 OK\r\n") && out.ends_with("\r\n\r\nhi"));
/// ```
pub struct SimConn<A: App> {
    conn: Conn<A::Task>,
    port: SimPort,
    limits: Limits,
    /// Bytes the protocol left unconsumed, shown again with the next ones.
    carry: Vec<u8>,
}

impl<A: App> std::fmt::Debug for SimConn<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimConn")
            .field("port", &self.port)
            .field("carry", &self.carry.len())
            .finish_non_exhaustive()
    }
}

impl<A: App> SimConn<A> {
    /// A fresh connection with these limits; its `Date` is the Unix epoch, so output is
    /// reproducible.
    pub fn new(limits: Limits) -> Self {
        let now = Instant::now();
        SimConn {
            conn: Conn::new(now),
            port: SimPort {
                out: Vec::new(),
                date: imf_fixdate(0),
                timers: Vec::new(),
                next_timer: 0,
                closed: false,
                paused: false,
                writable_asked: false,
                counters: HttpCounters::default(),
                now,
                jobs: Vec::new(),
                offload_depth: usize::MAX,
            },
            limits,
            carry: Vec::new(),
        }
    }

    /// Delivers bytes from the client (ignored once the connection is closed; kept
    /// unread while reading is paused, as the runtime would).
    pub fn send(&mut self, app: &mut A, bytes: &[u8]) {
        if self.port.closed {
            return;
        }
        self.carry.extend_from_slice(bytes);
        self.deliver(app);
    }

    fn deliver(&mut self, app: &mut A) {
        if self.port.paused || self.port.closed || self.carry.is_empty() {
            return;
        }
        let used = self
            .conn
            .feed(app, &self.carry, &self.limits, &mut self.port);
        self.carry.drain(..used.min(self.carry.len()));
    }

    /// Fires the earliest pending application timer, advancing the simulated clock to
    /// it. Returns false if none was pending.
    pub fn fire_next_timer(&mut self, app: &mut A) -> bool {
        let Some(i) = (0..self.port.timers.len()).min_by_key(|&i| self.port.timers[i].due) else {
            return false;
        };
        let SimTimer { due, tag, .. } = self.port.timers.swap_remove(i);
        self.port.now = self.port.now.max(due);
        if let Some((seq, app_tag)) = split_app_tag(tag) {
            self.conn
                .app_timer(app, seq, app_tag, &self.limits, &mut self.port);
        }
        self.after_callback(app);
        true
    }

    /// Sets how many offloaded jobs the simulated pool queue holds before
    /// [`crate::http1::Exchange::offload`] is refused with `QueueFull` (default: no bound;
    /// 0 refuses every job).
    pub fn set_offload_queue(&mut self, depth: usize) {
        self.port.offload_depth = depth;
    }

    /// Offloaded jobs waiting to be run by [`SimConn::run_offloads`].
    pub fn pending_offloads(&self) -> usize {
        self.port.jobs.len()
    }

    /// Runs the oldest offloaded job here, on this thread (a panic is caught as the pool
    /// would), and delivers its result. Returns false if none was pending.
    pub fn run_next_offload(&mut self, app: &mut A) -> bool {
        if self.port.jobs.is_empty() {
            return false;
        }
        let job = self.port.jobs.remove(0);
        self.deliver_offload(app, job());
        true
    }

    /// Runs offloaded jobs, oldest first, until none is pending (or `max` have run).
    pub fn run_offloads(&mut self, app: &mut A, max: usize) {
        for _ in 0..max {
            if !self.run_next_offload(app) {
                break;
            }
        }
    }

    /// Runs the newest offloaded job first (results may come back in any order).
    pub fn run_newest_offload(&mut self, app: &mut A) -> bool {
        let Some(job) = self.port.jobs.pop() else {
            return false;
        };
        self.deliver_offload(app, job());
        true
    }

    fn deliver_offload(&mut self, app: &mut A, routed: Routed) {
        self.conn
            .offload_done(app, routed, &self.limits, &mut self.port);
        self.after_callback(app);
    }

    /// Fires timers, earliest first, until none is pending (or `max` have fired).
    pub fn fire_all_timers(&mut self, app: &mut A, max: usize) {
        for _ in 0..max {
            if !self.fire_next_timer(app) {
                break;
            }
        }
    }

    /// Reports the output drained, if the application asked for it.
    pub fn writable(&mut self, app: &mut A) {
        if std::mem::take(&mut self.port.writable_asked) {
            self.conn.writable(app, &self.limits, &mut self.port);
            self.after_callback(app);
        }
    }

    /// The client half-closed its side.
    pub fn client_eof(&mut self) {
        self.conn.peer_closed(&self.limits, &mut self.port);
    }

    /// Lets the protocol's own deadline pass (header-read timeout or keep-alive idle).
    pub fn expire_deadline(&mut self) {
        if let Some((due, kind)) = self.conn.deadline(&self.limits) {
            self.port.now = self.port.now.max(due);
            self.conn.expire(kind, &self.limits, &mut self.port);
        }
    }

    /// Whether the application asked for a writable callback not yet delivered.
    pub fn wants_writable(&self) -> bool {
        self.port.writable_asked
    }

    fn after_callback(&mut self, app: &mut A) {
        // A callback may have resumed reading: show the kept bytes again, as the
        // runtime does.
        self.deliver(app);
    }

    /// Takes everything written to the client so far.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.port.out)
    }

    /// True once the protocol closed the connection.
    pub fn is_closed(&self) -> bool {
        self.port.closed
    }

    /// True while reading is paused (too many pipelined requests waiting).
    pub fn is_paused(&self) -> bool {
        self.port.paused
    }

    /// Bytes received but not consumed yet.
    pub fn unread(&self) -> usize {
        self.carry.len()
    }

    /// This connection's HTTP counters.
    pub fn counters(&self) -> &HttpCounters {
        &self.port.counters
    }

    /// Ends the connection as the runtime would, handing unfinished tasks to
    /// [`App::on_cancel`].
    pub fn close(self, app: &mut A) {
        for task in self.conn.into_tasks() {
            app.on_cancel(task);
        }
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod trailer_tests;
