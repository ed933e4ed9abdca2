//! The HTTP/2 connection state machine (RFC 9113), sans-IO: bytes in, requests to the
//! same [`App`] as HTTP/1.1, frames out through the same [`Port`].
//!
//! This module owns what one HTTP/2 connection remembers: the preface and SETTINGS
//! exchange, the streams open now (section 5.1; idle and closed ones are not stored, the
//! highest stream id seen tells them apart), a header block spread over CONTINUATION
//! frames (nothing else may arrive in between, and it is bounded), both directions of
//! flow control (section 5.2), GOAWAY on drain and on errors, and the defences of the
//! connection (reset and control-frame budgets per second, the header block bound,
//! REFUSED_STREAM past MAX_CONCURRENT_STREAMS, no DATA produced past the send backlog,
//! and the stalls bounded in time: see `deadlines`). It never touches a socket.
//!
//! Streams answer in any order: each has its own exchange writing to its own
//! [`stream::SendQueue`]; a response waiting on a timer holds no other stream up.
//! Response heads are HPACK-encoded and written at once; bodies leave as DATA in
//! `flush`, round-robin over the streams, within the peer's windows, and what does not
//! fit waits for WINDOW_UPDATE.
//!
//! A request body is gathered whole (under the body limit) before the App sees the
//! request, unless the App takes bodies in pieces ([`App::stream_body`]): then the
//! request is dispatched at its head, DATA goes to [`App::on_body`] as it arrives, and
//! the stream's window is opened again only as the App takes the body and does not
//! pause it ([`Exchange::pause_body`]), so a slow App holds its client back by flow
//! control. The connection window is opened past the RFC's 65,535 right after SETTINGS
//! ([`H2Config::connection_window`]) so that uploads are not held to one small window
//! per round trip.
//!
//! Parts: [`config`] (SETTINGS and budgets, counters), `request` (a request's fields
//! checked against sections 8.2 and 8.3, and its body), `stream` (one stream, its send
//! queue and the exchange's sink), `callbacks` (the application's timers, offload
//! results, notifiers, calls, upstream replies and writable-again, routed to their
//! stream), `deadlines` (the one deadline of the connection: idle, an unfinished header
//! block, an unacknowledged SETTINGS, and responses stalled on a zero window or on a
//! peer that does not read).

mod callbacks;
pub mod config;
mod deadlines;
mod request;
mod stream;
#[cfg(test)]
mod tests;

use std::time::{Duration, Instant};

use ringmaster_runtime::Segment;

use crate::http1::app::{App, Request, Response};
use crate::http1::exchange::Exchange;
use crate::http1::exchange_state::{ExchangeState, Phase};
use crate::http1::head::Version;
use crate::http1::limits::Limits;
use crate::http1::port::Port;
use crate::http1::timer_tag::SEQ_MASK;
use crate::http2::error::{ErrorCode, FrameError};
use crate::http2::frame::{
    self, encode_data_header, encode_goaway, encode_ping_ack, encode_rst_stream, encode_settings,
    encode_settings_ack, encode_window_update, Data, Frame, Setting, MAX_WINDOW_SIZE,
};
use crate::http2::hpack::{Decoder, Encoder};
use crate::http2::preface::{check_preface, PrefaceCheck, PREFACE};

pub use config::H2Config;
use request::RequestParts;
use stream::{Stream, StreamSink, StreamState};

/// The window the RFC starts every connection and stream at (section 6.9.2).
const DEFAULT_WINDOW: i64 = 65_535;

/// A stream's queued body below which it is offered writable-again (the application
/// makes the next piece while this much still waits).
const LOW_WATER: usize = 64 * 1024;

/// DATA frames one stream sends per turn of `flush`'s round-robin.
const FRAMES_PER_TURN: usize = 4;

/// A header block in progress: HEADERS without END_HEADERS, then CONTINUATION frames.
struct Continuation {
    /// When its HEADERS arrived (the block must end within the header-read timeout).
    since: Instant,
    stream_id: u32,
    end_stream: bool,
    kind: BlockKind,
    block: Vec<u8>,
}

/// What a header block is for, decided from the stream's state when HEADERS arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BlockKind {
    /// A new request's header section.
    Request,
    /// An open stream's trailer section.
    Trailers,
    /// Decoded only to keep HPACK in step; the stream is reset with this code, if any.
    Discard(Option<ErrorCode>),
}

/// Events counted per second per connection, against the budgets of [`H2Config`].
#[derive(Debug)]
struct Budget {
    since: Instant,
    resets: u32,
    control: u32,
}

