//! UDP: a socket per shard, multishot `recvmsg` into its own provided-buffer ring,
//! `sendmsg` (SENDMSG_ZC past the zero-copy threshold) for replies.
//!
//! Each received datagram lands in one buffer, behind the kernel's `io_uring_recvmsg_out`
//! header and the peer's address; the handler sees the payload in place. A datagram
//! larger than a buffer arrives truncated (`MSG_TRUNC`): it is counted and dropped, never
//! handed on. Replies wait in a bounded table of sends in flight; past the bound they
//! are dropped and counted, since UDP may drop and the server must not grow.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::OwnedFd;

use slab::Slab;
use socket2::SockAddr;

use crate::counters::Counters;
use crate::sys::buf_ring::BufRing;

/// Coalesced sends (`udp_gso`) carry at most this many datagrams (the kernel's
/// `UDP_MAX_SEGMENTS` is 64 or more).
const GSO_MAX_SEGMENTS: u32 = 64;
/// Only datagrams up to this size are coalesced: an IPv6 payload within a 1500-byte MTU,
/// so the kernel never refuses a segment size for the route's MTU.
const GSO_MAX_SEGMENT: usize = 1452;
/// Bytes of one coalesced send, at most (one IP packet before segmentation).
const GSO_MAX_BYTES: usize = 65_000;

/// The `UDP_SEGMENT` control message: a `cmsghdr` and the segment size.
#[repr(C)]
struct SegmentCmsg {
    len: libc::size_t,
    level: libc::c_int,
    kind: libc::c_int,
    size: u16,
}

/// `CMSG_ALIGN` of the C library.
const fn cmsg_align(n: usize) -> usize {
    let a = std::mem::size_of::<libc::size_t>();
    (n + a - 1) & !(a - 1)
}

// The layout above is the kernel's: `cmsghdr`, then the data at `CMSG_ALIGN(sizeof
// cmsghdr)`, `CMSG_SPACE(2)` bytes in all.
const _: () = {
    assert!(std::mem::size_of::<libc::cmsghdr>() == std::mem::offset_of!(SegmentCmsg, size));
    assert!(
        cmsg_align(std::mem::size_of::<libc::cmsghdr>()) == std::mem::offset_of!(SegmentCmsg, size)
    );
    assert!(
        std::mem::size_of::<SegmentCmsg>()
            == cmsg_align(std::mem::size_of::<libc::cmsghdr>()) + cmsg_align(2)
    );
};

/// One send on its way out: one datagram, or with `udp_gso` several of the same size to
/// the same peer, sent as one buffer with `UDP_SEGMENT`. Boxed so the `msghdr`'s
/// pointers to its own fields stay valid while the kernel holds them.
pub(crate) struct UdpSend {
    pub hdr: libc::msghdr,
    iov: libc::iovec,
    addr: SockAddr,
    peer: SocketAddr,
    data: Vec<u8>,
    /// Datagrams in `data`, each `segment` bytes long.
    pub datagrams: u32,
    segment: usize,
    cmsg: SegmentCmsg,
    pub zc: bool,
    /// The result completion arrived.
    pub done: bool,
    /// A zero-copy notification is still owed.
    pub notif_owed: bool,
}

impl UdpSend {
    /// Points the `msghdr` at this send's address, data and (for more than one
    /// datagram) segment size. Called once, when the send is handed to the kernel:
    /// nothing changes it after that.
    pub(crate) fn prepare(&mut self) {
        self.iov.iov_base = self.data.as_mut_ptr().cast();
        self.iov.iov_len = self.data.len();
        self.hdr.msg_name = self.addr.as_ptr() as *mut libc::c_void;
        self.hdr.msg_namelen = self.addr.len();
        self.hdr.msg_iov = &mut self.iov;
        self.hdr.msg_iovlen = 1;
        if self.datagrams > 1 {
            self.cmsg = SegmentCmsg {
                len: cmsg_align(std::mem::size_of::<libc::cmsghdr>()) + 2,
                level: libc::SOL_UDP,
                kind: libc::UDP_SEGMENT,
                size: self.segment as u16,
            };
            self.hdr.msg_control = (&mut self.cmsg as *mut SegmentCmsg).cast();
            self.hdr.msg_controllen = std::mem::size_of::<SegmentCmsg>() as _;
        }
    }
}

