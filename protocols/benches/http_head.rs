//! HTTP/1.1 request-head parser: `http1::head::parse_head` (httparse plus the RFC 9112
//! framing checks), on the request TechEmpower's plaintext load sends and on a
//! browser-like request with 20 header fields. Throughput is head bytes parsed per second.
//!
//! `cargo bench -p ringmaster-protocols --bench http_head`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ringmaster_protocols::http1::head::{header_buf, parse_head};
use ringmaster_protocols::http1::Limits;

/// The head wrk sends in TechEmpower's plaintext test (its headers, our path).
const TECHEMPOWER: &[u8] = b"GET /plaintext HTTP/1.1\r\n\
Host: server\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) Gecko/20130501 Firefox/30.0 AppleWebKit/600.00 Chrome/30.0.0000.0 Trident/10.0 Safari/600.00\r\n\
Cookie: uid=12345678901234567890; __utma=1.1234567890.1234567890.1234567890.1234567890.12; wd=2560x1600\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n\
Accept-Language: en-US,en;q=0.5\r\n\
Connection: keep-alive\r\n\
\r\n";

/// A browser navigation with 20 header fields, as a current Chromium sends it.
const BROWSER: &[u8] = b"GET /articles/2026/11/thread-per-core-servers?utm_source=feed&utm_medium=rss HTTP/1.1\r\n\
Host: www.example.com\r\n\
Connection: keep-alive\r\n\
Cache-Control: max-age=0\r\n\
sec-ch-ua: \"Chromium\";v=\"131\", \"Not_A Brand\";v=\"24\", \"Google Chrome\";v=\"131\"\r\n\
sec-ch-ua-mobile: ?0\r\n\
sec-ch-ua-platform: \"Linux\"\r\n\
Upgrade-Insecure-Requests: 1\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7\r\n\
Sec-Fetch-Site: same-origin\r\n\
Sec-Fetch-Mode: navigate\r\n\
Sec-Fetch-User: ?1\r\n\
Sec-Fetch-Dest: document\r\n\
Referer: https://www.example.com/articles/2026/11/\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Accept-Language: en-GB,en-US;q=0.9,en;q=0.8,fr;q=0.7\r\n\
Cookie: session=4f6c2b1e9a0d47c3b8e5f7a6d2c1b0e9; theme=dark; consent=analytics%3D0%26ads%3D0; _ga=GA1.1.1234567890.1763900000; _ga_ABCDEF1234=GS1.1.1763900000.3.1.1763900100.0.0.0\r\n\
If-None-Match: W/\"5d8c72a5edda8d6a:3b1f\"\r\n\
If-Modified-Since: Sun, 22 Nov 2026 18:04:11 GMT\r\n\
Priority: u=0, i\r\n\
\r\n";

fn bench_heads(c: &mut Criterion) {
    let limits = Limits::default();
    let mut group = c.benchmark_group("http_head");
    for (name, req, fields) in [("techempower", TECHEMPOWER, 6), ("browser_20", BROWSER, 20)] {
        // Check once, outside the timing, that the input is what the name says.
        {
            let mut hb = header_buf();
            let head = parse_head(req, &mut hb, &limits)
                .expect("valid head")
                .expect("complete head");
            assert_eq!(head.headers().len(), fields, "{name}");
            assert_eq!(head.len(), req.len(), "{name}");
        }
        group.throughput(Throughput::Bytes(req.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut hb = header_buf();
                let head = parse_head(black_box(req), &mut hb, &limits);
                black_box(head.map(|h| h.map(|h| (h.len(), h.keep_alive()))))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_heads);
criterion_main!(benches);
