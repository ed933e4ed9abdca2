//! WebSocket frame decoding and message assembly: arbitrary bytes, split at arbitrary
//! points, never panic; the session never consumes more than it was given, and everything
//! it writes is a well-formed server frame (unmasked, control frames within 125 bytes).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringmaster_protocols::websocket::frame::{decode_header, OpCode};
use ringmaster_protocols::websocket::session::{Flow, Message, Session, State};

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    // First byte: read size (1..=256) and the message limit (small, to hit 1009 often).
    let chunk = usize::from(split) + 1;
    let mut session = Session::new(usize::from(split) * 64);
    let mut out = Vec::new();
    let mut carry: Vec<u8> = Vec::new();
    for piece in rest.chunks(chunk) {
        carry.extend_from_slice(piece);
        let rep = session.feed(&carry, &mut out, &mut |msg, out| {
            if let Message::Text(t) = msg {
                assert!(std::str::from_utf8(t.as_bytes()).is_ok());
            }
            // Echo, as the echo server does.
            match msg {
                Message::Text(t) => ringmaster_protocols::websocket::frame::encode_frame(
                    out,
                    OpCode::Text,
                    t.as_bytes(),
                ),
                Message::Binary(b) => {
                    ringmaster_protocols::websocket::frame::encode_frame(out, OpCode::Binary, b)
                }
            }
            Flow::Continue
        });
        assert!(rep.consumed <= carry.len());
        carry.drain(..rep.consumed);
        if session.state() == State::Done {
            break;
        }
    }
    // Everything written parses back as unmasked frames.
    let mut pos = 0;
    while pos < out.len() {
        let h = decode_header(&out[pos..])
            .expect("valid header")
            .expect("complete header");
        assert!(h.mask.is_none());
        if h.opcode.is_control() {
            assert!(h.payload_len <= 125);
        }
        pos += h.header_len + h.payload_len as usize;
    }
    assert_eq!(pos, out.len());
});
