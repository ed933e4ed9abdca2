//! A complete line protocol on the raw `Handler` API: every line comes back upper-cased;
//! `SLOW <ms>` answers after a shard timer; `HASH <n>` runs n rounds of a hash on the
//! offload pool; `ALL <text>` goes to every connection on every shard. Idle
//! connections get a goodbye after 30 s, from their own timer: the runtime's idle
//! timeout (300 s by default) would reset them without a word.
//!
//! Run: `cargo run --release -p ringmaster-runtime --example shout -- 127.0.0.1:7300`
//! then `nc 127.0.0.1 7300`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ringmaster_runtime::{
    Close, Event, Handler, Input, Io, OffloadError, Offloaded, Server, TimerKey,
};

/// One per shard: plain fields, only this shard's thread touches them.
struct Shout {
    lines: u64,
}

/// Per connection: what the shard keeps for us. Small, no buffers: unconsumed input is
/// kept by the runtime, output by the runtime's send queue.
struct Conn {
    idle: Option<TimerKey>,
    /// The handle of the hash job in progress: it reads the job's `u64` back.
    hash: Option<Offloaded<u64>>,
}

const IDLE_TAG: u64 = 0;
const IDLE: Duration = Duration::from_secs(30);

impl Handler for Shout {
    type Conn = Conn;

    fn on_open(&mut self, _peer: SocketAddr, io: &mut Io<'_>) -> Conn {
        io.write(b"hello\n");
        Conn {
            idle: Some(io.set_timer(IDLE, IDLE_TAG)),
            hash: None,
        }
    }

    fn on_data(&mut self, conn: &mut Conn, input: &mut Input<'_>, io: &mut Io<'_>) {
        // Consume whole lines only; a partial line stays in the runtime's carry-over and
        // comes back, followed by the next bytes, on the next call.
        while let Some(end) = input.bytes().iter().position(|&b| b == b'\n') {
            let line = String::from_utf8_lossy(&input.bytes()[..end])
                .trim()
                .to_string();
            input.consume(end + 1);
            self.lines += 1;
            self.answer(&line, conn, io);
        }
        // Re-arm the idle timer: cancel and set are O(1) on the shard's timer wheel.
        if let Some(k) = conn.idle.take() {
            io.cancel_timer(k);
        }
        conn.idle = Some(io.set_timer(IDLE, IDLE_TAG));
        // Backpressure: past the write-backlog bound the runtime stops reading this
        // connection by itself and resumes when half has drained.
    }

    fn on_event(&mut self, conn: &mut Conn, event: Event<'_>, io: &mut Io<'_>) {
        match event {
            Event::Timer(IDLE_TAG) => {
                conn.idle = None;
                io.write(b"bye (idle)\n");
                io.close(); // after the flush
            }
            Event::Timer(ms) => io.write(format!("slept {ms} ms\n").as_bytes()),
            Event::Offloaded(done) => {
                let Some(job) = conn.hash.take() else { return };
                match job.result(done) {
                    Ok(h) => io.write(format!("hash {h:016x}\n").as_bytes()),
                    Err(panic) => io.write(format!("job failed: {}\n", panic.message).as_bytes()),
                }
            }
            Event::Broadcast(msg) => {
                if let Some(text) = msg.downcast_ref::<String>() {
                    io.write(text.as_bytes());
                }
            }
            Event::Shutdown => {
                io.write(b"server going away\n");
                io.close();
            }
            other => other.default_action(io),
        }
    }

    fn on_close(&mut self, _conn: Conn, _why: Close) {}
}

impl Shout {
    fn answer(&mut self, line: &str, conn: &mut Conn, io: &mut Io<'_>) {
        let (cmd, arg) = line.split_once(' ').unwrap_or((line, ""));
        match cmd {
            "SLOW" => {
                let ms = arg.parse().unwrap_or(100u64).min(10_000);
                io.set_timer(Duration::from_millis(ms), ms.max(1));
            }
            "HASH" => {
                let rounds = arg.parse().unwrap_or(1_000u64).min(100_000_000);
                let job = move || {
                    let mut h = 0xcbf29ce484222325u64;
                    for i in 0..rounds {
                        h = (h ^ i).wrapping_mul(0x100000001b3);
                    }
                    h
                };
                match io.offload(job) {
                    Ok(handle) => conn.hash = Some(handle),
                    Err(OffloadError::QueueFull) => io.write(b"busy, try again\n"),
                    Err(OffloadError::NoPool) => io.write(b"no worker pool\n"),
                }
            }
            "ALL" => io.broadcast(Arc::new(format!("{arg}\n"))),
            _ => {
                io.write(line.to_uppercase().as_bytes());
                io.write(b"\n");
            }
        }
    }
}

fn main() {
    let listen: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7300".into())
        .parse()
        .expect("usage: shout [ADDR]");
    let server = Server::builder()
        .listen(listen)
        .offload_threads(1)
        .build()
        .unwrap_or_else(|e| {
            eprintln!("shout: {e}");
            std::process::exit(1)
        });
    let running = server
        .start(|_shard| Shout { lines: 0 })
        .unwrap_or_else(|e| {
            eprintln!("shout: {e}");
            std::process::exit(1)
        });
    eprintln!(
        "shout listening on {} ({})",
        running.local_addr(),
        running.features()
    );
    // SIGINT/SIGTERM drain (every connection gets `Event::Shutdown`), then this returns.
    let report = running.wait().expect("shards ran");
    for (i, c) in report.shards.iter().enumerate() {
        eprintln!("shard {i}: {c}");
    }
}
