//! [`ClientCodec`]: one HTTP/1.1 client connection's state machine.
//!
//! This module owns the order of things: requests go out, their responses come back in
//! the same order (FIFO), and each response is read as a head, then body pieces, then an
//! end, with interim (1xx) heads before its final head. It owns no bytes: the caller
//! keeps what the codec did not consume and shows it again with more appended.
//!
//! Invariants:
//! - a response is only read for a request at the front of the queue; bytes with no
//!   request outstanding are an error, never the start of an unasked-for response;
//! - once a response says the connection closes after it, nothing more is read or sent;
//! - any decoding error poisons the codec: the stream's framing is unknown from there.

use std::collections::VecDeque;

use super::error::ClientError;
use super::request::{self, Outgoing, RequestHead, Sent};
use super::response::{
    message_length, parse_head, record, within_limit, FieldsView, HeadInfo, ResponseHead, Span,
};
use crate::http1::body::{BodyError, ChunkedDecoder};
use crate::http1::encode::Framing;
use crate::http1::head::BodyKind;
use crate::http1::limits::{Limits, HEADER_CAP};

/// What one call to [`ClientCodec::decode`] found.
#[derive(Debug)]
pub enum ClientEvent<'a> {
    /// An interim response (100 Continue, 103 Early Hints, ...): the final response to
    /// the same request follows.
    Informational(ResponseHead<'a>),
    /// The final response head. Body pieces follow (if its framing has a body), then
    /// [`End`](ClientEvent::End).
    Head(ResponseHead<'a>),
    /// A piece of the response body, decoded (chunk framing removed): a sub-slice of the
    /// input given to `decode`, never a copy.
    Body(&'a [u8]),
    /// The response is complete.
    End(End<'a>),
    /// 101 Switching Protocols: the connection no longer speaks HTTP/1.1. The bytes after
    /// the head (not consumed) belong to the new protocol; the codec refuses further use.
    Upgraded(ResponseHead<'a>),
}

/// The end of a response.
#[derive(Debug, Clone, Copy)]
pub struct End<'a> {
    /// The trailer fields of a chunked body (empty otherwise).
    pub trailers: FieldsView<'a>,
    /// Whether the connection may carry another request (see
    /// [`ClientCodec::is_reusable`]).
    pub reusable: bool,
}

/// The result of one [`ClientCodec::decode`] call.
#[derive(Debug)]
pub struct Decoded<'a> {
    /// Bytes of the input consumed; the rest must be shown again, with whatever arrives
    /// next appended.
    pub consumed: usize,
    /// What was found, or `None` if more input is needed first.
    pub event: Option<ClientEvent<'a>>,
}

/// Where the reading side is.
#[derive(Debug)]
enum Read {
    /// Waiting for a response head (or for nothing, if no request is outstanding).
    Head,
    /// In a body with this many bytes still to come (0: only the end is left to report,
    /// also used for responses without a body).
    Length(u64),
    /// In a chunked body.
    Chunked(ChunkedDecoder),
    /// After the last chunk: the trailer section, then the end.
    Trailers,
    /// In a body that ends when the server closes; `total` bytes so far.
    UntilClose { total: u64 },
    /// The last response was the last: nothing more may arrive.
    Done,
    /// After 101 Switching Protocols.
    Upgraded,
    /// After [`ClientCodec::peer_closed`].
    Closed,
    /// After a decoding error.
    Poisoned,
}

/// What one `step` found, before it is given borrowed form.
enum Ev {
    Informational(HeadInfo),
    Head(HeadInfo),
    Upgraded(HeadInfo),
    /// Body data at (offset, length) in the input.
    Body(usize, usize),
    /// The end; the trailer fields (in `spans`) start at this offset, if any.
    End(Option<usize>),
}

/// One HTTP/1.1 client connection, sans-IO: encode requests into a buffer, feed received
/// bytes to [`decode`](ClientCodec::decode), act on the events.
///
/// ```
/// use ringmaster_protocols::http1::client::{ClientCodec, ClientEvent, RequestHead};
/// use ringmaster_protocols::http1::head::BodyKind;
///
/// let mut codec = ClientCodec::default();
/// let mut out = Vec::new();
/// let req = RequestHead { method: "GET", target: "/", headers: &[("Host", "example.com")] };
/// codec.encode_request(&req, BodyKind::Empty, &mut out).unwrap();
/// assert_eq!(out, b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n");
///
/// let input = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";
/// let mut pos = 0;
/// let mut body = Vec::new();
/// loop {
///     let d = codec.decode(&input[pos..]).unwrap();
///     pos += d.consumed;
///     match d.event {
///         Some(ClientEvent::Head(h)) => assert_eq!(h.status(), 200),
///         Some(ClientEvent::Body(b)) => body.extend_from_slice(b),
///         Some(ClientEvent::End(end)) => assert!(end.reusable),
///         Some(_) => unreachable!(),
///         None => break,
///     }
/// }
/// assert_eq!(body, b"hi");
/// assert!(codec.is_idle() && codec.is_reusable());
/// ```
#[derive(Debug)]
pub struct ClientCodec {
    limits: Limits,
    /// Requests sent and not yet answered, oldest first.
    queue: VecDeque<Sent>,
    read: Read,
    out: Outgoing,
    /// Field positions of the last head or trailer section (reused, never shrunk).
    spans: Vec<Span>,
    /// The final response being read lets the connection persist.
    keep_alive: bool,
    /// An interim response came for the request at the front.
    interim_seen: bool,
    /// The connection may carry another request.
    reusable: bool,
}

impl Default for ClientCodec {
    fn default() -> Self {
        ClientCodec::new(Limits::default())
    }
}

fn body_error(e: BodyError) -> ClientError {
    match e {
        BodyError::BadChunk(m) => ClientError::Malformed(m),
        BodyError::TooLarge => ClientError::TooLarge("body size"),
        BodyError::TrailersTooLarge => ClientError::TooLarge("trailer section size"),
    }
}

impl ClientCodec {
    /// A codec for a fresh connection, bounded by `limits`: `max_header_bytes` bounds a
    /// response head and a trailer section, `max_headers` their field counts, `max_body`
    /// a response body (raise it for large downloads: bodies are streamed, not kept), and
    /// `max_pipelined` the requests in flight. The timeouts are the caller's business.
    pub fn new(limits: Limits) -> Self {
        ClientCodec {
            limits,
            queue: VecDeque::new(),
            read: Read::Head,
            out: Outgoing::Idle,
            spans: Vec::new(),
            keep_alive: true,
            interim_seen: false,
            reusable: true,
        }
    }

    /// Appends a request head to `out`, with the framing field for `body`
    /// (`Content-Length`, or `Transfer-Encoding: chunked`; an empty `POST`, `PUT` or
    /// `PATCH` gets `Content-Length: 0`). A body then follows through
    /// [`encode_body`](Self::encode_body) and [`finish_body`](Self::finish_body).
    ///
    /// Refused, with nothing written: a method or field name that is not a token, a
    /// target or field value with a space (target) or control byte (CR, LF, NUL...), no
    /// `Host` or more than one, a caller-given `Content-Length` or `Transfer-Encoding`,
    /// `CONNECT`, a request while the previous body is unfinished or `max_pipelined`
    /// requests are in flight, and any request once the connection is not reusable.
    /// Requests may be pipelined: their responses are matched in order.
    pub fn encode_request(
        &mut self,
        req: &RequestHead<'_>,
        body: BodyKind,
        out: &mut Vec<u8>,
    ) -> Result<(), ClientError> {
        self.ready_for_request()?;
        let (sent, outgoing) = request::write_head(req, body, out)?;
        if sent.close {
            self.reusable = false;
        }
        self.queue.push_back(sent);
        self.out = outgoing;
        Ok(())
    }

    /// Records a request written whole by `request::prepare` as sent on this
    /// connection (the caller queues its bytes), under the same refusals as
    /// [`encode_request`](Self::encode_request).
    pub(crate) fn push_prepared(&mut self, sent: Sent) -> Result<(), ClientError> {
        self.ready_for_request()?;
        if sent.close {
            self.reusable = false;
        }
        self.queue.push_back(sent);
        Ok(())
    }

    /// Whether another request may be written now.
    fn ready_for_request(&self) -> Result<(), ClientError> {
        match self.read {
            Read::Poisoned => return Err(ClientError::Poisoned),
            Read::Closed => return Err(ClientError::Closed),
            Read::Upgraded => return Err(ClientError::Upgraded),
            _ if !self.reusable => return Err(ClientError::NotReusable),
            _ => {}
        }
        if self.out != Outgoing::Idle {
            return Err(ClientError::InvalidRequest(
                "the previous request's body is not finished",
            ));
        }
        if self.queue.len() >= self.limits.pipelined() {
            return Err(ClientError::InvalidRequest(
                "max_pipelined requests already in flight",
            ));
        }
        Ok(())
    }

    /// Appends a piece of the current request's body (chunk-framed if chunked; an empty
    /// piece writes nothing). Refused, with nothing written, past the declared length.
    pub fn encode_body(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), ClientError> {
        request::write_body(&mut self.out, chunk, out)
    }

    /// Ends the current request's body: writes the last chunk of a chunked body; for a
    /// `Content-Length` body, an error if bytes are still owed.
    pub fn finish_body(&mut self, out: &mut Vec<u8>) -> Result<(), ClientError> {
        request::finish(&mut self.out, &[], out)
    }

    /// [`finish_body`](Self::finish_body) with a trailer section after the last chunk
    /// of a chunked body: `trailers`, those
    /// [`trailer_allowed`](crate::http1::encode::trailer_allowed) accepts (the others
    /// are dropped). A `Content-Length` body cannot carry them: they are dropped.
    pub fn finish_body_with_trailers(
        &mut self,
        trailers: &[(&str, &str)],
        out: &mut Vec<u8>,
    ) -> Result<(), ClientError> {
        request::finish(&mut self.out, trailers, out)
    }

    /// Decodes from the start of `input` (the received bytes not yet consumed): at most
    /// one event per call. Call again with the rest (`input[consumed..]`) until the event
    /// is `None`, then again once more bytes have been appended.
    pub fn decode<'a>(&'a mut self, input: &'a [u8]) -> Result<Decoded<'a>, ClientError> {
        let (consumed, ev) = match self.step(input) {
            Ok(r) => r,
            Err(e) => {
                if !matches!(self.read, Read::Closed | Read::Upgraded) {
                    self.read = Read::Poisoned;
                    self.reusable = false;
                }
                return Err(e);
            }
        };
        let event = ev.map(|ev| self.view(input, ev));
        Ok(Decoded { consumed, event })
    }

    /// The server closed the connection (end of stream); `unconsumed` is what
    /// [`decode`](Self::decode) left of the input. Returns the end of a response whose
    /// body runs until close, which this completes; `None` if nothing was in progress.
    ///
    /// Errors: [`ClosedMidBody`](ClientError::ClosedMidBody) inside a length or chunked
    /// body, [`ClosedBeforeResponse`](ClientError::ClosedBeforeResponse) if requests are
    /// still unanswered, [`UnexpectedResponse`](ClientError::UnexpectedResponse) if bytes
    /// were left with none. The codec refuses further use either way.
    pub fn peer_closed(&mut self, unconsumed: &[u8]) -> Result<Option<End<'static>>, ClientError> {
        let result = match self.read {
            Read::Poisoned => return Err(ClientError::Poisoned),
            Read::Closed | Read::Upgraded => return Ok(None),
            Read::UntilClose { .. } | Read::Length(0) => {
                self.finish_response();
                Ok(Some(End {
                    trailers: FieldsView::empty(),
                    reusable: false,
                }))
            }
            Read::Length(_) | Read::Chunked(_) | Read::Trailers => Err(ClientError::ClosedMidBody),
            Read::Head | Read::Done if self.queue.is_empty() => {
                if unconsumed.is_empty() {
                    Ok(None)
                } else {
                    Err(ClientError::UnexpectedResponse)
                }
            }
            Read::Head | Read::Done => Err(ClientError::ClosedBeforeResponse {
                bytes_received: self.interim_seen || !unconsumed.is_empty(),
            }),
        };
        self.reusable = false;
        self.read = if result.is_ok() {
            Read::Closed
        } else {
            Read::Poisoned
        };
        result
    }

    /// Whether the connection may carry another request: no error, no close, no
    /// upgrade, and neither a response nor a request said `Connection: close` (nor
    /// HTTP/1.0 without keep-alive, a body delimited by close, or ambiguous framing).
    pub fn is_reusable(&self) -> bool {
        self.reusable
    }

    /// Whether nothing is in progress: no request unanswered, no response partly read,
    /// no request body open. A pooled connection must be idle and reusable.
    pub fn is_idle(&self) -> bool {
        self.queue.is_empty()
            && self.out == Outgoing::Idle
            && matches!(self.read, Read::Head | Read::Done)
    }

    /// Requests sent whose final response has not been fully read.
    pub fn in_flight(&self) -> usize {
        self.queue.len()
    }

    fn step(&mut self, input: &[u8]) -> Result<(usize, Option<Ev>), ClientError> {
        match &mut self.read {
            Read::Poisoned => Err(ClientError::Poisoned),
            Read::Closed => Err(ClientError::Closed),
            Read::Upgraded => Err(ClientError::Upgraded),
            Read::Done if input.is_empty() => Ok((0, None)),
            Read::Done => Err(ClientError::UnexpectedResponse),
            Read::Head => self.read_head(input),
            Read::Length(0) => Ok((0, Some(self.finish_response()))),
            Read::Length(left) => {
                let take = usize::try_from(*left)
                    .unwrap_or(usize::MAX)
                    .min(input.len());
                if take == 0 {
                    return Ok((0, None));
                }
                // take <= left, so this cannot underflow.
                *left -= take as u64;
                Ok((take, Some(Ev::Body(0, take))))
            }
            Read::Chunked(dec) => {
                let mut piece = 0;
                let used = dec
                    .decode(input, &mut |d| piece = d.len())
                    .map_err(body_error)?;
                if piece > 0 {
                    // A stepwise decoder returns right after the piece it handed over.
                    return Ok((used, Some(Ev::Body(used.saturating_sub(piece), piece))));
                }
                if dec.at_trailers() {
                    self.read = Read::Trailers;
                    let rest = input.get(used..).unwrap_or_default();
                    let (n, ev) = self.read_trailers(rest, used)?;
                    return Ok((used + n, ev));
                }
                Ok((used, None))
            }
            Read::Trailers => self.read_trailers(input, 0),
            Read::UntilClose { total } => {
                if input.is_empty() {
                    return Ok((0, None));
                }
                // Up to the limit, then an error on the first byte past it: the same
                // bytes are handed over however the input was split.
                let room = self.limits.max_body.saturating_sub(*total);
                let take = usize::try_from(room).unwrap_or(usize::MAX).min(input.len());
                if take == 0 {
                    return Err(ClientError::TooLarge("body size"));
                }
                // take <= room = max_body - total, so this cannot overflow.
                *total += take as u64;
                Ok((take, Some(Ev::Body(0, take))))
            }
        }
    }

    fn read_head(&mut self, input: &[u8]) -> Result<(usize, Option<Ev>), ClientError> {
        if input.is_empty() {
            return Ok((0, None));
        }
        let Some(req) = self.queue.front().copied() else {
            return Err(ClientError::UnexpectedResponse);
        };
        let Some(parsed) = parse_head(input, &self.limits, &mut self.spans)? else {
            return Ok((0, None));
        };
        let mut info = parsed.info;
        if (100..200).contains(&info.status) {
            self.interim_seen = true;
            if info.status == 101 {
                if !req.upgrade {
                    return Err(ClientError::Malformed(
                        "101 Switching Protocols to a request without Upgrade",
                    ));
                }
                self.queue.pop_front();
                self.read = Read::Upgraded;
                self.reusable = false;
                return Ok((info.len, Some(Ev::Upgraded(info))));
            }
            return Ok((info.len, Some(Ev::Informational(info))));
        }
        let (framing, keep_alive) = message_length(
            info.status,
            info.version,
            &parsed.fields,
            &req,
            &self.limits,
        )?;
        info.framing = framing;
        info.keep_alive = keep_alive;
        self.keep_alive = keep_alive;
        if !keep_alive {
            self.reusable = false;
        }
        self.read = match framing {
            Framing::None => Read::Length(0),
            Framing::Length(n) => Read::Length(n),
            Framing::Chunked => Read::Chunked(ChunkedDecoder::stepwise(self.limits.max_body)),
            Framing::UntilClose => Read::UntilClose { total: 0 },
        };
        Ok((info.len, Some(Ev::Head(info))))
    }

    /// The trailer section (and final CRLF) of a chunked body, parsed whole like a head.
    fn read_trailers(
        &mut self,
        input: &[u8],
        at: usize,
    ) -> Result<(usize, Option<Ev>), ClientError> {
        let mut slots = [httparse::EMPTY_HEADER; HEADER_CAP];
        let slots = slots
            .get_mut(..self.limits.header_count())
            .unwrap_or_default();
        match httparse::parse_headers(within_limit(input, &self.limits), slots) {
            Ok(httparse::Status::Complete((n, fields))) => {
                record(input, fields, &mut self.spans);
                self.finish_response();
                Ok((n, Some(Ev::End(Some(at)))))
            }
            Ok(httparse::Status::Partial) => {
                if input.len() > self.limits.max_header_bytes {
                    return Err(ClientError::TooLarge("trailer section size"));
                }
                Ok((0, None))
            }
            Err(httparse::Error::TooManyHeaders) => Err(ClientError::TooLarge("trailer count")),
            Err(_) => Err(ClientError::Malformed("invalid trailer section")),
        }
    }

    /// The response at the front is complete: retire its request.
    fn finish_response(&mut self) -> Ev {
        self.queue.pop_front();
        self.interim_seen = false;
        self.read = if self.keep_alive {
            Read::Head
        } else {
            Read::Done
        };
        Ev::End(None)
    }

    fn view<'a>(&'a self, input: &'a [u8], ev: Ev) -> ClientEvent<'a> {
        let head = |info: HeadInfo| {
            let (start, len) = info.reason;
            let reason = input.get(start..start + len).unwrap_or_default();
            ResponseHead {
                info,
                reason: std::str::from_utf8(reason).unwrap_or_default(),
                fields: FieldsView::new(input, &self.spans),
            }
        };
        match ev {
            Ev::Informational(info) => ClientEvent::Informational(head(info)),
            Ev::Head(info) => ClientEvent::Head(head(info)),
            Ev::Upgraded(info) => ClientEvent::Upgraded(head(info)),
            Ev::Body(start, len) => {
                ClientEvent::Body(input.get(start..start + len).unwrap_or_default())
            }
            Ev::End(trailers) => ClientEvent::End(End {
                trailers: match trailers {
                    Some(at) => FieldsView::new(input.get(at..).unwrap_or_default(), &self.spans),
                    None => FieldsView::empty(),
                },
                reusable: self.reusable,
            }),
        }
    }
}
