//! Values that come back to a connection or a shard from elsewhere: a cross-shard
//! call's outcome ([`CallDone`], read through its typed handle [`Called`]), a notifier's
//! value ([`Notification`]) and a value posted by another connection of the shard
//! ([`Posted`]). Leaf types: they carry values, they send nothing.
//!
//! Each value travels type-erased (one mailbox carries every protocol's values); the
//! handle or the `take` method names the type again, so a handler never downcasts by
//! hand, and a value of another type is an error, never a wrong value.

use std::any::Any;
use std::fmt;
use std::marker::PhantomData;

use crate::token::ConnToken;

/// Why a cross-shard call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// No shard has that index.
    #[error("there is no shard {0}")]
    NoShard(usize),
    /// The target shard's handler is not of the type the call names, nor does it wrap
    /// one that is ([`Handler::find`](crate::Handler::find)).
    #[error("the target shard has no handler of type {0}")]
    WrongHandler(&'static str),
    /// The target shard's mailbox holds its most calls (`mailbox_calls`): answer "busy"
    /// (e.g. HTTP 503) and let the client retry. Never a block.
    #[error("the target shard's mailbox is full")]
    MailboxFull,
    /// The target shard has stopped (or stopped before it ran the call).
    #[error("the target shard has stopped")]
    ShardGone,
    /// The outcome read as one type is of a call returning another (a handle mixed up
    /// between calls).
    #[error("the outcome read as {0} is of another call")]
    WrongType(&'static str),
}

/// A finished cross-shard call's outcome, type-erased: read it with the [`Called`] handle
/// that making the call returned.
pub struct CallDone {
    value: Result<Box<dyn Any + Send>, CallError>,
}

impl CallDone {
    /// Wraps an outcome (protocols that route outcomes on to their own users make their
    /// own; a handler never needs it).
    pub fn new(value: Result<Box<dyn Any + Send>, CallError>) -> Self {
        CallDone { value }
    }

    /// The type-erased outcome, for protocols that route it on.
    pub fn into_inner(self) -> Result<Box<dyn Any + Send>, CallError> {
        self.value
    }

    #[cfg(test)]
    pub(crate) fn value_ref(&self) -> &Result<Box<dyn Any + Send>, CallError> {
        &self.value
    }
}

impl fmt::Debug for CallDone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Ok(_) => f.write_str("CallDone(Ok(..))"),
            Err(e) => write!(f, "CallDone(Err({e:?}))"),
        }
    }
}

/// The handle of a cross-shard call returning `R`: turns its [`CallDone`] back into `R`.
pub struct Called<R> {
    _value: PhantomData<fn() -> R>,
}

impl<R> Clone for Called<R> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<R> Copy for Called<R> {}

impl<R> fmt::Debug for Called<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Called<{}>", std::any::type_name::<R>())
    }
}

impl<R: 'static> Called<R> {
    /// A handle for calls returning `R` (making a call returns one).
    pub fn new() -> Self {
        Called {
            _value: PhantomData,
        }
    }

    /// The call's value, or why there is none.
    pub fn result(self, done: CallDone) -> Result<R, CallError> {
        done.value?
            .downcast::<R>()
            .map(|v| *v)
            .map_err(|_| CallError::WrongType(std::any::type_name::<R>()))
    }
}

impl<R: 'static> Default for Called<R> {
    fn default() -> Self {
        Self::new()
    }
}

/// A value sent with a [`Notifier`](crate::Notifier), delivered on the connection's shard.
pub struct Notification {
    id: u64,
    value: Box<dyn Any + Send>,
}

impl Notification {
    pub(crate) fn new(id: u64, value: Box<dyn Any + Send>) -> Self {
        Notification { id, value }
    }

    /// The id of the notifier that sent it ([`Notifier::id`](crate::Notifier::id)).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// True if the value is a `T`.
    pub fn is<T: 'static>(&self) -> bool {
        self.value.is::<T>()
    }

    /// The value as a `T`, or the notification back if it holds another type.
    pub fn take<T: 'static>(self) -> Result<T, Notification> {
        let id = self.id;
        self.value
            .downcast::<T>()
            .map(|v| *v)
            .map_err(|value| Notification { id, value })
    }

    /// The type-erased value, for protocols that route it on.
    pub fn into_inner(self) -> Box<dyn Any + Send> {
        self.value
    }
}

impl fmt::Debug for Notification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Notification({})", self.id)
    }
}

/// A value posted to this connection by another one of its shard
/// ([`Io::post`](crate::Io::post)), delivered on a later turn.
pub struct Posted {
    from: Option<ConnToken>,
    value: Box<dyn Any>,
}

impl Posted {
    pub(crate) fn new(from: Option<ConnToken>, value: Box<dyn Any>) -> Self {
        Posted { from, value }
    }

    /// The connection that posted it (`None`: a shard callback did).
    pub fn from(&self) -> Option<ConnToken> {
        self.from
    }

    /// True if the value is a `T`.
    pub fn is<T: 'static>(&self) -> bool {
        self.value.is::<T>()
    }

    /// The value as a `T`, or the post back if it holds another type.
    pub fn take<T: 'static>(self) -> Result<T, Posted> {
        let from = self.from;
        self.value
            .downcast::<T>()
            .map(|v| *v)
            .map_err(|value| Posted { from, value })
    }

    /// The type-erased value, for protocols that route it on.
    pub fn into_inner(self) -> Box<dyn Any> {
        self.value
    }
}

impl fmt::Debug for Posted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Posted(from {:?})", self.from)
    }
}

/// Where a cross-shard call's outcome goes back to, on the calling shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReplyTo {
    /// A connection (its `on_event` gets `Event::CallDone`).
    Conn(ConnToken),
    /// The shard's handler (`on_shard` gets `ShardEvent::CallDone` with this tag).
    Shard(u64),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handle_reads_its_calls_value_and_refuses_another_type() {
        let done = CallDone::new(Ok(Box::new(7u64)));
        assert_eq!(Called::<u64>::new().result(done), Ok(7));
        let done = CallDone::new(Ok(Box::new("x")));
        assert!(matches!(
            Called::<u64>::new().result(done),
            Err(CallError::WrongType(_))
        ));
        let done = CallDone::new(Err(CallError::ShardGone));
        assert_eq!(Called::<u64>::new().result(done), Err(CallError::ShardGone));
    }

    #[test]
    fn a_notification_gives_back_its_value_only_as_its_type() {
        let n = Notification::new(3, Box::new(String::from("hi")));
        let n = n.take::<u64>().unwrap_err();
        assert_eq!(n.id(), 3);
        assert_eq!(n.take::<String>().unwrap(), "hi");
    }
}
