//! Notifiers and cross-shard calls, labelled with their exchange.
//!
//! This module owns the wrapping that lets a value from elsewhere find its exchange: the
//! runtime routes a notifier's value or a call's outcome to its connection; the protocol
//! routes it on to the exchange, by the notifier's id (recorded in the exchange when the
//! notifier was made) or by the sequence number a call carries inside its outcome
//! ([`RoutedCall`]). It also owns what a call's closure sees of the target shard
//! ([`TargetShard`]). It sends nothing itself and never blocks.

use std::any::Any;

use ringmaster_runtime::{CallError, Counters, Io, ShardIo};

use super::app::App;
use super::handler::Http;
use super::limits::HttpCounters;

/// A cross-shard call's value, labelled with the exchange that made the call.
pub(crate) struct RoutedCall {
    pub(crate) seq: u32,
    pub(crate) value: Box<dyn Any + Send>,
}

/// What a cross-shard call's closure ([`Exchange::call`](super::Exchange::call)) sees of
/// the shard it runs on, besides that shard's [`App`]: its index, its counters, and the
/// runtime's shard vocabulary.
pub struct TargetShard<'a, 'b> {
    shard: &'a mut ShardIo<'b>,
    http: &'a HttpCounters,
}

impl std::fmt::Debug for TargetShard<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TargetShard")
            .field("shard", &self.shard.shard_id())
            .finish_non_exhaustive()
    }
}

impl<'b> TargetShard<'_, 'b> {
    /// The index of the shard the call runs on.
    pub fn shard_id(&self) -> usize {
        self.shard.shard_id()
    }

    /// That shard's runtime counters.
    pub fn runtime_counters(&self) -> &Counters {
        self.shard.counters()
    }

    /// That shard's HTTP counters.
    pub fn http_counters(&self) -> &HttpCounters {
        self.http
    }

    /// The runtime's shard vocabulary on that shard (timers, outbound connections,
    /// actions on its connections by token).
    pub fn shard_io(&mut self) -> &mut ShardIo<'b> {
        self.shard
    }
}

impl<A: App> Http<A> {
    /// Runs a call's closure on this shard, against this shard's application.
    pub(crate) fn run_call<R, F>(&mut self, f: F, shard: &mut ShardIo<'_>) -> R
    where
        F: FnOnce(&mut A, &mut TargetShard<'_, '_>) -> R,
    {
        let (app, http) = self.app_and_counters();
        let mut target = TargetShard { shard, http };
        f(app, &mut target)
    }
}

/// Starts a call of `f` on shard `shard` for exchange `seq`, with the target shard's
/// handler of type `T`: the server's handler, or one nested in it (the runtime searches
/// wrappers with `Handler::find`, so `Http<A>` is found plain, under `Tls` or inside
/// `HttpWs`). The value comes back labelled with `seq`.
pub(crate) fn start_call<T, R, F>(
    io: &mut Io<'_>,
    shard: usize,
    seq: u32,
    f: F,
) -> Result<(), CallError>
where
    T: 'static,
    R: Send + 'static,
    F: FnOnce(&mut T, &mut ShardIo<'_>) -> R + Send + 'static,
{
    io.call::<T, RoutedCall>(shard, move |target, shard| RoutedCall {
        seq,
        value: Box::new(f(target, shard)),
    })
    .map(|_| ())
}
