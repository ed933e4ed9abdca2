//! SETTINGS parameters (RFC 9113 section 6.5.2): their identifiers, their legal ranges,
//! and the set of values they configure.
//!
//! This module owns the check of one parameter against its range and the defaults a
//! connection starts from. Which side's settings are in force, and when (after the ACK),
//! is the connection's business.

use super::{DEFAULT_MAX_FRAME_SIZE, MAX_MAX_FRAME_SIZE, MAX_WINDOW_SIZE};
use crate::http2::error::{ErrorCode, FrameError};

/// Setting identifiers (section 6.5.2).
pub mod id {
    /// SETTINGS_HEADER_TABLE_SIZE.
    pub const HEADER_TABLE_SIZE: u16 = 0x1;
    /// SETTINGS_ENABLE_PUSH.
    pub const ENABLE_PUSH: u16 = 0x2;
    /// SETTINGS_MAX_CONCURRENT_STREAMS.
    pub const MAX_CONCURRENT_STREAMS: u16 = 0x3;
    /// SETTINGS_INITIAL_WINDOW_SIZE.
    pub const INITIAL_WINDOW_SIZE: u16 = 0x4;
    /// SETTINGS_MAX_FRAME_SIZE.
    pub const MAX_FRAME_SIZE: u16 = 0x5;
    /// SETTINGS_MAX_HEADER_LIST_SIZE.
    pub const MAX_HEADER_LIST_SIZE: u16 = 0x6;
}

/// One known setting with a value inside its legal range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    /// The largest HPACK dynamic table the sender's decoder allows.
    HeaderTableSize(u32),
    /// Whether server push is allowed (only 0 or 1 are legal).
    EnablePush(bool),
    /// The most streams the sender lets the receiver open.
    MaxConcurrentStreams(u32),
    /// The sender's initial stream-level receive window (at most 2^31-1).
    InitialWindowSize(u32),
    /// The largest frame payload the sender accepts (2^14 to 2^24-1).
    MaxFrameSize(u32),
    /// The largest field section the sender accepts (advisory).
    MaxHeaderListSize(u32),
}

impl Setting {
    /// Checks one parameter. `Ok(None)`: an identifier this implementation does not know,
    /// which section 6.5.2 says to ignore.
    pub fn from_wire(id: u16, value: u32) -> Result<Option<Self>, FrameError> {
        Ok(Some(match id {
            id::HEADER_TABLE_SIZE => Setting::HeaderTableSize(value),
            id::ENABLE_PUSH => match value {
                0 => Setting::EnablePush(false),
                1 => Setting::EnablePush(true),
                _ => {
                    return Err(FrameError::protocol(
                        "SETTINGS_ENABLE_PUSH other than 0 or 1",
                    ))
                }
            },
            id::MAX_CONCURRENT_STREAMS => Setting::MaxConcurrentStreams(value),
            id::INITIAL_WINDOW_SIZE if value > MAX_WINDOW_SIZE => {
                return Err(FrameError::conn(
                    ErrorCode::FlowControlError,
                    "SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1",
                ))
            }
            id::INITIAL_WINDOW_SIZE => Setting::InitialWindowSize(value),
            id::MAX_FRAME_SIZE
                if !(DEFAULT_MAX_FRAME_SIZE..=MAX_MAX_FRAME_SIZE).contains(&value) =>
            {
                return Err(FrameError::protocol(
                    "SETTINGS_MAX_FRAME_SIZE outside 2^14..2^24-1",
                ))
            }
            id::MAX_FRAME_SIZE => Setting::MaxFrameSize(value),
            id::MAX_HEADER_LIST_SIZE => Setting::MaxHeaderListSize(value),
            _ => return Ok(None),
        }))
    }

    /// The identifier and value as sent.
    pub fn to_wire(self) -> (u16, u32) {
        match self {
            Setting::HeaderTableSize(v) => (id::HEADER_TABLE_SIZE, v),
            Setting::EnablePush(v) => (id::ENABLE_PUSH, u32::from(v)),
            Setting::MaxConcurrentStreams(v) => (id::MAX_CONCURRENT_STREAMS, v),
            Setting::InitialWindowSize(v) => (id::INITIAL_WINDOW_SIZE, v),
            Setting::MaxFrameSize(v) => (id::MAX_FRAME_SIZE, v),
            Setting::MaxHeaderListSize(v) => (id::MAX_HEADER_LIST_SIZE, v),
        }
    }
}

/// A decoded SETTINGS frame. Its parameters were all checked when it was decoded, so
/// iterating them cannot fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SettingsFrame<'a> {
    /// The ACK flag (then there are no parameters).
    pub ack: bool,
    /// The raw parameters, six bytes each.
    payload: &'a [u8],
}

impl<'a> SettingsFrame<'a> {
    /// Checks every parameter of a payload whose length is a multiple of six.
    pub(crate) fn parse(ack: bool, payload: &'a [u8]) -> Result<Self, FrameError> {
        for p in payload.chunks_exact(6) {
            let (id, value) = split_param(p);
            Setting::from_wire(id, value)?;
        }
        Ok(SettingsFrame { ack, payload })
    }

    /// The known parameters, in the order sent (later ones win, section 6.5.3); unknown
    /// identifiers are skipped.
    pub fn iter(&self) -> impl Iterator<Item = Setting> + 'a {
        self.payload.chunks_exact(6).filter_map(|p| {
            let (id, value) = split_param(p);
            Setting::from_wire(id, value).ok().flatten()
        })
    }
}

fn split_param(p: &[u8]) -> (u16, u32) {
    match *p {
        [a, b, c, d, e, f] => (u16::from_be_bytes([a, b]), u32::from_be_bytes([c, d, e, f])),
        // chunks_exact(6) never yields anything else; an id of 0 is unknown and ignored.
        _ => (0, 0),
    }
}

/// The values one side's SETTINGS establish, starting from the defaults of section 6.5.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// SETTINGS_HEADER_TABLE_SIZE (default 4096).
    pub header_table_size: u32,
    /// SETTINGS_ENABLE_PUSH (default true).
    pub enable_push: bool,
    /// SETTINGS_MAX_CONCURRENT_STREAMS (default: no limit).
    pub max_concurrent_streams: Option<u32>,
    /// SETTINGS_INITIAL_WINDOW_SIZE (default 65535).
    pub initial_window_size: u32,
    /// SETTINGS_MAX_FRAME_SIZE (default 16384).
    pub max_frame_size: u32,
    /// SETTINGS_MAX_HEADER_LIST_SIZE (default: no limit).
    pub max_header_list_size: Option<u32>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            header_table_size: 4096,
            enable_push: true,
            max_concurrent_streams: None,
            initial_window_size: 65_535,
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            max_header_list_size: None,
        }
    }
}

impl Settings {
    /// Applies one parameter.
    pub fn apply(&mut self, s: Setting) {
        match s {
            Setting::HeaderTableSize(v) => self.header_table_size = v,
            Setting::EnablePush(v) => self.enable_push = v,
            Setting::MaxConcurrentStreams(v) => self.max_concurrent_streams = Some(v),
            Setting::InitialWindowSize(v) => self.initial_window_size = v,
            Setting::MaxFrameSize(v) => self.max_frame_size = v,
            Setting::MaxHeaderListSize(v) => self.max_header_list_size = Some(v),
        }
    }
}
