//! The protocol's bookkeeping for one exchange: where its response stands and how it is
//! framed.
//!
//! This module owns [`ExchangeState`], the few bytes the connection keeps per outstanding
//! response (in its queue) and lends to an [`Exchange`](super::Exchange) for the length
//! of one application callback. It decides nothing on its own: the exchange moves it
//! forward, the connection reads it to release and close in order.

use super::encode::{ConnField, Framing};

/// Where an exchange stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Nothing sent yet.
    Waiting,
    /// Head sent, body chunks flowing.
    Streaming,
    /// The response is complete.
    Done,
}

/// The protocol's bookkeeping for one exchange (small: it lives in the connection's
/// queue while the response is outstanding).
#[derive(Debug, Clone)]
pub(crate) struct ExchangeState {
    /// The exchange's sequence number on its connection (wraps within
    /// [`SEQ_MASK`](super::timer_tag::SEQ_MASK)); timers and offload results name it.
    pub(crate) seq: u32,
    pub(crate) phase: Phase,
    /// The request was HEAD: the head is sent, body bytes are dropped.
    pub(crate) head_only: bool,
    /// The request was HTTP/1.0: no chunked coding, keep-alive only when asked for.
    pub(crate) http10: bool,
    /// The connection closes after this response.
    pub(crate) close: bool,
    /// The framing chosen when the stream started.
    pub(crate) framing: Framing,
    /// [`App::on_writable`](super::App::on_writable) was asked for.
    pub(crate) wants_writable: bool,
    /// Body bytes still owed by a stream started with
    /// [`Exchange::start_sized`](super::Exchange::start_sized).
    pub(crate) remaining: u64,
    /// Cross-shard calls made for this exchange whose outcome has not come back.
    pub(crate) calls: u32,
    /// The ids of the notifiers made for this exchange (empty, unallocated, for most).
    pub(crate) notifiers: Vec<u64>,
    /// The upstream connection streaming a response to this exchange, once its first
    /// piece came (closed with this connection: nobody else wants the rest).
    pub(crate) upstream: Option<ringmaster_runtime::ConnToken>,
    /// The response switched protocols (101): the connection is no longer HTTP/1.1.
    pub(crate) upgrade: bool,
    /// The client sent `TE: trailers` (HTTP/1.1): see
    /// [`Exchange::accepts_trailers`](super::Exchange::accepts_trailers). A bool in
    /// what was padding: the state's size is unchanged.
    pub(crate) te_trailers: bool,
    /// The application asked for no more of a streamed request body for now
    /// ([`Exchange::pause_body`](super::Exchange::pause_body)); HTTP/2 gives the client
    /// no more flow-control credit for the stream until it resumes.
    pub(crate) body_paused: bool,
}

impl ExchangeState {
    pub(crate) fn new(seq: u32, head_only: bool, http10: bool, keep_alive: bool) -> Self {
        ExchangeState {
            seq,
            phase: Phase::Waiting,
            head_only,
            http10,
            close: !keep_alive,
            framing: Framing::None,
            wants_writable: false,
            remaining: 0,
            calls: 0,
            upstream: None,
            upgrade: false,
            te_trailers: false,
            body_paused: false,
            notifiers: Vec::new(),
        }
    }

    /// The `Connection` field this response carries.
    pub(crate) fn conn_field(&self) -> ConnField {
        if self.close {
            ConnField::Close
        } else if self.http10 {
            ConnField::KeepAlive
        } else {
            ConnField::Omit
        }
    }
}
