//! What an HTTP/2 connection advertises and the bounds it holds the peer to, and the
//! counters of every defence.
//!
//! This module owns the numbers only: [`H2Config`] (the SETTINGS we send and the
//! per-connection budgets) and [`H2Counters`] (how often each was hit, per shard). The
//! connection state machine applies them.

use std::time::Duration;

use crate::http2::frame::{Setting, DEFAULT_MAX_FRAME_SIZE};

/// The SETTINGS an HTTP/2 connection advertises and the budgets it enforces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct H2Config {
    /// SETTINGS_MAX_CONCURRENT_STREAMS: streams open at once; more are refused with
    /// RST_STREAM REFUSED_STREAM.
    pub max_concurrent_streams: u32,
    /// SETTINGS_INITIAL_WINDOW_SIZE: how much request body a stream may send before we
    /// open its window further (for a body streamed to the application: before the
    /// application has taken the first half of it).
    pub initial_window_size: u32,
    /// What the client may send on the whole connection before we open it further: the
    /// RFC starts it at 65,535, and a larger value is announced with a WINDOW_UPDATE on
    /// stream 0 right after our SETTINGS (at most 2^31-1). It bounds no memory of ours
    /// (a body is either gathered under the body limit or handed on as it arrives, each
    /// stream held to its own window), so it only decides how much several uploads on one
    /// connection may have in flight.
    pub connection_window: u32,
    /// SETTINGS_MAX_FRAME_SIZE: the largest frame payload we accept.
    pub max_frame_size: u32,
    /// SETTINGS_MAX_HEADER_LIST_SIZE: the largest decoded request field section.
    pub max_header_list_size: u32,
    /// SETTINGS_HEADER_TABLE_SIZE: our HPACK decoder's dynamic table (small, so that an
    /// idle connection stays small).
    pub header_table_size: u32,
    /// The most our HPACK encoder spends on its dynamic table, whatever the peer allows.
    pub encoder_table_size: u32,
    /// The largest header block (HEADERS and its CONTINUATION frames, still compressed);
    /// past it the connection ends with ENHANCE_YOUR_CALM (CONTINUATION flood).
    pub max_header_block: usize,
    /// Streams reset per connection per second, by the client or by us (rapid reset,
    /// CVE-2023-44487 and CVE-2025-8671); past it GOAWAY ENHANCE_YOUR_CALM.
    pub max_resets_per_sec: u32,
    /// SETTINGS and PING frames per connection per second; past it GOAWAY
    /// ENHANCE_YOUR_CALM.
    pub max_control_per_sec: u32,
    /// Output queued on the connection past which a frame that asks for an answer
    /// (SETTINGS, PING) is taken as a flood from a peer that does not read.
    pub max_control_backlog: usize,
    /// How long our SETTINGS may wait for the peer's acknowledgement; past it GOAWAY
    /// SETTINGS_TIMEOUT (RFC 9113 section 6.5.3).
    pub settings_timeout: Duration,
    /// How long a response may wait on a flow-control window the peer keeps at zero, or
    /// on output the peer does not read: a stream stuck on its own window is reset with
    /// CANCEL, a connection stuck on its window or its write backlog ends with GOAWAY
    /// ENHANCE_YOUR_CALM.
    pub stall_timeout: Duration,
    /// Bytes per second a request body must average, counted from its HEADERS, once
    /// `stall_timeout` has passed (a slow-drip client: a stream held open with a byte
    /// now and then). Slower, the stream is answered 408 and reset with NO_ERROR
    /// (section 8.1), or reset with CANCEL if its response has started. Time the
    /// application holds the body back ([`Exchange::pause_body`](crate::http1::Exchange::pause_body))
    /// is the server's, so such a stream is not judged. 0 turns the bound off.
    pub min_body_rate: u32,
    /// Output queued on the connection (`Port::backlog`) past which no more DATA is
    /// produced until it drains: response bodies wait in their streams' queues instead.
    /// Keep it at least half the runtime's write-backlog limit (the writable-again
    /// callback comes at that half); `ringmaster http` sets it to `--write-backlog`.
    pub max_send_backlog: usize,
}

