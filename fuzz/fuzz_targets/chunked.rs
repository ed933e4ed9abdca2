//! The chunked decoder: never panics, never exceeds its limits, and gives the same
//! result (body and trailer fields) whether the input arrives whole or split at an
//! arbitrary byte (the first two input bytes choose the split point); every trailer
//! field it keeps is a token name and a value without CR, LF or NUL.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringmaster_protocols::http1::body::ChunkedDecoder;

const MAX_BODY: u64 = 4096;
const MAX_TRAILER: usize = 512;

type Fields = Vec<(String, Vec<u8>)>;

fn decode(pieces: &[&[u8]]) -> (Result<usize, u16>, Vec<u8>, bool, Fields) {
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
            Err(e) => return (Err(e.status()), body, false, Vec::new()),
        }
    }
    assert!(body.len() as u64 <= MAX_BODY);
    assert!(body.len() as u64 <= d.decoded());
    let trailers = d.trailers();
    assert!(d.is_done() || trailers.is_empty());
    let mut kept = 0;
    let fields: Fields = trailers
        .iter()
        .map(|(n, v)| {
            assert!(!n.is_empty() && !n.contains([':', ' ', '\r', '\n']), "{n:?}");
            assert!(!v.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0), "{v:?}");
            assert!(!v.starts_with(b" ") && !v.ends_with(b" "), "trimmed");
            kept += n.len() + v.len();
            (n.to_owned(), v.to_vec())
        })
        .collect();
    assert!(kept <= MAX_TRAILER);
    (Ok(used), body, d.is_done(), fields)
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
