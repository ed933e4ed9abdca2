//! The application's callbacks after a request was dispatched: its timers, its
//! offloaded jobs' results, its notifiers' values, its cross-shard calls' outcomes and
//! writable-again, each routed to the exchange it belongs to.
//!
//! This part of the state machine owns the routing only (by sequence number, by notifier
//! id, or the front of the queue for writable-again); a callback for an exchange that has
//! finished is dropped here, never given to another exchange. Releasing output and closing is `Conn::advance`'s business.

use ringmaster_runtime::{CallDone, CallError, ConnToken, Notification};

use super::{Conn, Pending};
use crate::http1::app::App;
use crate::http1::compose::RoutedCall;
use crate::http1::exchange::Exchange;
use crate::http1::exchange_state::Phase;
use crate::http1::limits::Limits;
use crate::http1::offload::Routed;
use crate::http1::port::Port;
use crate::http1::upstream::Reply;

/// Output queued on a connection past which an upstream streaming a response to it is
/// paused (resumed once the output drains).
const UPSTREAM_HOLD_BACKLOG: usize = 256 * 1024;

impl<T> Conn<T> {
    /// An application timer for exchange `seq` fired.
    pub(crate) fn app_timer<A: App<Task = T>>(
        &mut self,
        app: &mut A,
        seq: u32,
        tag: u32,
        limits: &Limits,
        port: &mut dyn Port,
    ) {
        let Some(i) = self.queue.iter().position(|s| s.state.seq == seq) else {
            return;
        };
        self.call_exchange(i, port, |task, ex| app.on_timer(task, tag, ex));
        self.advance(app, limits, port);
    }

    /// An offloaded job's result came back for the exchange it names. A result for an
    /// exchange that already finished is counted and dropped.
    pub(crate) fn offload_done<A: App<Task = T>>(
        &mut self,
        app: &mut A,
        routed: Routed,
        limits: &Limits,
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
        self.call_exchange(i, port, |task, ex| app.on_offload_done(task, done, ex));
        self.advance(app, limits, port);
    }

    /// The unfinished exchange that made the notifier `id`, by its index in the queue.
    fn notifier_owner(&self, id: u64) -> Option<usize> {
        self.queue
            .iter()
            .position(|s| s.task.is_some() && s.state.notifiers.contains(&id))
    }

    /// A notifier's value arrived. A value for an exchange that already finished is
    /// counted and dropped.
    pub(crate) fn notified<A: App<Task = T>>(
        &mut self,
        app: &mut A,
        n: Notification,
        limits: &Limits,
        port: &mut dyn Port,
    ) {
        let Some(i) = self.notifier_owner(n.id()) else {
            port.counters().notify_stale += 1;
            return;
        };
        port.counters().notify_delivered += 1;
        self.call_exchange(i, port, |task, ex| app.on_notify(task, n, ex));
        self.advance(app, limits, port);
    }

    /// Every clone of notifier `id` was dropped with no value sent.
    pub(crate) fn notifier_dropped<A: App<Task = T>>(
        &mut self,
        app: &mut A,
        id: u64,
        limits: &Limits,
        port: &mut dyn Port,
    ) {
        let Some(i) = self.notifier_owner(id) else {
            port.counters().notify_stale += 1;
            return;
        };
        port.counters().notifier_dropped += 1;
        self.call_exchange(i, port, |task, ex| app.on_notifier_dropped(task, id, ex));
        self.advance(app, limits, port);
    }

    /// A cross-shard call's value came back for the exchange it names. A value for an
    /// exchange that already finished is counted and dropped.
    pub(crate) fn call_done<A: App<Task = T>>(
        &mut self,
        app: &mut A,
        routed: RoutedCall,
        limits: &Limits,
        port: &mut dyn Port,
    ) {
        let RoutedCall { seq, value } = routed;
        let slot = self.queue.iter_mut().position(|s| s.state.seq == seq);
        if let Some(i) = slot {
            let state = &mut self.queue[i].state;
            state.calls = state.calls.saturating_sub(1);
        }
        let Some(i) = slot.filter(|&i| self.queue[i].task.is_some()) else {
            port.counters().calls_stale += 1;
            return;
        };
        port.counters().calls_delivered += 1;
        let done = CallDone::new(Ok(value));
        self.call_exchange(i, port, |task, ex| app.on_call_done(task, done, ex));
        self.advance(app, limits, port);
    }

    /// A cross-shard call failed after it was queued (its target stopped before running
    /// it: the server is shutting down). The outcome does not name its exchange, so it
    /// goes to the oldest unfinished exchange with a call outstanding, which is told the
    /// call failed rather than left waiting.
    pub(crate) fn call_failed<A: App<Task = T>>(
        &mut self,
        app: &mut A,
        error: CallError,
        limits: &Limits,
        port: &mut dyn Port,
    ) {
        let slot = self
            .queue
            .iter()
            .position(|s| s.state.calls > 0 && s.task.is_some());
        let Some(i) = slot else {
            port.counters().calls_stale += 1;
            return;
        };
        self.queue[i].state.calls -= 1;
        port.counters().calls_delivered += 1;
        let done = CallDone::new(Err(error));
        self.call_exchange(i, port, |task, ex| app.on_call_done(task, done, ex));
        self.advance(app, limits, port);
    }

    /// A piece of an upstream response came for the exchange it names (from upstream
    /// connection `from`). A piece for an exchange that already finished is dropped.
    /// A body arriving faster than the client reads it pauses the upstream connection
    /// until this connection's output drains.
    pub(crate) fn upstream_reply<A: App<Task = T>>(
        &mut self,
        app: &mut A,
        reply: Reply,
        from: Option<ConnToken>,
        limits: &Limits,
        port: &mut dyn Port,
    ) {
        let slot = self
            .queue
            .iter()
            .position(|s| s.state.seq == reply.seq && s.task.is_some());
        let Some(i) = slot else {
            return;
        };
        let ended = reply.end.is_some();
        self.queue[i].state.upstream = if ended { None } else { from };
        let fetch = reply.fetch;
        self.call_exchange(i, port, |task, ex| {
            reply.events(|ev| {
                if !ex.is_done() {
                    app.on_upstream(task, fetch, ev, ex);
                }
            });
        });
        if let (false, Some(up)) = (ended, from) {
            if port.backlog() > UPSTREAM_HOLD_BACKLOG {
                port.hold_upstream(up);
            }
        }
        self.advance(app, limits, port);
    }

    /// The output drained after a `want_writable`.
    pub(crate) fn writable<A: App<Task = T>>(
        &mut self,
        app: &mut A,
        limits: &Limits,
        port: &mut dyn Port,
    ) {
        if let Some(front) = self.queue.front_mut() {
            if front.state.wants_writable {
                front.state.wants_writable = false;
                self.call_exchange(0, port, |task, ex| app.on_writable(task, ex));
            }
        }
        self.advance(app, limits, port);
    }

    /// Calls the application on the exchange at `index` in the queue, if it still has a
    /// task (its output held unless it is at the front); drops the task once the
    /// exchange is done.
    pub(super) fn call_exchange(
        &mut self,
        index: usize,
        port: &mut dyn Port,
        call: impl FnOnce(&mut T, &mut Exchange<'_>),
    ) {
        if let Some(Pending { state, task, held }) = self.queue.get_mut(index) {
            if let Some(t) = task.as_mut() {
                let mut ex = Exchange::new(port, (index != 0).then_some(held), state);
                call(t, &mut ex);
            }
            if state.phase == Phase::Done {
                *task = None;
            }
        }
    }
}
