//! Request body decoding: `Content-Length` and `Transfer-Encoding: chunked`.
//!
//! The chunked decoder is a byte-level state machine that can stop and resume at any
//! byte boundary, so it never needs its input contiguous: the connection feeds it what
//! arrived and it hands back the data parts as sub-slices of that input (no copy here).
//! Chunk extensions are validated and skipped; trailer fields are validated and kept
//! (bounded by the trailer limit) for [`ChunkedDecoder::trailers`].
//!
//! It must never panic and never trust a length: chunk sizes are parsed with overflow
//! checks, the size line and trailer section are bounded, and the decoded total is
//! checked against the body limit as it grows.

use super::client::{FieldsView, Span};
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
    /// Return after each piece of data and before the trailer section, instead of
    /// decoding all of the input (the client role takes one event per call).
    stepwise: bool,
    /// The trailer fields' lines as they arrived (`name:value` then CRLF each), then
    /// their spans once the section is complete; boxed, so a body without trailers
    /// costs one pointer and no allocation.
    fields: Option<Box<(Vec<u8>, Vec<Span>)>>,
}

/// RFC 9110 tchar: the bytes allowed in a field name.
pub(crate) fn is_tchar(b: u8) -> bool {
    crate::http1::encode::TCHAR[usize::from(b)]
}

/// Field-value and extension bytes: visible ASCII, obs-text, SP and HTAB; no CTLs.
pub(crate) fn is_text(b: u8) -> bool {
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
            stepwise: false,
            fields: None,
        }
    }

    /// A decoder whose [`decode`](Self::decode) returns right after handing over one
    /// piece of data, and right after the last-chunk line, leaving the trailer section
    /// unconsumed for the caller to parse ([`at_trailers`](Self::at_trailers) is then
    /// true, and the decoder must not be fed again).
    pub(crate) fn stepwise(max_body: u64) -> Self {
        ChunkedDecoder {
            stepwise: true,
            ..ChunkedDecoder::new(max_body, 0)
        }
    }

    /// True when a [`stepwise`](Self::stepwise) decoder has read the last chunk and the
    /// trailer section comes next.
    pub(crate) fn at_trailers(&self) -> bool {
        self.stepwise && self.state == State::TrailerStart
    }

    /// True once the last chunk, trailers and final CRLF have been decoded.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decoded body bytes so far.
    pub fn decoded(&self) -> u64 {
        self.total
    }

    /// The trailer fields that ended the body (RFC 9112 section 7.1.2), once
    /// [`is_done`](Self::is_done); empty before, and for a body without any. Every field
    /// as sent: pass on only those [`trailer_allowed`](super::encode::trailer_allowed)
    /// accepts.
    pub fn trailers(&self) -> FieldsView<'_> {
        match &self.fields {
            Some(f) if self.state == State::Done => FieldsView::new(&f.0, &f.1),
            _ => FieldsView::empty(),
        }
    }

    /// Keeps a byte of a trailer line (its CR and LF included).
    fn keep(&mut self, b: u8) {
        self.fields.get_or_insert_with(Box::default).0.push(b);
    }

    /// The section is complete: the spans of its fields (name up to the colon, value
    /// with its surrounding whitespace trimmed), over lines the state machine checked.
    fn index_fields(&mut self) {
        let Some(f) = self.fields.as_mut() else {
            return;
        };
        let (bytes, spans) = &mut **f;
        spans.clear();
        let mut start = 0;
        while let Some(len) = bytes
            .get(start..)
            .and_then(|r| r.windows(2).position(|w| w == b"\r\n"))
        {
            let line = bytes.get(start..start + len).unwrap_or_default();
            if let Some(colon) = line.iter().position(|&b| b == b':') {
                let value = line.get(colon + 1..).unwrap_or_default();
                let lead = value
                    .iter()
                    .take_while(|&&b| b == b' ' || b == b'\t')
                    .count();
                let trail = value
                    .iter()
                    .rev()
                    .take_while(|&&b| b == b' ' || b == b'\t')
                    .count();
                let vlen = value.len().saturating_sub(lead + trail);
                spans.push(Span::new((start, colon), (start + colon + 1 + lead, vlen)));
            }
            start += len + 2;
        }
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
                    if self.stepwise {
                        return Ok(pos);
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
                        if self.stepwise {
                            return Ok(pos + 1);
                        }
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
                        self.keep(b);
                        self.state = State::TrailerName;
                    } else {
                        return Err(BodyError::BadChunk("invalid trailer field"));
                    }
                }
                State::TrailerName => {
                    self.bump_trailer()?;
                    self.keep(b);
                    if b == b':' {
                        self.state = State::TrailerValue;
                    } else if !is_tchar(b) {
                        return Err(BodyError::BadChunk("invalid trailer field name"));
                    }
                }
                State::TrailerValue => {
                    self.bump_trailer()?;
                    self.keep(b);
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
                    self.keep(b);
                    self.state = State::TrailerStart;
                }
                State::EndLf => {
                    if b != b'\n' {
                        return Err(BodyError::BadChunk("chunked body not ended by CRLF"));
                    }
                    self.state = State::Done;
                    self.index_fields();
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
mod tests;
