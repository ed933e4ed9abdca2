//! The one deadline of an HTTP/2 connection, and what happens when it passes.
//!
//! This part of the state machine owns the time bounds of the connection: the idle
//! timeout (no streams), the header-read timeout of a header block that has not ended
//! (HEADERS without END_HEADERS), the SETTINGS acknowledgement (RFC 9113 section
//! 6.5.3), and the stalls of [`H2Config::stall_timeout`](super::H2Config): a response
//! stuck on a stream window the peer keeps at zero, on a zero connection window, or on
//! output the peer does not read; and a request body slower than
//! [`H2Config::min_body_rate`](super::H2Config) (slow drip). Each is an `Instant`
//! remembered where it belongs (a
//! stalled stream carries its own); [`H2Conn::deadline`] is the nearest of them, for the
//! driver's single protocol timer, so that an idle connection costs no timer per stream.
//! It never arms a timer itself.
//!
//! The answers, each counted in [`H2Counters`](super::config::H2Counters):
//! - a stream stalled on its own window: RST_STREAM CANCEL. Not FLOW_CONTROL_ERROR: a
//!   receiver may withhold credit as long as it likes (section 5.2.1), so the peer broke
//!   no rule; the server just no longer wants the stream (section 7, CANCEL). The reset
//!   counts against the reset budget like every reset the server makes (CVE-2025-8671).
//! - the connection stalled on its window, or on its write backlog: GOAWAY
//!   ENHANCE_YOUR_CALM (the peer holds the server's memory without progress, section
//!   10.5), then the close; a peer that does not read gets the connection aborted, since
//!   output queued behind what it never reads would hold the close up.
//! - SETTINGS unacknowledged: GOAWAY SETTINGS_TIMEOUT (section 6.5.3).
//! - a request body arriving slower than the minimum rate: `408 Request Timeout` and
//!   RST_STREAM NO_ERROR (section 8.1: the server answered, the rest of the request is
//!   not wanted), or CANCEL once a response started; counted against the reset budget
//!   like every reset the server makes.
//! - a header block unfinished: GOAWAY PROTOCOL_ERROR (the block cannot be decoded in
//!   part, and HPACK would be out of step, so it is a connection error as in section
//!   6.10).

use std::time::{Duration, Instant};

use super::H2Conn;
use crate::http1::app::App;
use crate::http1::port::Port;
use crate::http2::error::ErrorCode;
use crate::http2::frame::encode_goaway;

/// `since + after`, if it does not overflow (an overflow is never).
fn due(since: Option<Instant>, after: Duration) -> Option<Instant> {
    since.and_then(|t| t.checked_add(after))
}

