//! Prefix-coded integers (RFC 7541 section 5.1).
//!
//! Owns both directions and the overflow bound: a peer can send any number of
//! continuation bytes, so decoding stops at five of them and at values above `u32::MAX`,
//! which no HPACK quantity (an index, a string length, a table size) can legitimately
//! reach.

use super::HpackError;

/// Most continuation bytes accepted: 5 x 7 bits covers `u32::MAX` above any prefix.
const MAX_CONTINUATION_BYTES: u32 = 5;

/// Decodes an integer with an `n`-bit prefix (1 to 8) starting at `buf[*pos]`, and moves
/// `pos` past it.
pub(crate) fn decode(buf: &[u8], pos: &mut usize, n: u8) -> Result<usize, HpackError> {
    let max_prefix = (1u32 << n) - 1;
    let first = u32::from(*buf.get(*pos).ok_or(HpackError::Truncated)?) & max_prefix;
    *pos += 1;
    if first < max_prefix {
        return Ok(first as usize);
    }
    let mut value = u64::from(max_prefix);
    let mut shift = 0;
    loop {
        let b = *buf.get(*pos).ok_or(HpackError::Truncated)?;
        *pos += 1;
        value += u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift >= 7 * MAX_CONTINUATION_BYTES {
            return Err(HpackError::IntegerOverflow);
        }
    }
    u32::try_from(value)
        .map(|v| v as usize)
        .map_err(|_| HpackError::IntegerOverflow)
}

/// Appends `value` with an `n`-bit prefix; `flags` holds the bits above the prefix.
pub(crate) fn encode(out: &mut Vec<u8>, flags: u8, n: u8, value: usize) {
    let max_prefix = (1usize << n) - 1;
    if value < max_prefix {
        out.push(flags | value as u8);
        return;
    }
    out.push(flags | max_prefix as u8);
    let mut rest = value - max_prefix;
    while rest >= 0x80 {
        out.push((rest & 0x7f) as u8 | 0x80);
        rest >>= 7;
    }
    out.push(rest as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7541 C.1.1-C.1.3: 10 in a 5-bit prefix, 1337 in a 5-bit prefix, 42 at an
    /// octet boundary.
    #[test]
    fn appendix_c1() {
        for (value, n, wire) in [
            (10usize, 5u8, &[0x0a][..]),
            (1337, 5, &[0x1f, 0x9a, 0x0a]),
            (42, 8, &[0x2a]),
        ] {
            let mut out = Vec::new();
            encode(&mut out, 0, n, value);
            assert_eq!(out, wire);
            let mut pos = 0;
            assert_eq!(decode(wire, &mut pos, n), Ok(value));
            assert_eq!(pos, wire.len());
        }
    }

    /// Section 5.1 puts no bound on the encoding; ours rejects what would overflow, and
    /// a truncated integer asks for nothing more (a header block is always complete).
    #[test]
    fn huge_and_truncated_integers_fail_cleanly() {
        let mut pos = 0;
        assert_eq!(
            decode(
                &[0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
                &mut pos,
                5
            ),
            Err(HpackError::IntegerOverflow)
        );
        // Five continuation bytes but a value above u32::MAX.
        let mut pos = 0;
        assert_eq!(
            decode(&[0xff, 0xff, 0xff, 0xff, 0xff, 0x7f], &mut pos, 8),
            Err(HpackError::IntegerOverflow)
        );
        let mut pos = 0;
        assert_eq!(
            decode(&[0x1f, 0x9a], &mut pos, 5),
            Err(HpackError::Truncated)
        );
        let mut pos = 0;
        assert_eq!(decode(&[], &mut pos, 5), Err(HpackError::Truncated));
        // u32::MAX itself round-trips.
        let mut out = Vec::new();
        encode(&mut out, 0, 5, u32::MAX as usize);
        let mut pos = 0;
        assert_eq!(decode(&out, &mut pos, 5), Ok(u32::MAX as usize));
    }
}