/// The shard's sends: queued ones wait for submission, then stay until the kernel has
/// returned them.
pub(crate) struct UdpSends {
    pub table: Slab<Box<UdpSend>>,
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
                if !last.zc
                    && last.peer == peer
                    && last.segment == len
                    && last.datagrams < GSO_MAX_SEGMENTS
                    && last.data.len() + len <= GSO_MAX_BYTES
                {
                    last.data.extend_from_slice(payload);
                    last.datagrams += 1;
                    return true;
                }
            }
        }
        if self.table.len() >= self.limit {
            return false;
        }
        let send = Box::new(UdpSend {
            hdr: empty_msghdr(),
            iov: libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            },
            addr: SockAddr::from(peer),
            peer,
            data: payload.to_vec(),
            datagrams: 1,
            segment: len,
            cmsg: SegmentCmsg {
                len: 0,
                level: 0,
                kind: 0,
                size: 0,
            },
            zc,
            done: false,
            notif_owed: false,
        });
        let key = self.table.insert(send);
        self.queued.push(key);
        true
    }
}

/// A `msghdr` with every field empty.
pub(crate) fn empty_msghdr() -> libc::msghdr {
    libc::msghdr {
        msg_name: std::ptr::null_mut(),
        msg_namelen: 0,
        msg_iov: std::ptr::null_mut(),
        msg_iovlen: 0,
        msg_control: std::ptr::null_mut(),
        msg_controllen: 0,
        msg_flags: 0,
    }
}

/// A shard's UDP socket and what its receives need (its sends wait in
/// `ShardCtx::udp_sends`, where `ShardIo::send_to` reaches them too).
pub(crate) struct UdpPort {
    pub fd: OwnedFd,
    pub bufs: BufRing,
    /// The template the multishot recvmsg reads: room for an IPv6 address, no control.
    pub recv_hdr: Box<libc::msghdr>,
    pub recv_armed: bool,
}

/// Decodes the peer address the kernel wrote (a `sockaddr_in` or `sockaddr_in6`).
pub(crate) fn parse_sockaddr(raw: &[u8]) -> Option<SocketAddr> {
    let family = u16::from_ne_bytes([*raw.first()?, *raw.get(1)?]) as i32;
    let port = u16::from_be_bytes([*raw.get(2)?, *raw.get(3)?]);
    match family {
        libc::AF_INET => {
            let ip: [u8; 4] = raw.get(4..8)?.try_into().ok()?;
            Some(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(ip), port)))
        }
        libc::AF_INET6 => {
            let flow = u32::from_be_bytes(raw.get(4..8)?.try_into().ok()?);
            let ip: [u8; 16] = raw.get(8..24)?.try_into().ok()?;
            let scope = u32::from_ne_bytes(raw.get(24..28)?.try_into().ok()?);
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(ip),
                port,
                flow,
                scope,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockaddrs_in_kernel_layout_decode() {
        let mut v4 = (libc::AF_INET as u16).to_ne_bytes().to_vec();
        v4.extend_from_slice(&5353u16.to_be_bytes());
        v4.extend_from_slice(&[127, 0, 0, 1]);
        v4.extend_from_slice(&[0; 8]);
        assert_eq!(parse_sockaddr(&v4), Some("127.0.0.1:5353".parse().unwrap()));

        let mut v6 = (libc::AF_INET6 as u16).to_ne_bytes().to_vec();
        v6.extend_from_slice(&443u16.to_be_bytes());
        v6.extend_from_slice(&0u32.to_be_bytes());
        v6.extend_from_slice(&"fe80::1".parse::<Ipv6Addr>().unwrap().octets());
        v6.extend_from_slice(&2u32.to_ne_bytes());
        assert_eq!(
            parse_sockaddr(&v6),
            Some("[fe80::1%2]:443".parse().unwrap())
        );

        assert_eq!(parse_sockaddr(&[]), None);
        assert_eq!(parse_sockaddr(&v4[..6]), None);
        assert_eq!(parse_sockaddr(&[0xff, 0xff, 0, 0]), None);
    }

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
            .map(|k| (s.table[*k].datagrams, s.table[*k].data.len()))
            .collect();
        let full = GSO_MAX_SEGMENTS as usize * 3;
        assert_eq!(sends, [(GSO_MAX_SEGMENTS, full), (1, 3), (1, 2), (2, 4)]);
        let last = s.queued[3];
        let send = &mut s.table[last];
        send.prepare();
        assert_eq!(
            send.hdr.msg_controllen as u64,
            std::mem::size_of::<SegmentCmsg>() as u64
        );
        assert_eq!(
            (send.cmsg.level, send.cmsg.kind, send.cmsg.size),
            (libc::SOL_UDP, 103, 2)
        );
        let one = s.queued[1];
        s.table[one].prepare();
        assert!(
            s.table[one].hdr.msg_control.is_null(),
            "one datagram: no cmsg"
        );
        // Already handed to the kernel: nothing joins it.
        s.queued.clear();
        s.table.remove(one);
        assert!(s.queue(b, &[5, 6], false));
        assert_eq!(s.table[s.queued[0]].datagrams, 1);
    }
}
