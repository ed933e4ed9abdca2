//! HTTP/2 (RFC 9113) client conversation: the fixed request on `--streams` concurrent
//! streams of one connection, h2c with prior knowledge or h2 under TLS (ALPN is checked
//! by `crate::tls`).
//!
//! Owns the client side of one connection: the preface and our SETTINGS, the server's
//! SETTINGS (acknowledged, applied), the HPACK contexts (`protocols`' encoder for request
//! heads, its decoder for response heads), the streams in flight, both directions of
//! flow control (request bodies sent only within the server's windows; WINDOW_UPDATE
//! for the DATA received, connection and stream), PING answered. Never: I/O or clocks.
//!
//! Responses complete in any order: each completion is reported by its position among
//! the requests in flight ([`Conversation::out_of_order`]), so the engine takes the
//! right start time and latency is per stream. Everything the server may not do, and
//! every answer that is not the one expected, is a [`BadResponse`]: a bad status or
//! length, a frame or header block that breaks the protocol, DATA beyond our window,
//! a push. RST_STREAM counts as a reset and GOAWAY as a close: the connection is then
//! dropped and replaced, as after any error.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use ringmaster_protocols::http2::frame::{self, Frame, Setting, Settings};
use ringmaster_protocols::http2::hpack::{Decoder, Encoder, DEFAULT_TABLE_SIZE};
use ringmaster_protocols::http2::PREFACE;

use super::{BadResponse, Conversation};
use crate::stats::ErrorKind;

/// Our receive window by default (the protocol's own, kept unless `--h2-window` says
/// otherwise): WINDOW_UPDATE once half of it is consumed, so the server never waits for
/// us while we keep reading.
pub(crate) const DEFAULT_RECV_WINDOW: u32 = 65_535;
/// The connection's send window at the start (section 6.9.2: SETTINGS never change it).
const INITIAL_CONN_WINDOW: i64 = 65_535;
/// The largest response header list (and header block) we accept.
const MAX_HEADER_LIST: usize = 64 * 1024;
/// Whether the cap the server's SETTINGS_MAX_CONCURRENT_STREAMS put on `--streams`
/// was explained (once a run).
static CAP_EXPLAINED: AtomicBool = AtomicBool::new(false);
/// Header fields that HTTP/2 forbids (RFC 9113 section 8.2.2).
const CONNECTION_SPECIFIC: [&str; 5] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
];

/// What every response must be: its status, and its body length when given.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Expect {
    pub status: u16,
    pub length: Option<u64>,
}

/// The request every stream sends, and what every response must be.
#[derive(Debug)]
pub(crate) struct H2Spec {
    /// Header fields in order (pseudo-header fields first), names lowercase.
    fields: Vec<(Vec<u8>, Vec<u8>)>,
    body: Vec<u8>,
    head_method: bool,
    expect_status: u16,
    expect_length: Option<u64>,
    /// Streams asked for per connection (`--streams`), to say so when the server
    /// allows fewer.
    streams: usize,
    /// Our receive window, stream and connection (`--h2-window`).
    recv_window: u32,
}

