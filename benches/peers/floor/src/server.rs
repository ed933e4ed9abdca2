//! The event loop: one io_uring, one listener, every connection.
//!
//! A multishot accept brings connections in (as direct descriptors when the file table
//! is registered); each gets one multishot receive on the shared buffer ring and a plain
//! SEND per chunk: the chunk itself back (echo, straight from the provided buffer, which
//! is recycled when the send completes) or as many static replies as the chunk holds
//! request heads (http). When the receive ends (the peer's FIN, an error, or our cancel
//! once the reply to `Connection: close` is sent) and no send is in flight, an
//! IORING_OP_CLOSE releases the descriptor; the kernel then sends our FIN.
//!
//! Per connection it keeps only what ordering needs: one send in flight at a time (two
//! sends on one stream socket may complete out of order), the chunks or replies waiting
//! behind it, and 2 bits of "\r\n\r\n" matching carried across receives.

use std::io;

use io_uring::{cqueue, opcode, squeue, types, IoUring};

use crate::buf_ring::BufRing;

/// What the server answers.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Every received byte back.
    Echo,
    /// `REPLY` once per request head ("\r\n\r\n") received.
    Http,
}

/// The one response of http mode (what /plaintext answers).
pub const REPLY: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nHello, World!";
/// The last response on a connection the client asked to close: HTTP/1.1 clients (wrk)
/// keep a connection whose response does not say so.
const CLOSE_REPLY: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nHello, World!";
/// Replies one SEND carries at most (pipelined requests beyond wait for the next).
const REPLIES_PER_SEND: u32 = 64;
const BGID: u16 = 0;
/// Buffers in the ring and their size: ringmaster's defaults.
const BUF_ENTRIES: u16 = 1024;
const BUF_SIZE: u32 = 16 * 1024;
/// Marks the end of a connection's queue of echo chunks.
const NONE: u16 = u16::MAX;

const OP_ACCEPT: u64 = 1;
const OP_RECV: u64 = 2;
const OP_SEND: u64 = 3;
/// Cancel and close completions carry nothing we need.
const OP_IGNORE: u64 = 4;

fn user_data(op: u64, conn: u32) -> u64 {
    op << 56 | conn as u64
}

/// One connection, indexed by its direct descriptor (or fd).
#[derive(Clone, Copy)]
struct Conn {
    live: bool,
    /// The multishot receive ended for good (EOF or error).
    recv_done: bool,
    /// A send failed: drop what is queued, send nothing more.
    broken: bool,
    /// A SEND is in flight.
    sending: bool,
    /// http: the peer sent `Connection: close`; answer what came before, then close.
    last_request: bool,
    /// http: how much of "\r\n\r\n" the previous chunk ended with.
    matched: u8,
    /// Bytes of the current send already gone (partial sends).
    sent: u32,
    /// http: where the current send starts in `replies`, its length; replies owed behind it.
    start: u32,
    len: u32,
    owed: u32,
    /// echo: the queue of received chunks (buffer ids), the head is being sent.
    head: u16,
    tail: u16,
}

impl Conn {
    const NEW: Conn = Conn {
        live: true,
        recv_done: false,
        broken: false,
        sending: false,
        last_request: false,
        matched: 0,
        sent: 0,
        start: 0,
        len: 0,
        owed: 0,
        head: NONE,
        tail: NONE,
    };
}

/// Picks `types::Fixed` or `types::Fd` for connection `$i` and builds `$e` with it as `$t`.
macro_rules! target {
    ($direct:expr, $i:expr, $t:ident => $e:expr) => {
        if $direct {
            let $t = types::Fixed($i);
            $e
        } else {
            let $t = types::Fd($i as i32);
            $e
        }
    };
}

/// The server: ring, buffers, connections.
pub struct Server {
    ring: IoUring,
    bufs: BufRing,
    mode: Mode,
    direct: bool,
    listener: i32,
    conns: Vec<Conn>,
    /// echo: per buffer, the received length and the next buffer in its connection's queue.
    buf_len: Vec<u32>,
    buf_next: Vec<u16>,
    /// Connections whose receive stopped for want of buffers (ENOBUFS).
    starved: Vec<u32>,
    /// The multishot accept stopped at a full file table: re-armed by the next close.
    accept_stopped: bool,
    /// `REPLIES_PER_SEND` copies of `REPLY`, back to back, then the same run ending
    /// with `CLOSE_REPLY` instead: a send of N replies is a slice of one or the other.
    replies: &'static [u8],
}

