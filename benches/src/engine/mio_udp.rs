//! UDP echo on a mio (epoll) loop: one connected `UdpSocket` per "connection", closed
//! loop ping-pong, one datagram in flight each.
//!
//! Runs with `--engine epoll`, and for datagrams smaller than the uring engine's
//! minimum (see `uring_udp`; the report says so). A datagram that does not come back
//! within `--timeout` is counted as a timeout (lost) and the next one is sent. A late answer to a datagram already given up on is recognised by its sequence
//! number (the first 8 bytes, see [`fill_payload`]) and ignored; anything else that is
//! not the expected payload is a bad response.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};

use super::{Live, ThreadPlan, ThreadReport};
use crate::proto::{fill_payload, payload_seq};
use crate::stats::{ErrorKind, Recorder};

/// How often lost datagrams (timeouts) are looked for.
const CHECK_EVERY: Duration = Duration::from_millis(10);
/// Wait before sending again after the peer's port was unreachable (ICMP).
const BACKOFF_REFUSED: Duration = Duration::from_millis(100);
/// Datagrams read per readiness event and socket before moving on (fairness; the
/// socket stays readable and is read again on the next turn).
const READS_PER_EVENT: usize = 64;

struct Flow {
    sock: UdpSocket,
    salt: u64,
    /// Sequence number of the datagram in flight (or to send next).
    seq: u64,
    /// When the datagram in flight was sent; `None`: nothing in flight.
    sent: Option<Instant>,
    /// Not before this instant (after an unreachable port).
    resume_at: Option<Instant>,
}

/// Runs one UDP load thread; `size` is the datagram payload.
pub(super) fn run(plan: &ThreadPlan, live: &Live, size: usize) -> io::Result<ThreadReport> {
    let mut poll = Poll::new()?;
    let local: SocketAddr = if plan.addr.is_ipv4() {
        (Ipv4Addr::LOCALHOST, 0).into()
    } else {
        (Ipv6Addr::LOCALHOST, 0).into()
    };
    let mut flows = Vec::with_capacity(plan.connections);
    for k in 0..plan.connections {
        let mut sock = UdpSocket::bind(local)?;
        sock.connect(plan.addr)?;
        poll.registry()
            .register(&mut sock, Token(k), Interest::READABLE)?;
        flows.push(Flow {
            sock,
            salt: (plan.first_conn + k) as u64,
            seq: 0,
            sent: None,
            resume_at: None,
        });
    }
    let mut out = vec![0u8; size];
    let mut expected = vec![0u8; size];
    let mut buf = vec![0u8; size.max(2048) + 1];
    let mut rec = Recorder::new();
    let mut measuring = false;
    let mut in_flight = 0u64;
    let mut live_messages = 0u64;
    let mut live_errors = 0u64;
    let mut events = Events::with_capacity(1024);
    let mut next_check = Instant::now();

    // Bounded by the deadline: every turn polls with a timeout no later than it.
    loop {
        let now = Instant::now();
        if !measuring && now >= plan.warmup_end {
            measuring = true;
            rec.reset();
        }
        let quota_done = measuring && plan.quota.is_some_and(|q| rec.messages >= q);
        if now >= plan.deadline || quota_done {
            live.messages.fetch_add(live_messages, Ordering::Relaxed);
            live.errors.fetch_add(live_errors, Ordering::Relaxed);
            return Ok(ThreadReport {
                recorder: rec,
                finished: now,
            });
        }
        if now >= next_check {
            next_check = now + CHECK_EVERY;
            for f in &mut flows {
                if f.sent
                    .is_some_and(|t| now.saturating_duration_since(t) > plan.timeout)
                {
                    // Lost (or very late): count it and go on with the next datagram.
                    f.sent = None;
                    f.seq += 1;
                    in_flight -= 1;
                    live_errors += 1;
                    if measuring {
                        rec.errors.add(ErrorKind::Timeout);
                    }
                }
            }
            live.messages.fetch_add(live_messages, Ordering::Relaxed);
            live.errors.fetch_add(live_errors, Ordering::Relaxed);
            (live_messages, live_errors) = (0, 0);
        }
        // Send on every idle flow that may send.
        for f in &mut flows {
            if f.sent.is_some() || f.resume_at.is_some_and(|t| t > now) {
                continue;
            }
            if let Some(q) = plan.quota {
                if measuring && rec.messages + in_flight >= q {
                    break;
                }
            }
            f.resume_at = None;
            fill_payload(f.salt, f.seq, &mut out);
            match f.sock.send(&out) {
                Ok(_) => {
                    f.sent = Some(now);
                    in_flight += 1;
                    if measuring {
                        rec.bytes_sent += size as u64;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    f.resume_at = Some(now + CHECK_EVERY);
                }
                Err(e) => {
                    let kind = if e.kind() == io::ErrorKind::ConnectionRefused {
                        ErrorKind::ConnectRefused
                    } else {
                        ErrorKind::Io
                    };
                    f.resume_at = Some(now + BACKOFF_REFUSED);
                    live_errors += 1;
                    if measuring {
                        rec.errors.add(kind);
                    }
                }
            }
        }

        let until = plan.deadline.min(next_check);
        let wait = Duration::from_millis(until.saturating_duration_since(now).as_millis() as u64);
        match poll.poll(&mut events, Some(wait)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        for ev in events.iter() {
            let Some(f) = flows.get_mut(ev.token().0) else {
                continue;
            };
            for _ in 0..READS_PER_EVENT {
                let n = match f.sock.recv(&mut buf) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        // ICMP port unreachable for what we sent: nobody listens.
                        let kind = if e.kind() == io::ErrorKind::ConnectionRefused {
                            ErrorKind::ConnectRefused
                        } else {
                            ErrorKind::Io
                        };
                        if f.sent.take().is_some() {
                            in_flight -= 1;
                            f.seq += 1;
                        }
                        f.resume_at = Some(Instant::now() + BACKOFF_REFUSED);
                        live_errors += 1;
                        if measuring {
                            rec.errors.add(kind);
                        }
                        break;
                    }
                };
                let now = Instant::now();
                if measuring {
                    rec.bytes_received += n as u64;
                }
                let data = &buf[..n];
                let Some(start) = f.sent else {
                    // Nothing in flight: a late answer, or one nobody asked for.
                    if n != size || payload_seq(f.salt, data).is_none_or(|s| s >= f.seq) {
                        live_errors += 1;
                        if measuring {
                            rec.errors.add(ErrorKind::BadResponse);
                        }
                    }
                    continue;
                };
                fill_payload(f.salt, f.seq, &mut expected);
                if data == &expected[..] {
                    f.sent = None;
                    f.seq += 1;
                    in_flight -= 1;
                    live_messages += 1;
                    if measuring {
                        let ns = now.saturating_duration_since(start).as_nanos();
                        rec.message(u64::try_from(ns).unwrap_or(u64::MAX));
                    }
                } else if n == size && payload_seq(f.salt, data).is_some_and(|s| s < f.seq) {
                    // The late answer to a datagram counted lost: not an error twice.
                } else {
                    live_errors += 1;
                    if measuring {
                        rec.errors.add(ErrorKind::BadResponse);
                    }
                }
            }
        }
    }
}