impl H2Spec {
    /// The request `METHOD PATH` to `authority` (unless `headers` has a `Host`, which
    /// becomes `:authority`), with `headers` (`Name: value`) and a body of `body_size`
    /// bytes; `tls` picks the `:scheme`; responses must be as `expect` says. Returns a
    /// usage message for an argument that cannot go on the wire.
    pub(crate) fn new(
        authority: &str,
        tls: bool,
        method: &str,
        path: &str,
        headers: &[String],
        body_size: usize,
        expect: Expect,
    ) -> Result<Self, String> {
        // The same checks as HTTP/1.1 (method token, path, header syntax, framing).
        super::HttpSpec::new(
            authority,
            method,
            path,
            headers,
            body_size,
            expect.status,
            expect.length,
        )?;
        if method == "CONNECT" {
            return Err("--h2: CONNECT has no :path (not supported)".into());
        }
        let mut authority = authority.to_string();
        let mut extra = Vec::new();
        for h in headers {
            let (name, value) = h.split_once(':').unwrap_or((h, ""));
            let name = name.to_ascii_lowercase();
            let value = value.trim();
            if CONNECTION_SPECIFIC.contains(&name.as_str()) {
                return Err(format!(
                    "--header `{h}`: HTTP/2 forbids connection-specific headers"
                ));
            }
            if name == "te" && !value.eq_ignore_ascii_case("trailers") {
                return Err(format!("--header `{h}`: HTTP/2 allows only `TE: trailers`"));
            }
            if name == "host" {
                authority = value.to_string();
            } else {
                extra.push((name.into_bytes(), value.as_bytes().to_vec()));
            }
        }
        let scheme = if tls { "https" } else { "http" };
        let mut fields = vec![
            (b":method".to_vec(), method.as_bytes().to_vec()),
            (b":scheme".to_vec(), scheme.as_bytes().to_vec()),
            (b":path".to_vec(), path.as_bytes().to_vec()),
            (b":authority".to_vec(), authority.into_bytes()),
        ];
        fields.extend(extra);
        if body_size > 0 {
            fields.push((
                b"content-length".to_vec(),
                body_size.to_string().into_bytes(),
            ));
        }
        Ok(H2Spec {
            fields,
            body: (0..body_size).map(|i| b'a' + (i % 26) as u8).collect(),
            head_method: method == "HEAD",
            expect_status: expect.status,
            expect_length: expect.length,
            streams: 1,
            recv_window: DEFAULT_RECV_WINDOW,
        })
    }

    /// The same, for `streams` per connection (`--streams`; 1 by default).
    pub(crate) fn with_streams(self, streams: usize) -> Self {
        H2Spec { streams, ..self }
    }

    /// The same, with receive windows of `window` bytes (`--h2-window`; the protocol's
    /// 65,535 by default), from DEFAULT_RECV_WINDOW to frame::MAX_WINDOW_SIZE. A large
    /// body then comes without waiting for our WINDOW_UPDATEs, as browsers and h2load
    /// set it up: the server's cost, not the window's round trips, is what is measured.
    pub(crate) fn with_window(self, window: u32) -> Self {
        let recv_window = window.clamp(DEFAULT_RECV_WINDOW, frame::MAX_WINDOW_SIZE);
        H2Spec {
            recv_window,
            ..self
        }
    }

    /// Half the receive window: consumed that far, a window is given back.
    fn update_at(&self) -> u32 {
        self.recv_window / 2
    }

    /// Bytes of one request's fields and body (uncompressed: to size buffers).
    pub(crate) fn request_len(&self) -> usize {
        let head: usize = self.fields.iter().map(|(n, v)| n.len() + v.len() + 4).sum();
        head + self.body.len()
    }
}

/// One stream in flight.
#[derive(Debug)]
struct Stream {
    id: u32,
    /// What we may still send on it (SETTINGS may make it negative).
    send_window: i64,
    /// Request body bytes sent so far.
    body_sent: usize,
    /// The final status, once the response head has come.
    status: Option<u16>,
    /// `content-length` of the response, if it had one.
    length: Option<u64>,
    /// DATA bytes received.
    body: u64,
    /// DATA flow-control bytes received and not yet given back by WINDOW_UPDATE.
    unacked: u32,
}

/// A header block arriving over CONTINUATION frames.
#[derive(Debug)]
struct Pending {
    stream: u32,
    end_stream: bool,
    block: Vec<u8>,
}

/// One connection's HTTP/2 client conversation.
#[derive(Debug)]
pub(crate) struct H2 {
    spec: Arc<H2Spec>,
    enc: Encoder,
    dec: Decoder,
    /// The server's settings so far.
    peer: Settings,
    /// The server's first SETTINGS has come (requests wait for it).
    got_settings: bool,
    /// The preface and our SETTINGS are still to go out.
    preface_due: bool,
    /// Frames we send of our own accord (SETTINGS ack, PING ack, WINDOW_UPDATE).
    out: Vec<u8>,
    /// Received bytes that do not yet make a whole frame.
    buf: Vec<u8>,
    /// Streams in flight, in the order opened (so by id).
    streams: Vec<Stream>,
    next_id: u32,
    /// Positions (in `streams`) of the streams completed, in order, not yet taken.
    completed: Vec<usize>,
    conn_send_window: i64,
    /// Some stream's request body is not all sent (it waits for WINDOW_UPDATE).
    body_waiting: bool,
    /// Connection-level DATA received and not yet given back.
    conn_unacked: u32,
    /// Some window is half used: WINDOW_UPDATE after this feed.
    updates_due: bool,
    continuation: Option<Pending>,
    /// Scratch for encoding a request's header block.
    block: Vec<u8>,
    fault: ErrorKind,
}

