//! Backpressure between linked connections (`Io::link`): 1 GiB relayed from a fast
//! writer through the server to a slow reader keep the server's memory bounded. Its own
//! test binary, so the process's RSS is this test's alone.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ringmaster_runtime::{Close, ConnToken, Event, Handler, Input, Io, Server};

const TOTAL: usize = 1 << 30;
const LIMIT: usize = 1 << 20;

/// Pairs the first two connections and links them; what one sends goes to the other.
#[derive(Default)]
struct Relay {
    waiting: Option<ConnToken>,
}

struct Partner(ConnToken);

impl Handler for Relay {
    type Conn = Option<ConnToken>;
    fn on_open(&mut self, _peer: SocketAddr, io: &mut Io<'_>) -> Option<ConnToken> {
        match self.waiting.take() {
            Some(first) => {
                io.post(first, Partner(io.token()));
                io.link(first);
                Some(first)
            }
            None => {
                self.waiting = Some(io.token());
                None
            }
        }
    }
    fn on_data(&mut self, c: &mut Option<ConnToken>, input: &mut Input<'_>, io: &mut Io<'_>) {
        if let Some(peer) = *c {
            io.write_to(peer, input.bytes());
            input.consume_all();
        }
    }
    fn on_event(&mut self, c: &mut Option<ConnToken>, event: Event<'_>, io: &mut Io<'_>) {
        match event {
            Event::Posted(p) => *c = Some(p.take::<Partner>().unwrap().0),
            Event::Eof => {
                if let Some(peer) = *c {
                    io.close_conn(peer);
                }
                io.close();
            }
            other => other.default_action(io),
        }
    }
    fn on_close(&mut self, _c: Option<ConnToken>, _why: Close) {}
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

#[test]
fn a_relay_to_a_slow_reader_stays_within_bounded_memory() {
    let running = Server::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .shards(1)
        .offload_threads(0)
        .write_backlog_limit(LIMIT)
        .handle_signals(false)
        .build()
        .unwrap()
        .start(|_| Relay::default())
        .unwrap();
    let addr = running.local_addr();
    let mut reader = TcpStream::connect(addr).unwrap();
    reader
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let mut writer = TcpStream::connect(addr).unwrap();
    std::thread::sleep(Duration::from_millis(50));

    let base = rss_bytes();
    let peak = Arc::new(AtomicU64::new(base));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss_bytes(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let sender = std::thread::spawn(move || {
        let chunk: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
        for _ in 0..TOTAL / chunk.len() {
            writer.write_all(&chunk).unwrap();
        }
        writer.shutdown(std::net::Shutdown::Write).unwrap();
        let mut rest = Vec::new();
        let _ = writer.read_to_end(&mut rest);
    });
    // The slow side: at most 256 KiB per millisecond.
    let mut buf = vec![0u8; 256 * 1024];
    let mut got = 0usize;
    loop {
        let n = reader.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        for (i, b) in buf[..n].iter().enumerate() {
            assert_eq!(
                *b,
                ((got + i) % (64 * 1024) % 251) as u8,
                "byte {}",
                got + i
            );
        }
        got += n;
        std::thread::sleep(Duration::from_millis(1));
    }
    sender.join().unwrap();
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    assert_eq!(got, TOTAL);
    running.shutdown_handle().shutdown();
    let report = running.wait().unwrap();
    let grew = peak.load(Ordering::Relaxed).saturating_sub(base);
    eprintln!(
        "relayed {} MiB; RSS grew by at most {} KiB; backpressure pauses: {}",
        TOTAL >> 20,
        grew >> 10,
        report.shards[0].backpressure_pauses
    );
    assert!(
        report.shards[0].backpressure_pauses > 0,
        "the reader was never slower"
    );
    assert_eq!(report.shards[0].input_overflow, 0);
    // Measured: 6-61 MiB with the link (the buffer ring's pages, a turn's worth of
    // input in flight, allocator slack), 260 MiB without it.
    assert!(grew < 100 << 20, "RSS grew by {} MiB", grew >> 20);
}
