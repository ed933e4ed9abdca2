//! Offloaded jobs, labelled with their exchange.
//!
//! This module owns the wrapping that lets an offloaded job's result find its way back:
//! the runtime routes a result to its connection, and the protocol routes it on to the
//! exchange named inside it. It runs nothing itself and never blocks; submitting is the
//! driver's business (`Port::offload`).

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

use ringmaster_runtime::{OffloadPanic, OffloadResult};

/// A job as the protocol hands it to the driver: already wrapped so that its result (or
/// its panic) comes back as a [`Routed`] naming its exchange.
pub(crate) type OffloadJob = Box<dyn FnOnce() -> Box<dyn Any + Send> + Send>;

/// An offloaded job's outcome, labelled with the exchange it belongs to.
///
/// The runtime routes a result to its connection; the protocol routes it on to the
/// exchange by `seq`, as it does for timers. Panics are caught inside the job (not left
/// to the pool) so that a panic, too, knows its exchange.
pub(crate) struct Routed {
    pub(crate) seq: u32,
    pub(crate) result: OffloadResult,
}

/// Wraps an application job for the pool: runs it under `catch_unwind` and labels the
/// outcome with `seq`.
pub(crate) fn wrap_job<F, R>(seq: u32, job: F) -> OffloadJob
where
    F: FnOnce() -> R + Send + 'static,
    R: Any + Send,
{
    Box::new(move || {
        let result = catch_unwind(AssertUnwindSafe(job))
            .map(|v| Box::new(v) as Box<dyn Any + Send>)
            .map_err(|payload| OffloadPanic {
                message: panic_message(payload.as_ref()),
            });
        Box::new(Routed { seq, result }) as Box<dyn Any + Send>
    })
}

/// The text of a panic payload (`&str` or `String`), as the pool reports it.
fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".into())
}