impl H2 {
    /// A conversation following `spec`.
    pub(crate) fn new(spec: Arc<H2Spec>) -> Self {
        H2 {
            spec,
            enc: Encoder::new(DEFAULT_TABLE_SIZE),
            dec: Decoder::new(MAX_HEADER_LIST),
            peer: Settings::default(),
            got_settings: false,
            preface_due: true,
            out: Vec::new(),
            buf: Vec::new(),
            streams: Vec::new(),
            next_id: 1,
            completed: Vec::new(),
            conn_send_window: INITIAL_CONN_WINDOW,
            body_waiting: false,
            conn_unacked: 0,
            updates_due: false,
            continuation: None,
            block: Vec::new(),
            fault: ErrorKind::BadResponse,
        }
    }

    fn bad(&mut self) -> BadResponse {
        self.fault = ErrorKind::BadResponse;
        BadResponse
    }

    /// The position of stream `id` among those in flight.
    fn find(&self, id: u32) -> Option<usize> {
        self.streams.binary_search_by_key(&id, |s| s.id).ok()
    }

    /// Handles one frame; returns whether it completed a response.
    fn frame(&mut self, f: Frame<'_>) -> Result<bool, BadResponse> {
        if self.continuation.is_some() && !matches!(f, Frame::Continuation { .. }) {
            return Err(self.bad()); // section 6.10: nothing between the fragments
        }
        match f {
            Frame::Settings(s) if s.ack => {}
            Frame::Settings(s) => {
                for setting in s.iter() {
                    match setting {
                        Setting::InitialWindowSize(v) => {
                            let delta = i64::from(v) - i64::from(self.peer.initial_window_size);
                            for st in &mut self.streams {
                                st.send_window += delta;
                            }
                        }
                        Setting::HeaderTableSize(v) => self.enc.set_max_table_size(v as usize),
                        _ => {}
                    }
                    self.peer.apply(setting);
                }
                frame::encode_settings_ack(&mut self.out);
                self.got_settings = true;
                let cap = self
                    .peer
                    .max_concurrent_streams
                    .map_or(usize::MAX, |m| m as usize);
                if cap < self.spec.streams && !CAP_EXPLAINED.swap(true, Ordering::Relaxed) {
                    eprintln!(
                        "ringmaster load: the server allows {cap} concurrent streams per connection: --streams {} runs as {cap}",
                        self.spec.streams
                    );
                }
            }
            Frame::Ping {
                ack: false,
                payload,
            } => frame::encode_ping_ack(&mut self.out, payload),
            Frame::Ping { ack: true, .. } | Frame::Priority { .. } | Frame::Unknown { .. } => {}
            Frame::GoAway(_) => {
                self.fault = ErrorKind::Closed;
                return Err(BadResponse);
            }
            Frame::RstStream { .. } => {
                self.fault = ErrorKind::Reset;
                return Err(BadResponse);
            }
            Frame::PushPromise(_) => return Err(self.bad()), // we disabled push
            Frame::WindowUpdate {
                stream_id,
                increment,
            } => {
                let inc = i64::from(increment);
                let window = if stream_id == 0 {
                    Some(&mut self.conn_send_window)
                } else {
                    // A stream already complete may still be updated: ignored.
                    self.find(stream_id)
                        .map(|k| &mut self.streams[k].send_window)
                };
                if let Some(w) = window {
                    *w += inc;
                    if *w > i64::from(frame::MAX_WINDOW_SIZE) {
                        return Err(self.bad()); // section 6.9.1
                    }
                } else if stream_id >= self.next_id {
                    return Err(self.bad()); // an idle stream
                }
            }
            Frame::Headers(h) => {
                if h.end_headers {
                    return self.head(h.stream_id, h.block, h.end_stream);
                }
                if h.block.len() > MAX_HEADER_LIST {
                    return Err(self.bad());
                }
                self.continuation = Some(Pending {
                    stream: h.stream_id,
                    end_stream: h.end_stream,
                    block: h.block.to_vec(),
                });
            }
            Frame::Continuation {
                stream_id,
                end_headers,
                block,
            } => {
                let Some(mut p) = self.continuation.take() else {
                    return Err(self.bad());
                };
                if p.stream != stream_id || p.block.len() + block.len() > MAX_HEADER_LIST {
                    return Err(self.bad());
                }
                p.block.extend_from_slice(block);
                if end_headers {
                    return self.head(p.stream, &p.block, p.end_stream);
                }
                self.continuation = Some(p);
            }
            Frame::Data(d) => {
                let k = self.find(d.stream_id).ok_or_else(|| self.bad())?;
                // Flow control: the server may send no more than our windows.
                self.conn_unacked += d.flow_len;
                let st = &mut self.streams[k];
                st.unacked += d.flow_len;
                let window = self.spec.recv_window;
                if self.conn_unacked > window || st.unacked > window {
                    return Err(self.bad());
                }
                if st.status.is_none() {
                    return Err(self.bad()); // DATA before the response head
                }
                st.body += d.data.len() as u64;
                if d.end_stream {
                    return self.complete(k).map(|()| true);
                }
                let at = self.spec.update_at();
                self.updates_due |= st.unacked >= at || self.conn_unacked >= at;
            }
        }
        Ok(false)
    }

