//! Runtime-level tests of composition: notifiers (any thread -> a connection),
//! cross-shard calls (a sharded KV store), connections acting on each other by token,
//! and outbound connect errors and timeouts. Real sockets on 127.0.0.1, every wait
//! bounded.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ringmaster_runtime::{
    CallError, Called, Close, ConnToken, Event, Handler, Input, Io, Notifier, Running, Server,
    ShardEvent, ShardIo,
};

fn start<H: Handler>(
    shards: usize,
    mailbox_calls: usize,
    factory: impl Fn(usize) -> H + Send + Sync + 'static,
) -> (Running, SocketAddr) {
    let server = Server::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .shards(shards)
        .offload_threads(0)
        .mailbox_calls(mailbox_calls)
        .handle_signals(false)
        .build()
        .unwrap();
    let running = server.start(factory).unwrap();
    let addr = running.local_addr();
    (running, addr)
}

fn connect(addr: SocketAddr) -> BufReader<TcpStream> {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    BufReader::new(s)
}

fn send(c: &mut BufReader<TcpStream>, line: &str) {
    c.get_mut().write_all(line.as_bytes()).unwrap();
}

fn line(c: &mut BufReader<TcpStream>) -> String {
    let mut s = String::new();
    c.read_line(&mut s).unwrap();
    s
}

fn ask(c: &mut BufReader<TcpStream>, req: &str) -> String {
    send(c, req);
    line(c)
}

/// Nothing arrives on `c` within `wait`.
fn silent(c: &mut BufReader<TcpStream>, wait: Duration) -> bool {
    c.get_ref().set_read_timeout(Some(wait)).unwrap();
    let mut b = [0u8; 64];
    let quiet = match c.read(&mut b) {
        Ok(n) => {
            eprintln!("unexpected: {:?}", String::from_utf8_lossy(&b[..n]));
            false
        }
        Err(_) => true,
    };
    c.get_ref()
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    quiet
}

fn stop(running: Running) -> ringmaster_runtime::Report {
    running.shutdown_handle().shutdown();
    running.wait().unwrap()
}

fn total(
    report: &ringmaster_runtime::Report,
    f: impl Fn(&ringmaster_runtime::Counters) -> u64,
) -> u64 {
    report.shards.iter().map(f).sum()
}

// ---- notifiers -----------------------------------------------------------------

/// "wait": a thread notifies after 100 ms. "drop": the notifier is dropped unused.
/// "stash": the notifier is kept by the test. Every open connection's token is recorded.
struct Notify {
    stash: Arc<Mutex<Vec<Notifier<String>>>>,
    tokens: Arc<Mutex<Vec<ConnToken>>>,
}

impl Handler for Notify {
    type Conn = ();
    fn on_open(&mut self, _peer: SocketAddr, io: &mut Io<'_>) {
        self.tokens.lock().unwrap().push(io.token());
    }
    fn on_data(&mut self, _c: &mut (), input: &mut Input<'_>, io: &mut Io<'_>) {
        let text = String::from_utf8_lossy(input.bytes()).to_string();
        input.consume_all();
        for cmd in text.lines() {
            match cmd {
                "wait" => {
                    let n = io.notifier::<String>();
                    std::thread::spawn(move || {
                        std::thread::sleep(Duration::from_millis(100));
                        assert!(n.notify("late".into()));
                    });
                }
                "drop" => drop(io.notifier::<String>()),
                "stash" => {
                    self.stash.lock().unwrap().push(io.notifier());
                    io.write(b"stashed\n");
                }
                other => io.write(format!("{other}\n").as_bytes()),
            }
        }
    }
    fn on_event(&mut self, _c: &mut (), event: Event<'_>, io: &mut Io<'_>) {
        match event {
            Event::Notified(n) => {
                let v = n.take::<String>().unwrap();
                io.write(format!("notified:{v}\n").as_bytes());
            }
            Event::NotifierDropped(_) => io.write(b"dropped\n"),
            other => other.default_action(io),
        }
    }
    fn on_close(&mut self, _c: (), _why: Close) {}
}

