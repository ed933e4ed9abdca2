//! UDP echo on the io_uring engine: the load runs on a ringmaster shard whose own UDP
//! socket carries every "connection" of the load thread.
//!
//! One load thread is one client-only server with one shard, `tcp(false).udp(true)`,
//! bound to an ephemeral port (`127.0.0.1:0` or `[::1]:0` for a loopback target, the
//! family's unspecified address otherwise). The thread's connections are logical flows
//! over that one socket: each keeps one datagram in flight (closed-loop ping-pong, as
//! the epoll engine does). Datagrams leave through [`ShardIo::send_to`] (the first
//! ones, those after a timeout, and the next one, straight from the echo of the
//! previous one); echoes arrive through the shard's multishot `recvmsg` into its
//! provided buffers.
//!
//! Payload layout (at least [`MIN_SIZE`] bytes): bytes 0..8 carry the flow's global index
//! (little endian), so an echo maps back to its flow; bytes 8.. are
//! [`fill_payload`]`(flow, seq, ..)`: the sequence number mixed with the flow, then a
//! pattern offset by a per-message tag. Every byte of every echo is checked against the
//! payload its flow and sequence number call for. A wrong byte, a wrong length, an
//! unknown flow, or a sequence number that is not the one in flight (a duplicate, a
//! stale or a future one) is a bad response, except the late echo of a datagram that
//! already timed out: the flow remembers the sequence numbers it gave up on (the last
//! [`LOST_KEPT`]) and ignores their first echo, as the epoll engine does, since the
//! timeout was counted already.
//!
//! A periodic shard timer ([`CHECK_EVERY`]) publishes the live counters and scans the
//! flows: a datagram not back within `--timeout` counts as a timeout and its flow sends
//! the next one. The tick also restarts flows that could not send (the shard's send
//! table was full, or the `--requests` quota held them back). With an unconnected
//! socket, the kernel reports no ICMP "port unreachable": when nothing listens, the
//! datagrams time out (the epoll engine says `connect_refused`).
//!
//! Warmup, deadline and quota work as in the TCP engine; the run ends at the deadline
//! (a shard timer stops the client) or as soon as the quota is met (the echo that meets
//! it tells the load thread, which stops the client).

use std::collections::VecDeque;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use ringmaster_runtime::{Close, Handler, Input, Io, Server, ShardEvent, ShardIo};

use super::run_timers::{self, RunTimers};
use super::{Live, ThreadPlan, ThreadReport};
use crate::proto::{fill_payload, payload_seq};
use crate::stats::{ErrorKind, Recorder};

/// The smallest payload this engine can tag with a flow and a sequence number; smaller
/// `--size` runs on the epoll engine (see `run_thread`).
pub(crate) const MIN_SIZE: usize = 16;
/// How often lost datagrams (timeouts) are looked for and live counters published.
const CHECK_EVERY: Duration = Duration::from_millis(10);
/// Timed-out sequence numbers a flow remembers, so their late echoes are not errors.
const LOST_KEPT: usize = 32;
/// The kernel's `io_uring_recvmsg_out` header and the room for the peer's address
/// (`sockaddr_storage`) ahead of each datagram in a provided buffer.
const RECV_OVERHEAD: usize = 16 + 128;
/// Memory the shard's buffer ring may take, at most (large datagrams: fewer buffers).
const BUF_RING_BYTES: usize = 64 << 20;

/// One logical flow: one datagram in flight at most.
struct Flow {
    /// Sequence number of the datagram in flight (or the next to send).
    seq: u64,
    /// When the datagram in flight was sent; `None`: nothing in flight.
    sent: Option<Instant>,
    /// Sequence numbers given up on (timed out) whose echo has not come yet.
    lost: VecDeque<u64>,
}

/// What an echo turned out to be.
enum Echo {
    /// The datagram in flight on flow `k`.
    Answer(usize),
    /// The late echo of a datagram its flow already counted as timed out.
    Late,
    /// Anything else.
    Bad,
}

struct Load {
    plan: ThreadPlan,
    live: Arc<Live>,
    size: usize,
    flows: Vec<Flow>,
    rec: Recorder,
    measuring: bool,
    in_flight: u64,
    live_messages: u64,
    live_errors: u64,
    /// The datagram being sent.
    out: Vec<u8>,
    /// The payload an echo is compared with.
    expected: Vec<u8>,
    /// Where the report goes when the run ends.
    report: Arc<Mutex<Option<ThreadReport>>>,
    /// Tells the load thread the run ended (it then stops the client).
    ended: mpsc::Sender<()>,
    done: bool,
}

