//! [`HttpWs`]: HTTP/1.1 whose connections can upgrade to WebSocket.
//!
//! A connection starts in [`Http`]. Before its first request reaches the HTTP layer, its
//! head is looked at (parsed in place with the HTTP layer's own parser and limits;
//! nothing is copied): if it asks for `Upgrade: websocket`, this module answers it —
//! `101` and the connection becomes a [`Ws`] connection, with any bytes after the head
//! fed to it in the same call; `400`/`426` (handshake errors) or `404` (target refused by
//! [`WsApp::accept`]) and the connection closes. Every other request goes to the HTTP
//! application untouched.
//!
//! Only a connection's **first** request can upgrade; later ones reach the HTTP
//! application as ordinary requests. Two reasons. Ordering: a 101 must not overtake
//! responses still owed to earlier pipelined requests, which the HTTP layer does not
//! expose. Framing: after the first request, the start of a read may be the middle of a
//! request body the HTTP layer is still collecting, and reading a head there would let a
//! body that looks like an upgrade request switch protocols (request smuggling through a
//! proxy that shares backend connections). Browsers and WebSocket clients open a fresh
//! connection for each WebSocket, so nothing real is lost. (With a public
//! `HttpConn::is_idle` from the HTTP layer, later requests could upgrade too.)

use std::any::{Any, TypeId};
use std::net::SocketAddr;

use ringmaster_runtime::{find_in, Close, Event, Handler, Input, Io, ShardEvent, ShardIo};

use super::handler::{Ws, WsApp, WsConn};
use super::handshake;
use crate::http1::head::{header_buf, parse_head, BodyKind, Version};
use crate::http1::{App, Http, HttpConn};

/// HTTP/1.1 with WebSocket upgrades: one per shard.
#[derive(Debug)]
pub struct HttpWs<H: App, W> {
    http: Http<H>,
    ws: Ws<W>,
}

/// Per-connection state of [`HttpWs`]: which protocol the connection speaks now.
#[derive(Debug)]
pub enum HttpWsConn<T, C> {
    /// HTTP/1.1, nothing consumed yet: the first request may upgrade.
    Fresh(HttpConn<T>),
    /// HTTP/1.1 past its first request.
    Http(HttpConn<T>),
    /// Upgraded.
    Ws(WsConn<C>),
    /// Refused an upgrade; waiting for the refusal to flush.
    Closing,
}

/// What the head at the start of the input asks for.
enum Peek {
    /// Not an upgrade (or not complete yet): the HTTP layer's business.
    Http,
    /// An upgrade: answered; `usize` bytes of head consumed.
    Upgraded(usize),
    /// An upgrade refused (answer written).
    Refused,
}

impl<H: App, W: WsApp> HttpWs<H, W> {
    /// Serves `http` and upgrades to `ws`.
    pub fn new(http: Http<H>, ws: Ws<W>) -> Self {
        HttpWs { http, ws }
    }

    /// The HTTP side.
    pub fn http(&self) -> &Http<H> {
        &self.http
    }

    /// The WebSocket side.
    pub fn ws(&self) -> &Ws<W> {
        &self.ws
    }

    /// The WebSocket side, mutably.
    pub fn ws_mut(&mut self) -> &mut Ws<W> {
        &mut self.ws
    }

    fn peek(&mut self, bytes: &[u8], io: &mut Io<'_>) -> Peek {
        let mut hb = header_buf();
        let head = match parse_head(bytes, &mut hb, self.http.limits()) {
            Ok(Some(head)) => head,
            _ => return Peek::Http,
        };
        let fields = head.headers().iter().map(|h| (h.name, h.value));
        if !handshake::is_websocket_upgrade(fields.clone()) {
            return Peek::Http;
        }
        let get11 = head.method() == "GET" && head.version() == Version::Http11;
        let has_body = !matches!(head.body(), BodyKind::Empty | BodyKind::Length(0));
        let mut out = Vec::new();
        let result = match handshake::check(get11, has_body, fields) {
            Ok(accepted) if self.ws.app_mut().accept(head.target()) => {
                handshake::write_101(&mut out, &accepted);
                io.write(&out);
                return Peek::Upgraded(head.len());
            }
            Ok(_) => {
                out.extend_from_slice(
                    b"HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
                );
                Peek::Refused
            }
            Err(e) => {
                handshake::write_refusal(&mut out, e);
                Peek::Refused
            }
        };
        self.ws.counters_mut().handshakes_refused += 1;
        io.write(&out);
        io.close();
        result
    }
}

