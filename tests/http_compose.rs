//! Composition through the HTTP `App` API, in-process (`Server::builder` and
//! `Http::new`) with real TCP clients on 127.0.0.1: exchanges completed from other
//! threads with notifiers (overlapping, in pipelined order, a dropped notifier answered
//! 502, a late value dropped and counted), and a sharded KV store reached by cross-shard
//! calls (every connection sees every key; a full mailbox answers 503). Every loop is
//! bounded in count and every wait in time.

mod http_support;

use std::collections::HashMap;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_support::{read_responses, Resp};
use ringmaster_protocols::http1::{App, Exchange, Http, Limits, Request, Response};
use ringmaster_runtime::{CallDone, CallError, Called, Notification, Running, Server};

const LIMIT: Duration = Duration::from_secs(10);

fn start<A: App>(
    shards: usize,
    mailbox_calls: usize,
    app: impl Fn(usize) -> A + Send + Sync + 'static,
) -> (Running, SocketAddr) {
    let server = Server::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .shards(shards)
        .offload_threads(2)
        .mailbox_calls(mailbox_calls)
        .handle_signals(false)
        .build()
        .unwrap();
    let running = server
        .start(move |shard| Http::new(app(shard), Limits::default()))
        .unwrap();
    let addr = running.local_addr();
    (running, addr)
}

fn stop(running: Running) {
    running.shutdown_handle().shutdown();
    running.wait().unwrap();
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    s.set_write_timeout(Some(LIMIT)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

fn request(method: &str, path: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "{method} {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

/// Sends `reqs` pipelined in one write and reads as many responses.
fn ask(s: &mut TcpStream, reqs: &[Vec<u8>]) -> Vec<Resp> {
    s.write_all(&reqs.concat()).unwrap();
    let (resps, _) = read_responses(s, reqs.len(), LIMIT);
    assert_eq!(resps.len(), reqs.len());
    resps
}

fn get(s: &mut TcpStream, path: &str) -> Resp {
    ask(s, &[request("GET", path, b"")]).remove(0)
}

fn text(r: &Resp) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

// ---- completing an exchange from another thread ------------------------------------

/// When each `/wait` thread started and ended its sleep.
type Spans = Arc<Mutex<Vec<(Instant, Instant)>>>;

/// `/wait/NAME?MS`: a thread sleeps MS then notifies "NAME"; `/drop`: the notifier is
/// dropped on another thread unused; `/late`: answered at once, the notifier fires
/// later; `/now`: answered at once; `/counters`: the shard's notifier counters.
struct Waiter {
    spans: Spans,
}

impl App for Waiter {
    type Task = ();

    fn on_request(&mut self, req: &Request<'_>, ex: &mut Exchange<'_>) -> Option<()> {
        let path = req.path();
        if let Some(name) = path.strip_prefix("/wait/") {
            let ms: u64 = req.query().and_then(|q| q.parse().ok()).unwrap_or(200);
            let (name, spans) = (name.to_string(), self.spans.clone());
            let n = ex.notifier::<String>()?;
            std::thread::spawn(move || {
                let began = Instant::now();
                std::thread::sleep(Duration::from_millis(ms));
                spans.lock().unwrap().push((began, Instant::now()));
                n.notify(name);
            });
            return Some(());
        }
        match path {
            "/drop" => {
                let n = ex.notifier::<String>()?;
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(20));
                    drop(n);
                });
                return Some(());
            }
            "/late" => {
                let n = ex.notifier::<String>()?;
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(50));
                    n.notify("too late".into());
                });
                ex.respond(Response::text(200, "early"));
            }
            "/counters" => {
                let c = ex.http_counters();
                let body = format!(
                    "delivered={} stale={} dropped={}",
                    c.notify_delivered, c.notify_stale, c.notifier_dropped
                );
                ex.respond(Response::text(200, &body));
            }
            _ => ex.respond(Response::text(200, "now")),
        }
        None
    }

    fn on_notify(&mut self, _task: &mut (), n: Notification, ex: &mut Exchange<'_>) {
        match n.take::<String>() {
            Ok(name) => ex.respond(Response::text(200, &name)),
            Err(_) => ex.respond(Response::text(500, "wrong type")),
        }
    }
}