    /// Sends as much of the request bodies still owed as the server's windows allow,
    /// oldest stream first, in frames of at most its SETTINGS_MAX_FRAME_SIZE.
    fn send_bodies(&mut self, out: &mut Vec<u8>) {
        let body = &self.spec.body;
        let max = self.peer.max_frame_size as i64;
        let mut waiting = false;
        for st in &mut self.streams {
            while st.body_sent < body.len() {
                let room = st.send_window.min(self.conn_send_window).min(max);
                if room <= 0 {
                    break;
                }
                let n = (body.len() - st.body_sent).min(room as usize);
                let end = st.body_sent + n == body.len();
                frame::encode_data(out, st.id, &body[st.body_sent..st.body_sent + n], end);
                st.body_sent += n;
                st.send_window -= n as i64;
                self.conn_send_window -= n as i64;
            }
            waiting |= st.body_sent < body.len();
        }
        self.body_waiting = waiting;
    }

    /// After a feed: gives back the windows (connection and streams) of which half
    /// is used. Not frame by frame: what arrived in one feed was sent before the server
    /// could see an update, so it must fit the windows as they were.
    fn give_back(&mut self) {
        self.updates_due = false;
        let at = self.spec.update_at();
        if self.conn_unacked >= at {
            frame::encode_window_update(&mut self.out, 0, self.conn_unacked);
            self.conn_unacked = 0;
        }
        for st in &mut self.streams {
            if st.unacked >= at {
                frame::encode_window_update(&mut self.out, st.id, st.unacked);
                st.unacked = 0;
            }
        }
    }

