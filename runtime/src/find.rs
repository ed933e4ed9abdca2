//! A handler as a cross-shard call's work sees it: something to search by type. A leaf
//! of its own, so that the handler API (which names `Io`) and `Io` (which sends the
//! work) do not name each other.

use std::any::{Any, TypeId};

/// A handler searched by type (the handler trait itself is not object-safe: its `Conn`
/// type differs per protocol). Every `Handler` is one, through `find_in`.
pub(crate) trait FindHandler {
    /// `find_in` on this handler: itself if it is of type `ty`, else what it wraps.
    fn find_handler(&mut self, ty: TypeId) -> Option<&mut dyn Any>;
}
