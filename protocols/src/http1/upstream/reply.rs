//! What travels from an upstream connection to the exchange that asked: the part of a
//! response that arrived in one read, copied out of the receive buffer (the exchange
//! runs in its own connection's callback, after this one's buffer is gone).

use super::{Fetch, UpstreamError, UpstreamEvent};
use crate::http1::client::{FieldsView, HeadInfo, ResponseHead, Span};

/// An interim head as it came: its bytes and their parsed form.
pub(crate) type InterimHead = (Vec<u8>, HeadInfo, Vec<Span>);

/// A piece of a response for exchange `seq` of the server connection it is posted to.
pub(crate) struct Reply {
    pub(crate) fetch: Fetch,
    pub(crate) seq: u32,
    /// The head's parsed form; its bytes are `buf[..head_len]`.
    pub(crate) head: Option<(HeadInfo, Vec<Span>)>,
    pub(crate) head_len: usize,
    /// The head's bytes, then body bytes.
    pub(crate) buf: Vec<u8>,
    /// How the response ended, if it did in this piece.
    pub(crate) end: Option<Result<(), UpstreamError>>,
    /// The upstream switched protocols (101): the bytes after the head are the new
    /// protocol's, for the tunnel, not body.
    pub(crate) upgraded: bool,
    /// After a 101 from an upstream spoken to over TLS: the client's side of the tunnel
    /// posts what it reads to the upstream connection, whose session encrypts it.
    pub(crate) sealed: bool,
    /// The trailer section that ended a chunked body (its bytes and field spans), when
    /// it had fields; boxed, as few responses have one.
    pub(crate) trailers: Option<Box<(Vec<u8>, Vec<Span>)>>,
    /// Interim (1xx) heads that came before the final one (their bytes, parsed form),
    /// in order (empty, allocating nothing, for most responses).
    pub(crate) interim: Vec<InterimHead>,
}

impl Reply {
    pub(crate) fn new(fetch: Fetch, seq: u32) -> Self {
        Reply {
            fetch,
            seq,
            head: None,
            head_len: 0,
            buf: Vec::new(),
            end: None,
            upgraded: false,
            sealed: false,
            trailers: None,
            interim: Vec::new(),
        }
    }

    /// Records an interim (1xx) head, which comes before any final head.
    pub(crate) fn push_interim(&mut self, head: &ResponseHead<'_>, bytes: &[u8]) {
        let (info, spans) = head.parts();
        self.interim.push((bytes.to_vec(), info, spans.to_vec()));
    }

    /// Records a head (the first thing a reply holds, if it holds one).
    pub(crate) fn set_head(&mut self, head: &ResponseHead<'_>, bytes: &[u8]) {
        let (info, spans) = head.parts();
        self.buf.clear();
        self.buf.extend_from_slice(bytes);
        self.head_len = bytes.len();
        self.head = Some((info, spans.to_vec()));
    }

    /// The new protocol's first bytes, after a 101.
    pub(crate) fn tunnel_bytes(&self) -> &[u8] {
        if self.upgraded {
            self.buf.get(self.head_len..).unwrap_or_default()
        } else {
            &[]
        }
    }

    /// Whether there is anything to tell.
    pub(crate) fn is_empty(&self) -> bool {
        self.head.is_none()
            && self.interim.is_empty()
            && self.buf.len() == self.head_len
            && self.end.is_none()
    }

    /// The events this reply holds, in order, each given to `f`.
    pub(crate) fn events(&self, mut f: impl FnMut(UpstreamEvent<'_>)) {
        for (bytes, info, spans) in &self.interim {
            f(UpstreamEvent::Informational(ResponseHead::rebuild(
                *info, bytes, spans,
            )));
        }
        if let Some((info, spans)) = &self.head {
            let bytes = self.buf.get(..self.head_len).unwrap_or_default();
            f(UpstreamEvent::Head(ResponseHead::rebuild(
                *info, bytes, spans,
            )));
        }
        let body = self.buf.get(self.head_len..).unwrap_or_default();
        if !body.is_empty() && !self.upgraded {
            f(UpstreamEvent::Body(body));
        }
        match &self.end {
            Some(Ok(())) => f(UpstreamEvent::End(match &self.trailers {
                Some(t) => FieldsView::new(&t.0, &t.1),
                None => FieldsView::empty(),
            })),
            Some(Err(e)) => f(UpstreamEvent::Failed(e.clone())),
            None => {}
        }
    }
}
