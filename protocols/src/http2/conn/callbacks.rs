//! The application's callbacks after a request was dispatched on an HTTP/2 stream: its
//! timers, offloaded jobs' results, notifiers' values, cross-shard calls' outcomes,
//! upstream replies and writable-again, each routed to the stream it belongs to.
//!
//! This part of the state machine owns the routing only (by the exchange's sequence
//! number or notifier id; writable-again to every stream that asked and has room). A
//! callback for an exchange that has finished, or whose stream was reset, is dropped
//! here, never given to another exchange. Sending is `flush`'s business.

use ringmaster_runtime::{CallDone, CallError, ConnToken, Notification};

use super::{H2Conn, LOW_WATER};
use crate::http1::app::App;
use crate::http1::compose::RoutedCall;
use crate::http1::exchange::Exchange;
use crate::http1::exchange_state::Phase;
use crate::http1::offload::Routed;
use crate::http1::port::Port;
use crate::http1::upstream::Reply;

/// Output queued on a connection (sent or waiting for window) past which an upstream
/// streaming a response to it is paused, as on HTTP/1.1.
const UPSTREAM_HOLD_BACKLOG: usize = 256 * 1024;

impl<T> H2Conn<T> {
    /// Whether upstreams held for this connection's sake may read again: what waits
    /// here (its streams' queues, which only the peer's WINDOW_UPDATEs drain, and the
    /// socket's `backlog`) is down to half the bound. The socket alone is not enough:
    /// a client that keeps its windows small leaves it empty while the queues grow.
    pub(crate) fn upstreams_may_resume(&self, backlog: usize) -> bool {
        let queued = self.streams.iter().map(|s| s.send.queued).sum::<usize>();
        backlog + queued <= UPSTREAM_HOLD_BACKLOG / 2
    }

    /// The upstream pool holds (or takes again) the streamed request body of exchange
    /// `seq`: only that stream's credit is held back, so the connection's other
    /// streams go on.
    pub(crate) fn body_pace(&mut self, seq: u32, hold: bool, port: &mut dyn Port) {
        if let Some(i) = self.by_seq(seq) {
            self.streams[i].ex.body_paused = hold;
            self.after(port);
        }
    }

    fn by_seq(&self, seq: u32) -> Option<usize> {
        self.streams
            .iter()
            .position(|s| s.task.is_some() && s.ex.seq == seq)
    }

    /// An application timer for exchange `seq` fired.
    pub(crate) fn app_timer<A: App<Task = T>>(
        &mut self,
        app: &mut A,
        seq: u32,
        tag: u32,
        port: &mut dyn Port,
    ) {
        if let Some(i) = self.by_seq(seq) {
            self.call_stream(i, port, |task, ex| app.on_timer(task, tag, ex));
            self.after(port);
        }
    }

    /// An offloaded job's result came back for the exchange it names.
    pub(crate) fn offload_done<A: App<Task = T>>(
        &mut self,
        app: &mut A,
        routed: Routed,
        port: &mut dyn Port,
    ) {
        let Routed { seq, done } = routed;
        if done.is_panic() {
            port.counters().offload_panicked += 1;
        }
        let Some(i) = self.by_seq(seq) else {
            port.counters().offload_stale += 1;
            return;
        };
        port.counters().offload_delivered += 1;
        self.call_stream(i, port, |task, ex| app.on_offload_done(task, done, ex));
        self.after(port);
    }

    fn notifier_owner(&self, id: u64) -> Option<usize> {
        self.streams
            .iter()
            .position(|s| s.task.is_some() && s.ex.notifiers.contains(&id))
    }

    /// A notifier's value arrived.
    pub(crate) fn notified<A: App<Task = T>>(
        &mut self,
        app: &mut A,
        n: Notification,
        port: &mut dyn Port,
    ) {
        let Some(i) = self.notifier_owner(n.id()) else {
            port.counters().notify_stale += 1;
            return;
        };
        port.counters().notify_delivered += 1;
        self.call_stream(i, port, |task, ex| app.on_notify(task, n, ex));
        self.after(port);
    }

