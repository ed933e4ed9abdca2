//! RFC 9113 frames: the 9-byte header, every frame type of section 6, decoding in place
//! and encoding what a server sends.
//!
//! This module owns the wire layout of one frame and the rules a single frame can be
//! checked against on its own: sizes (section 4.2 and each type's fixed size), padding,
//! which stream ids a type may use, setting ranges. It never keeps state between frames:
//! stream states, flow-control windows, header blocks spread over CONTINUATION frames and
//! SETTINGS acknowledgement belong to the connection. Decoding never panics and never
//! copies: payloads are borrowed from the caller's buffer.
//!
//! - [`decode`]: one frame from the front of a byte slice;
//! - [`settings`]: SETTINGS parameters, their ranges and the values they set;
//! - `encode`: appending server frames to a `Vec<u8>` ([`encode_data`], [`encode_headers`], ...).

mod decode;
mod encode;
pub mod settings;
#[cfg(test)]
mod tests;

pub use decode::decode;
pub use encode::{
    encode_data, encode_data_header, encode_frame_header, encode_goaway, encode_headers,
    encode_ping, encode_ping_ack, encode_rst_stream, encode_settings, encode_settings_ack,
    encode_window_update,
};
pub use settings::{Setting, Settings, SettingsFrame};

use super::error::ErrorCode;

/// Length of the frame header that precedes every payload (section 4.1).
pub const FRAME_HEADER_LEN: usize = 9;

/// SETTINGS_MAX_FRAME_SIZE until the peer says otherwise, and its lowest legal value.
pub const DEFAULT_MAX_FRAME_SIZE: u32 = 1 << 14;

/// The highest legal SETTINGS_MAX_FRAME_SIZE: the 24-bit length field's maximum.
pub const MAX_MAX_FRAME_SIZE: u32 = (1 << 24) - 1;

/// The largest flow-control window and WINDOW_UPDATE increment (section 6.9.1).
pub const MAX_WINDOW_SIZE: u32 = (1 << 31) - 1;

/// Frame type codes (section 6; section 11.2 registers them).
pub mod kind {
    /// DATA (section 6.1).
    pub const DATA: u8 = 0x0;
    /// HEADERS (section 6.2).
    pub const HEADERS: u8 = 0x1;
    /// PRIORITY (section 6.3).
    pub const PRIORITY: u8 = 0x2;
    /// RST_STREAM (section 6.4).
    pub const RST_STREAM: u8 = 0x3;
    /// SETTINGS (section 6.5).
    pub const SETTINGS: u8 = 0x4;
    /// PUSH_PROMISE (section 6.6).
    pub const PUSH_PROMISE: u8 = 0x5;
    /// PING (section 6.7).
    pub const PING: u8 = 0x6;
    /// GOAWAY (section 6.8).
    pub const GOAWAY: u8 = 0x7;
    /// WINDOW_UPDATE (section 6.9).
    pub const WINDOW_UPDATE: u8 = 0x8;
    /// CONTINUATION (section 6.10).
    pub const CONTINUATION: u8 = 0x9;
}

/// Flag bits. Each means something for some frame types only; the others ignore it.
pub mod flags {
    /// DATA, HEADERS: the last frame the sender sends on this stream.
    pub const END_STREAM: u8 = 0x1;
    /// SETTINGS, PING: an acknowledgement.
    pub const ACK: u8 = 0x1;
    /// HEADERS, PUSH_PROMISE, CONTINUATION: the field block ends in this frame.
    pub const END_HEADERS: u8 = 0x4;
    /// DATA, HEADERS, PUSH_PROMISE: a pad length byte and padding are present.
    pub const PADDED: u8 = 0x8;
    /// HEADERS: the stream dependency and weight fields are present.
    pub const PRIORITY: u8 = 0x20;
}

/// The 9-byte header every frame starts with (section 4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Payload length, header excluded (24 bits).
    pub length: u32,
    /// Frame type (see [`kind`]).
    pub kind: u8,
    /// Flag bits as sent, unknown ones included (see [`flags`]).
    pub flags: u8,
    /// Stream identifier, the reserved bit cleared (section 4.1: it is ignored).
    pub stream_id: u32,
}

impl FrameHeader {
    /// Reads a header from its 9 bytes.
    pub fn parse(b: &[u8; FRAME_HEADER_LEN]) -> Self {
        FrameHeader {
            length: u32::from_be_bytes([0, b[0], b[1], b[2]]),
            kind: b[3],
            flags: b[4],
            stream_id: u32::from_be_bytes([b[5], b[6], b[7], b[8]]) & MAX_WINDOW_SIZE,
        }
    }

