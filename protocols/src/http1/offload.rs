//! Offloaded jobs, labelled with their exchange.
//!
//! This module owns the wrapping that lets an offloaded job's result find its way back:
//! the runtime routes a result to its connection, and the protocol routes it on to the
//! exchange named inside it. It runs nothing itself and never blocks; submitting is the
//! driver's business (`Port::offload`).

use std::any::Any;

use ringmaster_runtime::{catch_panic, OffloadDone};

/// A job as the protocol hands it to the driver: already wrapped so that its outcome
/// (or its panic) comes back as a [`Routed`] naming its exchange.
pub(crate) type OffloadJob = Box<dyn FnOnce() -> Routed + Send>;

/// An offloaded job's outcome, labelled with the exchange it belongs to.
///
/// The runtime routes a result to its connection; the protocol routes it on to the
/// exchange by `seq`, as it does for timers. Panics are caught inside the job (not left
/// to the pool) so that a panic, too, knows its exchange.
pub(crate) struct Routed {
    pub(crate) seq: u32,
    pub(crate) done: OffloadDone,
}

/// Wraps an application job for the pool: runs it catching a panic and labels the
/// outcome with `seq`.
pub(crate) fn wrap_job<F, R>(seq: u32, job: F) -> OffloadJob
where
    F: FnOnce() -> R + Send + 'static,
    R: Any + Send,
{
    Box::new(move || Routed {
        seq,
        done: OffloadDone::new(catch_panic(job).map(|v| Box::new(v) as Box<dyn Any + Send>)),
    })
}
