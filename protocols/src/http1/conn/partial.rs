//! A request whose head is complete and whose body is still arriving over several
//! reads: its bytes kept, its body decoded as it comes, `100 Continue` sent when owed.
//!
//! This part of the state machine owns only the request in progress; once the body is
//! complete the request is dispatched like one read in one go. Nothing here is
//! allocated for a request whose body arrives with its head.

use super::{count_body_error, Conn};
use crate::http1::app::{App, Request};
use crate::http1::body::ChunkedDecoder;
use crate::http1::client::FieldsView;
use crate::http1::encode;
use crate::http1::head::{header_buf, parse_head, Head};
use crate::http1::limits::Limits;
use crate::http1::port::Port;

/// How much of a partly received body is still to come.
pub(super) enum Rest {
    Length(u64),
    Chunked(ChunkedDecoder),
}

/// A request whose head is complete and whose body is still arriving.
pub(super) struct Partial {
    /// The head's raw bytes, parsed again (cheaply) when the body is complete, so the
    /// application sees the same borrowed [`Request`](crate::http1::Request) as for a request read in one go.
    head: Vec<u8>,
    body: Vec<u8>,
    rest: Rest,
    /// `100 Continue` is owed once earlier responses are out and no body byte came yet.
    continue_pending: bool,
    /// The body goes to the application in pieces, for the exchange with this sequence
    /// number (dispatched at its head; nothing is kept here).
    stream: Option<u32>,
}

impl<T> Conn<T> {
    pub(super) fn start_partial(
        &mut self,
        head: &Head<'_, '_>,
        raw: &[u8],
        body: Vec<u8>,
        rest: Rest,
        body_started: bool,
        port: &mut dyn Port,
    ) {
        let head_bytes = raw.get(..head.len()).unwrap_or_default().to_vec();
        // RFC 9110 10.1.1: no 100 if the body is already coming.
        let continue_pending = head.expect_continue() && !body_started;
        self.partial = Some(Box::new(Partial {
            head: head_bytes,
            body,
            rest,
            continue_pending,
            stream: None,
        }));
        if continue_pending && self.queue.is_empty() {
            self.send_continue(port);
        }
    }

    /// Whether the application takes this request's body in pieces.
    pub(super) fn wants_stream<A: App<Task = T>>(&self, app: &mut A, head: &Head<'_, '_>) -> bool {
        let req = Request {
            method: head.method(),
            target: head.target(),
            version: head.version(),
            headers: head.headers(),
            body: &[],
            keep_alive: head.keep_alive(),
            streamed: true,
        };
        app.stream_body(&req)
    }

    /// [`wants_stream`](Self::wants_stream) for a chunked body that did not all arrive
    /// with its head (`after`: what did); a complete or malformed one is not streamed.
    pub(super) fn wants_stream_chunked<A: App<Task = T>>(
        &self,
        app: &mut A,
        head: &Head<'_, '_>,
        after: &[u8],
        limits: &Limits,
    ) -> bool {
        let mut probe = ChunkedDecoder::new(limits.max_body, limits.max_header_bytes);
        match probe.decode(after, &mut |_| {}) {
            Ok(_) if !probe.is_done() => self.wants_stream(app, head),
            // Trailers reach only an application that takes the body in pieces
            // (`App::on_trailers`): one that does, gets this body so too, however small.
            Ok(_) if !probe.trailers().is_empty() => self.wants_stream(app, head),
            _ => false,
        }
    }

    /// Dispatches a request whose body follows in pieces, and reads its body from here.
    pub(super) fn start_streamed<A: App<Task = T>>(
        &mut self,
        app: &mut A,
        head: &Head<'_, '_>,
        rest: Rest,
        body_started: bool,
        port: &mut dyn Port,
    ) {
        let seq = self.dispatch_as(app, head, &[], true, port);
        let continue_pending = head.expect_continue() && !body_started;
        self.partial = Some(Box::new(Partial {
            head: Vec::new(),
            body: Vec::new(),
            rest,
            continue_pending,
            stream: Some(seq),
        }));
        // The exchange waits for the body, so the `100 Continue` cannot wait for it.
        if continue_pending && self.queue.len() <= 1 {
            self.send_continue(port);
        }
    }

    /// The queue index of the exchange `seq` names, if it still has a task.
    pub(super) fn by_seq(&self, seq: u32) -> Option<usize> {
        self.queue
            .iter()
            .position(|s| s.state.seq == seq && s.task.is_some())
    }

    /// Gives a piece of a streamed body to its exchange.
    fn body_piece<A: App<Task = T>>(
        &mut self,
        app: &mut A,
        seq: u32,
        piece: &[u8],
        last: bool,
        limits: &Limits,
        port: &mut dyn Port,
    ) {
        if let Some(i) = self.by_seq(seq) {
            self.call_exchange(i, port, |task, ex| app.on_body(task, piece, last, ex));
            self.advance(app, limits, port);
        }
    }