    /// Whether `flag` is set.
    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

/// The stream dependency fields of PRIORITY and of HEADERS with the PRIORITY flag
/// (section 5.3.2). RFC 9113 deprecates the scheme: they are parsed, checked for a
/// self-dependency, and otherwise ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Priority {
    /// The stream this one depends on.
    pub dependency: u32,
    /// The exclusive flag.
    pub exclusive: bool,
    /// The weight as sent (the weight minus one).
    pub weight: u8,
}

/// A DATA frame (section 6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Data<'a> {
    /// The stream (never 0).
    pub stream_id: u32,
    /// END_STREAM: the peer sends nothing more on this stream.
    pub end_stream: bool,
    /// The data, padding removed.
    pub data: &'a [u8],
    /// The whole payload length, padding included: what the frame costs against the
    /// flow-control windows (section 6.9.1 counts all of it).
    pub flow_len: u32,
}

/// A HEADERS frame (section 6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Headers<'a> {
    /// The stream (never 0).
    pub stream_id: u32,
    /// END_STREAM: the field block is the last thing sent on the stream.
    pub end_stream: bool,
    /// END_HEADERS: no CONTINUATION follows.
    pub end_headers: bool,
    /// The PRIORITY flag's fields, if present (deprecated; to be ignored).
    pub priority: Option<Priority>,
    /// The field block fragment (HPACK), padding removed.
    pub block: &'a [u8],
}

/// A PUSH_PROMISE frame (section 6.6). A server must never receive one: the caller
/// answers it with a connection error of type PROTOCOL_ERROR (section 8.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushPromise<'a> {
    /// The stream the promise is made on.
    pub stream_id: u32,
    /// END_HEADERS: no CONTINUATION follows.
    pub end_headers: bool,
    /// The stream being reserved.
    pub promised_stream_id: u32,
    /// The field block fragment, padding removed.
    pub block: &'a [u8],
}

/// A GOAWAY frame (section 6.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GoAway<'a> {
    /// The highest stream id the sender may have processed.
    pub last_stream_id: u32,
    /// Why the connection is ending.
    pub code: ErrorCode,
    /// Opaque diagnostic data.
    pub debug_data: &'a [u8],
}

/// One decoded frame, its payload borrowed from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// DATA (section 6.1).
    Data(Data<'a>),
    /// HEADERS (section 6.2).
    Headers(Headers<'a>),
    /// PRIORITY (section 6.3): accepted and ignored.
    Priority {
        /// The stream the priority is for.
        stream_id: u32,
        /// Its fields.
        priority: Priority,
    },
    /// RST_STREAM (section 6.4).
    RstStream {
        /// The stream being reset.
        stream_id: u32,
        /// Why.
        code: ErrorCode,
    },
    /// SETTINGS or its acknowledgement (section 6.5).
    Settings(SettingsFrame<'a>),
    /// PUSH_PROMISE (section 6.6): a protocol error when a server receives it.
    PushPromise(PushPromise<'a>),
    /// PING or its acknowledgement (section 6.7).
    Ping {
        /// The ACK flag.
        ack: bool,
        /// The opaque data, echoed back in the acknowledgement.
        payload: [u8; 8],
    },
    /// GOAWAY (section 6.8).
    GoAway(GoAway<'a>),
    /// WINDOW_UPDATE (section 6.9); the increment is never 0.
    WindowUpdate {
        /// 0 for the connection window, else the stream's.
        stream_id: u32,
        /// 1 to 2^31-1 bytes.
        increment: u32,
    },
    /// CONTINUATION (section 6.10).
    Continuation {
        /// The stream whose field block this continues.
        stream_id: u32,
        /// END_HEADERS: the field block ends here.
        end_headers: bool,
        /// The field block fragment.
        block: &'a [u8],
    },
    /// A frame type this implementation does not know. Section 4.1 says to ignore and
    /// discard it, except in the middle of a field block (section 6.10), which the
    /// connection checks: that is why it is returned rather than skipped.
    Unknown {
        /// Its type.
        kind: u8,
        /// Its stream.
        stream_id: u32,
    },
}

impl Frame<'_> {
    /// The frame's stream id (0 for frames about the connection).
    pub fn stream_id(&self) -> u32 {
        match *self {
            Frame::Data(Data { stream_id, .. })
            | Frame::Headers(Headers { stream_id, .. })
            | Frame::PushPromise(PushPromise { stream_id, .. })
            | Frame::Priority { stream_id, .. }
            | Frame::RstStream { stream_id, .. }
            | Frame::WindowUpdate { stream_id, .. }
            | Frame::Continuation { stream_id, .. }
            | Frame::Unknown { stream_id, .. } => stream_id,
            Frame::Settings(_) | Frame::Ping { .. } | Frame::GoAway(_) => 0,
        }
    }
}