#[test]
fn a_notifier_delivers_from_another_thread_and_reports_being_dropped() {
    let stash = Arc::new(Mutex::new(Vec::new()));
    let tokens = Arc::new(Mutex::new(Vec::new()));
    let (s, t) = (stash.clone(), tokens.clone());
    let (running, addr) = start(1, 4096, move |_| Notify {
        stash: s.clone(),
        tokens: t.clone(),
    });
    let mut c = connect(addr);
    let began = Instant::now();
    assert_eq!(ask(&mut c, "wait\n"), "notified:late\n");
    assert!(began.elapsed() >= Duration::from_millis(100));
    assert_eq!(ask(&mut c, "drop\n"), "dropped\n");
    // Several pending at once, each answered.
    send(&mut c, "wait\nwait\n");
    assert_eq!(line(&mut c), "notified:late\n");
    assert_eq!(line(&mut c), "notified:late\n");
    drop(c);
    let report = stop(running);
    assert_eq!(total(&report, |c| c.notify_dropped), 0);
}

#[test]
fn a_stale_notifier_is_counted_and_never_reaches_the_slots_next_connection() {
    let stash = Arc::new(Mutex::new(Vec::new()));
    let tokens = Arc::new(Mutex::new(Vec::new()));
    let (s, t) = (stash.clone(), tokens.clone());
    let (running, addr) = start(1, 4096, move |_| Notify {
        stash: s.clone(),
        tokens: t.clone(),
    });
    let mut old = connect(addr);
    assert_eq!(ask(&mut old, "stash\n"), "stashed\n");
    drop(old);
    // The server notices the close and frees the slot; the next connection takes it.
    let mut new = None;
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(20));
        let mut c = connect(addr);
        assert_eq!(ask(&mut c, "hi\n"), "hi\n");
        let t = tokens.lock().unwrap().clone();
        if t.last().unwrap().slot == t[0].slot {
            new = Some(c);
            break;
        }
    }
    let mut new = new.expect("the old connection's slot was never reused");
    let t = tokens.lock().unwrap().clone();
    let notifier = stash.lock().unwrap().pop().unwrap();
    assert_eq!(notifier.token(), t[0]);
    assert_ne!(t.last().unwrap().generation, t[0].generation);
    assert!(notifier.notify("stale".into()));
    assert!(silent(&mut new, Duration::from_millis(300)));
    assert_eq!(ask(&mut new, "still\n"), "still\n");
    drop(notifier); // notified once: no "dropped" either
    assert!(silent(&mut new, Duration::from_millis(200)));
    drop(new);
    let report = stop(running);
    assert_eq!(total(&report, |c| c.notify_dropped), 1);
}

// ---- cross-shard calls: a sharded KV store ----------------------------------------

/// What each shard's `ShardIo::call` from `Start` brought back: (this shard, the answer).
type Started = Arc<Mutex<Vec<(usize, String)>>>;

/// Each key lives on shard hash(key) % shards; every connection reaches every key.
struct Kv {
    id: usize,
    shards: usize,
    map: HashMap<String, String>,
    /// What `ShardIo::call` from `Start` brought back.
    started: Started,
}

/// A call's `String` comes back as a line, a failure as `FAILED <why>`.
fn write_call_outcome(event: Event<'_>, io: &mut Io<'_>) {
    match event {
        Event::CallDone(done) => match Called::<String>::new().result(done) {
            Ok(v) => io.write(format!("{v}\n").as_bytes()),
            Err(e) => io.write(format!("FAILED {e}\n").as_bytes()),
        },
        other => other.default_action(io),
    }
}

fn owner(key: &str, shards: usize) -> usize {
    // FNV-1a: the same on every shard and every run.
    let h = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    (h % shards as u64) as usize
}

