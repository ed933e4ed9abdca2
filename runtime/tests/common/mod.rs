//! What several runtime tests share.

use std::net::SocketAddr;

use ringmaster_runtime::{Close, Handler, Input, Io};

/// Writes back whatever arrives.
pub struct Echo;

impl Handler for Echo {
    type Conn = ();
    fn on_open(&mut self, _peer: SocketAddr, _io: &mut Io<'_>) {}
    fn on_data(&mut self, _c: &mut (), input: &mut Input<'_>, io: &mut Io<'_>) {
        io.write(input.bytes());
        input.consume_all();
    }
    fn on_close(&mut self, _c: (), _why: Close) {}
}