impl Default for H2Config {
    fn default() -> Self {
        H2Config {
            max_concurrent_streams: 128,
            initial_window_size: 65_535,
            connection_window: 1 << 20,
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            max_header_list_size: 16 * 1024,
            header_table_size: 1024,
            encoder_table_size: 1024,
            max_header_block: 64 * 1024,
            max_resets_per_sec: 200,
            max_control_per_sec: 1000,
            max_control_backlog: 1 << 20,
            settings_timeout: Duration::from_secs(10),
            stall_timeout: Duration::from_secs(30),
            min_body_rate: 1024,
            max_send_backlog: 4 << 20,
        }
    }
}

impl H2Config {
    /// The SETTINGS frame's parameters.
    pub fn settings(&self) -> [Setting; 5] {
        [
            Setting::MaxConcurrentStreams(self.max_concurrent_streams),
            Setting::InitialWindowSize(self.initial_window_size),
            Setting::MaxFrameSize(self.max_frame_size),
            Setting::MaxHeaderListSize(self.max_header_list_size),
            Setting::HeaderTableSize(self.header_table_size),
        ]
    }
}

/// How often each HTTP/2 event and defence was hit, per shard.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct H2Counters {
    /// Connections that started with the HTTP/2 preface.
    pub connections: u64,
    /// Streams opened by clients (requests received).
    pub streams: u64,
    /// RST_STREAM frames received.
    pub resets_received: u64,
    /// RST_STREAM frames sent (refusals and errors included).
    pub resets_sent: u64,
    /// Streams refused past MAX_CONCURRENT_STREAMS (REFUSED_STREAM).
    pub refused_streams: u64,
    /// Malformed requests (section 8.1.1) reset with PROTOCOL_ERROR.
    pub malformed: u64,
    /// Connections ended for too many resets per second (rapid reset).
    pub rapid_reset: u64,
    /// Connections ended for a SETTINGS or PING flood.
    pub control_flood: u64,
    /// Connections ended for a header block past its bound (CONTINUATION flood).
    pub continuation_flood: u64,
    /// Connection errors other than the defences (GOAWAY with an error code).
    pub connection_errors: u64,
    /// HPACK decoding errors (COMPRESSION_ERROR).
    pub compression_errors: u64,
    /// Flow-control violations by the peer.
    pub flow_control_errors: u64,
    /// GOAWAY frames sent.
    pub goaway_sent: u64,
    /// PING frames answered.
    pub pings: u64,
    /// Connections ended because our SETTINGS went unacknowledged (SETTINGS_TIMEOUT).
    pub settings_timeouts: u64,
    /// Connections ended because a header block (HEADERS without END_HEADERS) did not
    /// complete within the header-read timeout.
    pub header_timeouts: u64,
    /// Streams reset (CANCEL) after their response sat on a zero window too long.
    pub stream_stalls: u64,
    /// Connections ended after their responses sat on a zero connection window too long.
    pub window_stalls: u64,
    /// Connections ended after their output sat past the send backlog too long (a peer
    /// that does not read).
    pub write_stalls: u64,
    /// Streams answered 408 (or reset) for a request body slower than
    /// [`H2Config::min_body_rate`].
    pub slow_bodies: u64,
}

impl H2Counters {
    /// Every counter with its name, for reports.
    pub fn fields(&self) -> [(&'static str, u64); 20] {
        [
            ("h2_connections", self.connections),
            ("h2_streams", self.streams),
            ("h2_resets_received", self.resets_received),
            ("h2_resets_sent", self.resets_sent),
            ("h2_refused_streams", self.refused_streams),
            ("h2_malformed", self.malformed),
            ("h2_rapid_reset", self.rapid_reset),
            ("h2_control_flood", self.control_flood),
            ("h2_continuation_flood", self.continuation_flood),
            ("h2_connection_errors", self.connection_errors),
            ("h2_compression_errors", self.compression_errors),
            ("h2_flow_control_errors", self.flow_control_errors),
            ("h2_goaway_sent", self.goaway_sent),
            ("h2_pings", self.pings),
            ("h2_settings_timeouts", self.settings_timeouts),
            ("h2_header_timeouts", self.header_timeouts),
            ("h2_stream_stalls", self.stream_stalls),
            ("h2_window_stalls", self.window_stalls),
            ("h2_write_stalls", self.write_stalls),
            ("h2_slow_bodies", self.slow_bodies),
        ]
    }
}
