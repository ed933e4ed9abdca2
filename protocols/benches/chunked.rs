//! Chunked body decoder: `http1::body::ChunkedDecoder` on bodies of 1 KiB and 64 KiB,
//! framed in small (64-byte) and large (8 KiB, or the whole body if smaller) chunks, with
//! the whole encoded body in one slice and, for 64 KiB, in 16 KiB reads (the size of a
//! provided buffer). Throughput is encoded (wire) bytes decoded per second.
//!
//! `cargo bench -p ringmaster-protocols --bench chunked`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ringmaster_protocols::http1::body::ChunkedDecoder;

/// `body` framed as chunked transfer coding in chunks of `chunk` bytes, with a final
/// zero-size chunk and no trailers.
fn encode(body: &[u8], chunk: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + body.len() / chunk * 8 + 16);
    for piece in body.chunks(chunk) {
        out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        out.extend_from_slice(piece);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// Decodes `wire` fed in pieces of `read` bytes; returns the decoded length.
fn decode(wire: &[u8], read: usize) -> u64 {
    let mut dec = ChunkedDecoder::new(u64::MAX, 16 * 1024);
    let mut sum = 0usize;
    for piece in wire.chunks(read) {
        let used = dec
            .decode(piece, &mut |data: &[u8]| sum += data.len())
            .expect("valid chunked body");
        debug_assert_eq!(used, piece.len());
    }
    assert!(dec.is_done());
    black_box(sum);
    dec.decoded()
}

fn bench_chunked(c: &mut Criterion) {
    let mut group = c.benchmark_group("chunked");
    for (body_name, body_len) in [("1KiB", 1024usize), ("64KiB", 64 * 1024)] {
        let body: Vec<u8> = (0..body_len).map(|i| (i % 251) as u8).collect();
        let large = (8 * 1024).min(body_len);
        let mut cases = vec![("small64", 64, usize::MAX), ("large", large, usize::MAX)];
        if body_len > 16 * 1024 {
            cases.push(("small64_reads16KiB", 64, 16 * 1024));
            cases.push(("large_reads16KiB", large, 16 * 1024));
        }
        for (chunk_name, chunk, read) in cases {
            let wire = encode(&body, chunk);
            assert_eq!(decode(&wire, read), body_len as u64);
            group.throughput(Throughput::Bytes(wire.len() as u64));
            group.bench_with_input(BenchmarkId::new(body_name, chunk_name), &wire, |b, wire| {
                b.iter(|| decode(black_box(wire), read))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_chunked);
criterion_main!(benches);
