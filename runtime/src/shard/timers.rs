//! Timers firing: handler timers, idle timeouts, linger, accept pause, drain deadline.

use std::mem;

use super::*;

impl<H: Handler> Shard<H> {
    // ---- timers ----------------------------------------------------------------

    pub(super) fn fire_timers(&mut self) {
        let mut fired = mem::take(&mut self.fired);
        self.ctx.timers.advance(self.ctx.now, &mut fired);
        for ev in fired.drain(..) {
            self.on_timer(ev);
        }
        self.fired = fired;
    }

    pub(super) fn on_timer(&mut self, ev: TimerEvent) {
        match ev {
            TimerEvent::ResumeAccept => self.accept_paused = false,
            TimerEvent::Shard { tag } => self.shard_event(ShardEvent::Timer(tag)),
            TimerEvent::DrainDeadline => {
                self.drain_expired = true;
                self.force_close_all();
            }
            TimerEvent::Conn { token, tag } => {
                self.conn_event(token, Event::Timer(tag));
            }
            TimerEvent::Idle(token) => {
                let now = self.ctx.now;
                let Some(timeout) = self.ctx.config.idle_timeout else {
                    return;
                };
                let Shard { slots, ctx, .. } = self;
                let Some(slot) = live(slots, token) else {
                    return;
                };
                slot.io.idle_timer = None;
                if slot.io.phase == Phase::Closed {
                    return;
                }
                let idle = now.saturating_duration_since(slot.io.last_active);
                if idle >= timeout {
                    ctx.counters.idle_closed += 1;
                    slot.io.abort(Close::Idle);
                    ctx.mark_dirty(&mut slot.io);
                } else {
                    slot.io.idle_timer = Some(ctx.timers.insert(
                        now,
                        timeout - idle,
                        TimerEvent::Idle(token),
                    ));
                }
            }
            TimerEvent::ConnectTimeout(token) => {
                if let Some(slot) = live(&mut self.slots, token) {
                    slot.io.idle_timer = None; // this timer, now fired
                }
                if live(&mut self.slots, token).is_some_and(|s| s.io.phase == Phase::Connecting) {
                    // Its completion (ECANCELED) reports the timeout.
                    self.ring
                        .cancel_user_data(pack(OpKind::Connect, token), pack_shard(OpKind::Cancel));
                }
            }
            TimerEvent::Linger(token) => {
                let Shard { slots, ctx, .. } = self;
                if let Some(slot) = live(slots, token) {
                    if slot.io.phase == Phase::Lingering {
                        slot.io.abort_requested = true;
                        ctx.mark_dirty(&mut slot.io);
                    }
                }
            }
        }
    }
}