fn start_waiter(shards: usize) -> (Running, SocketAddr, Spans) {
    let spans = Spans::default();
    let s = spans.clone();
    let (running, addr) = start(shards, 4096, move |_| Waiter { spans: s.clone() });
    (running, addr, spans)
}

#[test]
fn exchanges_completed_from_other_threads_overlap() {
    let (running, addr, spans) = start_waiter(1);
    // Six requests at once, two offload threads: none of this uses the pool, so
    // nothing is serialized behind it (the blocking workaround took 1, 1, 2, 2, 3, 3).
    let mut conns: Vec<TcpStream> = (0..6).map(|_| connect(addr)).collect();
    for (i, c) in conns.iter_mut().enumerate() {
        c.write_all(&request("GET", &format!("/wait/r{i}?200"), b""))
            .unwrap();
    }
    for (i, c) in conns.iter_mut().enumerate() {
        let (r, _) = read_responses(c, 1, LIMIT);
        assert_eq!(r.len(), 1, "connection {i}");
        assert_eq!((r[0].status, text(&r[0])), (200, format!("r{i}")));
    }
    let spans = spans.lock().unwrap().clone();
    assert_eq!(spans.len(), 6);
    let last_start = spans.iter().map(|s| s.0).max().unwrap();
    let first_end = spans.iter().map(|s| s.1).min().unwrap();
    assert!(
        last_start < first_end,
        "the six waits did not overlap: {spans:?}"
    );
    stop(running);
}

