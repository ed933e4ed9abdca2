//! Batched waits (`Config::batch`, `batch_wait_us`) apply only after a busy turn: a lone
//! request is answered at once however long a batch may wait, and under load every
//! message still comes back whole.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use ringmaster_runtime::Server;

mod common;

use common::Echo;

fn echo_server(batch: usize, wait_us: u32) -> ringmaster_runtime::Running {
    let server = Server::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .shards(1)
        .offload_threads(0)
        .handle_signals(false)
        .batch(batch)
        .batch_wait_us(wait_us)
        .build()
        .unwrap();
    server.start(|_| Echo).unwrap()
}

fn round_trip(c: &mut TcpStream, msg: &[u8]) {
    c.write_all(msg).unwrap();
    let mut back = vec![0u8; msg.len()];
    c.read_exact(&mut back).unwrap();
    assert_eq!(back, msg);
}

#[test]
fn a_lone_request_does_not_wait_for_a_batch() {
    // A batch may wait 2 s: were every turn to wait, 20 round trips would take 40 s.
    let running = echo_server(64, 2_000_000);
    let mut c = TcpStream::connect(running.local_addr()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let start = Instant::now();
    for i in 0..20u8 {
        round_trip(&mut c, &[i; 100]);
    }
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "20 lone round trips took {took:?}: a turn waited for a batch"
    );
    drop(c);
    running.shutdown_handle().shutdown();
    running.wait().unwrap();
}

#[test]
fn under_load_every_message_comes_back() {
    let running = echo_server(16, 500);
    let addr = running.local_addr();
    let clients: Vec<_> = (0..32u8)
        .map(|k| {
            std::thread::spawn(move || {
                let mut c = TcpStream::connect(addr).unwrap();
                c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                for i in 0..200u32 {
                    let mut msg = vec![k; 64];
                    msg[..4].copy_from_slice(&i.to_be_bytes());
                    round_trip(&mut c, &msg);
                }
            })
        })
        .collect();
    for t in clients {
        t.join().unwrap();
    }
    running.shutdown_handle().shutdown();
    running.wait().unwrap();
}
