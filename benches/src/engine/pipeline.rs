//! What the TCP engines (uring and epoll) share about one connection's messages: when
//! each started, when the next is due, and how many more may go out now.
//!
//! The engines differ in where the bytes go and how they wait (a runtime timer, a heap
//! entry); [`Schedule::fill`] says what to send and until when to wait, and leaves
//! both to the caller.

use std::collections::VecDeque;
use std::time::Instant;

use super::ThreadPlan;
use crate::proto::Conversation;

/// One connection's messages: those in flight and the schedule of the next ones.
pub(super) struct Schedule {
    /// Start (sent, or due in the open loop) of each message in flight, oldest first.
    pub starts: VecDeque<Instant>,
    /// Open loop: when this connection's next message is due.
    pub next_due: Instant,
    /// Connection per request: start of the message this connection carries.
    pub pending_start: Instant,
    /// Connect started, a message sent with nothing in flight, or bytes received.
    pub last_progress: Instant,
}

/// What [`Schedule::fill`] did.
pub(super) struct Filled {
    /// Requests queued (now in flight).
    pub requests: u64,
    /// Open loop: the next request is not due yet; wake the connection then.
    pub wake: Option<Instant>,
}

/// How many more messages the `--requests` quota lets a thread start: `None`, no
/// limit (no quota, or still in the warmup).
pub(super) fn quota_room(
    plan: &ThreadPlan,
    measuring: bool,
    completed: u64,
    in_flight: u64,
) -> Option<u64> {
    plan.quota
        .filter(|_| measuring)
        .map(|q| q.saturating_sub(completed + in_flight))
}

impl Schedule {
    /// The schedule of the connection with index `k` in its thread.
    pub(super) fn new(plan: &ThreadPlan, k: usize) -> Self {
        Schedule {
            starts: VecDeque::with_capacity(plan.pipeline),
            next_due: plan.start + plan.stagger * (plan.first_conn + k) as u32,
            pending_start: plan.start,
            last_progress: plan.start,
        }
    }

    /// A connect starts: with a connection per request in the open loop, the message it
    /// will carry takes the next due time; otherwise it starts now.
    pub(super) fn connecting(&mut self, plan: &ThreadPlan, now: Instant) {
        self.pending_start = match plan.interval {
            Some(iv) if plan.connect_per_request => {
                let due = self.next_due;
                self.next_due += iv;
                due
            }
            _ => now,
        };
        self.last_progress = now;
    }

    /// Queues onto `out` the conversation's own bytes (a handshake, TLS records, a
    /// pong), then as many requests as the mode allows: up to the pipeline depth, no
    /// more than `room` (see [`quota_room`]), none before the conversation is ready (a
    /// WebSocket waits for its 101), one per connection with a connection per request,
    /// and in the open loop none before it is due.
    pub(super) fn fill<C: Conversation>(
        &mut self,
        conv: &mut C,
        plan: &ThreadPlan,
        room: Option<u64>,
        now: Instant,
        out: &mut Vec<u8>,
    ) -> Filled {
        let mut filled = Filled {
            requests: 0,
            wake: None,
        };
        conv.poll_output(out);
        while self.starts.len() < plan.pipeline && conv.ready() {
            if room.is_some_and(|r| filled.requests >= r) {
                break;
            }
            let start = if plan.connect_per_request {
                if !self.starts.is_empty() {
                    break; // one message per connection
                }
                self.pending_start
            } else if let Some(iv) = plan.interval {
                if self.next_due > now {
                    filled.wake = Some(self.next_due);
                    break;
                }
                let due = self.next_due;
                self.next_due += iv;
                due
            } else {
                now
            };
            if self.starts.is_empty() {
                self.last_progress = now;
            }
            conv.push_request(out);
            self.starts.push_back(start);
            filled.requests += 1;
        }
        filled
    }

    /// Takes from the messages in flight the `done` that the last `feed` completed,
    /// appending their start times to `out`: the oldest ones, or those the conversation
    /// names when its responses come out of order (HTTP/2). False when the conversation
    /// completed more than were in flight or named one that is not (a bug or a
    /// confused server: counted as a bad response).
    pub(super) fn complete<C: Conversation>(
        &mut self,
        conv: &mut C,
        done: usize,
        out: &mut Vec<Instant>,
    ) -> bool {
        match conv.out_of_order() {
            None => {
                for _ in 0..done {
                    let Some(start) = self.starts.pop_front() else {
                        return false;
                    };
                    out.push(start);
                }
                true
            }
            Some(order) => {
                let named = order.len() == done;
                for k in order.drain(..) {
                    let Some(start) = self.starts.remove(k) else {
                        return false;
                    };
                    out.push(start);
                }
                named
            }
        }
    }
}
