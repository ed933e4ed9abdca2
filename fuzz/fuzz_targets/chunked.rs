//! The chunked decoder: never panics, never exceeds its limits, and gives the same
//! result whether the input arrives whole or split at an arbitrary byte (the first two
//! input bytes choose the split point).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringmaster_protocols::http1::body::ChunkedDecoder;

const MAX_BODY: u64 = 4096;
const MAX_TRAILER: usize = 512;

fn decode(pieces: &[&[u8]]) -> (Result<usize, u16>, Vec<u8>, bool) {
    let mut d = ChunkedDecoder::new(MAX_BODY, MAX_TRAILER);
    let mut body = Vec::new();
    let mut used = 0;
    for piece in pieces {
        match d.decode(piece, &mut |p| body.extend_from_slice(p)) {
            Ok(n) => {
                assert!(n <= piece.len());
                used += n;
                if d.is_done() {
                    break;
                }
            }
            Err(e) => return (Err(e.status()), body, false),
        }
    }
    assert!(body.len() as u64 <= MAX_BODY);
    assert!(body.len() as u64 <= d.decoded());
    (Ok(used), body, d.is_done())
}

fuzz_target!(|data: &[u8]| {
    let Some((split, buf)) = data.split_first_chunk::<2>() else {
        return;
    };
    let at = usize::from(u16::from_le_bytes(*split)) % (buf.len() + 1);
    let whole = decode(&[buf]);
    let (a, b) = buf.split_at(at);
    let split = decode(&[a, b]);
    assert_eq!(whole.0.is_ok(), split.0.is_ok());
    if let (Ok(_), Ok(_)) = (&whole.0, &split.0) {
        assert_eq!(whole, split);
    }
});