/// One HTTP/2 connection's state, generic over the application's task type.
pub(crate) struct H2Conn<T> {
    cfg: H2Config,
    max_body: u64,
    idle_timeout: Duration,
    header_timeout: Duration,
    streams: Vec<Stream<T>>,
    dec: Decoder,
    enc: Encoder,
    /// A reusable buffer for response field blocks.
    block: Vec<u8>,
    cont: Option<Continuation>,
    /// The client preface was read (and our SETTINGS sent).
    preface_seen: bool,
    /// The client's first SETTINGS arrived.
    peer_settings_seen: bool,
    /// The client acknowledged our SETTINGS.
    settings_acked: bool,
    /// When our SETTINGS were sent.
    settings_sent: Instant,
    /// The highest stream id the client used.
    last_stream: u32,
    /// The ids the client skipped when it last opened a stream above `last_stream + 2`:
    /// HEADERS on one of them opens no stream (they were implicitly closed, section
    /// 5.1.1) and is an unexpected stream id, PROTOCOL_ERROR, where HEADERS on a stream
    /// that was used is STREAM_CLOSED (section 5.1). Only the latest gap is kept, so that
    /// the memory stays fixed whatever ids the client picks; an id in an older gap gets
    /// STREAM_CLOSED, the answer for the closed stream it also is.
    skipped: Option<(u32, u32)>,
    goaway_sent: bool,
    /// The server is draining: close once the streams below the GOAWAY are done.
    draining: bool,
    /// `Port::close` was called; input is ignored.
    closed: bool,
    /// What the peer lets us send on the connection.
    conn_send: i64,
    /// What we let the peer send on the connection.
    conn_recv: i64,
    conn_recv_unacked: u32,
    peer_initial_window: u32,
    peer_max_frame: u32,
    next_seq: u32,
    budget: Budget,
    last_active: Instant,
    /// Since when a body has waited on a connection window of zero or less, with no
    /// DATA sent.
    conn_stalled_since: Option<Instant>,
    /// Since when a body has waited because the output queued is past
    /// [`H2Config::max_send_backlog`] (the peer does not read).
    write_stalled_since: Option<Instant>,
}

impl<T> H2Conn<T> {
    /// A connection whose first bytes are (or start) the client preface.
    pub(crate) fn new(cfg: &H2Config, limits: &Limits, now: Instant) -> Self {
        H2Conn {
            cfg: cfg.clone(),
            max_body: limits.max_body,
            idle_timeout: limits.idle_timeout,
            header_timeout: limits.header_read_timeout,
            streams: Vec::new(),
            dec: Decoder::new(cfg.max_header_list_size as usize),
            enc: Encoder::new(cfg.encoder_table_size as usize),
            block: Vec::new(),
            cont: None,
            preface_seen: false,
            peer_settings_seen: false,
            settings_acked: false,
            settings_sent: now,
            last_stream: 0,
            skipped: None,
            goaway_sent: false,
            draining: false,
            closed: false,
            conn_send: DEFAULT_WINDOW,
            conn_recv: DEFAULT_WINDOW,
            conn_recv_unacked: 0,
            peer_initial_window: DEFAULT_WINDOW as u32,
            peer_max_frame: frame::DEFAULT_MAX_FRAME_SIZE,
            next_seq: 0,
            budget: Budget {
                since: now,
                resets: 0,
                control: 0,
            },
            last_active: now,
            conn_stalled_since: None,
            write_stalled_since: None,
        }
    }

    /// Reads every complete frame at the start of `input`; returns how many bytes were
    /// consumed (the rest, an incomplete frame, must be shown again with more).
    pub(crate) fn feed<A: App<Task = T>>(
        &mut self,
        app: &mut A,
        input: &[u8],
        port: &mut dyn Port,
    ) -> usize {
        if self.closed {
            return input.len();
        }
        self.last_active = port.now();
        let mut pos = 0;
        if !self.preface_seen {
            match check_preface(input) {
                PrefaceCheck::Partial => return 0,
                PrefaceCheck::Mismatch => {
                    self.fail(ErrorCode::ProtocolError, "bad preface", port);
                    return input.len();
                }
                PrefaceCheck::Complete => {
                    self.preface_seen = true;
                    pos = PREFACE.len();
                    port.counters().h2.connections += 1;
                    encode_settings(port.buf(), &self.cfg.settings());
                    self.settings_sent = port.now();
                    // Section 6.9.2: the connection window can only grow by WINDOW_UPDATE.
                    let more = self.conn_recv_size() - DEFAULT_WINDOW;
                    if more > 0 {
                        encode_window_update(port.buf(), 0, more as u32);
                        self.conn_recv += more;
                    }
                }
            }
        }
        while !self.closed {
            let rest = input.get(pos..).unwrap_or_default();
            match frame::decode(rest, self.cfg.max_frame_size) {
                Ok(None) => break,
                Ok(Some((f, n))) => {
                    pos += n;
                    self.on_frame(app, f, port);
                }
                Err(FrameError::Stream {
                    stream_id,
                    code,
                    frame_len,
                    ..
                }) => {
                    pos += frame_len;
                    if self.cont.is_some() {
                        self.fail(
                            ErrorCode::ProtocolError,
                            "frame inside a header block",
                            port,
                        );
                    } else {
                        self.reset_id(app, stream_id, code, port);
                    }
                }
                Err(FrameError::Connection { code, reason }) => {
                    port.counters().h2.connection_errors += 1;
                    self.fail(code, reason, port);
                }
            }
        }
        if self.closed {
            return input.len();
        }
        self.after(port);
        pos
    }

