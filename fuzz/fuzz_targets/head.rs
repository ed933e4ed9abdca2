//! Request-head parsing: never panics, and a complete head never claims more bytes than
//! it was given. The first input byte picks tight or default limits so both the limit
//! paths and the full parser get exercised.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringmaster_protocols::http1::head::{header_buf, parse_head};
use ringmaster_protocols::http1::Limits;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, buf)) = data.split_first() else {
        return;
    };
    let limits = if mode & 1 == 0 {
        Limits::default()
    } else {
        Limits {
            max_request_line: 64,
            max_header_bytes: 256,
            max_headers: 4,
            max_body: 1024,
            ..Limits::default()
        }
    };
    let mut headers = header_buf();
    match parse_head(buf, &mut headers, &limits) {
        Ok(Some(head)) => {
            assert!(head.len() <= buf.len());
            assert!(head.len() <= limits.max_header_bytes);
            assert!(head.headers().len() <= limits.header_count());
            let _ = (head.method(), head.target(), head.body(), head.keep_alive());
        }
        Ok(None) => assert!(buf.len() <= limits.max_header_bytes),
        Err(e) => assert!(matches!(e.status(), 400 | 413 | 414 | 431 | 501 | 505)),
    }
});