impl<H: App, W: WsApp> Handler for HttpWs<H, W> {
    type Conn = HttpWsConn<H::Task, W::Conn>;

    fn on_open(&mut self, peer: SocketAddr, io: &mut Io<'_>) -> Self::Conn {
        HttpWsConn::Fresh(self.http.on_open(peer, io))
    }

    // The HTTP application's outbound connections (its upstream pool) never upgrade.
    fn on_connected(&mut self, tag: u64, peer: SocketAddr, io: &mut Io<'_>) -> Self::Conn {
        HttpWsConn::Http(self.http.on_connected(tag, peer, io))
    }

    fn on_data(&mut self, conn: &mut Self::Conn, input: &mut Input<'_>, io: &mut Io<'_>) {
        if let HttpWsConn::Fresh(c) = conn {
            match self.peek(input.bytes(), io) {
                Peek::Http => {
                    self.http.on_data(c, input, io);
                    if input.consumed() > 0 {
                        // The first request (or part of it) is the HTTP layer's now.
                        if let HttpWsConn::Fresh(c) = std::mem::replace(conn, HttpWsConn::Closing) {
                            *conn = HttpWsConn::Http(c);
                        }
                    }
                    return;
                }
                Peek::Refused => {
                    input.consume_all();
                    if let HttpWsConn::Fresh(c) = std::mem::replace(conn, HttpWsConn::Closing) {
                        self.http.on_close(c, Close::Local);
                    }
                    return;
                }
                Peek::Upgraded(n) => {
                    input.consume(n);
                    let ws = self.ws.open(io);
                    if let HttpWsConn::Fresh(c) = std::mem::replace(conn, HttpWsConn::Ws(ws)) {
                        // Releases the HTTP side's state. Its protocol timer may still
                        // fire once; the WebSocket side ignores its tag.
                        self.http.on_close(c, Close::Local);
                    }
                }
            }
        }
        match conn {
            HttpWsConn::Ws(c) => {
                let used = self.ws.data(c, input.bytes(), io);
                input.consume(used);
            }
            HttpWsConn::Http(c) => self.http.on_data(c, input, io),
            HttpWsConn::Closing => input.consume_all(),
            HttpWsConn::Fresh(_) => {}
        }
    }

    // Every other event goes to whichever protocol the connection speaks now, by one
    // catch-all: an event this layer does not know of still reaches it.
    fn on_event(&mut self, conn: &mut Self::Conn, event: Event<'_>, io: &mut Io<'_>) {
        match conn {
            HttpWsConn::Fresh(c) | HttpWsConn::Http(c) => self.http.on_event(c, event, io),
            HttpWsConn::Ws(c) => self.ws.on_event(c, event, io),
            HttpWsConn::Closing => event.default_action(io),
        }
    }

    fn on_close(&mut self, conn: Self::Conn, why: Close) {
        match conn {
            HttpWsConn::Fresh(c) | HttpWsConn::Http(c) => self.http.on_close(c, why),
            HttpWsConn::Ws(c) => self.ws.closed(c),
            HttpWsConn::Closing => {}
        }
    }

    fn on_closed(&mut self, conn: Self::Conn, why: Close, shard: &mut ShardIo<'_>) {
        match conn {
            HttpWsConn::Fresh(c) | HttpWsConn::Http(c) => self.http.on_closed(c, why, shard),
            other => self.on_close(other, why),
        }
    }

    // Shard events belong to the HTTP application (the WebSocket side has none).
    fn on_shard(&mut self, event: ShardEvent<'_>, shard: &mut ShardIo<'_>) {
        self.http.on_shard(event, shard);
    }

    // A cross-shard call naming the HTTP side (as `Exchange::call` does), a handler
    // inside it, or the WebSocket side reaches it.
    fn find(&mut self, ty: TypeId) -> Option<&mut dyn Any> {
        if ty == TypeId::of::<Ws<W>>() {
            return Some(&mut self.ws);
        }
        find_in(&mut self.http, ty)
    }
}