    /// One frame.
    fn on_frame<A: App<Task = T>>(&mut self, app: &mut A, f: Frame<'_>, port: &mut dyn Port) {
        if !self.peer_settings_seen {
            // Section 3.4: the preface's SETTINGS comes first.
            if !matches!(f, Frame::Settings(s) if !s.ack) {
                port.counters().h2.connection_errors += 1;
                return self.fail(
                    ErrorCode::ProtocolError,
                    "no SETTINGS after the preface",
                    port,
                );
            }
            self.peer_settings_seen = true;
        }
        if let Some(cont) = &mut self.cont {
            // Section 6.10: only CONTINUATION on the same stream until END_HEADERS.
            let Frame::Continuation {
                stream_id,
                end_headers,
                block,
            } = f
            else {
                port.counters().h2.connection_errors += 1;
                return self.fail(
                    ErrorCode::ProtocolError,
                    "frame inside a header block",
                    port,
                );
            };
            if stream_id != cont.stream_id {
                port.counters().h2.connection_errors += 1;
                return self.fail(
                    ErrorCode::ProtocolError,
                    "CONTINUATION on another stream",
                    port,
                );
            }
            if cont.block.len() + block.len() > self.cfg.max_header_block {
                port.counters().h2.continuation_flood += 1;
                return self.fail(ErrorCode::EnhanceYourCalm, "header block too large", port);
            }
            cont.block.extend_from_slice(block);
            if end_headers {
                if let Some(c) = self.cont.take() {
                    self.block_done(app, c.stream_id, c.end_stream, c.kind, &c.block, port);
                }
            }
            return;
        }
        match f {
            Frame::Data(d) => self.data(app, d, port),
            Frame::Headers(h) => {
                self.headers(app, h.stream_id, h.end_stream, h.end_headers, h.block, port)
            }
            Frame::Priority { .. } | Frame::Unknown { .. } => {}
            Frame::RstStream { stream_id, .. } => self.peer_reset(app, stream_id, port),
            Frame::Settings(s) if s.ack => {
                if !self.settings_acked {
                    self.settings_acked = true;
                    self.dec
                        .set_max_table_size(self.cfg.header_table_size as usize);
                }
            }
            Frame::Settings(s) => {
                if self.control_flood(port) {
                    return;
                }
                for setting in s.iter() {
                    if !self.apply_setting(app, setting, port) {
                        return;
                    }
                }
                encode_settings_ack(port.buf());
            }
            Frame::PushPromise(_) => {
                port.counters().h2.connection_errors += 1;
                self.fail(ErrorCode::ProtocolError, "PUSH_PROMISE from a client", port);
            }
            Frame::Ping { ack: true, .. } => {}
            Frame::Ping { payload, .. } => {
                if !self.control_flood(port) {
                    port.counters().h2.pings += 1;
                    encode_ping_ack(port.buf(), payload);
                }
            }
            // Section 6.8: GOAWAY stops the streams its *receiver* may open, and the
            // server opens none (no push); its sender closes the connection when its
            // streams are done. So it changes nothing here, whatever its code (section 7:
            // an unknown code triggers nothing special): closing first could drop a
            // request already on its way, and the idle timeout bounds a client that
            // never closes.
            Frame::GoAway(_) => {}
            Frame::WindowUpdate {
                stream_id,
                increment,
            } => self.window_update(app, stream_id, increment, port),
            Frame::Continuation { .. } => {
                port.counters().h2.connection_errors += 1;
                self.fail(
                    ErrorCode::ProtocolError,
                    "CONTINUATION without HEADERS",
                    port,
                );
            }
        }
    }

    /// Applies one of the peer's settings; false if it ended the connection.
    fn apply_setting<A: App<Task = T>>(
        &mut self,
        _app: &mut A,
        s: Setting,
        port: &mut dyn Port,
    ) -> bool {
        match s {
            Setting::HeaderTableSize(v) => self.enc.set_max_table_size(v as usize),
            Setting::MaxFrameSize(v) => self.peer_max_frame = v,
            Setting::InitialWindowSize(v) => {
                // Section 6.9.2: the change applies to every stream's window.
                let delta = i64::from(v) - i64::from(self.peer_initial_window);
                self.peer_initial_window = v;
                for st in &mut self.streams {
                    st.send_window += delta;
                    if st.send_window > i64::from(MAX_WINDOW_SIZE) {
                        port.counters().h2.flow_control_errors += 1;
                        self.fail(ErrorCode::FlowControlError, "window above 2^31-1", port);
                        return false;
                    }
                }
            }
            Setting::EnablePush(_)
            | Setting::MaxConcurrentStreams(_)
            | Setting::MaxHeaderListSize(_) => {}
        }
        true
    }

