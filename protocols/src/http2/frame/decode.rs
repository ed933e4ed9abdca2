//! Decoding one frame from the front of a byte slice, with every check a single frame
//! allows (RFC 9113 sections 4 and 6).
//!
//! Owns: frame sizes, padding, per-type stream-id rules, fixed payload sizes, setting
//! ranges. Never: state across frames (a CONTINUATION's stream, an unknown frame inside
//! a field block, stream states), which the connection checks.

use super::{
    flags, kind, Data, Frame, FrameHeader, GoAway, Headers, Priority, PushPromise, SettingsFrame,
    FRAME_HEADER_LEN, MAX_WINDOW_SIZE,
};
use crate::http2::error::{ErrorCode, FrameError};

/// Decodes the frame at the start of `buf`, whose payload may be at most
/// `max_frame_size` bytes (the SETTINGS_MAX_FRAME_SIZE this side advertised).
///
/// `Ok(None)`: the frame is not all here yet; the header alone is enough to reject an
/// oversized frame, so a peer cannot make the caller buffer one. `Ok(Some((frame, n)))`:
/// the frame took the first `n` bytes. Unknown frame types come back as
/// [`Frame::Unknown`] and unknown flags are ignored, as section 4.1 says.
pub fn decode(buf: &[u8], max_frame_size: u32) -> Result<Option<(Frame<'_>, usize)>, FrameError> {
    let Some(head) = buf.first_chunk::<FRAME_HEADER_LEN>() else {
        return Ok(None);
    };
    let h = FrameHeader::parse(head);
    if h.length > max_frame_size {
        // Section 4.2: a frame over the limit. Always a connection error here: the
        // payload is not read, so the stream's state (and HPACK's) cannot be kept.
        return Err(FrameError::frame_size(
            "frame larger than SETTINGS_MAX_FRAME_SIZE",
        ));
    }
    let total = FRAME_HEADER_LEN + h.length as usize;
    let Some(payload) = buf.get(FRAME_HEADER_LEN..total) else {
        return Ok(None);
    };
    decode_payload(h, payload, total).map(|f| Some((f, total)))
}

