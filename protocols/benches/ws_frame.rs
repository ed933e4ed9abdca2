//! WebSocket frame codec: decoding masked client frames of 64 B, 4 KiB and 64 KiB, and
//! encoding unmasked server frames of the same sizes. Throughput is frame bytes per second.
//!
//! - `ws_decode/frame`: `frame::decode_header` + `frame::unmask_into` (the codec alone);
//! - `ws_decode/session_binary`, `ws_decode/session_text`: `session::Session::feed`, the
//!   path a server connection takes (header checks, unmasking into the message buffer,
//!   message assembly, incremental UTF-8 validation for text);
//! - `ws_encode/frame`: `frame::encode_frame` into a reused buffer.
//!
//! `cargo bench -p ringmaster-protocols --bench ws_frame`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ringmaster_protocols::websocket::frame::{decode_header, encode_frame, unmask_into, OpCode};
use ringmaster_protocols::websocket::session::{Flow, Session};
use ringmaster_protocols::websocket::Message;

const SIZES: [(&str, usize); 3] = [("64B", 64), ("4KiB", 4096), ("64KiB", 64 * 1024)];
const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A final, masked client frame carrying `payload`, as a client sends it.
fn client_frame(op: OpCode, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0x80 | op.bits()];
    let n = payload.len();
    if n < 126 {
        v.push(0x80 | n as u8);
    } else if let Ok(n) = u16::try_from(n) {
        v.push(0x80 | 126);
        v.extend_from_slice(&n.to_be_bytes());
    } else {
        v.push(0x80 | 127);
        v.extend_from_slice(&(n as u64).to_be_bytes());
    }
    v.extend_from_slice(&KEY);
    v.extend(payload.iter().enumerate().map(|(i, b)| b ^ KEY[i % 4]));
    v
}

/// ASCII text (valid UTF-8), so the same payload serves text and binary.
fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| b'a' + (i % 26) as u8).collect()
}

fn bench_decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("ws_decode");
    for (name, len) in SIZES {
        let data = payload(len);
        let binary = client_frame(OpCode::Binary, &data);
        let text = client_frame(OpCode::Text, &data);
        group.throughput(Throughput::Bytes(binary.len() as u64));

        let mut msg = Vec::with_capacity(len);
        group.bench_with_input(BenchmarkId::new("frame", name), &binary, |b, wire| {
            b.iter(|| {
                let h = decode_header(black_box(wire))
                    .expect("valid header")
                    .expect("complete header");
                let body = wire.get(h.header_len..).unwrap_or_default();
                msg.clear();
                unmask_into(&mut msg, body, h.mask.unwrap_or_default(), 0);
                black_box(msg.len())
            })
        });
        assert_eq!(msg, data);

        for (kind, wire) in [("session_binary", &binary), ("session_text", &text)] {
            let mut session = Session::new(1 << 20);
            let mut out = Vec::new();
            let mut got = 0usize;
            group.bench_with_input(BenchmarkId::new(kind, name), wire, |b, wire| {
                b.iter(|| {
                    let rep = session.feed(black_box(wire), &mut out, &mut |m, _out| {
                        got += match m {
                            Message::Text(s) => s.len(),
                            Message::Binary(b) => b.len(),
                        };
                        Flow::Continue
                    });
                    black_box(rep.messages)
                })
            });
            assert!(out.is_empty(), "{kind}/{name}: the session failed");
            assert!(got >= len, "{kind}/{name}: nothing delivered");
        }
    }
    group.finish();
}

fn bench_encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("ws_encode");
    for (name, len) in SIZES {
        let data = payload(len);
        let mut out = Vec::with_capacity(len + 14);
        encode_frame(&mut out, OpCode::Binary, &data);
        group.throughput(Throughput::Bytes(out.len() as u64));
        group.bench_with_input(BenchmarkId::new("frame", name), &data, |b, data| {
            b.iter(|| {
                out.clear();
                encode_frame(&mut out, OpCode::Binary, black_box(data));
                black_box(out.len())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_decode, bench_encode);
criterion_main!(benches);
