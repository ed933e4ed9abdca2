//! TCP echo: every byte received is sent back, in order.
//!
//! The bytes are echoed straight from the kernel-filled buffer (one copy, into the send
//! queue, which coalesces everything that arrives while a send is in flight; pieces at
//! or above the zero-copy threshold go out as their own SEND_ZC buffer instead). When the
//! peer half-closes, whatever is queued is sent and then the connection closes. During a
//! graceful shutdown a connection in the middle of a transfer keeps echoing until its
//! peer finishes or the drain deadline passes; one that never sent anything closes at once.

use std::net::SocketAddr;

use ringmaster_runtime::{Close, Event, Handler, Input, Io};

/// The echo protocol. Stateless apart from one flag per connection.
#[derive(Debug, Default, Clone, Copy)]
pub struct Echo;

/// Per-connection state of [`Echo`].
#[derive(Debug, Default)]
pub struct EchoConn {
    /// Bytes echoed so far.
    pub echoed: u64,
}

impl Handler for Echo {
    type Conn = EchoConn;

    fn on_open(&mut self, _peer: SocketAddr, _io: &mut Io<'_>) -> EchoConn {
        EchoConn::default()
    }

    fn on_data(&mut self, conn: &mut EchoConn, input: &mut Input<'_>, io: &mut Io<'_>) {
        let bytes = input.bytes();
        if bytes.len() >= io.zero_copy_threshold() {
            // Large enough that SEND_ZC beats coalescing a copy into the queue.
            io.send_owned(bytes.to_vec());
        } else {
            io.write(bytes);
        }
        conn.echoed += bytes.len() as u64;
        input.consume_all();
    }

    fn on_event(&mut self, conn: &mut EchoConn, event: Event<'_>, io: &mut Io<'_>) {
        match event {
            // A connection that has exchanged nothing yet has no transfer to finish; one
            // that has keeps echoing until its peer closes or the drain deadline.
            Event::Shutdown => {
                if conn.echoed == 0 && io.backlog() == 0 {
                    io.close();
                }
            }
            other => other.default_action(io),
        }
    }

    fn on_close(&mut self, _conn: EchoConn, _why: Close) {}
}
