//! The shard timers every uring load thread runs by (TCP and UDP alike): the end of the
//! warmup, the end of the run and a periodic tick. Each engine says what they do
//! ([`RunTimers`]); [`dispatch`] tells them apart.

use std::time::{Duration, Instant};

use ringmaster_runtime::ShardIo;

use super::ThreadPlan;

/// Shard timer tags; an engine's own shard timers take tags from [`TAG_OWN_BASE`] on.
const TAG_WARMUP_END: u64 = 0;
const TAG_DEADLINE: u64 = 1;
const TAG_TICK: u64 = 2;
pub(super) const TAG_OWN_BASE: u64 = 16;

/// A uring load thread's answers to its run timers.
pub(super) trait RunTimers {
    /// The warmup is over: the measured window opens.
    fn warmup_end(&mut self);
    /// The run's deadline: the report is handed over and the client stops.
    fn deadline(&mut self, now: Instant, shard: &mut ShardIo<'_>);
    /// The periodic tick (re-armed, or not, by the engine).
    fn tick(&mut self, now: Instant, shard: &mut ShardIo<'_>);
    /// A shard timer of the engine's own (`tag` at least [`TAG_OWN_BASE`]).
    fn own_timer(&mut self, _tag: u64, _now: Instant, _shard: &mut ShardIo<'_>) {}
}

/// Arms a load thread's run timers: the end of the warmup, the end of the run and the
/// first tick, `tick` from now. Returns whether the measured window is already open.
pub(super) fn arm(
    plan: &ThreadPlan,
    shard: &mut ShardIo<'_>,
    now: Instant,
    tick: Duration,
) -> bool {
    shard.set_timer(
        plan.warmup_end.saturating_duration_since(now),
        TAG_WARMUP_END,
    );
    shard.set_timer(plan.deadline.saturating_duration_since(now), TAG_DEADLINE);
    shard.set_timer(tick, TAG_TICK);
    now >= plan.warmup_end
}

/// Re-arms the tick, `after` from now.
pub(super) fn rearm_tick(shard: &mut ShardIo<'_>, after: Duration) {
    shard.set_timer(after, TAG_TICK);
}

/// Hands the shard timer `tag` to the part of `load` it is for.
pub(super) fn dispatch(load: &mut impl RunTimers, tag: u64, shard: &mut ShardIo<'_>) {
    let now = Instant::now();
    match tag {
        TAG_WARMUP_END => load.warmup_end(),
        TAG_DEADLINE => load.deadline(now, shard),
        TAG_TICK => load.tick(now, shard),
        TAG_OWN_BASE.. => load.own_timer(tag, now, shard),
        _ => {}
    }
}