impl Server {
    /// A ring (single issuer and deferred task work when the kernel has them), the
    /// buffer ring and, unless `plain_fds`, a sparse file table of `files` slots.
    /// Returns the server and a description of what it got.
    pub fn new(
        listener: i32,
        mode: Mode,
        plain_fds: bool,
        files: u32,
    ) -> io::Result<(Server, String)> {
        let mut what = Vec::new();
        let ring = match IoUring::builder()
            .setup_single_issuer()
            .setup_defer_taskrun()
            .setup_cqsize(16384)
            .build(4096)
        {
            Ok(r) => {
                what.push("single-issuer+defer-taskrun");
                r
            }
            Err(_) => {
                what.push("plain ring");
                IoUring::builder().setup_cqsize(16384).build(4096)?
            }
        };
        let direct = !plain_fds && ring.submitter().register_files_sparse(files).is_ok();
        what.push(if direct {
            "direct descriptors"
        } else {
            "plain fds"
        });
        let bufs = BufRing::new(&ring.submitter(), BUF_ENTRIES, BUF_SIZE, BGID)?;
        let n = REPLIES_PER_SEND as usize;
        let replies = [REPLY.repeat(n), REPLY.repeat(n - 1), CLOSE_REPLY.to_vec()]
            .concat()
            .leak();
        let server = Server {
            ring,
            bufs,
            mode,
            direct,
            listener,
            conns: Vec::new(),
            buf_len: vec![0; BUF_ENTRIES as usize],
            buf_next: vec![NONE; BUF_ENTRIES as usize],
            starved: Vec::new(),
            accept_stopped: false,
            replies,
        };
        Ok((server, what.join(", ")))
    }

    /// Serves until the process is killed.
    pub fn run(&mut self) -> io::Result<()> {
        self.arm_accept();
        let mut cqes: Vec<cqueue::Entry> = Vec::with_capacity(16384);
        loop {
            match self.ring.submit_and_wait(1) {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                // CQ overflow pending: reap below, then enter again.
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {}
                Err(e) => return Err(e),
            }
            cqes.extend(self.ring.completion());
            for cqe in cqes.drain(..) {
                let conn = cqe.user_data() as u32;
                match cqe.user_data() >> 56 {
                    OP_ACCEPT => self.on_accept(cqe.result(), cqe.flags()),
                    OP_RECV => self.on_recv(conn, cqe.result(), cqe.flags()),
                    OP_SEND => self.on_send(conn, cqe.result()),
                    _ => {}
                }
            }
            if self.bufs.publish() && !self.starved.is_empty() {
                for c in std::mem::take(&mut self.starved) {
                    self.arm_recv(c);
                }
            }
        }
    }

    fn push(&mut self, e: squeue::Entry) {
        loop {
            // SAFETY: every buffer an entry points to is static, or a provided buffer
            // we do not recycle before the operation's completion.
            if unsafe { self.ring.submission().push(&e) }.is_ok() {
                return;
            }
            // Full: hand the queue to the kernel and try again.
            let _ = self.ring.submit();
        }
    }

    fn arm_accept(&mut self) {
        let e = opcode::AcceptMulti::new(types::Fd(self.listener))
            .allocate_file_index(self.direct)
            .build()
            .user_data(user_data(OP_ACCEPT, 0));
        self.push(e);
    }

    fn arm_recv(&mut self, c: u32) {
        let e = target!(self.direct, c, t => opcode::RecvMulti::new(t, BGID).build());
        self.push(e.user_data(user_data(OP_RECV, c)));
    }

    fn on_accept(&mut self, res: i32, flags: u32) {
        if res >= 0 {
            let c = res as u32;
            if c as usize >= self.conns.len() {
                self.conns.resize(c as usize + 1, Conn::NEW);
            }
            self.conns[c as usize] = Conn::NEW;
            self.arm_recv(c);
        }
        if !cqueue::more(flags) {
            if res == -libc::ENFILE || res == -libc::EMFILE {
                self.accept_stopped = true;
            } else {
                self.arm_accept();
            }
        }
    }

    fn on_recv(&mut self, c: u32, res: i32, flags: u32) {
        let bid = cqueue::buffer_select(flags);
        let conn = &mut self.conns[c as usize];
        if res <= 0 {
            if res == -libc::ENOBUFS {
                self.starved.push(c);
            } else {
                conn.recv_done = true;
                self.maybe_close(c);
            }
            return;
        }
        let Some(bid) = bid else { return };
        let more = cqueue::more(flags);
        if conn.broken || conn.last_request {
            self.bufs.recycle(bid);
        } else if self.mode == Mode::Echo {
            self.buf_len[bid as usize] = res as u32;
            self.buf_next[bid as usize] = NONE;
            if conn.tail == NONE {
                conn.head = bid;
            } else {
                self.buf_next[conn.tail as usize] = bid;
            }
            conn.tail = bid;
            if !conn.sending {
                self.send_next(c);
            }
        } else {
            let data = self.bufs.filled(bid, res as usize);
            conn.owed += count_heads(data, &mut conn.matched);
            // The load tools send `Connection: close` as is, in the request's one write.
            conn.last_request = data.windows(17).any(|w| w == b"Connection: close");
            self.bufs.recycle(bid);
            if !conn.sending {
                self.send_next(c);
            }
        }
        // The kernel ended the multishot receive without an EOF or error: re-arm it.
        if !more {
            self.arm_recv(c);
        }
    }

