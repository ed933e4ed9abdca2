//! Request body decoding: `Content-Length` and `Transfer-Encoding: chunked`.
//!
//! The chunked decoder is a byte-level state machine that can stop and resume at any
//! byte boundary, so it never needs its input contiguous: the connection feeds it what
//! arrived and it hands back the data parts as sub-slices of that input (no copy here).
//! Chunk extensions are validated and skipped; trailer fields are validated and
//! dropped (nothing in this server acts on them).
//!
//! It must never panic and never trust a length: chunk sizes are parsed with overflow
//! checks, the size line and trailer section are bounded, and the decoded total is
//! checked against the body limit as it grows.

use super::limits::MAX_CHUNK_LINE;

/// Why a body could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// Malformed chunked framing: bad or overflowing chunk size, missing CRLF, invalid
    /// extension or trailer (400, then close: the rest of the stream cannot be framed).
    #[error("malformed chunked body: {0}")]
    BadChunk(&'static str),
    /// The decoded body exceeds the body limit (413).
    #[error("request body too large")]
    TooLarge,
    /// The trailer section exceeds the header-bytes limit (431).
    #[error("trailer section too large")]
    TrailersTooLarge,
}

impl BodyError {
    /// The response status for this error.
    pub fn status(&self) -> u16 {
        match self {
            BodyError::BadChunk(_) => 400,
            BodyError::TooLarge => 413,
            BodyError::TrailersTooLarge => 431,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// In the hex digits of a chunk size.
    Size,
    /// After the size, in whitespace or extensions, up to CR.
    Ext,
    /// Saw CR after the size line; LF must follow.
    SizeLf,
    /// In chunk data, `remaining` bytes to go.
    Data,
    /// After chunk data; CR must follow.
    DataCr,
    /// After chunk data and CR; LF must follow.
    DataLf,
    /// At the start of a trailer line (or the final CRLF).
    TrailerStart,
    /// In a trailer field name, up to the colon.
    TrailerName,
    /// In a trailer field value, up to CR.
    TrailerValue,
    /// Saw CR at the end of a trailer line; LF must follow.
    TrailerLf,
    /// Saw the CR of the final empty line; LF must follow.
    EndLf,
    /// The body is complete.
    Done,
}

/// Incremental decoder for a chunked body.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    /// Chunk size being parsed, then bytes left in the current chunk.
    remaining: u64,
    /// Hex digits seen in the current size (at least one is required).
    digits: u32,
    /// Bytes seen in the current size line, bounded by [`MAX_CHUNK_LINE`].
    line: usize,
    /// Data bytes decoded so far, bounded by `max_body`.
    total: u64,
    max_body: u64,
    /// Trailer bytes seen so far, bounded by `max_trailer`.
    trailer: usize,
    max_trailer: usize,
}

/// RFC 9110 tchar: the bytes allowed in a field name.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Field-value and extension bytes: visible ASCII, obs-text, SP and HTAB; no CTLs.
fn is_text(b: u8) -> bool {
    b == b'\t' || (b >= 0x20 && b != 0x7f)
}

impl ChunkedDecoder {
    /// A decoder for one body of at most `max_body` decoded bytes and at most
    /// `max_trailer` bytes of trailer fields.
    pub fn new(max_body: u64, max_trailer: usize) -> Self {
        ChunkedDecoder {
            state: State::Size,
            remaining: 0,
            digits: 0,
            line: 0,
            total: 0,
            max_body,
            trailer: 0,
            max_trailer,
        }
    }

    /// True once the last chunk, trailers and final CRLF have been decoded.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decoded body bytes so far.
    pub fn decoded(&self) -> u64 {
        self.total
    }

