//! `msghdr`, `iovec` and control-message layouts, and sockaddr decoding: the kernel's
//! datagram formats, kept here so nothing above `sys` builds a raw header.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use io_uring::types::RecvMsgOut;
use socket2::SockAddr;

/// The `UDP_SEGMENT` control message: a `cmsghdr` and the segment size.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
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

/// A `msghdr` with every field empty.
pub(super) fn empty_msghdr() -> libc::msghdr {
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

/// The template a multishot `recvmsg` reads (room for an IPv6 address, no control
/// data). Boxed: the kernel keeps its address until the operation's last completion.
pub(crate) struct RecvTemplate(Box<libc::msghdr>);

impl RecvTemplate {
    pub(crate) fn new() -> Self {
        let mut hdr = empty_msghdr();
        hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as u32;
        RecvTemplate(Box::new(hdr))
    }

    /// The header the kernel reads (a stable address), and the parser too.
    pub(super) fn hdr(&self) -> &libc::msghdr {
        &self.0
    }
}

/// A datagram a multishot `recvmsg` wrote into a provided buffer.
pub(crate) enum Received<'a> {
    /// Its sender and payload.
    Datagram { peer: SocketAddr, payload: &'a [u8] },
    /// Cut to the buffer size (`MSG_TRUNC`), or a header the kernel never writes.
    Truncated,
    /// An address family other than IPv4/IPv6.
    UnknownPeer,
}

/// Decodes one provided buffer of a multishot `recvmsg` made with `template`: the
/// kernel's `io_uring_recvmsg_out`, the peer's address, then the payload (the template's
/// sizes say where each part starts).
pub(crate) fn parse_received<'a>(template: &RecvTemplate, data: &'a [u8]) -> Received<'a> {
    match RecvMsgOut::parse(data, template.hdr()) {
        Ok(msg) if !msg.is_payload_truncated() => match parse_sockaddr(msg.name_data()) {
            Some(peer) => {
                // The payload as a range of `data` (the parser's slice borrows the
                // parser, not the buffer).
                let p = msg.payload_data();
                let start = p.as_ptr() as usize - data.as_ptr() as usize;
                match data.get(start..start + p.len()) {
                    Some(payload) => Received::Datagram { peer, payload },
                    None => Received::Truncated,
                }
            }
            None => Received::UnknownPeer,
        },
        _ => Received::Truncated,
    }
}

/// Decodes a peer address in the kernel's layout (a `sockaddr_in` or `sockaddr_in6`).
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

/// One outgoing `sendmsg`: an address, a payload of `datagrams` datagrams of `segment`
/// bytes each (more than one: `UDP_SEGMENT`), and the `msghdr` + `iovec` + cmsg that
/// describe them. The header's pointers name its own fields, so it lives boxed (inside
/// a [`Lent`](super::lend::Lent) while the kernel holds it).
pub(crate) struct DatagramMsg {
    hdr: libc::msghdr,
    iov: libc::iovec,
    addr: SockAddr,
    cmsg: SegmentCmsg,
    data: Vec<u8>,
    segment: usize,
    datagrams: u32,
}

impl DatagramMsg {
    /// One datagram, a copy of `payload`, for `peer`.
    pub(crate) fn new(peer: SocketAddr, payload: &[u8]) -> Box<DatagramMsg> {
        Box::new(DatagramMsg {
            hdr: empty_msghdr(),
            iov: libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            },
            addr: SockAddr::from(peer),
            cmsg: SegmentCmsg {
                len: 0,
                level: 0,
                kind: 0,
                size: 0,
            },
            data: payload.to_vec(),
            segment: payload.len(),
            datagrams: 1,
        })
    }

    /// Appends one more datagram of the same size (coalesced with `UDP_SEGMENT`).
    pub(crate) fn push_datagram(&mut self, payload: &[u8]) {
        debug_assert_eq!(payload.len(), self.segment);
        self.data.extend_from_slice(payload);
        self.datagrams += 1;
    }

    /// Datagrams carried.
    pub(crate) fn datagrams(&self) -> u32 {
        self.datagrams
    }

    /// Bytes of each datagram.
    pub(crate) fn segment(&self) -> usize {
        self.segment
    }

    /// Bytes in all.
    pub(crate) fn len(&self) -> usize {
        self.data.len()
    }

    /// Points the `msghdr` at this message's address, data and (for more than one
    /// datagram) segment size. Called by the submission, so the pointers are taken where
    /// the message then stays (its box) until its last completion.
    pub(super) fn prepare(&mut self) -> &libc::msghdr {
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
        } else {
            self.hdr.msg_control = std::ptr::null_mut();
            self.hdr.msg_controllen = 0;
        }
        &self.hdr
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
    fn coalesced_datagrams_carry_a_udp_segment_cmsg() {
        let peer: SocketAddr = "127.0.0.1:2".parse().unwrap();
        let mut two = DatagramMsg::new(peer, &[1, 2]);
        two.push_datagram(&[3, 4]);
        let hdr = *two.prepare();
        assert_eq!(
            hdr.msg_controllen as u64,
            std::mem::size_of::<SegmentCmsg>() as u64
        );
        assert_eq!(
            (two.cmsg.level, two.cmsg.kind, two.cmsg.size),
            (libc::SOL_UDP, 103, 2)
        );
        assert_eq!((two.iov.iov_len, two.datagrams()), (4, 2));

        let mut one = DatagramMsg::new(peer, &[1, 2]);
        assert!(one.prepare().msg_control.is_null(), "one datagram: no cmsg");
    }
}
