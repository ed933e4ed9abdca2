//! Actions a callback asked for on another connection of the shard, by token: write,
//! pause or resume its reading, close it, post it a value. A callback holds a borrow of
//! its own slot, so these wait in the shard context and are applied here once it has
//! returned. A token whose connection is gone (closed or closing, slot reused, another
//! shard's) fails the generation check: the caller is told, nothing else is touched.

use std::mem;

use super::*;
use crate::call::Posted;
use crate::ctx::{ConnAction, ConnOp};

/// Rounds of actions applied in one go: an action's callback (a post) may queue more;
/// past this, the rest waits for the next turn (which then does not block).
const ROUNDS: usize = 8;

impl<H: Handler> Shard<H> {
    pub(super) fn apply_conn_ops(&mut self) {
        for _ in 0..ROUNDS {
            if self.ctx.conn_ops.is_empty() {
                return;
            }
            for op in mem::take(&mut self.ctx.conn_ops) {
                self.apply_conn_op(op);
            }
        }
    }

    fn apply_conn_op(&mut self, op: ConnOp) {
        let ConnOp {
            from,
            target,
            action,
        } = op;
        let Shard {
            slots,
            ctx,
            handler,
            ..
        } = self;
        let open = live(slots, target)
            .filter(|s| s.io.phase == Phase::Open && !s.io.abort_requested && s.app.is_some());
        let Some(slot) = open else {
            ctx.counters.stale_tokens += 1;
            match from {
                Some(from) => {
                    self.conn_event(from, Event::ConnGone(target));
                }
                None => self.shard_event(ShardEvent::ConnGone(target)),
            }
            return;
        };
        match action {
            ConnAction::Write(bytes) => {
                if !bytes.is_empty() {
                    slot.io.send.write(&bytes);
                }
            }
            ConnAction::PauseReading => slot.io.user_paused = true,
            ConnAction::ResumeReading => {
                if slot.io.user_paused {
                    slot.io.user_paused = false;
                    slot.io.redeliver = true;
                }
            }
            ConnAction::Close => slot.io.close_after_flush(Close::Local),
            ConnAction::Post(value) => {
                deliver_event(handler, ctx, slot, Event::Posted(Posted::new(from, value)));
            }
        }
        ctx.mark_dirty(&mut slot.io);
    }
}
