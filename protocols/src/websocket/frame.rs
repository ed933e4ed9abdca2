//! RFC 6455 frame headers: decoding what clients send, encoding what the server sends.
//!
//! This module owns the wire layout of one frame and nothing else: no message assembly,
//! no UTF-8, no connection state. Decoding never panics on any input: every length comes
//! from the wire as a `u64` and is checked before it is used.

/// A frame's opcode (RFC 6455 section 5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpCode {
    /// A later fragment of a message.
    Continuation,
    /// The first (or only) frame of a text message.
    Text,
    /// The first (or only) frame of a binary message.
    Binary,
    /// Close.
    Close,
    /// Ping.
    Ping,
    /// Pong.
    Pong,
}

impl OpCode {
    /// The opcode's wire value.
    pub fn bits(self) -> u8 {
        match self {
            OpCode::Continuation => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xA,
        }
    }

    /// The opcode for a wire value; `None` for the reserved ones.
    pub fn from_bits(b: u8) -> Option<Self> {
        Some(match b {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xA => OpCode::Pong,
            _ => return None,
        })
    }

    /// Close, ping and pong: at most 125 bytes, never fragmented.
    pub fn is_control(self) -> bool {
        matches!(self, OpCode::Close | OpCode::Ping | OpCode::Pong)
    }
}

/// The largest payload a control frame may carry.
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// A decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Last frame of its message.
    pub fin: bool,
    /// RSV1..3 as the low three bits (must be zero without an extension).
    pub rsv: u8,
    /// The opcode.
    pub opcode: OpCode,
    /// The masking key, if the frame is masked (client frames must be).
    pub mask: Option<[u8; 4]>,
    /// Payload length as sent.
    pub payload_len: u64,
    /// Header length in bytes (2 to 14): the payload starts here.
    pub header_len: usize,
}

/// Why a header could not be decoded. Each maps to close code 1002.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderError {
    /// An opcode RFC 6455 reserves.
    ReservedOpcode(u8),
    /// A 64-bit length with its most significant bit set.
    LengthTooLarge,
}

/// Decodes the header at the start of `buf`. `Ok(None)`: not all of it is here yet.
pub fn decode_header(buf: &[u8]) -> Result<Option<FrameHeader>, HeaderError> {
    let (Some(&b0), Some(&b1)) = (buf.first(), buf.get(1)) else {
        return Ok(None);
    };
    let fin = b0 & 0x80 != 0;
    let rsv = (b0 >> 4) & 0x7;
    let op = b0 & 0x0F;
    let opcode = OpCode::from_bits(op).ok_or(HeaderError::ReservedOpcode(op))?;
    let masked = b1 & 0x80 != 0;
    let (payload_len, mut pos) = match b1 & 0x7F {
        126 => {
            let Some(b) = buf.get(2..4) else {
                return Ok(None);
            };
            // A longer form than needed is accepted: the minimal encoding binds senders.
            (u64::from(u16::from_be_bytes([b[0], b[1]])), 4)
        }
        127 => {
            let Some(b) = buf.get(2..10) else {
                return Ok(None);
            };
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            let n = u64::from_be_bytes(a);
            if n >> 63 != 0 {
                return Err(HeaderError::LengthTooLarge);
            }
            (n, 10)
        }
        n => (u64::from(n), 2),
    };
    let mask = if masked {
        let Some(b) = buf.get(pos..pos + 4) else {
            return Ok(None);
        };
        pos += 4;
        Some([b[0], b[1], b[2], b[3]])
    } else {
        None
    };
    Ok(Some(FrameHeader {
        fin,
        rsv,
        opcode,
        mask,
        payload_len,
        header_len: pos,
    }))
}

/// Appends `src` unmasked with `key` to `dst`, where `offset` is how many payload bytes
/// of the frame came before `src` (so a payload split across reads unmasks correctly).
pub fn unmask_into(dst: &mut Vec<u8>, src: &[u8], key: [u8; 4], offset: u64) {
    let start = dst.len();
    dst.extend_from_slice(src);
    unmask_in_place(dst.get_mut(start..).unwrap_or_default(), key, offset);
}

/// Unmasks (or masks: the operation is its own inverse) `buf` in place; `offset` as for
/// [`unmask_into`].
pub fn unmask_in_place(buf: &mut [u8], key: [u8; 4], offset: u64) {
    // Rotate the key so that index 0 of `buf` lines up with key[offset % 4].
    let r = (offset % 4) as usize;
    let k = [key[r], key[(r + 1) % 4], key[(r + 2) % 4], key[(r + 3) % 4]];
    let word = u32::from_ne_bytes(k);
    let mut chunks = buf.chunks_exact_mut(4);
    for c in &mut chunks {
        let v = u32::from_ne_bytes([c[0], c[1], c[2], c[3]]) ^ word;
        c.copy_from_slice(&v.to_ne_bytes());
    }
    for (b, m) in chunks.into_remainder().iter_mut().zip(k) {
        *b ^= m;
    }
}