    /// Decodes from `input`, passing each piece of chunk data to `data` as a sub-slice of
    /// `input`. Returns how many bytes of `input` were consumed: all of them unless the
    /// body ended inside `input`, in which case the rest belongs to the next request.
    pub fn decode<'a>(
        &mut self,
        input: &'a [u8],
        data: &mut impl FnMut(&'a [u8]),
    ) -> Result<usize, BodyError> {
        let mut pos = 0;
        while let Some(&b) = input.get(pos) {
            match self.state {
                State::Done => break,
                State::Data => {
                    let avail = input.get(pos..).unwrap_or_default();
                    let take = usize::try_from(self.remaining)
                        .unwrap_or(usize::MAX)
                        .min(avail.len());
                    let piece = avail.get(..take).unwrap_or_default();
                    data(piece);
                    // take <= remaining, so neither of these can underflow or overflow.
                    self.remaining -= take as u64;
                    pos += take;
                    if self.remaining == 0 {
                        self.state = State::DataCr;
                    }
                    continue;
                }
                State::Size => {
                    self.bump_line()?;
                    if let Some(d) = (b as char).to_digit(16) {
                        self.remaining = self
                            .remaining
                            .checked_mul(16)
                            .and_then(|v| v.checked_add(u64::from(d)))
                            .ok_or(BodyError::BadChunk("chunk size overflows"))?;
                        self.digits += 1;
                    } else if self.digits == 0 {
                        return Err(BodyError::BadChunk("missing chunk size"));
                    } else if b == b'\r' {
                        self.state = State::SizeLf;
                    } else if b == b';' || b == b' ' || b == b'\t' {
                        self.state = State::Ext;
                    } else {
                        return Err(BodyError::BadChunk("invalid chunk size"));
                    }
                }
                State::Ext => {
                    self.bump_line()?;
                    if b == b'\r' {
                        self.state = State::SizeLf;
                    } else if !is_text(b) {
                        return Err(BodyError::BadChunk("invalid chunk extension"));
                    }
                }
                State::SizeLf => {
                    if b != b'\n' {
                        return Err(BodyError::BadChunk("chunk size line not ended by CRLF"));
                    }
                    if self.remaining == 0 {
                        self.state = State::TrailerStart;
                    } else {
                        // Checked before any data arrives, so an oversized chunk is
                        // refused without buffering a byte of it.
                        let total = self
                            .total
                            .checked_add(self.remaining)
                            .ok_or(BodyError::TooLarge)?;
                        if total > self.max_body {
                            return Err(BodyError::TooLarge);
                        }
                        self.total = total;
                        self.state = State::Data;
                    }
                }
                State::DataCr => {
                    if b != b'\r' {
                        return Err(BodyError::BadChunk("chunk data not followed by CRLF"));
                    }
                    self.state = State::DataLf;
                }
                State::DataLf => {
                    if b != b'\n' {
                        return Err(BodyError::BadChunk("chunk data not followed by CRLF"));
                    }
                    self.state = State::Size;
                    self.digits = 0;
                    self.line = 0;
                }
                State::TrailerStart => {
                    self.bump_trailer()?;
                    if b == b'\r' {
                        self.state = State::EndLf;
                    } else if is_tchar(b) {
                        self.state = State::TrailerName;
                    } else {
                        return Err(BodyError::BadChunk("invalid trailer field"));
                    }
                }
                State::TrailerName => {
                    self.bump_trailer()?;
                    if b == b':' {
                        self.state = State::TrailerValue;
                    } else if !is_tchar(b) {
                        return Err(BodyError::BadChunk("invalid trailer field name"));
                    }
                }
                State::TrailerValue => {
                    self.bump_trailer()?;
                    if b == b'\r' {
                        self.state = State::TrailerLf;
                    } else if !is_text(b) {
                        return Err(BodyError::BadChunk("invalid trailer field value"));
                    }
                }
                State::TrailerLf => {
                    self.bump_trailer()?;
                    if b != b'\n' {
                        return Err(BodyError::BadChunk("trailer line not ended by CRLF"));
                    }
                    self.state = State::TrailerStart;
                }
                State::EndLf => {
                    if b != b'\n' {
                        return Err(BodyError::BadChunk("chunked body not ended by CRLF"));
                    }
                    self.state = State::Done;
                }
            }
            pos += 1;
        }
        Ok(pos)
    }

    fn bump_line(&mut self) -> Result<(), BodyError> {
        self.line += 1;
        if self.line > MAX_CHUNK_LINE {
            return Err(BodyError::BadChunk("chunk size line too long"));
        }
        Ok(())
    }