impl Handler for Kv {
    type Conn = ();
    fn on_open(&mut self, _peer: SocketAddr, _io: &mut Io<'_>) {}
    fn on_data(&mut self, _c: &mut (), input: &mut Input<'_>, io: &mut Io<'_>) {
        let text = String::from_utf8_lossy(input.bytes()).to_string();
        input.consume_all();
        for cmd in text.lines() {
            let words: Vec<String> = cmd.split_whitespace().map(String::from).collect();
            let sent = match words.iter().map(String::as_str).collect::<Vec<_>>()[..] {
                ["set", k, v] => {
                    let (k, v) = (k.to_string(), v.to_string());
                    io.call::<Kv, String>(owner(&k, self.shards), move |h, _| {
                        h.map.insert(k, v);
                        "OK".to_string()
                    })
                }
                ["get", k] => {
                    let k = k.to_string();
                    io.call::<Kv, String>(owner(&k, self.shards), move |h, s| {
                        assert_eq!(s.shard_id(), h.id);
                        match h.map.get(&k) {
                            Some(v) => format!("VALUE {v}"),
                            None => "NONE".into(),
                        }
                    })
                }
                ["setclose", k, v] => {
                    let (k, v) = (k.to_string(), v.to_string());
                    let sent = io.call::<Kv, String>(owner(&k, self.shards), move |h, _| {
                        h.map.insert(k, v);
                        "OK".to_string()
                    });
                    io.close();
                    sent
                }
                ["id"] => {
                    io.write(format!("{}\n", io.shard_id()).as_bytes());
                    continue;
                }
                ["flood", n] => {
                    // Calls to this very shard: none is taken before this callback ends.
                    let (mut ok, mut full) = (0, 0);
                    for _ in 0..n.parse::<usize>().unwrap() {
                        match io.call::<Kv, String>(self.id, |_, _| "flooded".into()) {
                            Ok(_) => ok += 1,
                            Err(CallError::MailboxFull) => full += 1,
                            Err(e) => panic!("{e}"),
                        }
                    }
                    io.write(format!("accepted:{ok} full:{full}\n").as_bytes());
                    continue;
                }
                ["bad"] => {
                    // Refused at once; a handler type the target has nowhere is found
                    // out there, and comes back as the call's outcome.
                    let no_shard = io.call::<Kv, String>(99, |_, _| String::new());
                    io.write(format!("{:?}\n", no_shard.unwrap_err()).as_bytes());
                    io.call::<Notify, String>(0, |_, _| String::new())
                }
                _ => {
                    io.write(b"ERR\n");
                    continue;
                }
            };
            if let Err(e) = sent {
                io.write(format!("BUSY {e}\n").as_bytes());
            }
        }
    }
    fn on_event(&mut self, _c: &mut (), event: Event<'_>, io: &mut Io<'_>) {
        write_call_outcome(event, io);
    }
    fn on_shard(&mut self, event: ShardEvent<'_>, shard: &mut ShardIo<'_>) {
        match event {
            ShardEvent::Start => {
                let next = (self.id + 1) % self.shards;
                shard
                    .call::<Kv, String>(next, 7, |h, s| format!("{} {}", h.id, s.shard_id()))
                    .unwrap();
            }
            ShardEvent::CallDone { tag: 7, done } => {
                let v = Called::<String>::new().result(done).unwrap();
                self.started.lock().unwrap().push((self.id, v));
            }
            _ => {}
        }
    }
    fn on_close(&mut self, _c: (), _why: Close) {}
}

fn start_kv(shards: usize, mailbox_calls: usize) -> (Running, SocketAddr, Started) {
    let started = Arc::new(Mutex::new(Vec::new()));
    let s = started.clone();
    let (running, addr) = start(shards, mailbox_calls, move |id| Kv {
        id,
        shards,
        map: HashMap::new(),
        started: s.clone(),
    });
    (running, addr, started)
}

#[test]
fn a_sharded_kv_store_shows_every_key_to_every_connection() {
    let (running, addr, started) = start_kv(2, 4096);
    let mut conns: Vec<_> = (0..16).map(|_| connect(addr)).collect();
    let ids: Vec<String> = conns.iter_mut().map(|c| ask(c, "id\n")).collect();
    assert!(
        ids.contains(&"0\n".to_string()) && ids.contains(&"1\n".to_string()),
        "{ids:?}"
    );
    for (i, c) in conns.iter_mut().enumerate() {
        assert_eq!(ask(c, &format!("set key{i} value{i}\n")), "OK\n");
    }
    for c in conns.iter_mut() {
        for i in 0..16 {
            assert_eq!(
                ask(c, &format!("get key{i}\n")),
                format!("VALUE value{i}\n")
            );
        }
        assert_eq!(ask(c, "get nothing\n"), "NONE\n");
    }
    // Both shards own keys.
    let owners: Vec<usize> = (0..16).map(|i| owner(&format!("key{i}"), 2)).collect();
    assert!(owners.contains(&0) && owners.contains(&1));
    // Each shard's `Start` called the other and heard back, as a shard event.
    let mut s = started.lock().unwrap().clone();
    s.sort();
    assert_eq!(s, vec![(0, "1 1".to_string()), (1, "0 0".to_string())]);
    assert_eq!(ask(&mut conns[0], "bad\n"), "NoShard(99)\n");
    assert_eq!(
        line(&mut conns[0]),
        "FAILED the target shard has no handler of type composition::Notify\n"
    );
    drop(conns);
    let report = stop(running);
    assert!(
        report.shards.iter().all(|c| c.calls_served > 16),
        "{report:?}"
    );
    assert_eq!(total(&report, |c| c.call_replies_dropped), 0);
}

#[test]
fn a_full_mailbox_refuses_calls_at_once() {
    let (running, addr, _) = start_kv(2, 4);
    let mut c = connect(addr);
    // The `Start` calls have been taken by now (the server answered an earlier line).
    assert!(ask(&mut c, "id\n").ends_with('\n'));
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(ask(&mut c, "flood 100\n"), "accepted:4 full:96\n");
    for _ in 0..4 {
        assert_eq!(line(&mut c), "flooded\n");
    }
    // Drained: calls are taken again.
    assert_eq!(ask(&mut c, "set a b\n"), "OK\n");
    drop(c);
    let report = stop(running);
    assert_eq!(total(&report, |c| c.calls_rejected), 96);
}

#[test]
fn a_call_reply_for_a_closed_connection_is_counted_and_dropped() {
    let (running, addr, _) = start_kv(2, 4096);
    // Each connection asks for a set and closes in the same callback: the call runs,
    // its reply finds the connection gone and is dropped, never delivered elsewhere.
    let mut c = connect(addr);
    for i in 0..5 {
        let mut closing = connect(addr);
        send(&mut closing, &format!("setclose k{i} v{i}\n"));
        let mut rest = Vec::new();
        closing.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty(), "{rest:?}");
        assert_eq!(ask(&mut c, &format!("get k{i}\n")), format!("VALUE v{i}\n"));
    }
    assert!(silent(&mut c, Duration::from_millis(200)));
    drop(c);
    let report = stop(running);
    assert_eq!(total(&report, |c| c.call_replies_dropped), 5);
}