/// Runs one UDP load thread on a one-shard ringmaster client; `size` (at least
/// [`MIN_SIZE`]) is the datagram payload.
pub(super) fn run(plan: &ThreadPlan, live: &Arc<Live>, size: usize) -> io::Result<ThreadReport> {
    if size < MIN_SIZE {
        return Err(io::Error::other(format!(
            "the uring udp-echo engine needs datagrams of at least {MIN_SIZE} bytes"
        )));
    }
    let local: SocketAddr = match (plan.addr.is_ipv4(), plan.addr.ip().is_loopback()) {
        (true, true) => (Ipv4Addr::LOCALHOST, 0).into(),
        (true, false) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        (false, true) => (Ipv6Addr::LOCALHOST, 0).into(),
        (false, false) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let flows = plan.connections.max(1);
    let buf_size = (size + RECV_OVERHEAD).next_power_of_two().max(512);
    let mut buf_entries = (flows + 64).next_power_of_two().clamp(256, 16384);
    while buf_entries > 64 && buf_entries * buf_size > BUF_RING_BYTES {
        buf_entries /= 2;
    }
    let server = Server::builder()
        .tcp(false)
        .udp(true)
        .listen(local)
        .shards(1)
        .cpus(super::uring::core_affinity_hint(plan))
        .offload_threads(0)
        .handle_signals(false)
        .idle_timeout(None)
        .drain_timeout(Duration::from_secs(1))
        .buf_size(buf_size as u32)
        .buf_ring_entries(buf_entries as u16)
        .ring_entries(flows.next_power_of_two().clamp(1024, 32768) as u32)
        // One send per flow, plus the previous one while its completion is on its way.
        .udp_send_queue(2 * flows + 64)
        // The datagrams one turn sends (all to the server, all of one size) leave in
        // as few sendmsg calls as GSO allows: the server still gets them one by one.
        .udp_gso(true)
        .build()
        .map_err(io::Error::other)?;
    let report = Arc::new(Mutex::new(None));
    let sink = report.clone();
    let (ended_tx, ended_rx) = mpsc::channel();
    let (plan, live) = (plan.clone(), live.clone());
    let running = server
        .start(move |_shard| Load {
            flows: (0..plan.connections)
                .map(|_| Flow {
                    seq: 0,
                    sent: None,
                    lost: VecDeque::new(),
                })
                .collect(),
            plan: plan.clone(),
            live: live.clone(),
            size,
            rec: Recorder::new(),
            measuring: false,
            in_flight: 0,
            live_messages: 0,
            live_errors: 0,
            out: vec![0; size],
            expected: vec![0; size],
            report: sink.clone(),
            ended: ended_tx.clone(),
            done: false,
        })
        .map_err(io::Error::other)?;
    // Ended (or the shard is gone: the sender dropped with the handler).
    let _ = ended_rx.recv();
    running.shutdown_handle().shutdown();
    running.wait().map_err(io::Error::other)?;
    let report = report
        .lock()
        .map_err(|_| io::Error::other("poisoned"))?
        .take();
    report.ok_or_else(|| io::Error::other("the load shard stopped without a report"))
}

/// Writes the payload of datagram `seq` of the flow with global index `salt`.
fn fill(salt: u64, seq: u64, buf: &mut [u8]) {
    let (head, body) = buf.split_at_mut(8);
    head.copy_from_slice(&salt.to_le_bytes());
    fill_payload(salt, seq, body);
}

impl Load {
    fn count_error(&mut self, kind: ErrorKind) {
        if self.measuring {
            self.rec.errors.add(kind);
        }
        self.live_errors += 1;
    }

    /// Sends flow `k`'s next datagram unless the quota holds it back. A datagram the
    /// shard's send table had no room for is not sent: the flow stays idle and the next
    /// tick tries again.
    fn send(&mut self, k: usize, now: Instant, shard: &mut ShardIo<'_>) {
        if self.done {
            return;
        }
        if let Some(q) = self.plan.quota {
            if self.measuring && self.rec.messages + self.in_flight >= q {
                return;
            }
        }
        let salt = (self.plan.first_conn + k) as u64;
        let f = &mut self.flows[k];
        fill(salt, f.seq, &mut self.out);
        if shard.send_to(self.plan.addr, &self.out) {
            f.sent = Some(now);
            self.in_flight += 1;
            if self.measuring {
                self.rec.bytes_sent += self.size as u64;
            }
        }
    }

    /// Which flow's datagram `data` echoes, checked byte for byte.
    fn classify(&mut self, data: &[u8]) -> Echo {
        if data.len() != self.size {
            return Echo::Bad;
        }
        let Ok(head) = <[u8; 8]>::try_from(&data[..8]) else {
            return Echo::Bad;
        };
        let salt = u64::from_le_bytes(head);
        let k = salt.wrapping_sub(self.plan.first_conn as u64);
        let Some(f) = usize::try_from(k).ok().and_then(|k| self.flows.get(k)) else {
            return Echo::Bad; // no such flow
        };
        let Some(seq) = payload_seq(salt, &data[8..]) else {
            return Echo::Bad;
        };
        let answer = f.sent.is_some() && seq == f.seq;
        if !answer && !f.lost.contains(&seq) {
            return Echo::Bad; // a duplicate, a stale or a future one
        }
        fill(salt, seq, &mut self.expected);
        if data != &self.expected[..] {
            return Echo::Bad;
        }
        let k = k as usize;
        if answer {
            return Echo::Answer(k);
        }
        let f = &mut self.flows[k];
        f.lost.retain(|s| *s != seq);
        Echo::Late
    }

    fn publish(&mut self) {
        self.live
            .publish(&mut self.live_messages, &mut self.live_errors);
    }

    /// Ends the run: hands the report over and tells the load thread.
    fn finish(&mut self, now: Instant) {
        if self.done {
            return;
        }
        self.done = true;
        self.publish();
        if let Ok(mut out) = self.report.lock() {
            *out = Some(ThreadReport::take(&mut self.rec, now));
        }
        let _ = self.ended.send(());
    }

    /// The tick's work: timeouts, then every idle flow sends.
    fn scan(&mut self, now: Instant, shard: &mut ShardIo<'_>) {
        self.publish();
        for k in 0..self.flows.len() {
            let f = &mut self.flows[k];
            let Some(sent) = f.sent else {
                continue;
            };
            if now.saturating_duration_since(sent) > self.plan.timeout {
                // Lost (or very late): count it and go on with the next datagram.
                if f.lost.len() == LOST_KEPT {
                    f.lost.pop_front();
                }
                f.lost.push_back(f.seq);
                f.seq += 1;
                f.sent = None;
                self.in_flight -= 1;
                self.count_error(ErrorKind::Timeout);
            }
        }
        for k in 0..self.flows.len() {
            if self.flows[k].sent.is_none() {
                self.send(k, now, shard);
            }
        }
    }

    /// The shard is up: the run timers, and every flow sends its first datagram.
    fn start(&mut self, shard: &mut ShardIo<'_>) {
        let now = Instant::now();
        self.measuring = run_timers::arm(&self.plan, shard, now, CHECK_EVERY);
        for k in 0..self.flows.len() {
            self.send(k, now, shard);
        }
    }

    /// An echo arrived: its flow's message is complete, and the flow sends the next.
    fn datagram(&mut self, payload: &[u8], shard: &mut ShardIo<'_>) {
        // The payload names its flow; the sender's address is not checked (a server on
        // a wildcard address may answer from another one of its addresses).
        if self.done {
            return;
        }
        let now = Instant::now();
        if self.measuring {
            self.rec.bytes_received += payload.len() as u64;
        }
        let k = match self.classify(payload) {
            Echo::Answer(k) => k,
            Echo::Late => return,
            Echo::Bad => {
                self.count_error(ErrorKind::BadResponse);
                return;
            }
        };
        let f = &mut self.flows[k];
        let start = f.sent.take().unwrap_or(now);
        f.seq += 1;
        self.in_flight -= 1;
        self.live_messages += 1;
        if self.measuring {
            let ns = now.saturating_duration_since(start).as_nanos();
            self.rec.message(u64::try_from(ns).unwrap_or(u64::MAX));
            if self.plan.quota.is_some_and(|q| self.rec.messages >= q) {
                self.finish(now);
                return;
            }
        }
        self.send(k, now, shard);
    }
}

impl RunTimers for Load {
    fn warmup_end(&mut self) {
        self.measuring = true;
        self.rec.reset();
    }

    fn deadline(&mut self, now: Instant, shard: &mut ShardIo<'_>) {
        self.finish(now);
        shard.shutdown_all();
    }

    fn tick(&mut self, now: Instant, shard: &mut ShardIo<'_>) {
        if !self.done {
            self.scan(now, shard);
            run_timers::rearm_tick(shard, CHECK_EVERY);
        }
    }
}

impl Handler for Load {
    type Conn = ();

    fn on_open(&mut self, _peer: SocketAddr, io: &mut Io<'_>) {
        io.abort(); // no TCP here
    }

    fn on_data(&mut self, _conn: &mut (), input: &mut Input<'_>, _io: &mut Io<'_>) {
        input.consume_all();
    }

    fn on_close(&mut self, _conn: (), _why: Close) {}

    fn on_shard(&mut self, event: ShardEvent<'_>, shard: &mut ShardIo<'_>) {
        match event {
            ShardEvent::Start => self.start(shard),
            ShardEvent::Timer(tag) => run_timers::dispatch(self, tag, shard),
            ShardEvent::Datagram { payload, .. } => self.datagram(payload, shard),
            _ => {}
        }
    }
}