    /// The connection receive window we keep open: the configured one, within what
    /// the RFC allows (65,535 to 2^31-1).
    fn conn_recv_size(&self) -> i64 {
        i64::from(self.cfg.connection_window).clamp(DEFAULT_WINDOW, i64::from(MAX_WINDOW_SIZE))
    }

    fn find(&self, id: u32) -> Option<usize> {
        self.streams.iter().position(|s| s.id == id)
    }

    /// HEADERS: a new request, trailers, or a block to decode and drop.
    fn headers<A: App<Task = T>>(
        &mut self,
        app: &mut A,
        sid: u32,
        end_stream: bool,
        end_headers: bool,
        block: &[u8],
        port: &mut dyn Port,
    ) {
        if sid & 1 == 0 {
            port.counters().h2.connection_errors += 1;
            return self.fail(
                ErrorCode::ProtocolError,
                "even stream id from a client",
                port,
            );
        }
        let kind = if let Some(i) = self.find(sid) {
            match self.streams[i].state {
                StreamState::Open => BlockKind::Trailers,
                StreamState::HalfClosedRemote => BlockKind::Discard(Some(ErrorCode::StreamClosed)),
            }
        } else if sid <= self.last_stream {
            port.counters().h2.connection_errors += 1;
            if self
                .skipped
                .is_some_and(|(lo, hi)| (lo..=hi).contains(&sid))
            {
                return self.fail(
                    ErrorCode::ProtocolError,
                    "HEADERS opening a stream id below one used",
                    port,
                );
            }
            return self.fail(ErrorCode::StreamClosed, "HEADERS on a closed stream", port);
        } else {
            if sid > self.last_stream + 2 {
                self.skipped = Some((self.last_stream + 1, sid - 2));
            }
            self.last_stream = sid;
            if self.goaway_sent {
                BlockKind::Discard(None)
            } else if self.streams.len() >= self.cfg.max_concurrent_streams as usize {
                port.counters().h2.refused_streams += 1;
                BlockKind::Discard(Some(ErrorCode::RefusedStream))
            } else {
                port.counters().h2.streams += 1;
                let recv = i64::from(self.cfg.initial_window_size);
                let send = i64::from(self.peer_initial_window);
                let mut stream = Stream::new(sid, send, recv);
                if let Some(p) = stream.req.as_deref_mut() {
                    p.since = Some(port.now());
                }
                self.streams.push(stream);
                BlockKind::Request
            }
        };
        if end_headers {
            return self.block_done(app, sid, end_stream, kind, block, port);
        }
        if block.len() > self.cfg.max_header_block {
            port.counters().h2.continuation_flood += 1;
            return self.fail(ErrorCode::EnhanceYourCalm, "header block too large", port);
        }
        self.cont = Some(Continuation {
            since: port.now(),
            stream_id: sid,
            end_stream,
            kind,
            block: block.to_vec(),
        });
    }

    /// A whole header block: decoded (always, to keep HPACK in step), then acted on.
    fn block_done<A: App<Task = T>>(
        &mut self,
        app: &mut A,
        sid: u32,
        end_stream: bool,
        kind: BlockKind,
        block: &[u8],
        port: &mut dyn Port,
    ) {
        let i = self.find(sid);
        let parts = i
            .and_then(|i| self.streams.get_mut(i))
            .and_then(|s| s.req.as_deref_mut());
        let result = match (kind, parts) {
            (BlockKind::Request, Some(p)) => self.dec.decode(block, |f| p.field(f)),
            (BlockKind::Trailers, Some(p)) => self.dec.decode(block, |f| p.trailer(f)),
            _ => self.dec.decode(block, |_| {}),
        };
        if let Err(e) = result {
            if e.is_connection_error() {
                port.counters().h2.compression_errors += 1;
                return self.fail(ErrorCode::CompressionError, "HPACK", port);
            }
            port.counters().header_too_large += 1;
            if let Some(p) = i
                .and_then(|i| self.streams.get_mut(i))
                .and_then(|s| s.req.as_deref_mut())
            {
                p.malformed.get_or_insert("header list too large");
            }
        }
        let Some(i) = i.filter(|_| kind != BlockKind::Discard(None)) else {
            if let BlockKind::Discard(Some(code)) = kind {
                self.send_reset(sid, code, port);
            }
            return;
        };
        if let BlockKind::Discard(Some(code)) = kind {
            return self.reset_stream(app, i, code, port);
        }
        let Some(parts) = self.streams.get_mut(i).and_then(|s| s.req.as_deref_mut()) else {
            return;
        };
        if kind == BlockKind::Request {
            parts.finish_head();
        } else if !end_stream && parts.malformed.is_none() {
            parts.malformed = Some("trailers without END_STREAM");
        }
        if parts.malformed.is_some() {
            port.counters().h2.malformed += 1;
            return self.reset_stream(app, i, ErrorCode::ProtocolError, port);
        }
        if end_stream {
            self.complete(app, i, port);
        } else if kind == BlockKind::Request {
            self.offer_stream(app, i, port);
        }
    }

