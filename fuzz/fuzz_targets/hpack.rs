//! HPACK decoding: arbitrary header blocks never panic a fresh decoder or one whose
//! dynamic table was warmed by a real request sequence (RFC 7541 C.4), what the decoder
//! calls back never adds up past the header-list limit, and the table never grows past
//! its maximum. The first input byte sets a block size; the rest is cut into blocks of that
//! size, decoded in turn on one decoder (so later blocks see the table earlier ones built).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringmaster_protocols::http2::hpack::{Decoder, Encoder, DEFAULT_TABLE_SIZE};

const LIMIT: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let Some((&size, rest)) = data.split_first() else {
        return;
    };
    for warm in [false, true] {
        let mut d = Decoder::new(LIMIT);
        if warm {
            let mut e = Encoder::new(DEFAULT_TABLE_SIZE);
            let mut block = Vec::new();
            e.encode(
                [
                    (&b":method"[..], &b"GET"[..]),
                    (b":scheme", b"https"),
                    (b":path", b"/plaintext"),
                    (b":authority", b"www.example.com"),
                    (b"user-agent", b"fuzz/1.0"),
                    (b"custom-key", b"custom-value"),
                ],
                &mut block,
            );
            d.decode(&block, |_| {}).expect("a valid block");
        }
        for block in rest.chunks(usize::from(size) + 1) {
            let mut total = 0usize;
            let r = d.decode(block, |f| total += f.name.len() + f.value.len() + 32);
            assert!(total <= LIMIT);
            assert!(d.table_size() <= DEFAULT_TABLE_SIZE);
            if matches!(r, Err(e) if e.is_connection_error()) {
                break;
            }
        }
    }
});
