//! HTTP/2 micro-benchmarks: HPACK decoding of a typical request header block on a fresh
//! connection and on a warmed one (the fields already in the dynamic table, as from the
//! second request on), HPACK encoding of a typical response head on a warmed encoder,
//! and decoding DATA frames. Throughput is block or frame bytes per second.
//!
//! `cargo bench -p ringmaster-protocols --bench h2`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ringmaster_protocols::http2::frame::{decode, encode_data, Frame, MAX_MAX_FRAME_SIZE};
use ringmaster_protocols::http2::hpack::{Decoder, Encoder, DEFAULT_TABLE_SIZE};

/// The request a load generator (h2load-like) sends for TechEmpower's plaintext test.
const REQUEST: &[(&[u8], &[u8])] = &[
    (b":method", b"GET"),
    (b":scheme", b"https"),
    (b":path", b"/plaintext"),
    (b":authority", b"server:8080"),
    (b"user-agent", b"h2load nghttp2/1.52.0"),
    (b"accept", b"text/plain,text/html;q=0.9,*/*;q=0.8"),
    (b"accept-encoding", b"gzip, deflate, br"),
    (b"accept-language", b"en-US,en;q=0.5"),
];

/// The plaintext response head.
const RESPONSE: &[(&[u8], &[u8])] = &[
    (b":status", b"200"),
    (b"content-type", b"text/plain"),
    (b"server", b"ringmaster"),
    (b"date", b"Sun, 06 Dec 2026 08:00:00 GMT"),
    (b"content-length", b"13"),
];

fn sum_lengths(d: &mut Decoder, block: &[u8]) -> usize {
    let mut n = 0;
    d.decode(block, |f| n += f.name.len() + f.value.len())
        .expect("valid block");
    n
}

fn bench_hpack(c: &mut Criterion) {
    let mut enc = Encoder::new(DEFAULT_TABLE_SIZE);
    let mut first = Vec::new();
    enc.encode(REQUEST.iter().copied(), &mut first);
    let mut warmed = Vec::new();
    enc.encode(REQUEST.iter().copied(), &mut warmed);

    let mut group = c.benchmark_group("hpack");
    group.throughput(Throughput::Bytes(first.len() as u64));
    group.bench_function("decode_request_first", |b| {
        b.iter(|| {
            let mut d = Decoder::new(16 * 1024);
            black_box(sum_lengths(&mut d, black_box(&first)))
        })
    });
    let mut d = Decoder::new(16 * 1024);
    sum_lengths(&mut d, &first);
    group.throughput(Throughput::Bytes(warmed.len() as u64));
    group.bench_function("decode_request_warmed", |b| {
        b.iter(|| black_box(sum_lengths(&mut d, black_box(&warmed))))
    });

    let mut enc = Encoder::new(DEFAULT_TABLE_SIZE);
    let mut out = Vec::with_capacity(256);
    enc.encode(RESPONSE.iter().copied(), &mut out);
    let first_len = out.len();
    out.clear();
    enc.encode(RESPONSE.iter().copied(), &mut out);
    println!(
        "request block {} then {} bytes; response block {} then {} bytes",
        first.len(),
        warmed.len(),
        first_len,
        out.len()
    );
    group.throughput(Throughput::Elements(1));
    group.bench_function("encode_response_warmed", |b| {
        b.iter(|| {
            out.clear();
            enc.encode(black_box(RESPONSE).iter().copied(), &mut out);
            black_box(out.len())
        })
    });
    group.finish();
}

fn bench_data(c: &mut Criterion) {
    let mut group = c.benchmark_group("h2_frame");
    for (name, len) in [("data_13", 13usize), ("data_16k", 16 * 1024)] {
        let mut frame = Vec::new();
        encode_data(&mut frame, 1, &vec![b'x'; len], true);
        group.throughput(Throughput::Bytes(frame.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| match decode(black_box(&frame), MAX_MAX_FRAME_SIZE) {
                Ok(Some((Frame::Data(d), n))) => black_box((d.data.len(), n)),
                _ => unreachable!("a DATA frame"),
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_hpack, bench_data);
criterion_main!(benches);
