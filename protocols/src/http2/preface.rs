//! The client connection preface (RFC 9113 section 3.4).
//!
//! Owns recognising the 24 fixed bytes a client sends first, including in a cleartext
//! listener that also serves HTTP/1.1 (h2c with prior knowledge): the check says as soon
//! as the bytes so far cannot be the preface. The SETTINGS frame that must follow is the
//! connection's to check.

/// The 24 bytes every HTTP/2 client connection starts with.
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What the first bytes of a connection say about the preface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrefaceCheck {
    /// The whole preface is here; frames start after its 24 bytes.
    Complete,
    /// Everything so far matches; more bytes are needed to tell.
    Partial,
    /// Not the preface (on a shared cleartext port: not HTTP/2, try HTTP/1.1).
    Mismatch,
}

/// Checks the start of `buf` against [`PREFACE`].
pub fn check_preface(buf: &[u8]) -> PrefaceCheck {
    let n = buf.len().min(PREFACE.len());
    if buf.get(..n) != PREFACE.get(..n) {
        PrefaceCheck::Mismatch
    } else if n == PREFACE.len() {
        PrefaceCheck::Complete
    } else {
        PrefaceCheck::Partial
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 9113 section 3.4: every prefix is partial, the whole is complete, any other
    /// byte is a mismatch (an HTTP/1.1 request is recognised at its first byte but "P").
    #[test]
    fn preface_prefixes_and_mismatches() {
        assert_eq!(check_preface(b""), PrefaceCheck::Partial);
        for n in 1..PREFACE.len() {
            assert_eq!(check_preface(&PREFACE[..n]), PrefaceCheck::Partial, "{n}");
            let mut bad = PREFACE[..n].to_vec();
            bad[n - 1] ^= 0x20;
            assert_eq!(check_preface(&bad), PrefaceCheck::Mismatch, "{n}");
        }
        let mut more = PREFACE.to_vec();
        more.extend_from_slice(b"\0\0\0\x04");
        assert_eq!(check_preface(&more), PrefaceCheck::Complete);
        assert_eq!(check_preface(b"GET / HTTP/1.1\r\n"), PrefaceCheck::Mismatch);
        assert_eq!(check_preface(b"PRI * HTTP/1.1\r\n"), PrefaceCheck::Mismatch);
    }
}
