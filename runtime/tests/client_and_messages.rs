//! Runtime-level tests: outbound connections, shard timers, cross-shard messages and the
//! offload pool, with real sockets on 127.0.0.1.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ringmaster_runtime::{
    Close, Event, Handler, Input, Io, Offloaded, Origin, Server, ShardEvent, ShardIo,
};

/// Echoes; answers "sum:N" lines by offloading the sum of 1..=N; "boom" offloads a panic;
/// "all:TEXT" broadcasts TEXT to every connection on every shard.
struct Peer;

impl Handler for Peer {
    type Conn = ();
    fn on_open(&mut self, _peer: SocketAddr, _io: &mut Io<'_>) {}
    fn on_data(&mut self, _c: &mut (), input: &mut Input<'_>, io: &mut Io<'_>) {
        let text = String::from_utf8_lossy(input.bytes()).to_string();
        input.consume_all();
        if let Some(n) = text.strip_prefix("sum:") {
            let n: u64 = n.trim().parse().unwrap();
            io.offload(move || (1..=n).sum::<u64>()).unwrap();
        } else if text.starts_with("boom") {
            io.offload(|| panic!("deliberate")).unwrap();
        } else if let Some(t) = text.strip_prefix("all:") {
            io.broadcast(Arc::new(t.to_string()));
        } else {
            io.write(text.as_bytes());
        }
    }
    fn on_event(&mut self, _c: &mut (), event: Event<'_>, io: &mut Io<'_>) {
        match event {
            // Every job here returns the sum (or panics).
            Event::Offloaded(done) => match Offloaded::<u64>::new().result(done) {
                Ok(v) => io.write(format!("{v}\n").as_bytes()),
                Err(p) => io.write(format!("panic:{}\n", p.message).as_bytes()),
            },
            Event::Broadcast(msg) => {
                let text = msg.downcast_ref::<String>().unwrap();
                io.write(text.as_bytes());
            }
            other => other.default_action(io),
        }
    }
    fn on_close(&mut self, _c: (), _why: Close) {}
}

fn start_peer(shards: usize) -> (ringmaster_runtime::Running, SocketAddr) {
    let server = Server::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .shards(shards)
        .offload_threads(2)
        .handle_signals(false)
        .build()
        .unwrap();
    let running = server.start(|_| Peer).unwrap();
    let addr = running.local_addr();
    (running, addr)
}

/// Replies collected by the client: (connection tag, bytes).
type Replies = Arc<Mutex<Vec<(u64, Vec<u8>)>>>;

/// A client shard: opens `n` connections, sends each its request, collects replies
/// until each has `want` bytes, then stops the client server.
struct Client {
    target: SocketAddr,
    n: u64,
    request: Vec<u8>,
    want: usize,
    done: u64,
    failed: u64,
    out: Replies,
}

struct ClientConn {
    tag: u64,
    got: Vec<u8>,
}

impl Handler for Client {
    type Conn = ClientConn;
    fn on_shard(&mut self, event: ShardEvent<'_>, shard: &mut ShardIo<'_>) {
        match event {
            ShardEvent::Start => {
                for tag in 0..self.n {
                    shard.connect(self.target, tag);
                }
                // A bound on the whole run, so a bug cannot hang the test.
                shard.set_timer(Duration::from_secs(20), 0);
            }
            ShardEvent::Timer(_) => shard.shutdown_all(),
            ShardEvent::ConnectFailed { .. } => {
                self.failed += 1;
                if self.done + self.failed == self.n {
                    shard.shutdown_all();
                }
            }
            _ => {}
        }
    }
    fn on_open(&mut self, _peer: SocketAddr, io: &mut Io<'_>) -> ClientConn {
        let Origin::Connected { tag } = io.origin() else {
            panic!("client accepted a connection");
        };
        io.write(&self.request);
        ClientConn { tag, got: vec![] }
    }
    fn on_data(&mut self, c: &mut ClientConn, input: &mut Input<'_>, io: &mut Io<'_>) {
        c.got.extend_from_slice(input.bytes());
        input.consume_all();
        if c.got.len() >= self.want {
            self.out
                .lock()
                .unwrap()
                .push((c.tag, std::mem::take(&mut c.got)));
            self.done += 1;
            io.close();
            if self.done + self.failed == self.n {
                io.shutdown_all();
            }
        }
    }
    fn on_close(&mut self, _c: ClientConn, _why: Close) {}
}

fn run_client(target: SocketAddr, n: u64, request: &[u8], want: usize) -> Vec<(u64, Vec<u8>)> {
    let out = Arc::new(Mutex::new(Vec::new()));
    let sink = out.clone();
    let request = request.to_vec();
    let client = Server::builder()
        .tcp(false)
        .shards(1)
        .offload_threads(0)
        .handle_signals(false)
        .build()
        .unwrap();
    let report = client
        .serve(move |_| Client {
            target,
            n,
            request: request.clone(),
            want,
            done: 0,
            failed: 0,
            out: sink.clone(),
        })
        .unwrap();
    assert_eq!(report.shards[0].connected, n);
    let mut v = out.lock().unwrap().clone();
    v.sort();
    v
}

#[test]
fn outbound_connections_echo_and_offload_results_return_to_their_connection() {
    let (peer, addr) = start_peer(2);
    let got = run_client(addr, 50, b"hello ringmaster", 16);
    assert_eq!(got.len(), 50);
    assert!(got.iter().all(|(_, b)| b == b"hello ringmaster"));

    // Each connection asks for a different sum; each must get its own back.
    for n in [10u64, 1000, 123_456] {
        let req = format!("sum:{n}");
        let expect = format!("{}\n", n * (n + 1) / 2);
        let got = run_client(addr, 8, req.as_bytes(), expect.len());
        assert!(got.iter().all(|(_, b)| b == expect.as_bytes()), "{got:?}");
    }

    // A panicking job is an error result; the pool and server keep working.
    let got = run_client(addr, 2, b"boom", "panic:deliberate\n".len());
    assert!(got.iter().all(|(_, b)| b == b"panic:deliberate\n"));
    let got = run_client(addr, 1, b"sum:3", 2);
    assert_eq!(got[0].1, b"6\n");

    peer.shutdown_handle().shutdown();
    let report = peer.wait().unwrap();
    let panicked: u64 = report.shards.iter().map(|c| c.offload_panicked).sum();
    assert_eq!(panicked, 2);
}

#[test]
fn connect_failure_is_reported() {
    // A port nothing listens on.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = free.local_addr().unwrap();
    drop(free);
    let out = Arc::new(Mutex::new(Vec::new()));
    let sink = out.clone();
    let client = Server::builder()
        .tcp(false)
        .shards(1)
        .offload_threads(0)
        .handle_signals(false)
        .build()
        .unwrap();
    let report = client
        .serve(move |_| Client {
            target: addr,
            n: 3,
            request: vec![],
            want: 1,
            done: 0,
            failed: 0,
            out: sink.clone(),
        })
        .unwrap();
    assert_eq!(report.shards[0].connect_errors, 3);
    assert!(out.lock().unwrap().is_empty());
}

#[test]
fn broadcast_reaches_every_connection_on_every_shard_once() {
    let (peer, addr) = start_peer(2);
    // 6 listeners connect first; then one more sends "all:X".
    let mut listeners: Vec<std::net::TcpStream> = (0..6)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut sender = std::net::TcpStream::connect(addr).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    use std::io::{Read, Write};
    sender.write_all(b"all:X").unwrap();
    for s in listeners.iter_mut().chain(std::iter::once(&mut sender)) {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut b = [0u8; 1];
        s.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"X");
        // Exactly once: nothing else arrives.
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        assert!(s.read(&mut b).is_err());
    }
    peer.shutdown_handle().shutdown();
    peer.wait().unwrap();
}
