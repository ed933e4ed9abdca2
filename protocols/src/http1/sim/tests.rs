//! Tests of the exchange API driven through the simulator: streams, offload, timers.

use super::*;
use crate::http1::conn::tests::responses;
use crate::http1::{AppTimer, Exchange, Request, Response};
use ringmaster_runtime::{OffloadDone, Offloaded};

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

/// The N a job was asked for, and the handle that reads its result.
struct Job(u64, Offloaded<u64>);

impl App for Offloader {
    type Task = Job;
    fn on_request(&mut self, req: &Request<'_>, ex: &mut Exchange<'_>) -> Option<Job> {
        let path = req.path();
        let job = if path == "/boom" {
            ex.offload(|| -> u64 { panic!("deliberate") })
                .map(|h| Job(0, h))
        } else if let Some(n) = path.strip_prefix("/job/") {
            let n: u64 = n.parse().unwrap();
            ex.offload(move || n * 2).map(|h| Job(n, h))
        } else {
            ex.respond(Response::text(200, "plain"));
            return None;
        };
        match job {
            Ok(job) => Some(job),
            Err(e) => {
                ex.respond(Response::text(503, &format!("{e}")));
                None
            }
        }
    }
    fn on_offload_done(&mut self, job: &mut Job, done: OffloadDone, ex: &mut Exchange<'_>) {
        match job.1.result(done) {
            Ok(v) => {
                assert_eq!(v, job.0 * 2);
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

/// Arms application timers and cancels some: `/cancel` arms tags 1 and 2 and cancels 1;
/// `/late` arms tag 5 and, when it fires, tries to cancel it.
#[derive(Default)]
struct Timers {
    /// Tags that reached `on_timer`, in order.
    fired: Vec<u32>,
    /// What each cancel returned, in order.
    cancels: Vec<bool>,
}

impl App for Timers {
    type Task = AppTimer;
    fn on_request(&mut self, req: &Request<'_>, ex: &mut Exchange<'_>) -> Option<AppTimer> {
        match req.path() {
            "/cancel" => {
                let first = ex.set_timer(Duration::from_millis(10), 1);
                let second = ex.set_timer(Duration::from_millis(20), 2);
                self.cancels.push(ex.cancel_timer(first));
                self.cancels.push(ex.cancel_timer(first));
                Some(second)
            }
            "/late" => Some(ex.set_timer(Duration::from_millis(1), 5)),
            _ => {
                ex.respond(Response::text(200, "plain"));
                None
            }
        }
    }
    fn on_timer(&mut self, timer: &mut AppTimer, tag: u32, ex: &mut Exchange<'_>) {
        self.fired.push(tag);
        self.cancels.push(ex.cancel_timer(*timer));
        ex.respond(Response::text(200, &format!("fired {tag}")));
    }
}

#[test]
fn cancelled_timer_never_reaches_the_app() {
    let mut app = Timers::default();
    let mut c = SimConn::new(Limits::default());
    c.send(&mut app, b"GET /cancel HTTP/1.1\r\nHost: x\r\n\r\n");
    c.fire_all_timers(&mut app, 10);
    assert_eq!(app.fired, vec![2], "only the timer left armed fires");
    assert_eq!(
        app.cancels,
        vec![true, false, false],
        "a second cancel, and a cancel from inside the timer's own callback, find nothing"
    );
    assert_eq!(
        responses(&text(c.take_output())),
        vec![(200, "fired 2".into())]
    );
}

#[test]
fn cancel_after_fire_returns_false() {
    let mut app = Timers::default();
    let mut c = SimConn::new(Limits::default());
    c.send(&mut app, b"GET /late HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(c.fire_next_timer(&mut app));
    assert!(!c.fire_next_timer(&mut app), "nothing else was armed");
    assert_eq!(app.fired, vec![5]);
    assert_eq!(app.cancels, vec![false]);
    assert_eq!(
        responses(&text(c.take_output())),
        vec![(200, "fired 5".into())]
    );
}