// ---- calls to a handler nested in a wrapper ------------------------------------

/// A wrapper (as TLS wraps HTTP): passes everything to its inner handler and lets calls
/// find it.
struct Wrap<P>(P);

impl<P: Handler> Handler for Wrap<P> {
    type Conn = P::Conn;
    fn on_open(&mut self, peer: SocketAddr, io: &mut Io<'_>) -> P::Conn {
        self.0.on_open(peer, io)
    }
    fn on_data(&mut self, c: &mut P::Conn, input: &mut Input<'_>, io: &mut Io<'_>) {
        self.0.on_data(c, input, io);
    }
    fn on_event(&mut self, c: &mut P::Conn, event: Event<'_>, io: &mut Io<'_>) {
        self.0.on_event(c, event, io);
    }
    fn on_close(&mut self, c: P::Conn, why: Close) {
        self.0.on_close(c, why);
    }
    fn find(&mut self, ty: std::any::TypeId) -> Option<&mut dyn std::any::Any> {
        ringmaster_runtime::find_in(&mut self.0, ty)
    }
}

/// Counts "bump" lines on the shard that owns the count (shard 1), whichever shard the
/// connection is on; "outer" calls the wrapper itself, "nowhere" a type not there.
struct Tally {
    id: usize,
    count: u64,
}