    /// DATA: request body, within the windows we gave.
    fn data<A: App<Task = T>>(&mut self, app: &mut A, d: Data<'_>, port: &mut dyn Port) {
        let len = d.flow_len;
        self.conn_recv -= i64::from(len);
        if self.conn_recv < 0 {
            port.counters().h2.flow_control_errors += 1;
            return self.fail(
                ErrorCode::FlowControlError,
                "connection window overrun",
                port,
            );
        }
        self.conn_recv_unacked += len;
        if i64::from(self.conn_recv_unacked) >= self.conn_recv_size() / 2 {
            encode_window_update(port.buf(), 0, self.conn_recv_unacked);
            self.conn_recv += i64::from(self.conn_recv_unacked);
            self.conn_recv_unacked = 0;
        }
        let Some(i) = self.find(d.stream_id) else {
            if d.stream_id > self.last_stream {
                port.counters().h2.connection_errors += 1;
                return self.fail(ErrorCode::ProtocolError, "DATA on an idle stream", port);
            }
            // A stream we closed: late data (section 5.1) is answered, not counted.
            return self.send_reset(d.stream_id, ErrorCode::StreamClosed, port);
        };
        let max_body = self.max_body;
        let initial = self.cfg.initial_window_size;
        let s = &mut self.streams[i];
        if s.state != StreamState::Open {
            return self.reset_stream(app, i, ErrorCode::StreamClosed, port);
        }
        s.recv_window -= i64::from(len);
        if s.recv_window < 0 {
            port.counters().h2.flow_control_errors += 1;
            return self.reset_stream(app, i, ErrorCode::FlowControlError, port);
        }
        let Some(parts) = s.req.as_deref_mut() else {
            return;
        };
        if parts.received + d.data.len() as u64 > max_body {
            port.counters().body_too_large += 1;
            if s.send.head_sent {
                // Too late for a 413: the stream is given up.
                return self.reset_stream(app, i, ErrorCode::Cancel, port);
            }
            return self.refuse(app, i, 413, port);
        }
        parts.received += d.data.len() as u64;
        if !parts.streamed {
            parts.body.extend_from_slice(d.data);
        }
        if parts.length_mismatch(d.end_stream) {
            port.counters().h2.malformed += 1;
            return self.reset_stream(app, i, ErrorCode::ProtocolError, port);
        }
        if parts.streamed {
            // The piece goes to the application now; the stream's credit comes back
            // once it has taken it and does not hold the body (`give_credit`).
            if d.end_stream {
                s.state = StreamState::HalfClosedRemote;
                s.req = None;
            } else {
                parts.owed = parts.owed.saturating_add(len);
            }
            let end = d.end_stream;
            return self.call_stream(i, port, |task, ex| app.on_body(task, d.data, end, ex));
        }
        if d.end_stream {
            return self.complete(app, i, port);
        }
        s.recv_unacked += len;
        if s.recv_unacked >= initial / 2 && s.recv_unacked > 0 {
            encode_window_update(port.buf(), s.id, s.recv_unacked);
            s.recv_window += i64::from(s.recv_unacked);
            s.recv_unacked = 0;
        }
    }

    /// WINDOW_UPDATE: more room to send (section 6.9).
    fn window_update<A: App<Task = T>>(
        &mut self,
        app: &mut A,
        sid: u32,
        inc: u32,
        port: &mut dyn Port,
    ) {
        let max = i64::from(MAX_WINDOW_SIZE);
        if sid == 0 {
            self.conn_send += i64::from(inc);
            if self.conn_send > max {
                port.counters().h2.flow_control_errors += 1;
                self.fail(
                    ErrorCode::FlowControlError,
                    "connection window above 2^31-1",
                    port,
                );
            }
            return;
        }
        match self.find(sid) {
            Some(i) => {
                let s = &mut self.streams[i];
                s.send_window += i64::from(inc);
                if s.send_window > max {
                    port.counters().h2.flow_control_errors += 1;
                    self.reset_stream(app, i, ErrorCode::FlowControlError, port);
                }
            }
            None if sid > self.last_stream => {
                port.counters().h2.connection_errors += 1;
                self.fail(
                    ErrorCode::ProtocolError,
                    "WINDOW_UPDATE on an idle stream",
                    port,
                );
            }
            None => {}
        }
    }