    /// Gives the trailer section of a streamed body to its exchange.
    fn body_trailers<A: App<Task = T>>(
        &mut self,
        app: &mut A,
        seq: u32,
        trailers: FieldsView<'_>,
        port: &mut dyn Port,
    ) {
        if let Some(i) = self.by_seq(seq) {
            self.call_exchange(i, port, |task, ex| app.on_trailers(task, trailers, ex));
        }
    }

    pub(super) fn send_continue(&mut self, port: &mut dyn Port) {
        if let Some(partial) = self.partial.as_mut() {
            if partial.continue_pending {
                partial.continue_pending = false;
                port.buf().extend_from_slice(encode::CONTINUE);
                port.counters().continue_sent += 1;
            }
        }
    }

    /// Feeds body bytes to the request in progress; dispatches it when complete.
    pub(super) fn continue_body<A: App<Task = T>>(
        &mut self,
        app: &mut A,
        input: &[u8],
        limits: &Limits,
        port: &mut dyn Port,
    ) -> usize {
        let Some(partial) = self.partial.as_mut() else {
            return 0;
        };
        if !input.is_empty() {
            partial.continue_pending = false;
        }
        if let Some(seq) = partial.stream {
            return self.continue_streamed(app, seq, input, limits, port);
        }
        let used = match &mut partial.rest {
            Rest::Length(left) => {
                let take = usize::try_from(*left)
                    .unwrap_or(usize::MAX)
                    .min(input.len());
                partial
                    .body
                    .extend_from_slice(input.get(..take).unwrap_or_default());
                *left -= take as u64;
                if *left > 0 {
                    return take;
                }
                take
            }
            Rest::Chunked(dec) => {
                let body = &mut partial.body;
                match dec.decode(input, &mut |d| body.extend_from_slice(d)) {
                    Err(e) => {
                        count_body_error(&e, port.counters());
                        self.reject(e.status(), port);
                        return input.len();
                    }
                    Ok(used) if !dec.is_done() => return used,
                    Ok(used) => used,
                }
            }
        };
        let Some(partial) = self.partial.take() else {
            return used;
        };
        let mut header_slots = header_buf();
        match parse_head(&partial.head, &mut header_slots, limits) {
            Ok(Some(head)) => self.dispatch(app, &head, &partial.body, port),
            // The same bytes parsed before under the same limits; this cannot happen,
            // but a 400 is the safe answer if it ever does.
            _ => {
                port.counters().bad_request += 1;
                self.reject(400, port);
            }
        }
        used
    }
}

impl<T> Conn<T> {
    /// Reads what `input` holds of a streamed body and gives it to its exchange;
    /// returns the bytes consumed.
    fn continue_streamed<A: App<Task = T>>(
        &mut self,
        app: &mut A,
        seq: u32,
        input: &[u8],
        limits: &Limits,
        port: &mut dyn Port,
    ) -> usize {
        let Some(partial) = self.partial.as_mut() else {
            return 0;
        };
        match &mut partial.rest {
            Rest::Length(left) => {
                let take = usize::try_from(*left)
                    .unwrap_or(usize::MAX)
                    .min(input.len());
                *left -= take as u64;
                let last = *left == 0;
                if last {
                    self.partial = None;
                }
                let piece = input.get(..take).unwrap_or_default();
                if !piece.is_empty() || last {
                    self.body_piece(app, seq, piece, last, limits, port);
                }
                take
            }
            Rest::Chunked(dec) => {
                let mut piece = Vec::new();
                let used = match dec.decode(input, &mut |d| piece.extend_from_slice(d)) {
                    Ok(used) => used,
                    Err(e) => {
                        count_body_error(&e, port.counters());
                        self.reject(e.status(), port);
                        return input.len();
                    }
                };
                let last = dec.is_done();
                let ended = if last { self.partial.take() } else { None };
                let trailers = match &ended {
                    Some(p) => match &p.rest {
                        Rest::Chunked(dec) => dec.trailers(),
                        Rest::Length(_) => FieldsView::empty(),
                    },
                    None => FieldsView::empty(),
                };
                if trailers.is_empty() {
                    if !piece.is_empty() || last {
                        self.body_piece(app, seq, &piece, last, limits, port);
                    }
                    return used;
                }
                // The body's data, its trailers, then its end (an empty last piece).
                if !piece.is_empty() {
                    self.body_piece(app, seq, &piece, false, limits, port);
                }
                self.body_trailers(app, seq, trailers, port);
                self.body_piece(app, seq, &[], true, limits, port);
                used
            }
        }
    }
}