impl Handler for Tally {
    type Conn = ();
    fn on_open(&mut self, _peer: SocketAddr, _io: &mut Io<'_>) {}
    fn on_data(&mut self, _c: &mut (), input: &mut Input<'_>, io: &mut Io<'_>) {
        let text = String::from_utf8_lossy(input.bytes()).to_string();
        input.consume_all();
        for cmd in text.lines() {
            let sent = match cmd {
                "bump" => io.call::<Tally, String>(1, |t, s| {
                    assert_eq!((t.id, s.shard_id()), (1, 1));
                    t.count += 1;
                    format!("count {}", t.count)
                }),
                "outer" => io
                    .call::<Wrap<Wrap<Tally>>, String>(1, |w, _| format!("outer {}", w.0 .0.count)),
                "nowhere" => io.call::<Kv, String>(1, |_, _| String::new()),
                _ => {
                    io.write(b"ERR\n");
                    continue;
                }
            };
            if let Err(e) = sent {
                io.write(format!("BUSY {e}\n").as_bytes());
            }
        }
    }
    fn on_event(&mut self, _c: &mut (), event: Event<'_>, io: &mut Io<'_>) {
        write_call_outcome(event, io);
    }
    fn on_close(&mut self, _c: (), _why: Close) {}
}

#[test]
fn a_call_reaches_a_handler_nested_in_wrappers_from_a_shard_or_any_thread() {
    let (running, addr) = start(2, 4096, |id| Wrap(Wrap(Tally { id, count: 0 })));
    let mut conns: Vec<_> = (0..8).map(|_| connect(addr)).collect();
    for (i, c) in conns.iter_mut().enumerate() {
        assert_eq!(ask(c, "bump\n"), format!("count {}\n", i + 1));
    }
    assert_eq!(ask(&mut conns[0], "outer\n"), "outer 8\n");
    assert_eq!(
        ask(&mut conns[0], "nowhere\n"),
        "FAILED the target shard has no handler of type composition::Kv\n"
    );
    // From a thread outside the shards, through the same search.
    let calls = running.call_handle();
    assert_eq!(calls.shards(), 2);
    let wait = Duration::from_secs(10);
    let pending = calls
        .call::<Tally, (usize, u64)>(1, |t, s| (s.shard_id(), t.count))
        .unwrap();
    assert_eq!(pending.wait(wait), Some(Ok((1, 8))));
    let pending = calls
        .call::<Wrap<Tally>, usize>(0, |_, s| s.shard_id())
        .unwrap();
    assert_eq!(pending.wait(wait), Some(Ok(0)));
    let pending = calls.call::<Kv, ()>(0, |_, _| ()).unwrap();
    assert_eq!(
        pending.wait(wait),
        Some(Err(CallError::WrongHandler("composition::Kv")))
    );
    assert_eq!(
        calls.call::<Tally, ()>(2, |_, _| ()).unwrap_err(),
        CallError::NoShard(2)
    );
    drop(conns);
    let report = stop(running);
    // Refused after the stop: the shards are gone.
    assert_eq!(
        calls.call::<Tally, ()>(0, |_, _| ()).unwrap_err(),
        CallError::ShardGone
    );
    assert!(total(&report, |c| c.calls_served) >= 12, "{report:?}");
}

// ---- connections by token ----------------------------------------------------------

/// Pairs each two connections: what one sends is written to the other by token.
/// "kill" closes the peer, "pause"/"resume" steer its reading.
#[derive(Default)]
struct Pipe {
    waiting: Option<ConnToken>,
}

struct PipeConn {
    peer: Option<ConnToken>,
}

/// Told to a connection when its partner arrives.
struct Partner(ConnToken);

impl Handler for Pipe {
    type Conn = PipeConn;
    fn on_open(&mut self, _peer: SocketAddr, io: &mut Io<'_>) -> PipeConn {
        match self.waiting.take() {
            Some(first) => {
                io.post(first, Partner(io.token()));
                PipeConn { peer: Some(first) }
            }
            None => {
                self.waiting = Some(io.token());
                PipeConn { peer: None }
            }
        }
    }
    fn on_data(&mut self, c: &mut PipeConn, input: &mut Input<'_>, io: &mut Io<'_>) {
        let Some(peer) = c.peer else {
            return; // waits in the carry-over until the partner arrives
        };
        let bytes = input.bytes().to_vec();
        input.consume_all();
        match &bytes[..] {
            b"kill" => io.close_conn(peer),
            b"pause" => io.pause_reading_of(peer),
            b"resume" => io.resume_reading_of(peer),
            _ => io.write_to(peer, &bytes),
        }
    }
    fn on_event(&mut self, c: &mut PipeConn, event: Event<'_>, io: &mut Io<'_>) {
        match event {
            Event::Posted(p) => {
                c.peer = Some(p.take::<Partner>().unwrap().0);
                io.write(b"paired\n");
            }
            Event::ConnGone(t) => {
                assert_eq!(Some(t), c.peer);
                io.write(b"gone\n");
            }
            other => other.default_action(io),
        }
    }
    fn on_close(&mut self, _c: PipeConn, _why: Close) {}
}

#[test]
fn two_connections_pipe_by_token_and_a_stale_token_is_reported() {
    let (running, addr) = start(1, 4096, |_| Pipe::default());
    let mut a = connect(addr);
    std::thread::sleep(Duration::from_millis(50));
    let mut b = connect(addr);
    assert_eq!(line(&mut a), "paired\n");
    let mut buf = [0u8; 5];
    send(&mut a, "hello");
    b.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"hello");
    send(&mut b, "back!");
    a.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"back!");

    // A pauses B's reading: what B sends waits until A resumes it.
    send(&mut a, "pause");
    std::thread::sleep(Duration::from_millis(50));
    send(&mut b, "later");
    assert!(silent(&mut a, Duration::from_millis(200)));
    send(&mut a, "resume");
    a.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"later");

    // A closes B; then what A sends finds B gone.
    send(&mut a, "kill");
    let mut rest = Vec::new();
    b.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    std::thread::sleep(Duration::from_millis(50));
    send(&mut a, "more?");
    assert_eq!(line(&mut a), "gone\n");
    drop((a, b));
    let report = stop(running);
    assert_eq!(total(&report, |c| c.stale_tokens), 1);
}

