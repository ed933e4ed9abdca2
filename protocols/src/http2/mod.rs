//! HTTP/2 (RFC 9113), the sans-IO layers under the connection state machine.
//!
//! - [`frame`]: the frame codec: every frame type of section 6 decoded in place from a
//!   byte slice with the checks one frame allows, and encoders for what a server sends;
//! - [`hpack`]: header compression (RFC 7541): a decoder with a bounded dynamic table and
//!   a bounded decoded list, and an encoder that indexes repeated response fields;
//! - [`error`]: the error codes of section 7 and whether an error ends a stream or the
//!   connection;
//! - [`preface`]: the client connection preface (section 3.4);
//! - `conn`: the connection state machine (streams, flow control, SETTINGS, GOAWAY,
//!   the defences) serving the same [`App`](crate::http1::App) as HTTP/1.1; its
//!   settings and counters are [`H2Config`] and [`H2Counters`].
//!
//! Nothing here touches a socket: [`Http`](crate::http1::Http) detects the preface on a
//! cleartext connection and drives the connection state machine from the runtime.

pub(crate) mod conn;
pub mod error;
pub mod frame;
pub mod hpack;
pub mod preface;

pub use conn::config::{H2Config, H2Counters};
pub use error::{ErrorCode, FrameError};
pub use frame::{decode, Frame};
pub use preface::{check_preface, PrefaceCheck, PREFACE};
