//! UDP echo: every datagram goes back to its sender, byte for byte.

use std::net::SocketAddr;

use ringmaster_runtime::{DatagramHandler, ShardIo};

/// The UDP echo protocol.
#[derive(Debug, Default, Clone, Copy)]
pub struct UdpEcho;

impl DatagramHandler for UdpEcho {
    fn on_datagram(&mut self, peer: SocketAddr, payload: &[u8], io: &mut ShardIo<'_>) {
        // A full send table drops the reply (counted by the runtime): UDP may drop, the
        // server must not grow.
        io.send_to(peer, payload);
    }
}
