//! [`Notifier`]: a handle that any thread holds to send a value to one connection, on
//! the shard that owns it, through that shard's mailbox.
//!
//! The handle names the connection by token (slot and generation): a value for a
//! connection that closed meanwhile, its slot maybe reused, is counted and dropped by
//! the shard, never delivered to the slot's next tenant. When the last clone goes
//! without a value ever sent, the connection hears of it, so nothing waits for ever.

use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::call::Notification;
use crate::mailbox::{Mailbox, ShardMsg};
use crate::token::ConnToken;

/// Sends values of type `T` to one connection from any thread; made by
/// [`Io::notifier`](crate::Io::notifier). Cheap to clone (`Send + Sync`).
///
/// Each [`Notifier::notify`] arrives as [`Event::Notified`](crate::Event::Notified) on
/// the connection's shard, in the order sent from one thread. If every clone is dropped
/// and no value was ever sent, the connection gets
/// [`Event::NotifierDropped`](crate::Event::NotifierDropped) instead. Neither reaches a
/// connection that has closed (a value for one is counted as `notify_dropped`). Once
/// the shard has exited, values are dropped where they are sent (`notify` returns
/// false).
pub struct Notifier<T> {
    inner: Arc<Inner>,
    _value: PhantomData<fn(T)>,
}

struct Inner {
    mailbox: Mailbox,
    token: ConnToken,
    id: u64,
    notified: AtomicBool,
}

impl<T: Send + 'static> Notifier<T> {
    pub(crate) fn new(mailbox: Mailbox, token: ConnToken, id: u64) -> Self {
        Notifier {
            inner: Arc::new(Inner {
                mailbox,
                token,
                id,
                notified: AtomicBool::new(false),
            }),
            _value: PhantomData,
        }
    }

    /// Sends `value` to the connection. Never blocks. False if the shard has exited
    /// (the value is dropped); true does not mean the connection is still open.
    pub fn notify(&self, value: T) -> bool {
        let inner = &*self.inner;
        inner.notified.store(true, Ordering::Release);
        inner.mailbox.send(ShardMsg::Notified {
            token: inner.token,
            notification: Notification::new(inner.id, Box::new(value)),
        })
    }
}

impl<T> Notifier<T> {
    /// This notifier's id, unique on its shard: [`Notification::id`] and
    /// `Event::NotifierDropped` carry it, to tell apart several pending notifiers of one
    /// connection.
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// The connection it notifies.
    pub fn token(&self) -> ConnToken {
        self.inner.token
    }
}

impl<T> Clone for Notifier<T> {
    fn clone(&self) -> Self {
        Notifier {
            inner: self.inner.clone(),
            _value: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Notifier<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Notifier<{}>({} for {:?})",
            std::any::type_name::<T>(),
            self.inner.id,
            self.inner.token
        )
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if !self.notified.load(Ordering::Acquire) {
            self.mailbox.send(ShardMsg::NotifierDropped {
                token: self.token,
                id: self.id,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync + Clone>() {}

    #[test]
    fn a_notifier_crosses_threads() {
        // Not `Send` itself: the value type does not make the handle less shareable.
        assert_send_sync::<Notifier<String>>();
    }
}
