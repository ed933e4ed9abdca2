//! Pipelining against the real binary: 1,000 requests (GET and POST with bodies of random
//! sizes, some answered later from a timer) written in one burst on one socket, split
//! across writes at random byte boundaries; every response must arrive complete and in
//! order. The seed is printed; set RINGMASTER_SEED to replay a failure.

mod http_support;

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use http_support::{read_responses_with, Server};

/// What a request should get back.
enum Expect {
    Body(Vec<u8>),
    /// HEAD: no body, this Content-Length.
    Head(usize),
}

fn build(rng: &mut StdRng, n: usize) -> (Vec<u8>, Vec<Expect>) {
    let mut wire = Vec::new();
    let mut expect = Vec::new();
    for _ in 0..n {
        match rng.random_range(0..100) {
            0..=29 => {
                wire.extend_from_slice(b"GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n");
                expect.push(Expect::Body(b"Hello, World!".to_vec()));
            }
            30..=39 => {
                wire.extend_from_slice(b"GET /json HTTP/1.1\r\nHost: t\r\nAccept: */*\r\n\r\n");
                expect.push(Expect::Body(br#"{"message":"Hello, World!"}"#.to_vec()));
            }
            40..=44 => {
                wire.extend_from_slice(b"HEAD /plaintext HTTP/1.1\r\nHost: t\r\n\r\n");
                expect.push(Expect::Head(13));
            }
            45..=49 => {
                let len = rng.random_range(0..5000);
                wire.extend_from_slice(
                    format!("GET /bytes/{len} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes(),
                );
                expect.push(Expect::Body(vec![b'x'; len]));
            }
            50..=52 => {
                let ms = rng.random_range(0..4);
                wire.extend_from_slice(
                    format!("GET /delay/{ms} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes(),
                );
                expect.push(Expect::Body(b"OK".to_vec()));
            }
            53..=79 => {
                let len = rng.random_range(0..4096);
                let body: Vec<u8> = (0..len).map(|_| rng.random()).collect();
                wire.extend_from_slice(
                    format!("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {len}\r\n\r\n")
                        .as_bytes(),
                );
                wire.extend_from_slice(&body);
                expect.push(Expect::Body(body));
            }
            _ => {
                let len = rng.random_range(0..4096);
                let body: Vec<u8> = (0..len).map(|_| rng.random()).collect();
                wire.extend_from_slice(
                    b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n",
                );
                let mut rest = &body[..];
                while !rest.is_empty() {
                    let n = rng.random_range(1..=rest.len().min(1500));
                    let (c, r) = rest.split_at(n);
                    wire.extend_from_slice(format!("{n:x}\r\n").as_bytes());
                    wire.extend_from_slice(c);
                    wire.extend_from_slice(b"\r\n");
                    rest = r;
                }
                wire.extend_from_slice(b"0\r\n\r\n");
                expect.push(Expect::Body(body));
            }
        }
    }
    (wire, expect)
}

#[test]
fn thousand_pipelined_requests_split_at_random() {
    let seed = std::env::var("RINGMASTER_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("RINGMASTER_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let (wire, expect) = build(&mut rng, 1000);

    let server = Server::start(&[]);
    let mut s = server.connect();
    let mut writer = s.try_clone().unwrap();
    let mut cuts: Vec<usize> = (0..200).map(|_| rng.random_range(0..wire.len())).collect();
    cuts.sort_unstable();
    // The burst goes out from its own thread (split into ~200 writes at random
    // boundaries) while this one reads, so neither side's buffers can deadlock the test.
    let sender = std::thread::spawn(move || {
        let mut last = 0;
        for c in cuts.into_iter().chain([wire.len()]) {
            writer.write_all(&wire[last..c]).unwrap();
            last = c;
        }
    });
    let head_only: Vec<bool> = expect
        .iter()
        .map(|e| matches!(e, Expect::Head(_)))
        .collect();
    let (resps, _) = read_responses_with(&mut s, expect.len(), &head_only, Duration::from_secs(60));
    sender.join().unwrap();
    assert_eq!(resps.len(), expect.len(), "seed {seed}");
    for (i, (r, e)) in resps.iter().zip(&expect).enumerate() {
        assert_eq!(r.status, 200, "response {i}, seed {seed}");
        match e {
            Expect::Body(b) => assert!(r.body == *b, "response {i} body differs, seed {seed}"),
            Expect::Head(n) => {
                assert!(r.body.is_empty());
                assert_eq!(r.header("content-length"), Some(n.to_string().as_str()));
            }
        }
    }
    assert_eq!(server.counter("http", "requests"), 1000 + 1);
}