    /// A complete header block on stream `id`: the response head, an interim (1xx)
    /// head, or trailers.
    fn head(&mut self, id: u32, block: &[u8], end_stream: bool) -> Result<bool, BadResponse> {
        // Decoded whatever the stream, to keep the HPACK table in step.
        let mut status: Option<u16> = None;
        let mut length: Option<u64> = None;
        let mut bad = false;
        let mut pseudo_done = false;
        let r = self.dec.decode(block, |f| {
            if f.name.first() == Some(&b':') {
                if pseudo_done || f.name != b":status" || status.is_some() {
                    bad = true;
                    return;
                }
                status = std::str::from_utf8(f.value)
                    .ok()
                    .filter(|v| v.len() == 3)
                    .and_then(|v| v.parse().ok());
                bad |= status.is_none();
            } else {
                pseudo_done = true;
                if f.name == b"content-length" {
                    let v = std::str::from_utf8(f.value)
                        .ok()
                        .and_then(|v| v.trim().parse().ok());
                    bad |= v.is_none() || length.is_some_and(|l| Some(l) != v);
                    length = v;
                }
                bad |= f.name.iter().any(u8::is_ascii_uppercase);
            }
        });
        if r.is_err() || bad {
            return Err(self.bad());
        }
        let k = self.find(id).ok_or_else(|| self.bad())?;
        let st = &mut self.streams[k];
        match (st.status, status) {
            // Trailers: no pseudo-header, and the end of the stream.
            (Some(_), None) if end_stream => return self.complete(k).map(|()| true),
            (Some(_), _) | (None, None) => return Err(self.bad()),
            (None, Some(code)) if (100..200).contains(&code) => {
                if end_stream || code == 101 {
                    return Err(self.bad());
                }
                return Ok(false); // interim: the final head follows
            }
            (None, Some(code)) => {
                if code != self.spec.expect_status {
                    return Err(self.bad());
                }
                st.status = Some(code);
                st.length = length;
            }
        }
        if end_stream {
            return self.complete(k).map(|()| true);
        }
        Ok(false)
    }

    /// Stream at position `k` has ended: its response is checked and it leaves.
    fn complete(&mut self, k: usize) -> Result<(), BadResponse> {
        let st = self.streams.remove(k);
        let no_body = self.spec.head_method || matches!(st.status, Some(204 | 304));
        if !no_body {
            if st.length.is_some_and(|l| l != st.body) {
                return Err(self.bad()); // section 8.1.1: malformed
            }
            if self.spec.expect_length.is_some_and(|e| e != st.body) {
                return Err(self.bad());
            }
        } else if st.body != 0 {
            return Err(self.bad());
        }
        // The stream's window dies with it; the connection's is given back.
        self.updates_due |= self.conn_unacked >= self.spec.update_at();
        self.completed.push(k);
        Ok(())
    }

    /// Handles every whole frame at the front of `data`; returns the bytes used and the
    /// responses completed.
    fn frames(&mut self, data: &[u8]) -> Result<(usize, usize), BadResponse> {
        let mut at = 0;
        let mut done = 0;
        loop {
            match frame::decode(&data[at..], frame::DEFAULT_MAX_FRAME_SIZE) {
                Ok(Some((f, n))) => {
                    at += n;
                    done += usize::from(self.frame(f)?);
                }
                Ok(None) => return Ok((at, done)),
                Err(_) => return Err(self.bad()),
            }
        }
    }
}

impl Conversation for H2 {
    fn reset(&mut self) {
        self.enc = Encoder::new(DEFAULT_TABLE_SIZE);
        self.dec = Decoder::new(MAX_HEADER_LIST);
        self.peer = Settings::default();
        self.got_settings = false;
        self.preface_due = true;
        self.out.clear();
        self.buf.clear();
        self.streams.clear();
        self.next_id = 1;
        self.completed.clear();
        self.conn_send_window = INITIAL_CONN_WINDOW;
        self.body_waiting = false;
        self.conn_unacked = 0;
        self.updates_due = false;
        self.continuation = None;
        self.fault = ErrorKind::BadResponse;
    }

    fn poll_output(&mut self, out: &mut Vec<u8>) {
        if self.preface_due {
            self.preface_due = false;
            out.extend_from_slice(PREFACE);
            let window = self.spec.recv_window;
            if window == DEFAULT_RECV_WINDOW {
                frame::encode_settings(out, &[Setting::EnablePush(false)]);
            } else {
                // The streams' windows by SETTINGS (applied before our first HEADERS, which
                // follow them), the connection's by WINDOW_UPDATE (SETTINGS never change it).
                let settings = [
                    Setting::EnablePush(false),
                    Setting::InitialWindowSize(window),
                ];
                frame::encode_settings(out, &settings);
                frame::encode_window_update(out, 0, window - DEFAULT_RECV_WINDOW);
            }
        }
        out.append(&mut self.out);
        if self.body_waiting {
            self.send_bodies(out);
        }
    }