#[test]
fn pipelined_notified_exchanges_answer_in_order_and_a_dropped_notifier_is_502() {
    let (running, addr, _) = start_waiter(1);
    let mut c = connect(addr);
    // The slow one first: the others finish before it and wait their turn.
    let resps = ask(
        &mut c,
        &[
            request("GET", "/wait/slow?300", b""),
            request("GET", "/now", b""),
            request("GET", "/wait/fast?10", b""),
            request("GET", "/drop", b""),
            request("GET", "/wait/last?50", b""),
        ],
    );
    let got: Vec<(u16, String)> = resps.iter().map(|r| (r.status, text(r))).collect();
    assert_eq!(
        got,
        vec![
            (200, "slow".into()),
            (200, "now".into()),
            (200, "fast".into()),
            (502, "Bad Gateway\n".into()),
            (200, "last".into()),
        ]
    );
    // A value for an exchange already answered is dropped and counted, never given to
    // the next exchange on the connection.
    assert_eq!(text(&get(&mut c, "/late")), "early");
    let mut counters = String::new();
    for _ in 0..100 {
        counters = text(&get(&mut c, "/counters"));
        if counters != "delivered=3 stale=0 dropped=1" {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(counters, "delivered=3 stale=1 dropped=1");
    assert_eq!(text(&get(&mut c, "/now")), "now");
    stop(running);
}

// ---- cross-shard calls: a sharded KV store ------------------------------------------

/// Each key lives on shard hash(key) % shards: `PUT /kv/KEY` (body: the value),
/// `GET /kv/KEY`; `/whoami` names the serving shard; `/flood/N` makes N calls to its
/// own shard in one callback.
struct Kv {
    shards: usize,
    map: HashMap<String, Vec<u8>>,
}

enum KvTask {
    Put(Called<()>),
    Get(Called<Option<Vec<u8>>>),
}

/// FNV-1a: the same owner on every shard and every run.
fn owner(key: &str, shards: usize) -> usize {
    let h = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    (h % shards as u64) as usize
}

fn busy(ex: &mut Exchange<'_>, e: CallError) -> Option<KvTask> {
    let body = format!("busy: {e}\n");
    let fields = [("Retry-After", "1"), ("Content-Type", "text/plain")];
    ex.respond(Response::new(503).fields(&fields).body(body.as_bytes()));
    None
}

impl App for Kv {
    type Task = KvTask;

    fn on_request(&mut self, req: &Request<'_>, ex: &mut Exchange<'_>) -> Option<KvTask> {
        if req.path() == "/whoami" {
            let id = ex.shard_id().to_string();
            ex.respond(Response::text(200, &id));
            return None;
        }
        let Some(key) = req.path().strip_prefix("/kv/") else {
            ex.respond(Response::text(404, "no such route\n"));
            return None;
        };
        let (shard, key) = (owner(key, self.shards), key.to_string());
        let sent = match req.method() {
            "PUT" => {
                let value = req.body().to_vec();
                ex.call(shard, move |kv: &mut Kv, _| {
                    kv.map.insert(key, value);
                })
                .map(KvTask::Put)
            }
            _ => ex
                .call(shard, move |kv: &mut Kv, _| kv.map.get(&key).cloned())
                .map(KvTask::Get),
        };
        sent.or_else(|e| busy(ex, e).ok_or(())).ok()
    }

    fn on_call_done(&mut self, task: &mut KvTask, done: CallDone, ex: &mut Exchange<'_>) {
        match task {
            KvTask::Put(call) => match call.result(done) {
                Ok(()) => ex.respond(Response::new(204)),
                Err(e) => drop(busy(ex, e)),
            },
            KvTask::Get(call) => match call.result(done) {
                Ok(Some(v)) => ex.respond(Response::new(200).owned_body(v)),
                Ok(None) => ex.respond(Response::text(404, "no such key\n")),
                Err(e) => drop(busy(ex, e)),
            },
        }
    }
}

fn start_kv(shards: usize, mailbox_calls: usize) -> (Running, SocketAddr) {
    start(shards, mailbox_calls, move |_| Kv {
        shards,
        map: HashMap::new(),
    })
}

#[test]
fn a_sharded_kv_store_over_http_shows_every_key_to_every_connection() {
    let (running, addr) = start_kv(2, 4096);
    let mut conns: Vec<TcpStream> = (0..12).map(|_| connect(addr)).collect();
    let ids: Vec<String> = conns.iter_mut().map(|c| text(&get(c, "/whoami"))).collect();
    assert!(
        ids.iter().any(|i| i == "0") && ids.iter().any(|i| i == "1"),
        "both shards serve: {ids:?}"
    );
    let keys: Vec<String> = (0..conns.len()).map(|i| format!("key{i}")).collect();
    let owners: Vec<usize> = keys.iter().map(|k| owner(k, 2)).collect();
    assert!(owners.contains(&0) && owners.contains(&1), "{owners:?}");
    for (i, c) in conns.iter_mut().enumerate() {
        let r = ask(
            c,
            &[request(
                "PUT",
                &format!("/kv/{}", keys[i]),
                format!("v{i}").as_bytes(),
            )],
        );
        assert_eq!(r[0].status, 204);
    }
    for c in conns.iter_mut() {
        // Every key, pipelined: the answers come back from both shards, in order.
        let mut reqs: Vec<Vec<u8>> = keys
            .iter()
            .map(|k| request("GET", &format!("/kv/{k}"), b""))
            .collect();
        reqs.push(request("GET", "/kv/nothing", b""));
        let resps = ask(c, &reqs);
        for (i, r) in resps.iter().take(keys.len()).enumerate() {
            assert_eq!((r.status, text(r)), (200, format!("v{i}")));
        }
        assert_eq!(resps[keys.len()].status, 404);
    }
    stop(running);
}

#[test]
fn a_full_mailbox_answers_503_at_once() {
    // One shard: every call goes to this shard's own mailbox, which takes none of them
    // before the callback that parsed the whole pipelined batch returns.
    let (running, addr) = start_kv(1, 2);
    let mut c = connect(addr);
    let reqs: Vec<Vec<u8>> = (0..10)
        .map(|i| request("GET", &format!("/kv/k{i}"), b""))
        .collect();
    let resps = ask(&mut c, &reqs);
    let statuses: Vec<u16> = resps.iter().map(|r| r.status).collect();
    assert_eq!(statuses[0], 404, "{statuses:?}");
    assert!(
        statuses.iter().all(|&s| s == 404 || s == 503),
        "{statuses:?}"
    );
    let busy: Vec<&Resp> = resps.iter().filter(|r| r.status == 503).collect();
    assert!(!busy.is_empty(), "{statuses:?}");
    assert_eq!(busy[0].header("retry-after"), Some("1"));
    assert!(
        text(busy[0]).contains("mailbox is full"),
        "{}",
        text(busy[0])
    );
    // Drained: calls are taken again.
    assert_eq!(get(&mut c, "/kv/k0").status, 404);
    stop(running);
}
