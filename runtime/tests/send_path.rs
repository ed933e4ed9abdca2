//! The send path end to end: many pipelined requests whose responses mix copied writes,
//! zero-copy owned buffers and static bodies, read slowly by the client so that the
//! kernel takes short sends and zero-copy notifications lag behind. Every byte must
//! arrive, in order.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use ringmaster_runtime::{Close, Handler, Input, Io, Segment, Server};

const REQUESTS: usize = 200;
const BODY: usize = 96 * 1024;
static TRAILER: &[u8] = b"-static-trailer-\n";

fn body(i: usize) -> Vec<u8> {
    (0..BODY).map(|j| (i.wrapping_mul(31) + j) as u8).collect()
}

fn response(i: usize) -> Vec<u8> {
    let mut r = format!("R{i}:").into_bytes();
    r.extend_from_slice(&body(i));
    r.extend_from_slice(b"|end\n");
    r.extend_from_slice(TRAILER);
    r
}

struct Bodies;

impl Handler for Bodies {
    /// Requests answered on this connection.
    type Conn = usize;
    fn on_open(&mut self, _peer: SocketAddr, _io: &mut Io<'_>) -> usize {
        0
    }
    fn on_data(&mut self, n: &mut usize, input: &mut Input<'_>, io: &mut Io<'_>) {
        let lines = input.bytes().iter().filter(|b| **b == b'\n').count();
        let last = input.bytes().iter().rposition(|b| *b == b'\n');
        for _ in 0..lines {
            io.write(format!("R{n}:").as_bytes());
            io.push(Segment::Owned(body(*n)));
            io.write(b"|end\n");
            io.send_static(TRAILER);
            *n += 1;
        }
        if let Some(p) = last {
            input.consume(p + 1);
        }
    }
    fn on_close(&mut self, _n: usize, _why: Close) {}
}

#[test]
fn pipelined_zero_copy_and_copied_output_survives_short_sends() {
    let server = Server::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .shards(1)
        .offload_threads(0)
        .handle_signals(false)
        .zero_copy_threshold(4096)
        // Keep SEND_ZC on loopback (where the kernel copies anyway) to exercise the
        // buffer lifetime.
        .zero_copy_fallback(false)
        .write_backlog_limit(64 << 20)
        .build()
        .unwrap();
    let running = server.start(|_| Bodies).unwrap();
    let mut client = TcpStream::connect(running.local_addr()).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    // Requests in small pipelined batches, none read yet: the socket buffers fill and
    // the server's sends come back short.
    for _ in 0..REQUESTS / 10 {
        client.write_all(&b"x\n".repeat(10)).unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    let want: Vec<u8> = (0..REQUESTS).flat_map(response).collect();
    let mut got = vec![0u8; want.len()];
    let mut at = 0;
    while at < got.len() {
        // Small reads: a slow reader.
        let end = (at + 7 * 1024).min(got.len());
        let n = client.read(&mut got[at..end]).expect("response bytes");
        assert!(n > 0, "closed early at {at} of {}", got.len());
        at += n;
    }
    assert!(got == want, "responses arrived whole and in order");
    drop(client);
    running.shutdown_handle().shutdown();
    let report = running.wait().unwrap();
    let c = &report.shards[0];
    eprintln!(
        "sends {} zc_sends {} short_sends {}",
        c.sends, c.zc_sends, c.short_sends
    );
    assert_eq!(c.bytes_out as usize, want.len());
    // About 20 MB against a few MB of socket buffers: the kernel must have cut sends.
    assert!(c.short_sends > 0, "short sends were exercised");
    if c.zc_sends > 0 {
        assert!(
            c.zc_sends >= REQUESTS as u64,
            "every owned body went zero-copy"
        );
    }
}