    /// Every clone of notifier `id` was dropped with no value sent.
    pub(crate) fn notifier_dropped<A: App<Task = T>>(
        &mut self,
        app: &mut A,
        id: u64,
        port: &mut dyn Port,
    ) {
        let Some(i) = self.notifier_owner(id) else {
            port.counters().notify_stale += 1;
            return;
        };
        port.counters().notifier_dropped += 1;
        self.call_stream(i, port, |task, ex| app.on_notifier_dropped(task, id, ex));
        self.after(port);
    }

    /// A cross-shard call's value came back for the exchange it names.
    pub(crate) fn call_done<A: App<Task = T>>(
        &mut self,
        app: &mut A,
        routed: RoutedCall,
        port: &mut dyn Port,
    ) {
        let RoutedCall { seq, value } = routed;
        let Some(i) = self.by_seq(seq) else {
            port.counters().calls_stale += 1;
            return;
        };
        let state = &mut self.streams[i].ex;
        state.calls = state.calls.saturating_sub(1);
        port.counters().calls_delivered += 1;
        let done = CallDone::new(Ok(value));
        self.call_stream(i, port, |task, ex| app.on_call_done(task, done, ex));
        self.after(port);
    }

    /// A cross-shard call failed after it was queued: told to the oldest exchange with a
    /// call outstanding (the outcome does not name its exchange).
    pub(crate) fn call_failed<A: App<Task = T>>(
        &mut self,
        app: &mut A,
        error: CallError,
        port: &mut dyn Port,
    ) {
        let slot = self
            .streams
            .iter()
            .position(|s| s.ex.calls > 0 && s.task.is_some());
        let Some(i) = slot else {
            port.counters().calls_stale += 1;
            return;
        };
        self.streams[i].ex.calls -= 1;
        port.counters().calls_delivered += 1;
        let done = CallDone::new(Err(error));
        self.call_stream(i, port, |task, ex| app.on_call_done(task, done, ex));
        self.after(port);
    }

    /// A piece of an upstream response came for the exchange it names.
    pub(crate) fn upstream_reply<A: App<Task = T>>(
        &mut self,
        app: &mut A,
        reply: Reply,
        from: Option<ConnToken>,
        port: &mut dyn Port,
    ) {
        let Some(i) = self.by_seq(reply.seq) else {
            return;
        };
        let ended = reply.end.is_some();
        self.streams[i].ex.upstream = if ended { None } else { from };
        let fetch = reply.fetch;
        self.call_stream(i, port, |task, ex| {
            reply.events(|ev| {
                if !ex.is_done() {
                    app.on_upstream(task, fetch, ev, ex);
                }
            });
        });
        self.after(port);
        if let (false, Some(up)) = (ended, from) {
            let queued = self.streams.iter().map(|s| s.send.queued).sum::<usize>();
            if port.backlog() + queued > UPSTREAM_HOLD_BACKLOG {
                port.hold_upstream(up);
            }
        }
    }

    /// The connection's output drained: every stream that asked, and has room, makes
    /// its next piece.
    pub(crate) fn writable<A: App<Task = T>>(&mut self, app: &mut A, port: &mut dyn Port) {
        let mut i = 0;
        while i < self.streams.len() {
            let s = &mut self.streams[i];
            if s.ex.wants_writable && s.send.queued < LOW_WATER {
                s.ex.wants_writable = false;
                self.call_stream(i, port, |task, ex| app.on_writable(task, ex));
            }
            i += 1;
        }
        self.after(port);
    }

    /// Calls the application on stream `i`'s exchange, if it still has a task; drops
    /// the task once the exchange is done.
    pub(super) fn call_stream(
        &mut self,
        i: usize,
        port: &mut dyn Port,
        call: impl FnOnce(&mut T, &mut Exchange<'_>),
    ) {
        let Some((mut sink, state, slot)) = self.stream_io(i) else {
            return;
        };
        if let Some(t) = slot.as_mut() {
            let mut ex = Exchange::for_stream(port, &mut sink, state);
            call(t, &mut ex);
        }
        if state.phase == Phase::Done {
            *slot = None;
        }
    }
}
