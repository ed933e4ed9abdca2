//! The boundary between the sans-IO protocol and whoever drives it.
//!
//! This module owns the [`Port`] trait: everything the state machine asks of its driver
//! (an output buffer, a clock, timers, read control, the worker pool, and for notifiers
//! and cross-shard calls the runtime's `Io` itself) and nothing more.
//! Three drivers implement it: the runtime glue (`handler::IoPort`, over the runtime's
//! `Io`), the in-memory simulator (`sim::SimPort`) and the unit tests' recording port.
//! Nothing behind a port may call back into the protocol while a port method runs.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ringmaster_runtime::{ConnToken, Counters, Io, OffloadError, TimerKey};

use super::encode::DATE_LEN;
use super::limits::HttpCounters;
use super::offload::OffloadJob;
use super::upstream::{Fetch, Upstream, UpstreamError, UpstreamRequest, UpstreamStats};
use ringmaster_runtime::Segment;

/// Names a timer armed through [`Port::set_timer`], for [`Port::cancel_timer`].
///
/// Opaque to the protocol, which only hands it back to the port that made it: the
/// runtime glue keeps the runtime's own key, a driver without a runtime its own number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PortTimer {
    /// A timer on the runtime's timer wheel.
    Runtime(TimerKey),
    /// A timer of a driver without a runtime (the simulator, tests), by its number.
    Local(u64),
}

/// What the protocol needs from whoever drives it: an output buffer, a clock, timers and
/// read control. The runtime glue implements it over `Io`; tests over plain vectors.
///
/// Output order is the order of calls: bytes appended to [`Port::buf`] go before a
/// segment given to [`Port::push`] after them, and so on.
pub(crate) trait Port {
    /// The end of the output, to encode responses into in place (append only). The
    /// runtime's is the connection's send queue itself: no staging copy.
    fn buf(&mut self) -> &mut Vec<u8>;
    /// Queues a segment after everything written so far: owned and `'static` buffers
    /// without a copy where the driver can (the runtime can; a test driver copies).
    fn push(&mut self, segment: Segment) {
        self.buf().extend_from_slice(segment.bytes());
    }
    /// The cached `Date` value.
    fn date(&self) -> &[u8; DATE_LEN];
    /// Arms a one-shot timer reported back with `tag`; the key cancels it.
    fn set_timer(&mut self, after: Duration, tag: u64) -> PortTimer;
    /// Cancels a timer armed with [`Port::set_timer`]; false if it already fired or
    /// was cancelled (or was not this port's).
    fn cancel_timer(&mut self, key: PortTimer) -> bool;
    /// Asks for a writable-again callback.
    fn want_writable(&mut self);
    /// Bytes queued and not yet sent.
    fn backlog(&self) -> usize;
    /// The shard's clock.
    fn now(&self) -> Instant;
    /// The peer's address, if known.
    fn peer(&self) -> Option<SocketAddr>;
    /// The shard's index.
    fn shard_id(&self) -> usize;
    /// Closes the connection once queued output is sent.
    fn close(&mut self);
    /// Closes once queued output is sent, without lingering for the peer's FIN: the
    /// peer has said it sends nothing more (its last request asked to close).
    fn close_without_linger(&mut self) {
        self.close();
    }
    /// Closes now, dropping queued output: the peer does not read it. Default: `close`.
    fn abort(&mut self) {
        self.close();
    }
    /// Stops delivering input.
    fn pause_reading(&mut self);
    /// Delivers input again (unconsumed bytes first).
    fn resume_reading(&mut self);
    /// Stops delivering input for backpressure the peer did not cause (what it sends
    /// has nowhere to go yet): what is still received is kept whole.
    fn hold_reading(&mut self) {
        self.pause_reading();
    }
    /// The shard's HTTP counters.
    fn counters(&mut self) -> &mut HttpCounters;
    /// The runtime's counters for this shard, when driven by the runtime.
    fn runtime_counters(&self) -> Option<&Counters> {
        None
    }
    /// Hands a job to the worker pool; its result comes back through
    /// `Conn::offload_done`. Never blocks. Default: no pool.
    fn offload(&mut self, _job: OffloadJob) -> Result<(), OffloadError> {
        Err(OffloadError::NoPool)
    }
    /// Runs `f` with the runtime's `Io` of this connection, for what is generic over the
    /// application's types (notifiers, cross-shard calls) and so cannot be a method of
    /// this object-safe trait; false (and `f` not run) for a driver without a runtime.
    fn with_io(&mut self, _f: &mut dyn FnMut(&mut Io<'_>)) -> bool {
        false
    }
    /// Starts a request to an upstream for exchange `seq`; its response comes back
    /// through `Conn::upstream_reply`. Default: no connections without the runtime.
    fn fetch(
        &mut self,
        _up: &Upstream,
        _req: &UpstreamRequest<'_>,
        _seq: u32,
    ) -> Result<Fetch, UpstreamError> {
        Err(UpstreamError::Unavailable)
    }
    /// Gives a piece of a streamed request body to upstream request `fetch` (`last`:
    /// its end, with `trailers` as its trailer section when it is chunked). `Ok(true)`:
    /// the body is to be held until the pool says otherwise (a `BodyPace` posted to
    /// this connection).
    fn fetch_body(
        &mut self,
        _fetch: Fetch,
        _piece: &[u8],
        _last: bool,
        _trailers: &[(&str, &str)],
    ) -> Result<bool, UpstreamError> {
        Err(UpstreamError::Unavailable)
    }
    /// Stops reading from upstream connection `up` until this connection's output has
    /// drained (a response streamed faster than the client reads it).
    fn hold_upstream(&mut self, _up: ConnToken) {}
    /// This shard's counters for `up`, if it was called.
    fn upstream_stats(&self, _up: &Upstream) -> Option<UpstreamStats> {
        None
    }
    /// Whether `up`'s last active health check failed.
    fn upstream_down(&self, _up: &Upstream) -> bool {
        false
    }
}
