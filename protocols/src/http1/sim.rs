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

use super::app::{split_app_tag, App, OffloadJob, Port, Routed};
use super::conn::Conn;
use super::encode::{imf_fixdate, DATE_LEN};
use super::limits::{HttpCounters, Limits};

/// The recording port behind a [`SimConn`].
struct SimPort {
    out: Vec<u8>,
    date: [u8; DATE_LEN],
    /// Application timers not fired yet: (due, tag).
    timers: Vec<(Instant, u64)>,
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
    fn send_owned(&mut self, bytes: Vec<u8>) {
        self.out.extend_from_slice(&bytes);
    }
    fn date(&self) -> &[u8; DATE_LEN] {
        &self.date
    }
    fn set_timer(&mut self, after: Duration, tag: u64) {
        let due = self.now.checked_add(after).unwrap_or(self.now);
        self.timers.push((due, tag));
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
        let Some(i) = (0..self.port.timers.len()).min_by_key(|&i| self.port.timers[i].0) else {
            return false;
        };
        let (due, tag) = self.port.timers.swap_remove(i);
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
mod tests {
    use super::*;
    use crate::http1::conn::tests::responses;
    use crate::http1::{Exchange, Request, Response};

    /// Exercises the streaming side of the exchange API.
    #[derive(Default)]
    struct Streams {
        cancelled: usize,
    }

    /// Bytes still to stream.
    struct Left(u64);

    impl App for Streams {
        type Task = Left;
        fn on_request(&mut self, req: &Request<'_>, ex: &mut Exchange<'_>) -> Option<Left> {
            match req.path() {
                "/sized" => {
                    ex.start_sized(200, &[], 10);
                    ex.send_chunk(b"0123");
                    ex.want_writable();
                    Some(Left(6))
                }
                "/short" => {
                    ex.start_sized(200, &[], 10);
                    ex.send_chunk(b"0123456789AB"); // overruns: dropped, counted
                    ex.send_chunk(b"01");
                    ex.finish(); // short: the connection must close
                    None
                }
                "/stream" => {
                    ex.start_stream(200, &[("X-Kind", "stream")]);
                    ex.send_chunk(b"abc");
                    ex.finish();
                    None
                }
                "/twice" => {
                    ex.respond(Response::text(200, "one"));
                    ex.respond(Response::text(200, "two"));
                    None
                }
                "/forever" => {
                    ex.set_timer(Duration::from_secs(3600), 1);
                    Some(Left(0))
                }
                _ => {
                    ex.respond(Response::text(200, "plain"));
                    None
                }
            }
        }
        fn on_writable(&mut self, left: &mut Left, ex: &mut Exchange<'_>) {
            let n = left.0.min(3);
            ex.send_chunk_owned(vec![b'x'; n as usize]);
            left.0 -= n;
            if left.0 == 0 {
                ex.finish();
            } else {
                ex.want_writable();
            }
        }
        fn on_cancel(&mut self, _task: Left) {
            self.cancelled += 1;
        }
    }

    fn text(out: Vec<u8>) -> String {
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn sized_stream_paced_by_writable_keeps_order() {
        let mut app = Streams::default();
        let mut c = SimConn::new(Limits::default());
        c.send(
            &mut app,
            b"GET /sized HTTP/1.1\r\nHost: x\r\n\r\nGET /p HTTP/1.1\r\nHost: x\r\n\r\n",
        );
        let first = text(c.take_output());
        assert!(first.contains("Content-Length: 10\r\n"));
        assert!(first.ends_with("0123"), "later response held back: {first}");
        for _ in 0..10 {
            c.writable(&mut app);
        }
        let all = first + &text(c.take_output());
        assert_eq!(
            responses(&all),
            vec![(200, "0123xxxxxx".into()), (200, "plain".into())]
        );
        assert!(!c.is_closed());
    }

    #[test]
    fn head_of_sized_stream_has_length_only() {
        let mut app = Streams::default();
        let mut c = SimConn::new(Limits::default());
        c.send(&mut app, b"HEAD /sized HTTP/1.1\r\nHost: x\r\n\r\n");
        for _ in 0..10 {
            c.writable(&mut app);
        }
        let out = text(c.take_output());
        assert!(out.contains("Content-Length: 10\r\n"));
        assert!(out.ends_with("\r\n\r\n"), "{out:?}");
    }

    #[test]
    fn short_sized_stream_closes() {
        let mut app = Streams::default();
        let mut c = SimConn::new(Limits::default());
        c.send(
            &mut app,
            b"GET /short HTTP/1.1\r\nHost: x\r\n\r\nGET /p HTTP/1.1\r\nHost: x\r\n\r\n",
        );
        let out = text(c.take_output());
        assert!(out.ends_with("\r\n\r\n01"), "{out:?}");
        assert!(c.is_closed());
        assert_eq!(c.counters().app_errors, 2);
    }

    #[test]
    fn http10_stream_is_close_delimited() {
        let mut app = Streams::default();
        let mut c = SimConn::new(Limits::default());
        c.send(
            &mut app,
            b"GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /p HTTP/1.0\r\n\r\n",
        );
        let out = text(c.take_output());
        assert!(!out.contains("Transfer-Encoding"));
        assert!(out.contains("Connection: close\r\n"));
        assert!(out.ends_with("\r\n\r\nabc"), "{out:?}");
        assert!(c.is_closed());
    }

    #[test]
    fn http11_stream_is_chunked() {
        let mut app = Streams::default();
        let mut c = SimConn::new(Limits::default());
        c.send(&mut app, b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n");
        let out = text(c.take_output());
        assert!(out.contains("Transfer-Encoding: chunked\r\nX-Kind: stream\r\n"));
        assert!(out.ends_with("\r\n\r\n3\r\nabc\r\n0\r\n\r\n"), "{out:?}");
    }

    #[test]
    fn answering_twice_is_counted_not_sent() {
        let mut app = Streams::default();
        let mut c = SimConn::new(Limits::default());
        c.send(&mut app, b"GET /twice HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(responses(&text(c.take_output())), vec![(200, "one".into())]);
        assert_eq!(c.counters().app_errors, 1);
    }

    #[test]
    fn unfinished_tasks_are_cancelled_on_close() {
        let mut app = Streams::default();
        let mut c = SimConn::new(Limits::default());
        c.send(
            &mut app,
            b"GET /forever HTTP/1.1\r\nHost: x\r\n\r\nGET /forever HTTP/1.1\r\nHost: x\r\n\r\n",
        );
        c.close(&mut app);
        assert_eq!(app.cancelled, 2);
    }

    /// Offloads `/job/N` (doubling N on the pool), `/boom` (a panicking job); answers
    /// anything else at once.
    #[derive(Default)]
    struct Offloader {
        cancelled: usize,
    }

    /// The N a job was asked for.
    struct Job(u64);

    impl App for Offloader {
        type Task = Job;
        fn on_request(&mut self, req: &Request<'_>, ex: &mut Exchange<'_>) -> Option<Job> {
            let path = req.path();
            let job = if path == "/boom" {
                ex.offload(|| -> u64 { panic!("deliberate") }).map(|()| 0)
            } else if let Some(n) = path.strip_prefix("/job/") {
                let n: u64 = n.parse().unwrap();
                ex.offload(move || n * 2).map(|()| n)
            } else {
                ex.respond(Response::text(200, "plain"));
                return None;
            };
            match job {
                Ok(n) => Some(Job(n)),
                Err(e) => {
                    ex.respond(Response::text(503, &format!("{e}")));
                    None
                }
            }
        }
        fn on_offload_done(
            &mut self,
            job: &mut Job,
            result: crate::http1::app::OffloadResult,
            ex: &mut Exchange<'_>,
        ) {
            match result {
                Ok(v) => {
                    let v = v.downcast::<u64>().unwrap();
                    assert_eq!(*v, job.0 * 2);
                    ex.respond(Response::text(200, &format!("{}={v}", job.0)));
                }
                Err(p) => ex.respond(Response::text(500, &p.message)),
            }
        }
        fn on_cancel(&mut self, _task: Job) {
            self.cancelled += 1;
        }
    }

    #[test]
    fn offload_results_find_their_exchange_and_keep_order() {
        let mut app = Offloader::default();
        let mut c = SimConn::new(Limits::default());
        c.send(
            &mut app,
            b"GET /job/1 HTTP/1.1\r\nHost: x\r\n\r\nGET /p HTTP/1.1\r\nHost: x\r\n\r\n\
              GET /job/2 HTTP/1.1\r\nHost: x\r\n\r\nGET /boom HTTP/1.1\r\nHost: x\r\n\r\n\
              GET /q HTTP/1.1\r\nHost: x\r\n\r\n",
        );
        assert_eq!(c.pending_offloads(), 3);
        assert_eq!(
            c.take_output(),
            b"",
            "nothing may pass the first, offloaded, response"
        );
        // Results come back out of order: newest first.
        while c.run_newest_offload(&mut app) {}
        assert_eq!(
            responses(&text(c.take_output())),
            vec![
                (200, "1=2".into()),
                (200, "plain".into()),
                (200, "2=4".into()),
                (500, "deliberate".into()),
                (200, "plain".into()),
            ]
        );
        let k = c.counters();
        assert_eq!(
            (k.offload_submitted, k.offload_delivered, k.offload_panicked),
            (3, 3, 1)
        );
        assert!(
            !c.is_closed(),
            "a panicking job costs its response, not the connection"
        );
    }

    #[test]
    fn full_offload_queue_is_refused_at_once() {
        let mut app = Offloader::default();
        let mut c = SimConn::new(Limits::default());
        c.set_offload_queue(1);
        c.send(
            &mut app,
            b"GET /job/1 HTTP/1.1\r\nHost: x\r\n\r\nGET /job/2 HTTP/1.1\r\nHost: x\r\n\r\n",
        );
        assert_eq!(c.pending_offloads(), 1);
        c.run_offloads(&mut app, 10);
        let r = responses(&text(c.take_output()));
        assert_eq!(r[0], (200, "1=2".into()));
        assert_eq!(r[1], (503, "the offload queue is full".into()));
        assert_eq!(c.counters().offload_refused, 1);
    }

    #[test]
    fn closing_before_the_result_cancels_the_task() {
        let mut app = Offloader::default();
        let mut c = SimConn::new(Limits::default());
        c.send(&mut app, b"GET /job/1 HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(c.pending_offloads(), 1);
        c.close(&mut app);
        assert_eq!(app.cancelled, 1);
    }

    #[test]
    fn paused_input_is_redelivered() {
        let mut app = Streams::default();
        let limits = Limits {
            max_pipelined: 1,
            ..Limits::default()
        };
        let mut c = SimConn::new(limits);
        c.send(
            &mut app,
            b"GET /sized HTTP/1.1\r\nHost: x\r\n\r\nGET /p HTTP/1.1\r\nHost: x\r\n\r\n",
        );
        assert!(c.is_paused());
        assert!(c.unread() > 0);
        for _ in 0..10 {
            c.writable(&mut app);
        }
        assert!(!c.is_paused());
        assert_eq!(c.unread(), 0);
        assert_eq!(responses(&text(c.take_output())).len(), 2);
    }
}
