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
use std::time::Instant;

use slab::Slab;
use socket2::SockAddr;

use crate::counters::Counters;
use crate::handler::{Close, Handler, Input, Io};
use crate::sys::buf_ring::BufRing;

/// A protocol over datagrams: called for every datagram a shard's UDP socket receives.
pub trait DatagramHandler: 'static {
    /// A datagram from `peer`, its payload in place. Reply with [`DatagramIo::send_to`].
    fn on_datagram(&mut self, peer: SocketAddr, payload: &[u8], io: &mut DatagramIo<'_>);
}

/// What a datagram handler can do: send datagrams, read the shard's state.
pub struct DatagramIo<'a> {
    pub(crate) sends: &'a mut UdpSends,
    pub(crate) counters: &'a mut Counters,
    pub(crate) shard: usize,
    pub(crate) now: Instant,
    pub(crate) zero_copy_threshold: usize,
}

impl DatagramIo<'_> {
    /// Queues a copy of `payload` for `peer`. Returns false if the shard's send table is
    /// full and the datagram was dropped (counted as `udp_send_dropped`).
    pub fn send_to(&mut self, peer: SocketAddr, payload: &[u8]) -> bool {
        let zc = payload.len() >= self.zero_copy_threshold;
        if self.sends.queue(peer, payload.to_vec(), zc) {
            true
        } else {
            self.counters.udp_send_dropped += 1;
            false
        }
    }

    /// The index of this shard.
    pub fn shard_id(&self) -> usize {
        self.shard
    }

    /// The shard's clock, read once per loop turn.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The shard's counters.
    pub fn counters(&self) -> &Counters {
        self.counters
    }
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

    fn on_datagram(&mut self, peer: SocketAddr, payload: &[u8], io: &mut DatagramIo<'_>) {
        self.0.on_datagram(peer, payload, io);
    }
}

/// One datagram on its way out. Boxed so the `msghdr`'s pointers to its own fields stay
/// valid while the kernel holds them.
pub(crate) struct UdpSend {
    pub hdr: libc::msghdr,
    iov: libc::iovec,
    addr: SockAddr,
    data: Vec<u8>,
    pub zc: bool,
    /// The result completion arrived.
    pub done: bool,
    /// A zero-copy notification is still owed.
    pub notif_owed: bool,
}

/// The shard's sends: queued ones wait for submission, then stay until the kernel has
/// returned them.
pub(crate) struct UdpSends {
    pub table: Slab<Box<UdpSend>>,
    pub queued: Vec<usize>,
    pub limit: usize,
}

impl UdpSends {
    pub(crate) fn new(limit: usize) -> Self {
        UdpSends {
            table: Slab::new(),
            queued: Vec::new(),
            limit: limit.max(1),
        }
    }

    fn queue(&mut self, peer: SocketAddr, data: Vec<u8>, zc: bool) -> bool {
        if self.table.len() >= self.limit {
            return false;
        }
        // The msghdr records addresses of fields of this same heap allocation, which
        // does not move while the send is in the table; the ring layer hands it over.
        let mut send = Box::new(UdpSend {
            hdr: empty_msghdr(),
            iov: libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            },
            addr: SockAddr::from(peer),
            data,
            zc,
            done: false,
            notif_owed: false,
        });
        send.iov.iov_base = send.data.as_mut_ptr().cast();
        send.iov.iov_len = send.data.len();
        send.hdr.msg_name = send.addr.as_ptr() as *mut libc::c_void;
        send.hdr.msg_namelen = send.addr.len();
        send.hdr.msg_iov = &mut send.iov;
        send.hdr.msg_iovlen = 1;
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

/// A shard's UDP socket and what its receives and sends need.
pub(crate) struct UdpPort {
    pub fd: OwnedFd,
    pub bufs: BufRing,
    /// The template the multishot recvmsg reads: room for an IPv6 address, no control.
    pub recv_hdr: Box<libc::msghdr>,
    pub recv_armed: bool,
    pub sends: UdpSends,
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
        let mut s = UdpSends::new(2);
        let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert!(s.queue(peer, vec![1], false));
        assert!(s.queue(peer, vec![2], false));
        assert!(!s.queue(peer, vec![3], false));
        assert_eq!(s.queued.len(), 2);
    }
}
