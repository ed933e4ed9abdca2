//! A vectored send: several queued buffers handed to one `SENDMSG`, so a response head
//! and its body, or a run of HTTP/2 frames (a 9-byte header, then its payload), leave in
//! one operation instead of one each, without copying the payloads together.
//!
//! The message header and the `iovec` array the kernel reads live in the box (the
//! array in a `Vec` of its own, whose heap memory does not move with the box); the
//! buffers the vectors point into are owned here too. The box is lent to the kernel
//! (`Lent<Box<Gather>>`) for the send, so none of it changes until the completion.

use super::lend::SendBuf;
use super::msg::empty_msghdr;

/// See the module docs.
pub(crate) struct Gather {
    hdr: libc::msghdr,
    iov: Vec<libc::iovec>,
    bufs: Vec<SendBuf>,
    len: usize,
}

impl Gather {
    /// An empty one.
    pub(crate) fn new() -> Box<Gather> {
        Box::new(Gather {
            hdr: empty_msghdr(),
            iov: Vec::new(),
            bufs: Vec::new(),
            len: 0,
        })
    }

    /// Appends a buffer (before the send is submitted).
    pub(crate) fn push(&mut self, buf: SendBuf) {
        self.len += buf.bytes().len();
        self.bufs.push(buf);
    }

    /// Buffers carried.
    pub(crate) fn count(&self) -> usize {
        self.bufs.len()
    }

    /// Bytes carried, in all.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The buffers, in order.
    pub(crate) fn into_bufs(self) -> Vec<SendBuf> {
        self.bufs
    }

    /// Points the header at the bytes from `offset` on (a short send resumes there)
    /// and returns it. Nothing here may change until the send it is used for completes.
    pub(crate) fn prepare(&mut self, offset: usize) -> *const libc::msghdr {
        self.iov.clear();
        let mut skip = offset;
        for b in &self.bufs {
            let bytes = b.bytes();
            if skip >= bytes.len() {
                skip -= bytes.len();
                continue;
            }
            let rest = &bytes[skip..];
            skip = 0;
            self.iov.push(libc::iovec {
                iov_base: rest.as_ptr() as *mut libc::c_void,
                iov_len: rest.len(),
            });
        }
        self.hdr.msg_iov = self.iov.as_mut_ptr();
        self.hdr.msg_iovlen = self.iov.len() as _;
        &self.hdr
    }

    /// The vectors `prepare` made (tests).
    #[cfg(test)]
    pub(crate) fn vectors(&self) -> Vec<&[u8]> {
        let mut skip = self.len - self.iov.iter().map(|v| v.iov_len).sum::<usize>();
        let mut out = Vec::new();
        for b in &self.bufs {
            let bytes = b.bytes();
            if skip >= bytes.len() {
                skip -= bytes.len();
                continue;
            }
            out.push(&bytes[skip..]);
            skip = 0;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resumed_send_starts_mid_buffer() {
        let mut g = Gather::new();
        g.push(SendBuf::Vec(b"head".to_vec()));
        g.push(SendBuf::Static(b"body"));
        g.push(SendBuf::Vec(b"!".to_vec()));
        assert_eq!((g.count(), g.len()), (3, 9));
        let hdr = g.prepare(0);
        assert_eq!((hdr, g.hdr.msg_iovlen), (&g.hdr as *const _, 3));
        g.prepare(6);
        assert_eq!(g.vectors(), vec![&b"dy"[..], &b"!"[..]]);
        assert_eq!(g.iov.len(), 2);
        assert_eq!(g.iov[0].iov_len, 2);
    }
}