    /// RST_STREAM from the client: the exchange is cancelled.
    fn peer_reset<A: App<Task = T>>(&mut self, app: &mut A, sid: u32, port: &mut dyn Port) {
        port.counters().h2.resets_received += 1;
        if sid > self.last_stream {
            port.counters().h2.connection_errors += 1;
            return self.fail(
                ErrorCode::ProtocolError,
                "RST_STREAM on an idle stream",
                port,
            );
        }
        if let Some(i) = self.find(sid) {
            let s = self.streams.remove(i);
            if let Some(task) = s.task {
                app.on_cancel(task);
            }
        }
        self.count_reset(port);
    }

    /// The request on stream `i` is complete (END_STREAM): hand it to the application
    /// whole, or tell an application that takes its body in pieces that the body ended
    /// (after trailers: DATA with END_STREAM tells it in `data`).
    fn complete<A: App<Task = T>>(&mut self, app: &mut A, i: usize, port: &mut dyn Port) {
        let Some(s) = self.streams.get_mut(i) else {
            return;
        };
        s.state = StreamState::HalfClosedRemote;
        let Some(parts) = s.req.take() else {
            return;
        };
        if parts.streamed {
            if !parts.trailers.is_empty() {
                let view = parts.trailer_view();
                self.call_stream(i, port, |task, ex| app.on_trailers(task, view, ex));
            }
            return self.call_stream(i, port, |task, ex| app.on_body(task, &[], true, ex));
        }
        self.dispatch(app, i, &parts, port);
    }

    /// A request's head is complete and its body is to come: if the application takes
    /// the body in pieces ([`App::stream_body`]), the request is dispatched now and DATA
    /// goes to [`App::on_body`] as it arrives; otherwise the body is gathered whole
    /// (bounded by the body limit) and the request waits for END_STREAM.
    fn offer_stream<A: App<Task = T>>(&mut self, app: &mut A, i: usize, port: &mut dyn Port) {
        let Some(s) = self.streams.get_mut(i) else {
            return;
        };
        let sid = s.id;
        let Some(mut parts) = s.req.take() else {
            return;
        };
        let mut raw = Vec::with_capacity(16);
        // Not UTF-8 where text is needed: not offered; the complete request is reset.
        let wants = parts.view(&mut raw).is_some_and(|(method, target)| {
            app.stream_body(&Request {
                method,
                target,
                version: Version::Http2,
                headers: &raw,
                body: &[],
                keep_alive: true,
                streamed: true,
            })
        });
        drop(raw);
        if wants {
            parts.streamed = true;
            self.dispatch(app, i, &parts, port);
        }
        // Kept for what the body must agree with (its length, the trailers' rules).
        if let Some(s) = self.streams.get_mut(i).filter(|s| s.id == sid) {
            s.req = Some(parts);
        }
    }

    /// Hands the request on stream `i` to the application: whole, or its head with the
    /// body to follow in pieces (`parts.streamed`).
    fn dispatch<A: App<Task = T>>(
        &mut self,
        app: &mut A,
        i: usize,
        parts: &RequestParts,
        port: &mut dyn Port,
    ) {
        let mut raw = Vec::with_capacity(16);
        let Some((method, target)) = parts.view(&mut raw) else {
            port.counters().h2.malformed += 1;
            return self.reset_stream(app, i, ErrorCode::ProtocolError, port);
        };
        port.counters().requests += 1;
        let seq = self.next_seq;
        self.next_seq = seq.wrapping_add(1) & SEQ_MASK;
        let req = Request {
            method,
            target,
            version: Version::Http2,
            headers: &raw,
            body: &parts.body,
            keep_alive: true,
            streamed: parts.streamed,
        };
        let Some((mut sink, state, slot)) = self.stream_io(i) else {
            return;
        };
        *state = ExchangeState::new(seq, method == "HEAD", false, true);
        let mut ex = Exchange::for_stream(port, &mut sink, state);
        let mut task = app.on_request(&req, &mut ex);
        let done = ex.is_done();
        if task.is_none() && !done {
            // The application neither answered nor kept a task: nobody ever will.
            port.counters().app_errors += 1;
            let mut ex = Exchange::for_stream(port, &mut sink, state);
            if ex.is_started() {
                ex.abort();
            } else {
                ex.respond(Response::text(500, "Internal Server Error\n"));
            }
        }
        if state.phase == Phase::Done {
            task = None;
        }
        *slot = task;
    }

    /// Stream `i`'s output (a sink over its send queue and the connection's encoder),
    /// its exchange state and its task, borrowed apart so an `Exchange` can be made.
    pub(super) fn stream_io(
        &mut self,
        i: usize,
    ) -> Option<(StreamSink<'_>, &mut ExchangeState, &mut Option<T>)> {
        let H2Conn {
            streams,
            enc,
            block,
            peer_max_frame,
            ..
        } = self;
        let s = streams.get_mut(i)?;
        let sink = StreamSink {
            id: s.id,
            send: &mut s.send,
            enc,
            max_frame: *peer_max_frame,
            block,
        };
        Some((sink, &mut s.ex, &mut s.task))
    }