// ---- connect errors and timeouts -----------------------------------------------------

/// Connects once with a timeout, records how it ended, and stops.
struct Dial {
    target: SocketAddr,
    timeout: Duration,
    out: Arc<Mutex<Option<Result<(), std::io::ErrorKind>>>>,
}

impl Handler for Dial {
    type Conn = ();
    fn on_shard(&mut self, event: ShardEvent<'_>, shard: &mut ShardIo<'_>) {
        match event {
            ShardEvent::Start => {
                shard.connect_timeout(self.target, 1, self.timeout);
                shard.set_timer(Duration::from_secs(20), 0);
            }
            ShardEvent::ConnectFailed { tag: 1, error, .. } => {
                *self.out.lock().unwrap() = Some(Err(error.kind()));
                shard.shutdown_all();
            }
            ShardEvent::Timer(_) => shard.shutdown_all(),
            _ => {}
        }
    }
    fn on_open(&mut self, _peer: SocketAddr, io: &mut Io<'_>) {
        *self.out.lock().unwrap() = Some(Ok(()));
        io.shutdown_all();
    }
    fn on_data(&mut self, _c: &mut (), input: &mut Input<'_>, _io: &mut Io<'_>) {
        input.consume_all();
    }
    fn on_close(&mut self, _c: (), _why: Close) {}
}

fn dial(
    target: SocketAddr,
    timeout: Duration,
) -> (
    Option<Result<(), std::io::ErrorKind>>,
    ringmaster_runtime::Counters,
    Duration,
) {
    let out = Arc::new(Mutex::new(None));
    let sink = out.clone();
    let began = Instant::now();
    let report = Server::builder()
        .tcp(false)
        .shards(1)
        .offload_threads(0)
        .handle_signals(false)
        .build()
        .unwrap()
        .serve(move |_| Dial {
            target,
            timeout,
            out: sink.clone(),
        })
        .unwrap();
    let took = began.elapsed();
    let v = *out.lock().unwrap();
    (v, report.shards[0].clone(), took)
}

#[test]
fn a_refused_connect_is_reported_with_its_error() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = free.local_addr().unwrap();
    drop(free);
    let (got, counters, _) = dial(addr, Duration::from_secs(5));
    assert_eq!(got, Some(Err(std::io::ErrorKind::ConnectionRefused)));
    assert_eq!((counters.connect_errors, counters.connect_timeouts), (1, 0));
    // A connect that succeeds within its timeout is not cancelled afterwards.
    let open = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (got, counters, _) = dial(open.local_addr().unwrap(), Duration::from_millis(200));
    assert_eq!(got, Some(Ok(())));
    assert_eq!((counters.connected, counters.connect_timeouts), (1, 0));
}

#[test]
fn a_connect_that_is_never_answered_times_out() {
    // A listener with backlog 0 that never accepts: once its accept queue is full the
    // kernel drops further SYNs, so a connect is never answered.
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    sock.listen(0).unwrap();
    let addr = sock.local_addr().unwrap().as_socket().unwrap();
    let mut held = Vec::new();
    let mut full = false;
    for _ in 0..8 {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
            Ok(s) => held.push(s),
            Err(_) => {
                full = true;
                break;
            }
        }
    }
    if !full {
        eprintln!("skipped: could not make a loopback listener that drops SYNs");
        return;
    }
    let (got, counters, took) = dial(addr, Duration::from_millis(300));
    assert_eq!(got, Some(Err(std::io::ErrorKind::TimedOut)));
    assert_eq!((counters.connect_errors, counters.connect_timeouts), (1, 1));
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(5),
        "{took:?}"
    );
    drop(held);
}
