//! How an application timer is told apart from the protocol's own timer, and which
//! exchange it belongs to, within the one `u64` tag a driver's timer carries.
//!
//! This module owns the tag layout only: bit 63 set marks an application timer, bits
//! 32..63 hold the exchange's sequence number, bits 0..32 the application's own tag. The
//! protocol's timer uses tags with bit 63 clear. It never arms or fires anything.

/// Tag bit marking a timer as the application's (the protocol's own timer has it clear).
pub(crate) const APP_TIMER: u64 = 1 << 63;
/// Exchange sequence numbers wrap within 31 bits so they fit in an application timer tag.
pub(crate) const SEQ_MASK: u32 = 0x7fff_ffff;

/// Packs an application timer tag: the flag, the exchange's sequence number, the app's tag.
pub(crate) fn app_timer_tag(seq: u32, tag: u32) -> u64 {
    APP_TIMER | (u64::from(seq & SEQ_MASK) << 32) | u64::from(tag)
}

/// Splits an application timer tag into (sequence number, app tag); `None` for the
/// protocol's own timer.
pub(crate) fn split_app_tag(tag: u64) -> Option<(u32, u32)> {
    if tag & APP_TIMER == 0 {
        return None;
    }
    Some((((tag >> 32) as u32) & SEQ_MASK, tag as u32))
}
