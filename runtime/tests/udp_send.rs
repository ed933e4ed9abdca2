//! `ShardIo::send_to`: a shard sends datagrams outside `on_datagram` (from `on_start`
//! and from a shard timer) and receives the answers on its own UDP socket.

use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc;
use std::time::Duration;

use ringmaster_runtime::{Close, Handler, Input, Io, Server, ShardEvent, ShardIo};

/// A UDP client shard: sends "start" from `on_start` and "timer" from a shard timer to
/// `peer`, and reports every datagram it receives (and the results of `send_to`).
struct Client {
    peer: SocketAddr,
    events: mpsc::Sender<String>,
}

impl Handler for Client {
    type Conn = ();

    fn on_open(&mut self, _peer: SocketAddr, io: &mut Io<'_>) {
        io.abort();
    }

    fn on_data(&mut self, _c: &mut (), input: &mut Input<'_>, _io: &mut Io<'_>) {
        input.consume_all();
    }

    fn on_close(&mut self, _c: (), _why: Close) {}

    fn on_shard(&mut self, event: ShardEvent<'_>, shard: &mut ShardIo<'_>) {
        match event {
            ShardEvent::Start => {
                let ok = shard.send_to(self.peer, b"start");
                let _ = self.events.send(format!("sent start {ok}"));
                shard.set_timer(Duration::from_millis(5), 7);
            }
            ShardEvent::Timer(tag) => {
                let ok = shard.send_to(self.peer, b"timer");
                let _ = self.events.send(format!("sent timer {ok} {tag}"));
            }
            ShardEvent::Datagram { peer, payload } => {
                let text = String::from_utf8_lossy(payload);
                let _ = self
                    .events
                    .send(format!("got {text} from peer {}", peer == self.peer));
            }
            _ => {}
        }
    }
}

#[test]
fn a_shard_sends_datagrams_from_on_start_and_timers_and_gets_the_answers() {
    // The far end: echoes "echo:" + payload to whoever sent it.
    let far = UdpSocket::bind("127.0.0.1:0").unwrap();
    far.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let peer = far.local_addr().unwrap();

    let server = Server::builder()
        .tcp(false)
        .udp(true)
        .listen("127.0.0.1:0".parse().unwrap())
        .shards(1)
        .offload_threads(0)
        .handle_signals(false)
        .build()
        .unwrap();
    let local = server.local_addr();
    assert_ne!(
        local.port(),
        0,
        "the UDP socket's port is known before start"
    );
    let (tx, rx) = mpsc::channel();
    let running = server
        .start(move |_| Client {
            peer,
            events: tx.clone(),
        })
        .unwrap();

    let mut buf = [0u8; 64];
    let mut seen = Vec::new();
    for _ in 0..2 {
        let (n, from) = far.recv_from(&mut buf).expect("a datagram from the shard");
        assert_eq!(from, local, "sent from the shard's own UDP socket");
        let mut reply = b"echo:".to_vec();
        reply.extend_from_slice(&buf[..n]);
        far.send_to(&reply, from).unwrap();
        seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    seen.sort();
    assert_eq!(seen, ["start", "timer"]);

    let mut events = Vec::new();
    while events
        .iter()
        .filter(|e: &&String| e.starts_with("got"))
        .count()
        < 2
    {
        events.push(
            rx.recv_timeout(Duration::from_secs(10))
                .expect("the shard reports the answers"),
        );
    }
    running.shutdown_handle().shutdown();
    let report = running.wait().unwrap();
    events.sort();
    assert_eq!(
        events,
        [
            "got echo:start from peer true",
            "got echo:timer from peer true",
            "sent start true",
            "sent timer true 7",
        ]
    );
    let c = &report.shards[0];
    assert_eq!((c.datagrams_out, c.datagrams_in), (2, 2));
    assert_eq!(c.udp_send_dropped, 0);
}

/// Without a UDP socket, `send_to` refuses and counts the drop.
struct NoUdp {
    result: mpsc::Sender<bool>,
}

impl Handler for NoUdp {
    type Conn = ();

    fn on_open(&mut self, _peer: SocketAddr, io: &mut Io<'_>) {
        io.abort();
    }

    fn on_data(&mut self, _c: &mut (), input: &mut Input<'_>, _io: &mut Io<'_>) {
        input.consume_all();
    }

    fn on_close(&mut self, _c: (), _why: Close) {}

    fn on_shard(&mut self, event: ShardEvent<'_>, shard: &mut ShardIo<'_>) {
        if let ShardEvent::Start = event {
            let ok = shard.send_to("127.0.0.1:9".parse().unwrap(), b"nowhere");
            let _ = self.result.send(ok);
            shard.shutdown_all();
        }
    }
}

#[test]
fn send_to_without_a_udp_socket_is_refused_and_counted() {
    let server = Server::builder()
        .tcp(false)
        .shards(1)
        .offload_threads(0)
        .handle_signals(false)
        .build()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let report = server.serve(move |_| NoUdp { result: tx.clone() }).unwrap();
    assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok(false));
    let c = &report.shards[0];
    assert_eq!((c.udp_send_dropped, c.datagrams_out), (1, 0));
}

/// Sends `n` datagrams of `size` bytes (byte `i` of datagram `k` is `k + i`) to `peer`
/// from `on_start`, in one turn.
struct Burst {
    peer: SocketAddr,
    n: u8,
    size: usize,
}

impl Handler for Burst {
    type Conn = ();

    fn on_open(&mut self, _peer: SocketAddr, io: &mut Io<'_>) {
        io.abort();
    }

    fn on_data(&mut self, _c: &mut (), input: &mut Input<'_>, _io: &mut Io<'_>) {
        input.consume_all();
    }

    fn on_close(&mut self, _c: (), _why: Close) {}

    fn on_shard(&mut self, event: ShardEvent<'_>, shard: &mut ShardIo<'_>) {
        if let ShardEvent::Start = event {
            for k in 0..self.n {
                let d: Vec<u8> = (0..self.size).map(|i| k.wrapping_add(i as u8)).collect();
                assert!(shard.send_to(self.peer, &d));
            }
        }
    }
}

#[test]
fn with_gso_a_burst_of_one_size_still_arrives_as_separate_datagrams() {
    let far = UdpSocket::bind("127.0.0.1:0").unwrap();
    far.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let peer = far.local_addr().unwrap();
    let (n, size) = (100u8, 300usize);
    let server = Server::builder()
        .tcp(false)
        .udp(true)
        .udp_gso(true)
        .listen("127.0.0.1:0".parse().unwrap())
        .shards(1)
        .offload_threads(0)
        .handle_signals(false)
        .build()
        .unwrap();
    let running = server.start(move |_| Burst { peer, n, size }).unwrap();
    let mut buf = vec![0u8; 65536];
    for k in 0..n {
        let (len, _) = far.recv_from(&mut buf).expect("every datagram arrives");
        let want: Vec<u8> = (0..size).map(|i| k.wrapping_add(i as u8)).collect();
        assert!(buf[..len] == want[..], "datagram {k} differs");
    }
    running.shutdown_handle().shutdown();
    let report = running.wait().unwrap();
    let c = &report.shards[0];
    assert_eq!((c.datagrams_out, c.udp_send_errors), (u64::from(n), 0));
    assert_eq!(c.bytes_out, u64::from(n) * size as u64);
}