    fn ready(&self) -> bool {
        self.got_settings
            && self.next_id <= frame::MAX_WINDOW_SIZE
            && self
                .peer
                .max_concurrent_streams
                .is_none_or(|m| self.streams.len() < m as usize)
    }

    fn push_request(&mut self, out: &mut Vec<u8>) {
        let spec = Arc::clone(&self.spec);
        let id = self.next_id;
        self.next_id += 2;
        self.block.clear();
        self.enc.encode(
            spec.fields
                .iter()
                .map(|(n, v)| (n.as_slice(), v.as_slice())),
            &mut self.block,
        );
        let max = self.peer.max_frame_size;
        frame::encode_headers(out, id, &self.block, spec.body.is_empty(), max);
        self.streams.push(Stream {
            id,
            send_window: i64::from(self.peer.initial_window_size),
            body_sent: 0,
            status: None,
            length: None,
            body: 0,
            unacked: 0,
        });
        if !spec.body.is_empty() {
            self.body_waiting = true;
            self.send_bodies(out);
        }
    }

    fn feed(&mut self, data: &[u8]) -> Result<usize, BadResponse> {
        let done = if self.buf.is_empty() {
            let (used, done) = self.frames(data)?;
            self.buf.extend_from_slice(&data[used..]);
            done
        } else {
            self.buf.extend_from_slice(data);
            let buf = std::mem::take(&mut self.buf);
            let r = self.frames(&buf);
            self.buf = buf;
            let (used, done) = r?;
            self.buf.drain(..used);
            done
        };
        if self.updates_due {
            self.give_back();
        }
        Ok(done)
    }

    fn fault(&self) -> ErrorKind {
        self.fault
    }

