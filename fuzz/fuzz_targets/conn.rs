//! A whole connection driven from memory: arbitrary bytes, split at arbitrary points,
//! through the HTTP/1.1 state machine with an application that answers now, later (on
//! a timer) or as a paced stream. Never panics; after a close nothing more is written.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use ringmaster_protocols::http1::sim::SimConn;
use ringmaster_protocols::http1::{App, Exchange, Limits, Request, Response};

struct Fuzzed;

impl App for Fuzzed {
    type Task = u8;
    fn on_request(&mut self, req: &Request<'_>, ex: &mut Exchange<'_>) -> Option<u8> {
        match req.path().as_bytes().get(1).copied().unwrap_or(0) % 4 {
            0 => {
                ex.respond(Response::new(200).body(req.body()));
                None
            }
            1 => {
                ex.set_timer(Duration::from_millis(1), 7);
                Some(0)
            }
            2 => {
                ex.start_sized(200, &[("X", "y")], 6);
                ex.want_writable();
                Some(0)
            }
            _ => {
                ex.start_stream(200, &[]);
                ex.send_chunk(req.body());
                ex.set_timer(Duration::from_millis(2), 1);
                Some(0)
            }
        }
    }
    fn on_timer(&mut self, _task: &mut u8, tag: u32, ex: &mut Exchange<'_>) {
        if tag == 7 {
            ex.respond(Response::text(200, "later"));
        } else {
            ex.finish();
        }
    }
    fn on_writable(&mut self, n: &mut u8, ex: &mut Exchange<'_>) {
        ex.send_chunk(b"abc");
        *n += 1;
        if *n == 2 {
            ex.finish();
        } else {
            ex.want_writable();
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let limits = Limits {
        max_request_line: 128,
        max_header_bytes: 512,
        max_headers: 8,
        max_body: 256,
        max_pipelined: usize::from(mode % 4) + 1,
        ..Limits::default()
    };
    let mut app = Fuzzed;
    let mut conn = SimConn::new(limits);
    // Split the input into pieces at bytes equal to the mode byte (a cheap way to let
    // the fuzzer choose the boundaries).
    for piece in rest.split_inclusive(|&b| b == mode) {
        conn.send(&mut app, piece);
        if mode & 0x10 != 0 {
            conn.fire_next_timer(&mut app);
            conn.writable(&mut app);
        }
        if conn.is_closed() {
            let _ = conn.take_output();
            conn.send(&mut app, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
            assert!(conn.take_output().is_empty(), "output after close");
            return;
        }
    }
    for _ in 0..64 {
        conn.fire_all_timers(&mut app, 16);
        conn.writable(&mut app);
    }
    if mode & 0x20 != 0 {
        conn.client_eof();
    } else {
        conn.expire_deadline();
    }
    conn.close(&mut app);
});
