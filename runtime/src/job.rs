//! Offloaded work as the rest of the runtime sees it: the job on its way to a worker,
//! its outcome on the way back, and the typed handle through which a handler reads it.
//!
//! A job's value travels type-erased (one pool carries every protocol's jobs); the
//! [`Offloaded`] handle returned at submission remembers the type, so reading the result
//! needs no downcast in the handler's code.

use std::any::Any;
use std::fmt;
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crossbeam_channel::{Sender, TrySendError};

use crate::token::ConnToken;

/// An offloaded job panicked; the message is the panic's payload when it was a string.
#[derive(Debug, Clone)]
pub struct OffloadPanic {
    /// The panic message.
    pub message: String,
}

impl fmt::Display for OffloadPanic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "offloaded job panicked: {}", self.message)
    }
}

/// Why `Io::offload` refused a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OffloadError {
    /// The pool's queue is full: answer "busy" (e.g. HTTP 503) and let the client retry.
    #[error("the offload queue is full")]
    QueueFull,
    /// The server was configured without a worker pool.
    #[error("no offload pool is configured")]
    NoPool,
}

/// A finished job's outcome, type-erased: read it with the [`Offloaded`] handle that
/// submitting the job returned.
#[derive(Debug)]
pub struct OffloadDone {
    value: Result<Box<dyn Any + Send>, OffloadPanic>,
}

impl OffloadDone {
    /// Wraps an outcome. For protocols that route results on to their own users (HTTP
    /// hands each exchange its job's outcome); a handler never needs it.
    pub fn new(value: Result<Box<dyn Any + Send>, OffloadPanic>) -> Self {
        OffloadDone { value }
    }

    /// True if the job panicked.
    pub fn is_panic(&self) -> bool {
        self.value.is_err()
    }

    /// The type-erased outcome, for protocols that route it on.
    pub fn into_inner(self) -> Result<Box<dyn Any + Send>, OffloadPanic> {
        self.value
    }
}

/// The handle of a job returning `R`: turns its [`OffloadDone`] back into `R`.
pub struct Offloaded<R> {
    _value: PhantomData<fn() -> R>,
}

impl<R> Clone for Offloaded<R> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<R> Copy for Offloaded<R> {}

impl<R> fmt::Debug for Offloaded<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Offloaded<{}>", std::any::type_name::<R>())
    }
}

impl<R: 'static> Offloaded<R> {
    /// A handle for jobs returning `R` (submitting a job returns one; protocols that
    /// route results on make their own).
    pub fn new() -> Self {
        Offloaded {
            _value: PhantomData,
        }
    }

    /// The job's value, or the panic that stopped it. An outcome of a job that returned
    /// another type (a handle mixed up between jobs) is an error, never a wrong value.
    pub fn result(self, done: OffloadDone) -> Result<R, OffloadPanic> {
        match done.value {
            Ok(v) => v.downcast::<R>().map(|v| *v).map_err(|_| OffloadPanic {
                message: format!(
                    "the outcome read as {} is of another job",
                    std::any::type_name::<R>()
                ),
            }),
            Err(p) => Err(p),
        }
    }
}

impl<R: 'static> Default for Offloaded<R> {
    fn default() -> Self {
        Self::new()
    }
}

/// A boxed job: runs on a worker, returns its value type-erased.
pub(crate) type Work = Box<dyn FnOnce() -> Box<dyn Any + Send> + Send>;

/// A job on its way to the pool, with the shard and connection its result goes back to.
pub(crate) struct Job {
    pub shard: usize,
    pub token: ConnToken,
    pub work: Work,
}

/// Runs `f` and catches a panic as an [`OffloadPanic`] carrying its message.
pub fn catch_panic<T>(f: impl FnOnce() -> T) -> Result<T, OffloadPanic> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| OffloadPanic {
        message: panic_message(payload.as_ref()),
    })
}

/// The text of a panic payload (`&str` or `String`).
fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".into())
}

/// Submits without blocking.
pub(crate) fn try_submit(tx: &Sender<Job>, job: Job) -> Result<(), OffloadError> {
    tx.try_send(job).map_err(|e| match e {
        TrySendError::Full(_) => OffloadError::QueueFull,
        TrySendError::Disconnected(_) => OffloadError::NoPool,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handle_reads_its_jobs_value_and_refuses_another_type() {
        let done = OffloadDone::new(Ok(Box::new(7u64)));
        assert_eq!(Offloaded::<u64>::new().result(done).unwrap(), 7);
        let done = OffloadDone::new(Ok(Box::new("x")));
        assert!(Offloaded::<u64>::new().result(done).is_err());
    }

    #[test]
    fn a_panic_keeps_its_message() {
        let p = catch_panic(|| -> u8 { panic!("boom") }).unwrap_err();
        assert_eq!(p.message, "boom");
        let p = catch_panic(|| -> u8 { panic!("{}", String::from("owned")) }).unwrap_err();
        assert_eq!(p.message, "owned");
    }
}
