//! Output held back for an exchange whose turn has not come yet.
//!
//! Pipelined responses leave in request order. The exchange at the front of the
//! connection's queue writes straight to the port; every later one writes into its own
//! [`Held`], which the connection releases to the port, in order, when the exchange
//! reaches the front. This module owns that buffer and nothing else: it never decides
//! when to release, and never sees a socket.
//!
//! Pieces are produced by `Exchange` (copied bytes through [`Held::buf`], owned and
//! static buffers through [`Held::push_owned`] and [`Held::push_static`]) and by the
//! connection's `reject` (an error response queued behind others); they are released by
//! `Conn::advance`, which calls [`Held::release`] on the front of the queue.

use super::port::Port;

/// Output held back for an exchange whose turn has not come yet.
#[derive(Debug, Default)]
pub(crate) struct Held {
    /// Earlier pieces, in order.
    pieces: Vec<Piece>,
    /// Copied bytes after the last piece.
    tail: Vec<u8>,
}

/// One piece of held output, kept in the form it will be handed to the port in.
#[derive(Debug)]
enum Piece {
    /// Bytes copied into the output ([`Port::buf`]).
    Copied(Vec<u8>),
    /// A buffer handed over whole ([`Port::send_owned`]).
    Owned(Vec<u8>),
    /// Program-lifetime bytes ([`Port::send_static`]).
    Static(&'static [u8]),
}

impl Held {
    /// The buffer copied output is appended to (after every piece pushed so far).
    pub(crate) fn buf(&mut self) -> &mut Vec<u8> {
        &mut self.tail
    }

    /// Holds an owned buffer after everything written so far.
    pub(crate) fn push_owned(&mut self, v: Vec<u8>) {
        self.push_piece(Piece::Owned(v));
    }

    /// Holds `'static` bytes after everything written so far.
    pub(crate) fn push_static(&mut self, v: &'static [u8]) {
        self.push_piece(Piece::Static(v));
    }

    fn push_piece(&mut self, piece: Piece) {
        if !self.tail.is_empty() {
            self.pieces
                .push(Piece::Copied(std::mem::take(&mut self.tail)));
        }
        self.pieces.push(piece);
    }

    /// Moves everything held to the port, in order.
    pub(crate) fn release(&mut self, port: &mut dyn Port) {
        for piece in self.pieces.drain(..) {
            match piece {
                Piece::Copied(v) => port.buf().extend_from_slice(&v),
                Piece::Owned(v) => port.send_owned(v),
                Piece::Static(v) => port.send_static(v),
            }
        }
        port.buf().extend_from_slice(&self.tail);
        self.tail = Vec::new();
    }
}
