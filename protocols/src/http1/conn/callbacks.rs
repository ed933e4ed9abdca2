//! The application's callbacks after a request was dispatched: its timers, its
//! offloaded jobs' results and writable-again, each routed to the exchange it belongs to.
//!
//! This part of the state machine owns the routing only (by sequence number, or the
//! front of the queue for writable-again); a callback for an exchange that has finished
//! is dropped here. Releasing output and closing is `Conn::advance`'s business.

use super::{Conn, Pending};
use crate::http1::app::App;
use crate::http1::exchange::Exchange;
use crate::http1::exchange_state::Phase;
use crate::http1::limits::Limits;
use crate::http1::offload::Routed;
use crate::http1::port::Port;

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
        let slot = self
            .queue
            .iter()
            .position(|s| s.state.seq == seq && s.task.is_some());
        let Some(i) = slot else {
            port.counters().offload_stale += 1;
            return;
        };
        port.counters().offload_delivered += 1;
        self.call_exchange(i, port, |task, ex| app.on_offload_done(task, done, ex));
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
    fn call_exchange(
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
