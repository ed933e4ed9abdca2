//! [`DatagramHandler`]: the shape of a protocol that speaks only UDP, and
//! [`Datagrams`], which runs one as a shard's [`Handler`].

use std::any::{Any, TypeId};
use std::net::SocketAddr;

use crate::close::Close;
use crate::handler::{Handler, ShardEvent};
use crate::io::{Input, Io, ShardIo};

/// A protocol over datagrams: called for every datagram a shard's UDP socket receives.
pub trait DatagramHandler: 'static {
    /// A datagram from `peer`, its payload in place. Reply with [`ShardIo::send_to`].
    fn on_datagram(&mut self, peer: SocketAddr, payload: &[u8], io: &mut ShardIo<'_>);
}

/// Runs a [`DatagramHandler`] as a shard's handler (it accepts no TCP connections).
#[derive(Debug)]
pub struct Datagrams<D>(pub D);

impl<D: DatagramHandler> Handler for Datagrams<D> {
    type Conn = ();

    fn on_open(&mut self, _peer: SocketAddr, io: &mut Io<'_>) {
        io.abort();
    }

    fn on_data(&mut self, _conn: &mut (), input: &mut Input<'_>, _io: &mut Io<'_>) {
        input.consume_all();
    }

    fn on_close(&mut self, _conn: (), _why: Close) {}

    fn on_shard(&mut self, event: ShardEvent<'_>, shard: &mut ShardIo<'_>) {
        if let ShardEvent::Datagram { peer, payload } = event {
            self.0.on_datagram(peer, payload, shard);
        }
    }

    // A call may name the datagram protocol itself.
    fn find(&mut self, ty: TypeId) -> Option<&mut dyn Any> {
        (ty == TypeId::of::<D>()).then_some(&mut self.0 as &mut dyn Any)
    }
}
