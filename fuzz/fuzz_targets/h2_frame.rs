//! HTTP/2 frame decoding: arbitrary bytes decoded as a sequence of frames never panic,
//! never claim more bytes than they were given, and a stream error always names a
//! frame that is all there. The first input byte picks the smallest legal or the
//! largest max frame size, so both the size check and long payloads get exercised.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringmaster_protocols::http2::frame::{
    decode, Frame, DEFAULT_MAX_FRAME_SIZE, FRAME_HEADER_LEN, MAX_MAX_FRAME_SIZE,
};
use ringmaster_protocols::http2::FrameError;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, mut rest)) = data.split_first() else {
        return;
    };
    let max = if mode & 1 == 0 {
        DEFAULT_MAX_FRAME_SIZE
    } else {
        MAX_MAX_FRAME_SIZE
    };
    loop {
        match decode(rest, max) {
            Ok(Some((frame, n))) => {
                assert!(n >= FRAME_HEADER_LEN && n <= rest.len());
                assert!(n - FRAME_HEADER_LEN <= max as usize);
                match frame {
                    Frame::Settings(s) => s.iter().for_each(drop),
                    Frame::WindowUpdate { increment, .. } => assert!(increment > 0),
                    Frame::Data(d) => assert!(d.data.len() <= d.flow_len as usize),
                    _ => {}
                }
                rest = &rest[n..];
            }
            Ok(None) => return,
            Err(FrameError::Stream { frame_len, .. }) => {
                assert!(frame_len <= rest.len());
                rest = &rest[frame_len..];
            }
            Err(FrameError::Connection { .. }) => return,
        }
    }
});