    /// Answers stream `i` with a bodiless `status` and resets it (NO_ERROR: the request
    /// need not be sent further, section 8.1).
    fn refuse<A: App<Task = T>>(
        &mut self,
        app: &mut A,
        i: usize,
        status: u16,
        port: &mut dyn Port,
    ) {
        if let Some((mut sink, _, _)) = self.stream_io(i) {
            use crate::http1::stream_out::StreamOut;
            sink.head(
                port,
                status,
                crate::http1::encode::Fields::List(&[]),
                Some(0),
                true,
            );
        }
        self.reset_stream(app, i, ErrorCode::NoError, port);
    }

    /// Resets stream `i` with `code`, cancelling its exchange; counted against the
    /// reset budget (CVE-2025-8671: resets the peer makes us send count too).
    fn reset_stream<A: App<Task = T>>(
        &mut self,
        app: &mut A,
        i: usize,
        code: ErrorCode,
        port: &mut dyn Port,
    ) {
        if i >= self.streams.len() {
            return;
        }
        let s = self.streams.remove(i);
        if let Some(task) = s.task {
            app.on_cancel(task);
        }
        self.send_reset(s.id, code, port);
        self.count_reset(port);
    }

    /// Resets stream `sid` by id, whether or not it is kept.
    fn reset_id<A: App<Task = T>>(
        &mut self,
        app: &mut A,
        sid: u32,
        code: ErrorCode,
        port: &mut dyn Port,
    ) {
        match self.find(sid) {
            Some(i) => self.reset_stream(app, i, code, port),
            None => {
                self.send_reset(sid, code, port);
                self.count_reset(port);
            }
        }
    }

    fn send_reset(&mut self, sid: u32, code: ErrorCode, port: &mut dyn Port) {
        port.counters().h2.resets_sent += 1;
        encode_rst_stream(port.buf(), sid, code);
    }

    /// Starts a new budget second if the last one is over.
    fn budget_tick(&mut self, now: Instant) {
        if now.saturating_duration_since(self.budget.since) >= Duration::from_secs(1) {
            self.budget = Budget {
                since: now,
                resets: 0,
                control: 0,
            };
        }
    }

    /// Counts a reset stream; past the budget, GOAWAY ENHANCE_YOUR_CALM.
    fn count_reset(&mut self, port: &mut dyn Port) {
        self.budget_tick(port.now());
        self.budget.resets += 1;
        if self.budget.resets > self.cfg.max_resets_per_sec {
            port.counters().h2.rapid_reset += 1;
            self.fail(ErrorCode::EnhanceYourCalm, "too many resets", port);
        }
    }

    /// Counts a SETTINGS or PING that asks for an answer; true (and the connection
    /// ended) past the budget, or when the peer does not read what it asked for.
    fn control_flood(&mut self, port: &mut dyn Port) -> bool {
        self.budget_tick(port.now());
        self.budget.control += 1;
        if self.budget.control > self.cfg.max_control_per_sec
            || port.backlog() > self.cfg.max_control_backlog
        {
            port.counters().h2.control_flood += 1;
            self.fail(
                ErrorCode::EnhanceYourCalm,
                "too many SETTINGS or PING",
                port,
            );
            return true;
        }
        false
    }

    /// Ends the connection: GOAWAY with `code` and the last stream id seen, then close.
    fn fail(&mut self, code: ErrorCode, why: &str, port: &mut dyn Port) {
        if self.closed {
            return;
        }
        port.counters().h2.goaway_sent += 1;
        encode_goaway(port.buf(), self.last_stream, code, why.as_bytes());
        self.goaway_sent = true;
        self.closed = true;
        port.close();
    }

    /// After anything that may have produced output: send what the windows allow, ask
    /// for writable-again where an exchange waits for it, close when done.
    fn after(&mut self, port: &mut dyn Port) {
        self.give_credit(port);
        self.flush(port);
        if self
            .streams
            .iter()
            .any(|s| s.ex.wants_writable && s.send.queued < LOW_WATER)
        {
            port.want_writable();
        }
        self.settle(port);
    }

