//! The error vocabulary of RFC 9113 section 7 and the frame layer's typed errors.
//!
//! This module owns what an error *is* on an HTTP/2 connection: its wire code and whether
//! it ends one stream or the whole connection (section 5.4). It never decides what to do
//! about one; the connection state machine sends the RST_STREAM or GOAWAY.

use std::fmt;

/// An HTTP/2 error code (RFC 9113 section 7), as carried by RST_STREAM and GOAWAY.
///
/// Codes this crate does not know are preserved, never folded into another: section 7
/// says an unknown code MUST NOT trigger special behaviour, and it may be logged as sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// 0x0: graceful shutdown, or no error.
    NoError,
    /// 0x1: an unspecific protocol error.
    ProtocolError,
    /// 0x2: an unexpected internal error.
    InternalError,
    /// 0x3: the peer violated the flow-control protocol.
    FlowControlError,
    /// 0x4: a SETTINGS frame was not acknowledged in time.
    SettingsTimeout,
    /// 0x5: a frame arrived after the stream was half-closed.
    StreamClosed,
    /// 0x6: a frame had an invalid size.
    FrameSizeError,
    /// 0x7: the stream was refused before any application processing.
    RefusedStream,
    /// 0x8: the stream is no longer needed.
    Cancel,
    /// 0x9: the field-compression context cannot be kept in sync.
    CompressionError,
    /// 0xa: the connection made for a CONNECT request was reset or closed.
    ConnectError,
    /// 0xb: the peer is generating excessive load.
    EnhanceYourCalm,
    /// 0xc: the transport does not meet the minimum security requirements.
    InadequateSecurity,
    /// 0xd: the endpoint requires HTTP/1.1 instead.
    Http11Required,
    /// A code RFC 9113 does not define, kept as sent.
    Unknown(u32),
}

impl ErrorCode {
    /// The code for a wire value; unknown values are kept in [`ErrorCode::Unknown`].
    pub fn from_u32(v: u32) -> Self {
        match v {
            0x0 => ErrorCode::NoError,
            0x1 => ErrorCode::ProtocolError,
            0x2 => ErrorCode::InternalError,
            0x3 => ErrorCode::FlowControlError,
            0x4 => ErrorCode::SettingsTimeout,
            0x5 => ErrorCode::StreamClosed,
            0x6 => ErrorCode::FrameSizeError,
            0x7 => ErrorCode::RefusedStream,
            0x8 => ErrorCode::Cancel,
            0x9 => ErrorCode::CompressionError,
            0xa => ErrorCode::ConnectError,
            0xb => ErrorCode::EnhanceYourCalm,
            0xc => ErrorCode::InadequateSecurity,
            0xd => ErrorCode::Http11Required,
            other => ErrorCode::Unknown(other),
        }
    }

    /// The wire value.
    pub fn to_u32(self) -> u32 {
        match self {
            ErrorCode::NoError => 0x0,
            ErrorCode::ProtocolError => 0x1,
            ErrorCode::InternalError => 0x2,
            ErrorCode::FlowControlError => 0x3,
            ErrorCode::SettingsTimeout => 0x4,
            ErrorCode::StreamClosed => 0x5,
            ErrorCode::FrameSizeError => 0x6,
            ErrorCode::RefusedStream => 0x7,
            ErrorCode::Cancel => 0x8,
            ErrorCode::CompressionError => 0x9,
            ErrorCode::ConnectError => 0xa,
            ErrorCode::EnhanceYourCalm => 0xb,
            ErrorCode::InadequateSecurity => 0xc,
            ErrorCode::Http11Required => 0xd,
            ErrorCode::Unknown(v) => v,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            ErrorCode::NoError => "NO_ERROR",
            ErrorCode::ProtocolError => "PROTOCOL_ERROR",
            ErrorCode::InternalError => "INTERNAL_ERROR",
            ErrorCode::FlowControlError => "FLOW_CONTROL_ERROR",
            ErrorCode::SettingsTimeout => "SETTINGS_TIMEOUT",
            ErrorCode::StreamClosed => "STREAM_CLOSED",
            ErrorCode::FrameSizeError => "FRAME_SIZE_ERROR",
            ErrorCode::RefusedStream => "REFUSED_STREAM",
            ErrorCode::Cancel => "CANCEL",
            ErrorCode::CompressionError => "COMPRESSION_ERROR",
            ErrorCode::ConnectError => "CONNECT_ERROR",
            ErrorCode::EnhanceYourCalm => "ENHANCE_YOUR_CALM",
            ErrorCode::InadequateSecurity => "INADEQUATE_SECURITY",
            ErrorCode::Http11Required => "HTTP_1_1_REQUIRED",
            ErrorCode::Unknown(v) => return write!(f, "unknown error code {v:#x}"),
        };
        f.write_str(name)
    }
}

/// Why a frame could not be decoded, and what it ends (RFC 9113 section 5.4).
///
/// A connection error means GOAWAY with `code` and no more reading. A stream error means
/// RST_STREAM on `stream_id`; the frame was complete and `frame_len` bytes of input are to
/// be dropped before decoding goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The whole connection is unusable (section 5.4.1).
    #[error("connection error {code}: {reason}")]
    Connection {
        /// The code for GOAWAY.
        code: ErrorCode,
        /// What was wrong, for logs.
        reason: &'static str,
    },
    /// One stream is unusable (section 5.4.2); the connection goes on.
    #[error("stream {stream_id} error {code}: {reason}")]
    Stream {
        /// The stream to reset.
        stream_id: u32,
        /// The code for RST_STREAM.
        code: ErrorCode,
        /// What was wrong, for logs.
        reason: &'static str,
        /// Bytes of input the offending frame took (header included), to skip.
        frame_len: usize,
    },
}

impl FrameError {
    /// The RFC 9113 error code to send.
    pub fn code(&self) -> ErrorCode {
        match *self {
            FrameError::Connection { code, .. } | FrameError::Stream { code, .. } => code,
        }
    }

    /// Whether the error ends the whole connection.
    pub fn is_connection_error(&self) -> bool {
        matches!(self, FrameError::Connection { .. })
    }

    pub(crate) fn conn(code: ErrorCode, reason: &'static str) -> Self {
        FrameError::Connection { code, reason }
    }

    pub(crate) fn protocol(reason: &'static str) -> Self {
        FrameError::Connection {
            code: ErrorCode::ProtocolError,
            reason,
        }
    }

    pub(crate) fn frame_size(reason: &'static str) -> Self {
        FrameError::Connection {
            code: ErrorCode::FrameSizeError,
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 9113 section 7: every defined code round-trips, unknown ones are preserved.
    #[test]
    fn codes_round_trip_and_unknown_is_kept() {
        for v in 0..=0xd {
            let c = ErrorCode::from_u32(v);
            assert!(!matches!(c, ErrorCode::Unknown(_)), "{v}");
            assert_eq!(c.to_u32(), v);
        }
        assert_eq!(ErrorCode::from_u32(0xe), ErrorCode::Unknown(0xe));
        assert_eq!(ErrorCode::Unknown(0xdead).to_u32(), 0xdead);
        assert_eq!(ErrorCode::EnhanceYourCalm.to_string(), "ENHANCE_YOUR_CALM");
    }
}
