//! Direct and plain descriptors, as a handler sees them: the peer address `on_open`
//! gets, and a plain descriptor asked for with `Io::request_fd`, on both paths.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use ringmaster_runtime::{Close, Event, Handler, Input, Io, Server};

/// Answers "peer?" with the address `on_open` was given, and "fd?" by asking for a
/// plain descriptor and answering with the peer address that descriptor reports.
struct Probe;

impl Handler for Probe {
    type Conn = SocketAddr;
    fn on_open(&mut self, peer: SocketAddr, _io: &mut Io<'_>) -> SocketAddr {
        peer
    }
    fn on_data(&mut self, peer: &mut SocketAddr, input: &mut Input<'_>, io: &mut Io<'_>) {
        let text = String::from_utf8_lossy(input.bytes()).to_string();
        input.consume_all();
        match text.trim() {
            "peer?" => io.write(format!("{peer}\n").as_bytes()),
            "fd?" => io.request_fd(),
            other => io.write(format!("unknown {other}\n").as_bytes()),
        }
    }
    fn on_event(&mut self, _peer: &mut SocketAddr, event: Event<'_>, io: &mut Io<'_>) {
        match event {
            Event::Fd(Ok(fd)) => {
                let sock = socket2::SockRef::from(&fd);
                let peer = sock.peer_addr().ok().and_then(|a| a.as_socket());
                match peer {
                    Some(p) => io.write(format!("{p}\n").as_bytes()),
                    None => io.write(b"no peer\n"),
                }
                // Dropping the descriptor must not close the connection.
            }
            Event::Fd(Err(e)) => io.write(format!("error {e}\n").as_bytes()),
            other => other.default_action(io),
        }
    }
    fn on_close(&mut self, _peer: SocketAddr, _why: Close) {}
}

fn ask(s: &mut TcpStream, q: &str) -> String {
    s.write_all(q.as_bytes()).unwrap();
    let mut out = Vec::new();
    let mut b = [0u8; 1];
    while !out.ends_with(b"\n") {
        let n = s.read(&mut b).unwrap();
        assert!(n > 0, "closed after {q}");
        out.extend_from_slice(&b[..n]);
    }
    String::from_utf8(out).unwrap().trim().to_string()
}

fn check(direct: bool) {
    let server = Server::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .shards(1)
        .offload_threads(0)
        .direct_descriptors(direct)
        .handle_signals(false)
        .build()
        .unwrap();
    let running = server.start(|_| Probe).unwrap();
    let addr = running.local_addr();
    for _ in 0..3 {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let me = s.local_addr().unwrap().to_string();
        assert_eq!(ask(&mut s, "peer?\n"), me, "on_open's peer");
        assert_eq!(ask(&mut s, "fd?\n"), me, "the requested descriptor's peer");
        // Still open and served after the handler dropped its descriptor.
        assert_eq!(ask(&mut s, "peer?\n"), me);
    }
    running.shutdown_handle().shutdown();
    let report = running.wait().unwrap();
    let closed: u64 = report.shards.iter().map(|c| c.sockets_closed).sum();
    assert_eq!(closed, 3, "every socket closed once");
}

#[test]
fn direct_descriptors_give_the_peer_and_a_plain_descriptor_on_request() {
    check(true);
}

#[test]
fn plain_descriptors_give_the_peer_and_a_duplicate_on_request() {
    check(false);
}