    /// Gives back the flow-control credit of streamed request bodies the application
    /// has taken and does not hold ([`Exchange::pause_body`]): a stream's window opens
    /// again as its application consumes, in steps of half the initial window (one
    /// WINDOW_UPDATE per half window, not per DATA frame), so a slow application holds
    /// its client back to one window on that stream and no other.
    fn give_credit(&mut self, port: &mut dyn Port) {
        let half = self.cfg.initial_window_size / 2;
        for s in &mut self.streams {
            if s.state != StreamState::Open || s.ex.body_paused {
                continue;
            }
            let Some(p) = s.req.as_deref_mut() else {
                continue;
            };
            if p.streamed && p.owed > 0 && p.owed >= half {
                encode_window_update(port.buf(), s.id, p.owed);
                s.recv_window += i64::from(p.owed);
                p.owed = 0;
            }
        }
    }

    /// Sends queued response bodies as DATA within the windows, a few frames per stream
    /// per turn, while the output queued is under [`H2Config::max_send_backlog`] (past
    /// it, writable-again resumes); resets streams whose exchange gave up; forgets
    /// finished streams; notes what is stalled.
    fn flush(&mut self, port: &mut dyn Port) {
        let mut backlog_full = false;
        let mut progress = true;
        while progress && !self.closed {
            progress = false;
            let mut i = 0;
            while i < self.streams.len() {
                let s = &mut self.streams[i];
                if s.send.reset {
                    let id = s.id;
                    self.streams.remove(i);
                    self.send_reset(id, ErrorCode::InternalError, port);
                    self.count_reset(port);
                    continue;
                }
                for _ in 0..FRAMES_PER_TURN {
                    if !s.send.head_sent || s.send.end_sent {
                        break;
                    }
                    if s.send.queued == 0 {
                        if s.send.end {
                            let max = self.peer_max_frame;
                            s.send
                                .write_end(s.id, &mut self.enc, &mut self.block, max, port.buf());
                            progress = true;
                        }
                        break;
                    }
                    let room = self
                        .conn_send
                        .min(s.send_window)
                        .min(i64::from(self.peer_max_frame));
                    if room <= 0 {
                        break;
                    }
                    if port.backlog() >= self.cfg.max_send_backlog {
                        backlog_full = true;
                        break;
                    }
                    let Some((bytes, whole)) = s.send.front(room as usize) else {
                        break;
                    };
                    let n = bytes.len();
                    let last = s.send.ends_with_data() && n == s.send.queued;
                    encode_data_header(port.buf(), s.id, n, last);
                    match whole {
                        Some(st) => port.push(Segment::Static(st)),
                        None => port.buf().extend_from_slice(bytes),
                    }
                    s.send.advance(n);
                    self.conn_send -= n as i64;
                    s.send_window -= n as i64;
                    s.send.end_sent = last;
                    s.stalled_since = None;
                    self.conn_stalled_since = None;
                    progress = true;
                }
                if s.send.end_sent && s.state == StreamState::HalfClosedRemote && s.task.is_none() {
                    self.streams.remove(i);
                    continue;
                }
                if s.send.end_sent && s.task.is_none() && s.req.as_ref().is_some_and(|p| p.streamed)
                {
                    // Answered before its streamed body ended: the client is told to
                    // stop sending it, without error (section 8.1).
                    let id = s.id;
                    self.streams.remove(i);
                    self.send_reset(id, ErrorCode::NoError, port);
                    self.count_reset(port);
                    continue;
                }
                i += 1;
            }
        }
        if !self.closed {
            self.note_stalls(port.now(), backlog_full);
            if backlog_full {
                port.want_writable();
            }
        }
    }

    /// Closes once draining with nothing left to answer.
    fn settle(&mut self, port: &mut dyn Port) {
        if !self.closed && self.draining && self.streams.is_empty() {
            self.closed = true;
            port.close();
        }
    }

    /// The server is draining: GOAWAY with the last stream id, finish the streams below
    /// it, then close.
    pub(crate) fn drain(&mut self, port: &mut dyn Port) {
        if self.closed {
            return;
        }
        self.draining = true;
        if !self.goaway_sent {
            self.goaway_sent = true;
            port.counters().h2.goaway_sent += 1;
            encode_goaway(port.buf(), self.last_stream, ErrorCode::NoError, b"");
        }
        self.after(port);
    }

    /// The peer will send nothing more: HTTP/2 has no half-close, so the connection ends.
    pub(crate) fn peer_closed(&mut self, port: &mut dyn Port) {
        if !self.closed {
            self.closed = true;
            port.close();
        }
    }

    /// The tasks still held, for [`App::on_cancel`] when the connection goes away.
    pub(crate) fn into_tasks(self) -> impl Iterator<Item = T> {
        self.streams.into_iter().filter_map(|s| s.task)
    }

    /// The upstream connections streaming responses to this connection's exchanges.
    pub(crate) fn upstream_links(
        &self,
    ) -> impl Iterator<Item = ringmaster_runtime::ConnToken> + '_ {
        self.streams.iter().filter_map(|s| s.ex.upstream)
    }

    /// Streams kept now (open or answering).
    #[cfg(test)]
    pub(crate) fn open_streams(&self) -> usize {
        self.streams.len()
    }
}