fn decode_payload(h: FrameHeader, p: &[u8], total: usize) -> Result<Frame<'_>, FrameError> {
    let sid = h.stream_id;
    match h.kind {
        kind::DATA => {
            if sid == 0 {
                return Err(FrameError::protocol("DATA on stream 0"));
            }
            Ok(Frame::Data(Data {
                stream_id: sid,
                end_stream: h.has(flags::END_STREAM),
                data: unpad(h, p)?,
                flow_len: h.length,
            }))
        }
        kind::HEADERS => {
            if sid == 0 {
                return Err(FrameError::protocol("HEADERS on stream 0"));
            }
            let mut rest = unpad(h, p)?;
            let priority = if h.has(flags::PRIORITY) {
                let Some((fields, block)) = rest.split_first_chunk::<5>() else {
                    return Err(FrameError::frame_size("HEADERS too short for its priority"));
                };
                rest = block;
                let pr = priority(fields);
                if pr.dependency == sid {
                    // Section 5.3.1 calls this a stream error, but the field block is
                    // left undecoded and HPACK's state with it: the connection must go.
                    return Err(FrameError::protocol("HEADERS depends on its own stream"));
                }
                Some(pr)
            } else {
                None
            };
            Ok(Frame::Headers(Headers {
                stream_id: sid,
                end_stream: h.has(flags::END_STREAM),
                end_headers: h.has(flags::END_HEADERS),
                priority,
                block: rest,
            }))
        }
        kind::PRIORITY => {
            if sid == 0 {
                return Err(FrameError::protocol("PRIORITY on stream 0"));
            }
            let Ok(fields) = <&[u8; 5]>::try_from(p) else {
                // Section 6.3: a stream error, the only size error that is one.
                return Err(stream_err(
                    sid,
                    ErrorCode::FrameSizeError,
                    "PRIORITY not 5 bytes",
                    total,
                ));
            };
            let priority = priority(fields);
            if priority.dependency == sid {
                return Err(stream_err(
                    sid,
                    ErrorCode::ProtocolError,
                    "PRIORITY depends on its own stream",
                    total,
                ));
            }
            Ok(Frame::Priority {
                stream_id: sid,
                priority,
            })
        }
        kind::RST_STREAM => {
            if sid == 0 {
                return Err(FrameError::protocol("RST_STREAM on stream 0"));
            }
            let Ok(code) = <[u8; 4]>::try_from(p) else {
                return Err(FrameError::frame_size("RST_STREAM not 4 bytes"));
            };
            Ok(Frame::RstStream {
                stream_id: sid,
                code: ErrorCode::from_u32(u32::from_be_bytes(code)),
            })
        }
        kind::SETTINGS => {
            if sid != 0 {
                return Err(FrameError::protocol("SETTINGS on a stream"));
            }
            let ack = h.has(flags::ACK);
            if ack && !p.is_empty() {
                return Err(FrameError::frame_size("SETTINGS ACK with a payload"));
            }
            // (`usize::is_multiple_of` is newer than the workspace's rust-version.)
            if !p.chunks_exact(6).remainder().is_empty() {
                return Err(FrameError::frame_size(
                    "SETTINGS length not a multiple of 6",
                ));
            }
            SettingsFrame::parse(ack, p).map(Frame::Settings)
        }
        kind::PUSH_PROMISE => {
            if sid == 0 {
                return Err(FrameError::protocol("PUSH_PROMISE on stream 0"));
            }
            let rest = unpad(h, p)?;
            let Some((promised, block)) = rest.split_first_chunk::<4>() else {
                return Err(FrameError::frame_size("PUSH_PROMISE too short"));
            };
            Ok(Frame::PushPromise(PushPromise {
                stream_id: sid,
                end_headers: h.has(flags::END_HEADERS),
                promised_stream_id: u32::from_be_bytes(*promised) & MAX_WINDOW_SIZE,
                block,
            }))
        }
        kind::PING => {
            if sid != 0 {
                return Err(FrameError::protocol("PING on a stream"));
            }
            let Ok(payload) = <[u8; 8]>::try_from(p) else {
                return Err(FrameError::frame_size("PING not 8 bytes"));
            };
            Ok(Frame::Ping {
                ack: h.has(flags::ACK),
                payload,
            })
        }
        kind::GOAWAY => {
            if sid != 0 {
                return Err(FrameError::protocol("GOAWAY on a stream"));
            }
            let Some((fixed, debug_data)) = p.split_first_chunk::<8>() else {
                return Err(FrameError::frame_size("GOAWAY shorter than 8 bytes"));
            };
            let [a, b, c, d, e, f, g, i] = *fixed;
            Ok(Frame::GoAway(GoAway {
                last_stream_id: u32::from_be_bytes([a, b, c, d]) & MAX_WINDOW_SIZE,
                code: ErrorCode::from_u32(u32::from_be_bytes([e, f, g, i])),
                debug_data,
            }))
        }
        kind::WINDOW_UPDATE => {
            let Ok(inc) = <[u8; 4]>::try_from(p) else {
                return Err(FrameError::frame_size("WINDOW_UPDATE not 4 bytes"));
            };
            let increment = u32::from_be_bytes(inc) & MAX_WINDOW_SIZE;
            if increment == 0 {
                // Section 6.9: an error on whatever the frame was about.
                return Err(if sid == 0 {
                    FrameError::protocol("WINDOW_UPDATE of 0 on the connection")
                } else {
                    stream_err(sid, ErrorCode::ProtocolError, "WINDOW_UPDATE of 0", total)
                });
            }
            Ok(Frame::WindowUpdate {
                stream_id: sid,
                increment,
            })
        }
        kind::CONTINUATION => {
            if sid == 0 {
                return Err(FrameError::protocol("CONTINUATION on stream 0"));
            }
            Ok(Frame::Continuation {
                stream_id: sid,
                end_headers: h.has(flags::END_HEADERS),
                block: p,
            })
        }
        other => Ok(Frame::Unknown {
            kind: other,
            stream_id: sid,
        }),
    }
}

/// The payload without its pad length byte and padding, when PADDED is set (sections
/// 6.1, 6.2, 6.6: padding as long as the payload or longer is a PROTOCOL_ERROR).
fn unpad(h: FrameHeader, p: &[u8]) -> Result<&[u8], FrameError> {
    if !h.has(flags::PADDED) {
        return Ok(p);
    }
    let Some((&pad, rest)) = p.split_first() else {
        return Err(FrameError::frame_size("PADDED frame without a pad length"));
    };
    rest.len()
        .checked_sub(usize::from(pad))
        .and_then(|end| rest.get(..end))
        .ok_or(FrameError::protocol("padding longer than the payload"))
}

fn priority(f: &[u8; 5]) -> Priority {
    let [a, b, c, d, weight] = *f;
    let dep = u32::from_be_bytes([a, b, c, d]);
    Priority {
        dependency: dep & MAX_WINDOW_SIZE,
        exclusive: dep >> 31 != 0,
        weight,
    }
}

fn stream_err(
    stream_id: u32,
    code: ErrorCode,
    reason: &'static str,
    frame_len: usize,
) -> FrameError {
    FrameError::Stream {
        stream_id,
        code,
        reason,
        frame_len,
    }
}
