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
                    // Moved in as it is: the copy `write_to` made is the only one.
                    slot.io.send.push_bytes(bytes);
                }
            }
            ConnAction::PauseReading => {
                slot.io.user_paused = true;
                slot.io.held = true;
            }
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
            ConnAction::Splice => {
                if let Some(from) = from {
                    self.start_splice(from, target);
                }
                return;
            }
            ConnAction::Link => {
                if let Some(from) = from {
                    ctx.links.insert(from.slot, (from, target));
                    ctx.links.insert(target.slot, (target, from));
                    // Either side may be past its bound already: look at both now.
                    for t in [from, target] {
                        if let Some(s) = live(slots, t) {
                            ctx.mark_dirty(&mut s.io);
                            if s.io.backpressured {
                                ctx.link_changes.push((t, true));
                            }
                        }
                    }
                    return;
                }
            }
        }
        ctx.mark_dirty(&mut slot.io);
    }

    /// Pauses or resumes the connections linked to those whose backlog crossed its
    /// bound (see `Io::link`).
    pub(super) fn apply_link_changes(&mut self) {
        let Shard { slots, ctx, .. } = self;
        for (token, past) in mem::take(&mut ctx.link_changes) {
            let Some(&(owner, peer)) = ctx.links.get(&token.slot) else {
                continue;
            };
            if owner != token {
                continue; // an entry of the slot's earlier tenant, not this one
            }
            let gone = live(slots, token).is_none_or(|s| s.io.phase == Phase::Closed);
            if gone {
                ctx.links.remove(&token.slot);
            }
            let Some(slot) = live(slots, peer) else {
                continue;
            };
            if slot.io.link_paused != past {
                slot.io.link_paused = past;
                if past {
                    ctx.counters.backpressure_pauses += 1;
                } else {
                    slot.io.redeliver = true;
                }
                ctx.mark_dirty(&mut slot.io);
            }
        }
    }
}