    fn out_of_order(&mut self) -> Option<&mut Vec<usize>> {
        Some(&mut self.completed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringmaster_protocols::http2::ErrorCode;

    fn spec(expect_length: Option<u64>, body: usize) -> Arc<H2Spec> {
        let method = if body > 0 { "POST" } else { "GET" };
        let expect = Expect {
            status: 200,
            length: expect_length,
        };
        let spec = H2Spec::new("h:1", false, method, "/p", &[], body, expect);
        Arc::new(spec.unwrap())
    }

    /// A client past the handshake (the server's SETTINGS fed) with `n` streams open.
    fn open(spec: Arc<H2Spec>, n: usize) -> H2 {
        let mut h = H2::new(spec);
        h.reset();
        let mut out = Vec::new();
        h.poll_output(&mut out);
        assert!(out.starts_with(PREFACE));
        assert!(!h.ready(), "requests wait for the server's SETTINGS");
        let mut settings = Vec::new();
        frame::encode_settings(&mut settings, &[Setting::MaxConcurrentStreams(100)]);
        assert_eq!(h.feed(&settings), Ok(0));
        assert!(h.ready());
        for _ in 0..n {
            h.push_request(&mut out);
        }
        h
    }

    /// A response head on stream `id` as the server would encode it.
    fn head(enc: &mut Encoder, id: u32, status: &str, length: Option<&str>, end: bool) -> Vec<u8> {
        let mut fields = vec![(&b":status"[..], status.as_bytes())];
        if let Some(l) = length {
            fields.push((b"content-length", l.as_bytes()));
        }
        let mut block = Vec::new();
        enc.encode(fields, &mut block);
        let mut out = Vec::new();
        frame::encode_headers(&mut out, id, &block, end, 16_384);
        out
    }

    fn response(enc: &mut Encoder, id: u32, body: &[u8]) -> Vec<u8> {
        let len = body.len().to_string();
        let mut out = head(enc, id, "200", Some(&len), false);
        frame::encode_data(&mut out, id, body, true);
        out
    }

    fn taken(h: &mut H2) -> Vec<usize> {
        h.out_of_order().unwrap().drain(..).collect()
    }

    #[test]
    fn responses_in_any_order_name_their_position_in_flight() {
        let mut h = open(spec(Some(5), 0), 3);
        let mut enc = Encoder::new(4096);
        // Streams 1, 3, 5 in flight; 3 answers first, then 1, then 5.
        let mut bytes = response(&mut enc, 3, b"hello");
        bytes.extend(response(&mut enc, 1, b"hello"));
        bytes.extend(response(&mut enc, 5, b"hello"));
        // Fed in small pieces: frames split anywhere.
        let done: usize = bytes.chunks(7).map(|c| h.feed(c).unwrap()).sum();
        assert_eq!(done, 3);
        assert_eq!(taken(&mut h), [1, 0, 0]);
    }

    #[test]
    fn wrong_status_length_or_framing_is_bad() {
        let cases: [(&str, Option<&str>, &[u8]); 3] = [
            ("404", Some("5"), b"hello"),
            ("200", Some("6"), b"hello"), // content-length and DATA disagree
            ("200", Some("4"), b"hell"),  // not --expect-length
        ];
        for (status, len, body) in cases {
            let mut h = open(spec(Some(5), 0), 1);
            let mut enc = Encoder::new(4096);
            let mut bytes = head(&mut enc, 1, status, len, false);
            frame::encode_data(&mut bytes, 1, body, true);
            assert_eq!(h.feed(&bytes), Err(BadResponse), "{status} {len:?}");
            assert_eq!(h.fault(), ErrorKind::BadResponse);
        }
        // DATA on a stream never opened, and DATA before the head.
        let mut h = open(spec(None, 0), 1);
        let mut bytes = Vec::new();
        frame::encode_data(&mut bytes, 3, b"x", true);
        assert_eq!(h.feed(&bytes), Err(BadResponse));
        let mut h = open(spec(None, 0), 1);
        let mut bytes = Vec::new();
        frame::encode_data(&mut bytes, 1, b"x", true);
        assert_eq!(h.feed(&bytes), Err(BadResponse));
    }

    #[test]
    fn reset_and_goaway_are_errors_of_their_kind() {
        let mut h = open(spec(None, 0), 1);
        let mut bytes = Vec::new();
        frame::encode_rst_stream(&mut bytes, 1, ErrorCode::RefusedStream);
        assert_eq!(h.feed(&bytes), Err(BadResponse));
        assert_eq!(h.fault(), ErrorKind::Reset);
        let mut h = open(spec(None, 0), 1);
        let mut bytes = Vec::new();
        frame::encode_goaway(&mut bytes, 0, ErrorCode::NoError, b"");
        assert_eq!(h.feed(&bytes), Err(BadResponse));
        assert_eq!(h.fault(), ErrorKind::Closed);
    }

    #[test]
    fn settings_and_ping_are_answered() {
        let mut h = open(spec(None, 0), 0);
        let mut out = Vec::new();
        h.poll_output(&mut out);
        let mut ack = Vec::new();
        frame::encode_settings_ack(&mut ack);
        assert!(out.ends_with(&ack));
        let mut ping = Vec::new();
        frame::encode_ping(&mut ping, *b"12345678");
        assert_eq!(h.feed(&ping), Ok(0));
        out.clear();
        h.poll_output(&mut out);
        let mut pong = Vec::new();
        frame::encode_ping_ack(&mut pong, *b"12345678");
        assert_eq!(out, pong);
    }

    #[test]
    fn large_bodies_are_given_window_and_overruns_are_bad() {
        let mut h = open(spec(Some(100_000), 0), 1);
        let mut enc = Encoder::new(4096);
        let mut bytes = head(&mut enc, 1, "200", None, false);
        let chunk = [b'x'; 16_384];
        let mut sent = 0;
        let mut updates = 0;
        while sent < 100_000 {
            let n = (100_000 - sent).min(chunk.len());
            frame::encode_data(&mut bytes, 1, &chunk[..n], sent + n == 100_000);
            sent += n;
            let done = h.feed(&bytes).unwrap();
            bytes.clear();
            let mut out = Vec::new();
            h.poll_output(&mut out);
            updates += out.len() / 13; // WINDOW_UPDATE frames are 13 bytes
            assert_eq!(done, usize::from(sent == 100_000));
        }
        assert!(updates >= 2, "{updates}"); // connection and stream windows refilled
                                            // A server that ignores our window: 80 KiB without a WINDOW_UPDATE.
        let mut h = open(spec(None, 0), 1);
        let mut bytes = head(&mut enc, 1, "200", None, false);
        for _ in 0..5 {
            frame::encode_data(&mut bytes, 1, &chunk, false);
        }
        assert_eq!(h.feed(&bytes), Err(BadResponse));
    }

    #[test]
    fn a_larger_window_is_announced_and_lets_a_whole_body_in() {
        let spec = spec(Some(1 << 20), 0);
        let spec = Arc::new(Arc::try_unwrap(spec).unwrap().with_window(4 << 20));
        let mut h = H2::new(spec);
        h.reset();
        let mut out = Vec::new();
        h.poll_output(&mut out);
        // SETTINGS with the stream window, then the connection's WINDOW_UPDATE.
        let mut at = PREFACE.len();
        let mut seen = (false, 0);
        while let Ok(Some((f, n))) = frame::decode(&out[at..], 1 << 20) {
            match f {
                Frame::Settings(s) => {
                    seen.0 = s.iter().any(|x| x == Setting::InitialWindowSize(4 << 20));
                }
                Frame::WindowUpdate {
                    stream_id: 0,
                    increment,
                } => seen.1 = increment,
                _ => {}
            }
            at += n;
        }
        assert_eq!(seen, (true, (4 << 20) - 65_535));
        let mut settings = Vec::new();
        frame::encode_settings(&mut settings, &[]);
        assert_eq!(h.feed(&settings), Ok(0));
        h.push_request(&mut out);
        // 1 MiB at once, far past the default window: not an overrun.
        let mut enc = Encoder::new(4096);
        let mut bytes = head(&mut enc, 1, "200", None, false);
        let chunk = [b'x'; 16_384];
        for k in 0..64 {
            frame::encode_data(&mut bytes, 1, &chunk, k == 63);
        }
        assert_eq!(h.feed(&bytes), Ok(1));
    }

    #[test]
    fn request_bodies_wait_for_the_servers_window() {
        let mut h = open(spec(None, 100_000), 0);
        let mut out = Vec::new();
        h.push_request(&mut out);
        // HEADERS, then 65,535 bytes of DATA: the default windows.
        let data = |out: &[u8]| {
            let mut at = 0;
            let mut n = 0;
            while let Ok(Some((f, k))) = frame::decode(&out[at..], 1 << 20) {
                if let Frame::Data(d) = f {
                    n += d.data.len();
                }
                at += k;
            }
            n
        };
        assert_eq!(data(&out), 65_535);
        let mut update = Vec::new();
        frame::encode_window_update(&mut update, 0, 50_000);
        frame::encode_window_update(&mut update, 1, 50_000);
        assert_eq!(h.feed(&update), Ok(0));
        out.clear();
        h.poll_output(&mut out);
        assert_eq!(data(&out), 100_000 - 65_535);
    }

    #[test]
    fn a_head_over_continuation_frames_and_trailers() {
        let mut h = open(spec(Some(2), 0), 1);
        let mut enc = Encoder::new(4096);
        let mut block = Vec::new();
        enc.encode(
            [(&b":status"[..], &b"200"[..]), (b"x-pad", &[b'p'; 40])],
            &mut block,
        );
        let mut bytes = Vec::new();
        frame::encode_headers(&mut bytes, 1, &block, false, 16); // split in 16-byte pieces
        frame::encode_data(&mut bytes, 1, b"ok", false);
        let mut trailers = Vec::new();
        enc.encode([(&b"x-trailer"[..], &b"t"[..])], &mut trailers);
        frame::encode_headers(&mut bytes, 1, &trailers, true, 16_384);
        assert_eq!(h.feed(&bytes), Ok(1));
        assert_eq!(taken(&mut h), [0]);
    }
}