    /// Starts the next send of connection `c` if it has one (echo: the head chunk;
    /// http: up to `REPLIES_PER_SEND` owed replies), or the close its last request asked
    /// for. Whether a send started.
    fn send_next(&mut self, c: u32) -> bool {
        let conn = &mut self.conns[c as usize];
        if conn.broken {
            return false;
        }
        let (ptr, len) = match self.mode {
            Mode::Echo if conn.head != NONE => {
                let bid = conn.head;
                let p = self.bufs.ptr(bid).wrapping_add(conn.sent as usize);
                (p, self.buf_len[bid as usize] - conn.sent)
            }
            Mode::Http if conn.sent < conn.len || conn.owed > 0 => {
                if conn.sent == conn.len {
                    let n = conn.owed.min(REPLIES_PER_SEND);
                    conn.owed -= n;
                    conn.len = n * REPLY.len() as u32;
                    conn.start = 0;
                    if conn.last_request && conn.owed == 0 {
                        // The last n replies: the end of the run that closes.
                        conn.len += (CLOSE_REPLY.len() - REPLY.len()) as u32;
                        conn.start = self.replies.len() as u32 - conn.len;
                    }
                    conn.sent = 0;
                }
                let p = self.replies[(conn.start + conn.sent) as usize..].as_ptr();
                (p, conn.len - conn.sent)
            }
            _ => {
                if conn.last_request && !conn.recv_done {
                    // All answered: end the receive; its last completion closes the
                    // socket, which sends our FIN. (IORING_OP_SHUTDOWN would run on an
                    // io-wq thread, later, maybe on the slot's next connection.)
                    conn.broken = true;
                    let e = opcode::AsyncCancel::new(user_data(OP_RECV, c)).build();
                    self.push(e.user_data(user_data(OP_IGNORE, c)));
                }
                return false;
            }
        };
        conn.sending = true;
        let e = target!(self.direct, c, t => opcode::Send::new(t, ptr, len).flags(libc::MSG_NOSIGNAL).build());
        self.push(e.user_data(user_data(OP_SEND, c)));
        true
    }

    fn on_send(&mut self, c: u32, res: i32) {
        let conn = &mut self.conns[c as usize];
        conn.sending = false;
        if res < 0 {
            conn.broken = true;
            self.drop_queue(c);
            self.maybe_close(c);
            return;
        }
        conn.sent += res as u32;
        if self.mode == Mode::Echo && conn.sent == self.buf_len[conn.head as usize] {
            let bid = conn.head;
            conn.head = self.buf_next[bid as usize];
            if conn.head == NONE {
                conn.tail = NONE;
            }
            conn.sent = 0;
            self.bufs.recycle(bid);
        }
        // After the peer's FIN too: a half-closed peer still reads what it asked for.
        if !self.send_next(c) {
            self.maybe_close(c);
        }
    }

    /// Recycles the echo chunks connection `c` still had to send.
    fn drop_queue(&mut self, c: u32) {
        let conn = &mut self.conns[c as usize];
        while conn.head != NONE {
            let bid = conn.head;
            conn.head = self.buf_next[bid as usize];
            self.bufs.recycle(bid);
        }
        conn.tail = NONE;
        conn.sent = 0;
    }

    /// Closes connection `c` once its receive has ended and no send is in flight.
    fn maybe_close(&mut self, c: u32) {
        let conn = &mut self.conns[c as usize];
        if !conn.live || !conn.recv_done || conn.sending {
            return;
        }
        self.drop_queue(c);
        self.conns[c as usize].live = false;
        let e = target!(self.direct, c, t => opcode::Close::new(t).build());
        self.push(e.user_data(user_data(OP_IGNORE, c)));
        if self.accept_stopped {
            self.accept_stopped = false;
            self.arm_accept();
        }
    }
}

/// Request heads ("\r\n\r\n") in `data`; `matched` carries a partial match across chunks
/// (0: none, 1: "\r", 2: "\r\n", 3: "\r\n\r").
fn count_heads(data: &[u8], matched: &mut u8) -> u32 {
    let mut n = 0;
    let mut m = *matched;
    for &b in data {
        m = match b {
            b'\r' if m == 2 => 3,
            b'\r' => 1,
            b'\n' if m == 1 => 2,
            b'\n' if m == 3 => {
                n += 1;
                0
            }
            _ => 0,
        };
    }
    *matched = m;
    n
}

#[cfg(test)]
mod tests {
    use super::count_heads;

    #[test]
    fn counts_heads_across_chunks() {
        let mut m = 0;
        assert_eq!(
            count_heads(
                b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\n\r\n",
                &mut m
            ),
            2
        );
        assert_eq!(m, 0);
        assert_eq!(count_heads(b"GET / HTTP/1.1\r\n\r", &mut m), 0);
        assert_eq!(count_heads(b"\n", &mut m), 1);
        assert_eq!(count_heads(b"a\r\r\n\r\n", &mut m), 1);
        assert_eq!(count_heads(b"\r\n\n\r\n", &mut m), 0);
    }
}
