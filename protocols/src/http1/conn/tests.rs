//! Unit tests of the connection state machine, and the recording port and test
//! application that `sim` and the property tests reuse.

use super::*;
use crate::http1::encode::DATE_LEN;
use crate::http1::port::PortTimer;
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
    /// What `backlog` reports: output the simulated peer has not read.
    pub backlog: usize,
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
            backlog: 0,
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
    fn date(&self) -> &[u8; DATE_LEN] {
        b"Thu, 01 Jan 1970 00:00:00 GMT"
    }
    fn set_timer(&mut self, after: Duration, tag: u64) -> PortTimer {
        self.timers.push((after, tag));
        PortTimer::Local(self.timers.len() as u64 - 1)
    }
    fn cancel_timer(&mut self, _key: PortTimer) -> bool {
        // Timers here are fired by hand; none is ever cancelled.
        false
    }
    fn want_writable(&mut self) {
        self.writable_asked += 1;
    }
    fn backlog(&self) -> usize {
        self.backlog
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
    let (seq, tag) = crate::http1::timer_tag::split_app_tag(tag_stream).unwrap();
    c.app_timer(&mut app, seq, tag, &limits, &mut port);
    assert_eq!(port.out, b"");
    let (_, tag_later) = port.timers[0];
    let (seq, tag) = crate::http1::timer_tag::split_app_tag(tag_later).unwrap();
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
    let (seq, tag) = crate::http1::timer_tag::split_app_tag(port.timers[0].1).unwrap();
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
    let (seq, tag) = crate::http1::timer_tag::split_app_tag(port.timers[0].1).unwrap();
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
    let big =
        b"POST /p HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 99999999\r\n\r\n";
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
    let (seq, tag) = crate::http1::timer_tag::split_app_tag(port.timers[0].1).unwrap();
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
    let (seq, tag) = crate::http1::timer_tag::split_app_tag(port.timers[0].1).unwrap();
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

#[test]
fn call_outcomes_reach_their_exchange_in_order_and_stale_ones_are_dropped() {
    use crate::http1::compose::RoutedCall;
    use ringmaster_runtime::CallError;
    let (mut c, mut app, mut port, limits) = setup();
    let input = b"GET /later/1 HTTP/1.1\r\nHost: x\r\n\r\n\
        GET /later/2 HTTP/1.1\r\nHost: x\r\n\r\n";
    feed(&mut c, &mut app, &mut port, &limits, input);
    let routed = |seq| RoutedCall {
        seq,
        value: Box::new(()),
    };
    // The second exchange's outcome first: the default `on_call_done` answers 500,
    // held behind the first.
    c.call_done(&mut app, routed(1), &limits, &mut port);
    assert_eq!(port.out, b"");
    c.call_done(&mut app, routed(0), &limits, &mut port);
    let r = responses(&port.take());
    assert_eq!(r.iter().map(|r| r.0).collect::<Vec<_>>(), vec![500, 500]);
    assert_eq!(port.counters.calls_delivered, 2);
    // For an exchange that finished, or a failure with no call outstanding: dropped.
    c.call_done(&mut app, routed(0), &limits, &mut port);
    c.call_failed(&mut app, CallError::ShardGone, &limits, &mut port);
    c.notifier_dropped(&mut app, 7, &limits, &mut port);
    assert_eq!(port.out, b"");
    assert_eq!(port.counters.calls_stale, 2);
    assert_eq!(port.counters.notify_stale, 1);
    assert!(!port.closed);
}