/// Appends a server frame header (never masked) for a payload of `len` bytes.
pub fn encode_header(out: &mut Vec<u8>, fin: bool, opcode: OpCode, len: usize) {
    let b0 = if fin { 0x80 } else { 0 } | opcode.bits();
    out.push(b0);
    if len < 126 {
        out.push(len as u8);
    } else if let Ok(n) = u16::try_from(len) {
        out.push(126);
        out.extend_from_slice(&n.to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
}

/// Appends a whole, unfragmented server frame.
pub fn encode_frame(out: &mut Vec<u8>, opcode: OpCode, payload: &[u8]) {
    encode_header(out, true, opcode, payload.len());
    out.extend_from_slice(payload);
}

/// Appends a close frame with `code` and `reason` (the reason cut to fit 125 bytes at a
/// character boundary), or an empty close frame when `code` is `None`.
pub fn encode_close(out: &mut Vec<u8>, code: Option<u16>, reason: &str) {
    match code {
        None => encode_frame(out, OpCode::Close, &[]),
        Some(code) => {
            let mut end = reason.len().min(MAX_CONTROL_PAYLOAD - 2);
            while !reason.is_char_boundary(end) {
                end -= 1;
            }
            let reason = reason.get(..end).unwrap_or_default();
            encode_header(out, true, OpCode::Close, 2 + reason.len());
            out.extend_from_slice(&code.to_be_bytes());
            out.extend_from_slice(reason.as_bytes());
        }
    }
}

/// A masked client frame, as a client would send it (for tests).
#[cfg(test)]
pub(crate) fn client_frame(fin: bool, op: u8, payload: &[u8], key: [u8; 4]) -> Vec<u8> {
    tests::client_frame_impl(fin, op, payload, key)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn client_frame_impl(fin: bool, op: u8, payload: &[u8], key: [u8; 4]) -> Vec<u8> {
        let mut v = vec![if fin { 0x80 } else { 0 } | op];
        let n = payload.len();
        if n < 126 {
            v.push(0x80 | n as u8);
        } else if n <= 0xFFFF {
            v.push(0x80 | 126);
            v.extend_from_slice(&(n as u16).to_be_bytes());
        } else {
            v.push(0x80 | 127);
            v.extend_from_slice(&(n as u64).to_be_bytes());
        }
        v.extend_from_slice(&key);
        let start = v.len();
        v.extend_from_slice(payload);
        unmask_in_place(&mut v[start..], key, 0);
        v
    }

    #[test]
    fn header_forms() {
        for n in [0usize, 1, 125, 126, 127, 65535, 65536, 1 << 20] {
            let payload = vec![7u8; n];
            let f = client_frame(true, 2, &payload, [1, 2, 3, 4]);
            let h = decode_header(&f).unwrap().unwrap();
            assert_eq!(h.payload_len, n as u64);
            assert_eq!(h.header_len + n, f.len());
            assert_eq!(h.mask, Some([1, 2, 3, 4]));
            assert!(h.fin);
            assert_eq!(h.opcode, OpCode::Binary);
            // Every strict prefix of the header is "need more".
            for cut in 0..h.header_len {
                assert_eq!(decode_header(&f[..cut]).unwrap(), None);
            }
            let mut out = Vec::new();
            encode_frame(&mut out, OpCode::Binary, &payload);
            let h2 = decode_header(&out).unwrap().unwrap();
            assert_eq!((h2.payload_len, h2.mask), (n as u64, None));
        }
    }

    #[test]
    fn header_errors() {
        assert_eq!(
            decode_header(&[0x83, 0x80]),
            Err(HeaderError::ReservedOpcode(3))
        );
        assert_eq!(
            decode_header(&[0x8B, 0x80]),
            Err(HeaderError::ReservedOpcode(0xB))
        );
        assert_eq!(
            decode_header(&[0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0]),
            Err(HeaderError::LengthTooLarge)
        );
        assert_eq!(
            decode_header(&[0x82, 0x7E, 0, 5])
                .unwrap()
                .unwrap()
                .payload_len,
            5
        );
        let h = decode_header(&[0xF2, 0x00]).unwrap().unwrap();
        assert_eq!(h.rsv, 7);
    }

    #[test]
    fn unmask_at_any_offset() {
        let key = [0xA1, 0xB2, 0xC3, 0xD4];
        let plain: Vec<u8> = (0..=255u8).cycle().take(1003).collect();
        let mut masked = plain.clone();
        unmask_in_place(&mut masked, key, 0);
        for split in [0usize, 1, 2, 3, 5, 500, 1002, 1003] {
            let mut out = Vec::new();
            unmask_into(&mut out, &masked[..split], key, 0);
            unmask_into(&mut out, &masked[split..], key, split as u64);
            assert_eq!(out, plain, "split at {split}");
        }
    }

    #[test]
    fn close_reason_is_cut_at_a_char_boundary() {
        let reason = "é".repeat(100);
        let mut out = Vec::new();
        encode_close(&mut out, Some(1000), &reason);
        let h = decode_header(&out).unwrap().unwrap();
        assert!(h.payload_len <= 125);
        let body = &out[h.header_len..];
        assert!(std::str::from_utf8(&body[2..]).is_ok());
    }
}