    fn bump_trailer(&mut self) -> Result<(), BodyError> {
        self.trailer += 1;
        if self.trailer > self.max_trailer {
            return Err(BodyError::TrailersTooLarge);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` whole; returns (body, consumed, done).
    fn decode(input: &[u8]) -> Result<(Vec<u8>, usize, bool), BodyError> {
        let mut d = ChunkedDecoder::new(1 << 20, 1024);
        let mut body = Vec::new();
        let n = d.decode(input, &mut |p| body.extend_from_slice(p))?;
        Ok((body, n, d.is_done()))
    }

    #[test]
    fn basic() {
        let r = decode(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\nNEXT").unwrap();
        assert_eq!(r.0, b"hello world");
        assert_eq!(r.1, 26);
        assert!(r.2);
    }

    #[test]
    fn extensions_and_trailers() {
        let r = decode(b"5;a=b;c=\"d e\"\r\nhello\r\n0 ; last\r\nX-Sum: 1\r\nY:\r\n\r\n").unwrap();
        assert_eq!(r.0, b"hello");
        assert!(r.2);
    }

    #[test]
    fn upper_hex_and_leading_zeros() {
        let body = vec![b'x'; 0x1A];
        let mut input = b"001A\r\n".to_vec();
        input.extend_from_slice(&body);
        input.extend_from_slice(b"\r\n000\r\n\r\n");
        let r = decode(&input).unwrap();
        assert_eq!(r.0, body);
        assert!(r.2);
    }

    #[test]
    fn every_split_point_gives_the_same_body() {
        let input = b"5;x\r\nhello\r\n1\r\n!\r\n0\r\nT: v\r\n\r\n";
        for split in 0..=input.len() {
            let mut d = ChunkedDecoder::new(100, 100);
            let mut body = Vec::new();
            let (a, b) = input.split_at(split);
            let n = d.decode(a, &mut |p| body.extend_from_slice(p)).unwrap();
            assert_eq!(n, a.len());
            let m = d.decode(b, &mut |p| body.extend_from_slice(p)).unwrap();
            assert_eq!(m, b.len());
            assert!(d.is_done());
            assert_eq!(body, b"hello!");
        }
    }

    #[test]
    fn bad_sizes() {
        for bad in [
            &b"\r\n"[..],
            b"g\r\n",
            b"-1\r\n",
            b"0x5\r\n",
            b"+5\r\n",
            b"5\nhello\r\n",
            b"5\r\nhelloXX",
            b"5\r\nhello\n0\r\n\r\n",
            b"10000000000000000\r\n",
            b"ffffffffffffffffff\r\n",
            b";\r\n",
            b"5;\x01\r\n",
            b"0\r\n\r\r",
            b"0\r\n x: y\r\n\r\n",
            b"0\r\nbad name: y\r\n\r\n",
        ] {
            let r = decode(bad);
            assert!(
                matches!(r, Err(BodyError::BadChunk(_))),
                "{:?} -> {r:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn size_line_bounded() {
        let mut line = b"1;".to_vec();
        line.extend(std::iter::repeat_n(b'a', MAX_CHUNK_LINE));
        assert!(matches!(decode(&line), Err(BodyError::BadChunk(_))));
    }

    #[test]
    fn body_limit() {
        let mut d = ChunkedDecoder::new(4, 100);
        assert_eq!(
            d.decode(b"5\r\n", &mut |_| {}),
            Err(BodyError::TooLarge),
            "refused at the size line, before any data"
        );
        let mut d = ChunkedDecoder::new(4, 100);
        let r = d.decode(b"2\r\nab\r\n3\r\n", &mut |_| {});
        assert_eq!(r, Err(BodyError::TooLarge));
        let mut d = ChunkedDecoder::new(4, 100);
        assert!(d
            .decode(b"2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n", &mut |_| {})
            .is_ok());
        assert!(d.is_done());
    }

    #[test]
    fn trailer_limit() {
        let mut d = ChunkedDecoder::new(4, 8);
        let r = d.decode(b"0\r\nX-Long: 123456\r\n\r\n", &mut |_| {});
        assert_eq!(r, Err(BodyError::TrailersTooLarge));
    }

    #[test]
    fn huge_size_within_u64_but_over_limit() {
        let r = decode(b"ffffffffffffffff\r\n");
        assert_eq!(r, Err(BodyError::TooLarge));
    }
}
