//! A request whose head is complete and whose body is still arriving over several
//! reads: its bytes kept, its body decoded as it comes, `100 Continue` sent when owed.
//!
//! This part of the state machine owns only the request in progress; once the body is
//! complete the request is dispatched like one read in one go. Nothing here is
//! allocated for a request whose body arrives with its head.

use super::{count_body_error, Conn};
use crate::http1::app::App;
use crate::http1::body::ChunkedDecoder;
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
        }));
        if continue_pending && self.queue.is_empty() {
            self.send_continue(port);
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
