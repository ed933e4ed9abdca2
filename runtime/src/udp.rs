//! UDP: a socket per shard, multishot `recvmsg` into its own provided-buffer ring,
//! `sendmsg` (SENDMSG_ZC past the zero-copy threshold) for replies.
//!
//! Each received datagram lands in one buffer, behind the kernel's `io_uring_recvmsg_out`
//! header and the peer's address; the handler sees the payload in place. A datagram
//! larger than a buffer arrives truncated (`MSG_TRUNC`): it is counted and dropped, never
//! handed on. Replies wait in a bounded table of sends in flight; past the bound they
//! are dropped and counted, since UDP may drop and the server must not grow. The
//! kernel's layouts (`msghdr`, `UDP_SEGMENT` cmsg, sockaddrs) are built and decoded in
//! `sys::msg`; every message is lent to the kernel through `sys::lend`.

use std::net::SocketAddr;
use std::os::fd::OwnedFd;

use slab::Slab;

use crate::counters::Counters;
use crate::sys::buf_ring::BufRing;
use crate::sys::lend::Lent;
use crate::sys::msg::{DatagramMsg, RecvTemplate};

/// Coalesced sends (`udp_gso`) carry at most this many datagrams (the kernel's
/// `UDP_MAX_SEGMENTS` is 64 or more).
const GSO_MAX_SEGMENTS: u32 = 64;
/// Only datagrams up to this size are coalesced: an IPv6 payload within a 1500-byte MTU,
/// so the kernel never refuses a segment size for the route's MTU.
const GSO_MAX_SEGMENT: usize = 1452;
/// Bytes of one coalesced send, at most (one IP packet before segmentation).
const GSO_MAX_BYTES: usize = 65_000;

/// One send: one datagram, or with `udp_gso` several of the same size to the same peer,
/// sent as one buffer with `UDP_SEGMENT`. Its message (header, address, payload) is
/// lent to the kernel from submission until its final completion (for zero-copy, the
/// notification), and the entry leaves the table only then.
pub(crate) struct UdpSend {
    pub msg: Lent<Box<DatagramMsg>>,
    peer: SocketAddr,
    pub zc: bool,
}

impl UdpSend {
    /// The message, while it is still only queued (not lent).
    fn queued_msg(&mut self) -> Option<&mut DatagramMsg> {
        self.msg.get_mut().map(|m| &mut **m)
    }

    /// Datagrams it carries.
    pub(crate) fn datagrams(&self) -> u32 {
        self.msg.get().map_or(0, |m| m.datagrams())
    }
}

/// The shard's sends: queued ones wait for submission, then stay until the kernel has
/// returned them.
pub(crate) struct UdpSends {
    pub table: Slab<UdpSend>,
    pub queued: Vec<usize>,
    pub limit: usize,
    /// Coalesce queued datagrams of one size to one peer (`Config::udp_gso`).
    pub gso: bool,
}

impl UdpSends {
    pub(crate) fn new(limit: usize, gso: bool) -> Self {
        UdpSends {
            table: Slab::new(),
            queued: Vec::new(),
            limit: limit.max(1),
            gso,
        }
    }

    /// Queues a copy of `payload` for `peer` (zero-copy at or past `zc_threshold`).
    /// Returns false, counting `udp_send_dropped`, when the table is full.
    pub(crate) fn send_copy(
        &mut self,
        peer: SocketAddr,
        payload: &[u8],
        zc_threshold: usize,
        counters: &mut Counters,
    ) -> bool {
        let zc = payload.len() >= zc_threshold;
        if self.queue(peer, payload, zc) {
            true
        } else {
            counters.udp_send_dropped += 1;
            false
        }
    }

    fn queue(&mut self, peer: SocketAddr, payload: &[u8], zc: bool) -> bool {
        let len = payload.len();
        if self.gso && !zc && (1..=GSO_MAX_SEGMENT).contains(&len) {
            // Joins the last queued send (not handed to the kernel yet) if it is to the
            // same peer with datagrams of the same size and has room.
            if let Some(last) = self.queued.last().and_then(|k| self.table.get_mut(*k)) {
                let (zc, to) = (last.zc, last.peer);
                if let Some(msg) = last.queued_msg() {
                    if !zc
                        && to == peer
                        && msg.segment() == len
                        && msg.datagrams() < GSO_MAX_SEGMENTS
                        && msg.len() + len <= GSO_MAX_BYTES
                    {
                        msg.push_datagram(payload);
                        return true;
                    }
                }
            }
        }
        if self.table.len() >= self.limit {
            return false;
        }
        let send = UdpSend {
            msg: Lent::new(DatagramMsg::new(peer, payload)),
            peer,
            zc,
        };
        let key = self.table.insert(send);
        self.queued.push(key);
        true
    }
}

/// A shard's UDP socket and what its receives need (its sends wait in
/// `ShardCtx::udp_sends`, where `ShardIo::send_to` reaches them too).
pub(crate) struct ShardUdp {
    pub fd: OwnedFd,
    pub bufs: BufRing,
    /// The template the multishot recvmsg reads (room for an IPv6 address, no control),
    /// lent to the kernel while the receive is armed.
    pub recv_hdr: Lent<RecvTemplate>,
    pub recv_armed: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_table_is_bounded() {
        let mut s = UdpSends::new(2, false);
        let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert!(s.queue(peer, &[1], false));
        assert!(s.queue(peer, &[2], false));
        assert!(!s.queue(peer, &[3], false));
        assert_eq!(s.queued.len(), 2);
    }

    #[test]
    fn gso_coalesces_queued_datagrams_of_one_size_to_one_peer() {
        let mut s = UdpSends::new(4, true);
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:2".parse().unwrap();
        for _ in 0..GSO_MAX_SEGMENTS + 1 {
            assert!(s.queue(a, &[1, 2, 3], false));
        }
        assert!(s.queue(a, &[1, 2], false), "another size: a new send");
        assert!(s.queue(b, &[1, 2], false), "another peer: a new send");
        assert!(!s.queue(a, &[9; 9], false), "the table is full");
        assert!(s.queue(b, &[3, 4], false), "joins the last send");
        let sends: Vec<(u32, usize)> = s
            .queued
            .iter()
            .map(|k| {
                let m = s.table[*k].msg.get().unwrap();
                (m.datagrams(), m.len())
            })
            .collect();
        let full = GSO_MAX_SEGMENTS as usize * 3;
        assert_eq!(sends, [(GSO_MAX_SEGMENTS, full), (1, 3), (1, 2), (2, 4)]);
        // (The `UDP_SEGMENT` cmsg such a send carries is checked in `sys::msg`.)
        let one = s.queued[1];
        // Handed to the kernel: it cannot change, nothing joins it.
        s.table[one].msg.lend_for_test(1);
        assert!(s.table[one].queued_msg().is_none());
        // Released by its final completion only, then it may leave the table.
        let c = crate::sys::ring::Completion::for_test(1, 2, 0);
        assert!(s.table[one].msg.settle(&c));
        s.queued.clear();
        s.table.remove(one);
        assert!(s.queue(b, &[5, 6], false));
        assert_eq!(s.table[s.queued[0]].datagrams(), 1);
    }
}
