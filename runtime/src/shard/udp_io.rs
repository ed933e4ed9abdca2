//! The shard's UDP side: receive completions to `on_datagram`, the send table to the ring.

use io_uring::cqueue;

use super::Shard;
use crate::handler::{Handler, ShardEvent};
use crate::io::ShardIo;
use crate::sys::msg::{parse_received, Received};
use crate::sys::ring::Completion;
use crate::token::{pack, pack_shard, ConnToken, OpKind};

impl<H: Handler> Shard<H> {
    /// Arms the multishot recvmsg if it is not running (and the shard is not draining).
    pub(super) fn arm_udp(&mut self) {
        if self.ctx.draining {
            return;
        }
        if let Some(port) = self.udp.as_mut() {
            if !port.recv_armed {
                use std::os::fd::AsRawFd;
                self.ring.recvmsg_multi(
                    port.fd.as_raw_fd(),
                    &mut port.recv_hdr,
                    port.bufs.bgid(),
                    pack_shard(OpKind::UdpRecv),
                );
                port.recv_armed = true;
            }
        }
    }

    pub(super) fn on_udp_recv(&mut self, c: &Completion) {
        let (res, flags) = (c.result(), c.flags());
        let Shard {
            udp,
            ctx,
            handler,
            pieces,
            ..
        } = self;
        let Some(port) = udp.as_mut() else {
            return;
        };
        if !cqueue::more(flags) {
            port.recv_hdr.settle(c);
            port.recv_armed = false;
        }
        if let Some(bid) = cqueue::buffer_select(flags) {
            port.bufs.pieces(bid, res.max(0) as u32, flags, pieces);
            if res > 0 {
                if let Some(p) = pieces.pieces.first() {
                    let data = port.bufs.bytes(*p);
                    // The template is only read by the kernel: always readable here.
                    let parsed = port.recv_hdr.get().map(|t| parse_received(t, data));
                    match parsed.unwrap_or(Received::Truncated) {
                        Received::Datagram { peer, payload } => {
                            ctx.counters.datagrams_in += 1;
                            ctx.counters.bytes_in += payload.len() as u64;
                            handler.on_shard(
                                ShardEvent::Datagram { peer, payload },
                                &mut ShardIo { shard: ctx },
                            );
                        }
                        Received::UnknownPeer => {}
                        // Larger than a buffer: the kernel cut it. Never pass on a cut
                        // datagram.
                        Received::Truncated => ctx.counters.udp_truncated += 1,
                    }
                }
            }
            port.bufs.finish(pieces);
        }
        if res == -libc::ENOBUFS {
            // The multishot ended; `arm_udp` re-arms it at the end of the turn, after
            // this turn's buffers have gone back.
            ctx.counters.enobufs += 1;
        }
    }

    /// Submits every queued datagram.
    pub(super) fn flush_udp(&mut self) {
        let Some(port) = self.udp.as_mut() else {
            return;
        };
        use std::os::fd::AsRawFd;
        let fd = port.fd.as_raw_fd();
        let Some(sends) = self.ctx.udp_sends.as_mut() else {
            return;
        };
        for key in sends.queued.drain(..) {
            let Some(send) = sends.table.get_mut(key) else {
                continue;
            };
            let token = ConnToken {
                slot: key as u32,
                generation: 0,
            };
            if send.zc {
                self.ctx.counters.zc_sends += 1;
            }
            self.ring
                .sendmsg(fd, &mut send.msg, send.zc, pack(OpKind::UdpSend, token));
        }
    }

    /// A send's result, or its zero-copy notification. The entry leaves the table at its
    /// final completion (the notification, or a result without MORE).
    pub(super) fn on_udp_send(&mut self, token: ConnToken, c: &Completion) {
        let Some(sends) = self.ctx.udp_sends.as_mut() else {
            return;
        };
        let key = token.slot as usize;
        let Some(send) = sends.table.get_mut(key) else {
            return;
        };
        if !c.notif() {
            let res = c.result();
            if res >= 0 {
                self.ctx.counters.datagrams_out += u64::from(send.datagrams());
                self.ctx.counters.bytes_out += res as u64;
            } else {
                self.ctx.counters.udp_send_errors += 1;
            }
        }
        send.msg.settle(c);
        if !send.msg.is_owed() {
            sends.table.remove(key);
        }
    }

    /// Whether the UDP side has nothing left in the kernel.
    pub(super) fn udp_quiet(&self) -> bool {
        self.udp.as_ref().is_none_or(|p| !p.recv_armed)
            && self
                .ctx
                .udp_sends
                .as_ref()
                .is_none_or(|s| s.table.is_empty())
    }
}
