//! Incremental UTF-8 validation for text messages that arrive in pieces.
//!
//! A text message may be split across frames and reads at any byte, including inside a
//! character. This validator keeps at most three bytes of an unfinished character and
//! fails as soon as a prefix can no longer become valid UTF-8 (the standard library's
//! validator reports an invalid prefix as an error even at the end of its input, and an
//! unfinished but valid prefix as `error_len() == None`), so a client sending invalid
//! text is stopped at the first bad byte, not at the end of a long message.

/// Streaming UTF-8 validator state (five bytes; no allocation).
#[derive(Debug, Default, Clone, Copy)]
pub struct Utf8Validator {
    pending: [u8; 4],
    len: u8,
}

/// The bytes fed so far can never be valid UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidUtf8;

impl Utf8Validator {
    /// A validator at the start of a message.
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks the next piece of the message.
    pub fn feed(&mut self, mut data: &[u8]) -> Result<(), InvalidUtf8> {
        if self.len > 0 {
            // Finish the character left open by the previous piece, one byte at a time.
            while let Some((&b, rest)) = data.split_first() {
                let n = usize::from(self.len);
                if n >= 4 {
                    return Err(InvalidUtf8);
                }
                self.pending[n] = b;
                self.len += 1;
                data = rest;
                match std::str::from_utf8(&self.pending[..n + 1]) {
                    Ok(_) => {
                        self.len = 0;
                        break;
                    }
                    Err(e) if e.error_len().is_some() => return Err(InvalidUtf8),
                    Err(_) => {}
                }
            }
            if self.len > 0 {
                return Ok(()); // still unfinished, and `data` is used up
            }
        }
        match std::str::from_utf8(data) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_some() => Err(InvalidUtf8),
            Err(e) => {
                let tail = data.get(e.valid_up_to()..).unwrap_or_default();
                if tail.len() > 3 {
                    return Err(InvalidUtf8);
                }
                self.pending[..tail.len()].copy_from_slice(tail);
                self.len = tail.len() as u8;
                Ok(())
            }
        }
    }

    /// The message ended: valid only if no character is left unfinished. Resets.
    pub fn finish(&mut self) -> Result<(), InvalidUtf8> {
        let open = self.len != 0;
        *self = Self::default();
        if open {
            Err(InvalidUtf8)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_all_splits(bytes: &[u8]) -> bool {
        let whole = std::str::from_utf8(bytes).is_ok();
        for a in 0..=bytes.len() {
            for b in a..=bytes.len() {
                let mut v = Utf8Validator::new();
                let r = v
                    .feed(&bytes[..a])
                    .and_then(|_| v.feed(&bytes[a..b]))
                    .and_then(|_| v.feed(&bytes[b..]))
                    .and_then(|_| v.finish());
                assert_eq!(r.is_ok(), whole, "{bytes:x?} split {a},{b}");
            }
        }
        whole
    }

    #[test]
    fn splits_agree_with_std() {
        assert!(check_all_splits("κόσμε".as_bytes()));
        assert!(check_all_splits("a€𝄞z".as_bytes()));
        assert!(!check_all_splits(&[
            0xCE, 0xBA, 0xE1, 0xBD, 0xB9, 0xCF, 0x83, 0xED, 0xA0, 0x80, 0x65
        ]));
        assert!(!check_all_splits(&[0xF4, 0x90, 0x80, 0x80]));
        assert!(!check_all_splits(&[0xC0, 0xAF]));
        assert!(!check_all_splits(&[0xE2, 0x82]));
        assert!(!check_all_splits(&[0xFF]));
    }

    #[test]
    fn fails_fast_on_an_invalid_prefix() {
        let mut v = Utf8Validator::new();
        // 0xF4 0x90 can never start a valid character (above U+10FFFF).
        assert!(v.feed(&[b'a', 0xF4]).is_ok());
        assert_eq!(v.feed(&[0x90]), Err(InvalidUtf8));
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(&[0xED, 0xA0]), Err(InvalidUtf8)); // surrogate
    }

    #[test]
    fn exhaustive_short_sequences() {
        // Every 1..=3 byte sequence over an interesting alphabet, all splits.
        let alphabet = [
            0x00, 0x41, 0x7F, 0x80, 0xBF, 0xC2, 0xDF, 0xE0, 0xED, 0xEF, 0xF0, 0xF4, 0xF5, 0xFF,
            0xA0, 0x90,
        ];
        for &a in &alphabet {
            check_all_splits(&[a]);
            for &b in &alphabet {
                check_all_splits(&[a, b]);
                for &c in &alphabet {
                    check_all_splits(&[a, b, c]);
                    check_all_splits(&[0xF0, a, b, c]);
                }
            }
        }
    }
}