impl<T> H2Conn<T> {
    /// The nearest time something is due on this connection (idle close, a header block
    /// or SETTINGS acknowledgement late, a stall), if anything is.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        if self.closed {
            return None;
        }
        let stall = self.cfg.stall_timeout;
        let streams = self
            .streams
            .iter()
            .filter_map(|s| due(s.stalled_since, stall))
            .chain(self.streams.iter().filter_map(|s| self.slow_body_due(s)))
            .min();
        [
            self.idle_deadline(),
            due(self.cont.as_ref().map(|c| c.since), self.header_timeout),
            self.settings_deadline(),
            due(self.conn_stalled_since, stall),
            due(self.write_stalled_since, stall),
            streams,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// When stream `s`'s request body falls below the minimum average rate, if it is
    /// still arriving and the client is not held back by us (a paused body, or no
    /// window left to send in).
    fn slow_body_due(&self, s: &super::Stream<T>) -> Option<Instant> {
        let rate = self.cfg.min_body_rate;
        if rate == 0
            || s.state != super::StreamState::Open
            || s.ex.body_paused
            || s.recv_window <= 0
        {
            return None;
        }
        let p = s.req.as_deref()?;
        let needed = Duration::from_secs(p.received / u64::from(rate) + 1);
        due(p.since, needed.max(self.cfg.stall_timeout))
    }

    /// When an idle connection (no streams, no header block) is closed.
    fn idle_deadline(&self) -> Option<Instant> {
        let idle = self.streams.is_empty() && self.cont.is_none();
        due(idle.then_some(self.last_active), self.idle_timeout)
    }

    /// When our SETTINGS must have been acknowledged, while they are not.
    fn settings_deadline(&self) -> Option<Instant> {
        let waiting = self.preface_seen && !self.settings_acked;
        due(
            waiting.then_some(self.settings_sent),
            self.cfg.settings_timeout,
        )
    }

    /// The deadline passed: acts on whatever is due (the connection's bounds first,
    /// then its streams'), then sends what is left to send.
    pub(crate) fn expire<A: App<Task = T>>(&mut self, app: &mut A, port: &mut dyn Port) {
        if self.closed {
            return;
        }
        let now = port.now();
        let past = |t: Option<Instant>| t.is_some_and(|t| now >= t);
        let stall = self.cfg.stall_timeout;
        if past(self.settings_deadline()) {
            port.counters().h2.settings_timeouts += 1;
            return self.fail(
                ErrorCode::SettingsTimeout,
                "SETTINGS not acknowledged",
                port,
            );
        }
        if past(due(
            self.cont.as_ref().map(|c| c.since),
            self.header_timeout,
        )) {
            port.counters().h2.header_timeouts += 1;
            return self.fail(ErrorCode::ProtocolError, "header block timed out", port);
        }
        if past(due(self.write_stalled_since, stall)) {
            port.counters().h2.write_stalls += 1;
            return self.give_up(ErrorCode::EnhanceYourCalm, "output not read", port);
        }
        if past(due(self.conn_stalled_since, stall)) {
            port.counters().h2.window_stalls += 1;
            return self.fail(
                ErrorCode::EnhanceYourCalm,
                "connection window stalled",
                port,
            );
        }
        if past(self.idle_deadline()) {
            return self.idle_close(port);
        }
        self.reset_stalled(app, now, port);
        self.answer_slow_bodies(app, now, port);
        self.after(port);
    }

    /// Answers 408 (or resets, once a response started) every stream whose request body
    /// fell below the minimum rate.
    fn answer_slow_bodies<A: App<Task = T>>(
        &mut self,
        app: &mut A,
        now: Instant,
        port: &mut dyn Port,
    ) {
        let mut i = 0;
        while i < self.streams.len() && !self.closed {
            let s = &self.streams[i];
            if self.slow_body_due(s).is_some_and(|t| now >= t) {
                port.counters().h2.slow_bodies += 1;
                if s.send.head_sent {
                    self.reset_stream(app, i, ErrorCode::Cancel, port);
                } else {
                    self.refuse(app, i, 408, port);
                }
                continue;
            }
            i += 1;
        }
    }

    /// Resets (CANCEL) every stream stalled on its window past the stall timeout.
    fn reset_stalled<A: App<Task = T>>(&mut self, app: &mut A, now: Instant, port: &mut dyn Port) {
        let stall = self.cfg.stall_timeout;
        let mut i = 0;
        while i < self.streams.len() && !self.closed {
            if due(self.streams[i].stalled_since, stall).is_some_and(|t| now >= t) {
                port.counters().h2.stream_stalls += 1;
                self.reset_stream(app, i, ErrorCode::Cancel, port);
                continue;
            }
            i += 1;
        }
    }

    /// Idle past the idle timeout: GOAWAY NO_ERROR and close.
    fn idle_close(&mut self, port: &mut dyn Port) {
        port.counters().idle_closed += 1;
        port.counters().h2.goaway_sent += 1;
        encode_goaway(port.buf(), self.last_stream, ErrorCode::NoError, b"idle");
        self.goaway_sent = true;
        self.closed = true;
        port.close();
    }

    /// GOAWAY with `code`, then the connection closes at once, queued output dropped:
    /// the peer does not read it, so waiting to send it would hold the memory on.
    fn give_up(&mut self, code: ErrorCode, why: &str, port: &mut dyn Port) {
        port.counters().h2.goaway_sent += 1;
        encode_goaway(port.buf(), self.last_stream, code, why.as_bytes());
        self.goaway_sent = true;
        self.closed = true;
        port.abort();
    }

    /// After a `flush`: notes since when each stream has waited on its own window, the
    /// connection on its window, and both on the send backlog (`backlog_full`: `flush`
    /// stopped there). DATA sent cleared the marks of the stream and the connection, so
    /// a stall is time without progress.
    pub(super) fn note_stalls(&mut self, now: Instant, backlog_full: bool) {
        let mut waiting = false;
        for s in &mut self.streams {
            let has_data = s.send.has_data();
            waiting |= has_data;
            if has_data && s.send_window <= 0 {
                s.stalled_since.get_or_insert(now);
            } else {
                s.stalled_since = None;
            }
        }
        if waiting && self.conn_send <= 0 {
            self.conn_stalled_since.get_or_insert(now);
        } else {
            self.conn_stalled_since = None;
        }
        if backlog_full {
            self.write_stalled_since.get_or_insert(now);
        } else {
            self.write_stalled_since = None;
        }
    }
}
