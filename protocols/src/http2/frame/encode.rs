//! Encoding the frames a server sends, appended to a `Vec<u8>`.
//!
//! Owns the wire layout only. Choosing sizes is the caller's job: a DATA payload must fit
//! the peer's SETTINGS_MAX_FRAME_SIZE and the flow-control windows; only a field block is
//! split here, because HEADERS + CONTINUATION must go out back to back (section 6.10).

use super::{flags, kind, Setting, FRAME_HEADER_LEN, MAX_WINDOW_SIZE};
use crate::http2::error::ErrorCode;

/// Appends a frame header. `length` must fit 24 bits; the stream id's reserved bit is
/// sent as 0 (section 4.1).
pub fn encode_frame_header(out: &mut Vec<u8>, length: usize, kind: u8, flags: u8, stream_id: u32) {
    let len = (length as u32).to_be_bytes();
    let sid = (stream_id & MAX_WINDOW_SIZE).to_be_bytes();
    out.extend_from_slice(&[
        len[1], len[2], len[3], kind, flags, sid[0], sid[1], sid[2], sid[3],
    ]);
}

/// Appends a DATA frame carrying `data` (at most the peer's max frame size), with
/// END_STREAM when `end_stream`.
pub fn encode_data(out: &mut Vec<u8>, stream_id: u32, data: &[u8], end_stream: bool) {
    encode_data_header(out, stream_id, data.len(), end_stream);
    out.extend_from_slice(data);
}

/// Appends only the header of a DATA frame of `len` bytes, for a payload the caller
/// sends from its own buffer (no copy of a large body).
pub fn encode_data_header(out: &mut Vec<u8>, stream_id: u32, len: usize, end_stream: bool) {
    let f = if end_stream { flags::END_STREAM } else { 0 };
    encode_frame_header(out, len, kind::DATA, f, stream_id);
}

/// Appends a field block as one HEADERS frame followed by as many CONTINUATION frames as
/// `max_frame_size` (the peer's SETTINGS_MAX_FRAME_SIZE) requires; END_HEADERS on the
/// last, END_STREAM on the HEADERS frame when `end_stream`.
pub fn encode_headers(
    out: &mut Vec<u8>,
    stream_id: u32,
    block: &[u8],
    end_stream: bool,
    max_frame_size: u32,
) {
    // A max of 0 would loop forever; the RFC's floor is 2^14 anyway.
    let max = (max_frame_size as usize).max(1);
    let mut chunks = block.chunks(max);
    let first = chunks.next().unwrap_or_default();
    let mut rest = chunks.peekable();
    let mut f = if end_stream { flags::END_STREAM } else { 0 };
    if rest.peek().is_none() {
        f |= flags::END_HEADERS;
    }
    out.reserve(block.len() + FRAME_HEADER_LEN * (1 + block.len() / max));
    encode_frame_header(out, first.len(), kind::HEADERS, f, stream_id);
    out.extend_from_slice(first);
    while let Some(chunk) = rest.next() {
        let f = if rest.peek().is_none() {
            flags::END_HEADERS
        } else {
            0
        };
        encode_frame_header(out, chunk.len(), kind::CONTINUATION, f, stream_id);
        out.extend_from_slice(chunk);
    }
}

/// Appends a SETTINGS frame with `settings` (this side's, sent at the connection's start).
pub fn encode_settings(out: &mut Vec<u8>, settings: &[Setting]) {
    encode_frame_header(out, settings.len() * 6, kind::SETTINGS, 0, 0);
    for s in settings {
        let (id, value) = s.to_wire();
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&value.to_be_bytes());
    }
}

/// Appends a SETTINGS acknowledgement (section 6.5.3).
pub fn encode_settings_ack(out: &mut Vec<u8>) {
    encode_frame_header(out, 0, kind::SETTINGS, flags::ACK, 0);
}

/// Appends a PING (for liveness checks or RTT measurement).
pub fn encode_ping(out: &mut Vec<u8>, payload: [u8; 8]) {
    encode_frame_header(out, 8, kind::PING, 0, 0);
    out.extend_from_slice(&payload);
}

/// Appends the acknowledgement of a PING, echoing its payload (section 6.7).
pub fn encode_ping_ack(out: &mut Vec<u8>, payload: [u8; 8]) {
    encode_frame_header(out, 8, kind::PING, flags::ACK, 0);
    out.extend_from_slice(&payload);
}

/// Appends a GOAWAY frame (section 6.8).
pub fn encode_goaway(out: &mut Vec<u8>, last_stream_id: u32, code: ErrorCode, debug_data: &[u8]) {
    encode_frame_header(out, 8 + debug_data.len(), kind::GOAWAY, 0, 0);
    out.extend_from_slice(&(last_stream_id & MAX_WINDOW_SIZE).to_be_bytes());
    out.extend_from_slice(&code.to_u32().to_be_bytes());
    out.extend_from_slice(debug_data);
}

/// Appends a RST_STREAM frame (section 6.4).
pub fn encode_rst_stream(out: &mut Vec<u8>, stream_id: u32, code: ErrorCode) {
    encode_frame_header(out, 4, kind::RST_STREAM, 0, stream_id);
    out.extend_from_slice(&code.to_u32().to_be_bytes());
}

/// Appends a WINDOW_UPDATE frame; `stream_id` 0 is the connection window. `increment`
/// must be 1 to 2^31-1 (section 6.9).
pub fn encode_window_update(out: &mut Vec<u8>, stream_id: u32, increment: u32) {
    encode_frame_header(out, 4, kind::WINDOW_UPDATE, 0, stream_id);
    out.extend_from_slice(&(increment & MAX_WINDOW_SIZE).to_be_bytes());
}
