//! Huffman coding of string literals (RFC 7541 section 5.2, code in Appendix B).
//!
//! Owns the code table and both directions. Decoding is table driven: a 512-entry table
//! answers every code of 9 bits or fewer (all the characters header fields mostly use) in
//! one look-up; longer codes fall back to the canonical-code ranges, one compare per
//! length. The tables are built at compile time from Appendix B. Decoding rejects the EOS
//! symbol, padding longer than 7 bits and padding that is not all ones (section 5.2).

use super::HpackError;

/// (code, length in bits) for each symbol 0..=255 and EOS (256): RFC 7541 Appendix B.
#[rustfmt::skip]
const CODES: [(u32, u8); 257] = [
    (0x1ff8, 13), (0x7fffd8, 23), (0xfffffe2, 28), (0xfffffe3, 28),
    (0xfffffe4, 28), (0xfffffe5, 28), (0xfffffe6, 28), (0xfffffe7, 28),
    (0xfffffe8, 28), (0xffffea, 24), (0x3ffffffc, 30), (0xfffffe9, 28),
    (0xfffffea, 28), (0x3ffffffd, 30), (0xfffffeb, 28), (0xfffffec, 28),
    (0xfffffed, 28), (0xfffffee, 28), (0xfffffef, 28), (0xffffff0, 28),
    (0xffffff1, 28), (0xffffff2, 28), (0x3ffffffe, 30), (0xffffff3, 28),
    (0xffffff4, 28), (0xffffff5, 28), (0xffffff6, 28), (0xffffff7, 28),
    (0xffffff8, 28), (0xffffff9, 28), (0xffffffa, 28), (0xffffffb, 28),
    (0x14, 6), (0x3f8, 10), (0x3f9, 10), (0xffa, 12),
    (0x1ff9, 13), (0x15, 6), (0xf8, 8), (0x7fa, 11),
    (0x3fa, 10), (0x3fb, 10), (0xf9, 8), (0x7fb, 11),
    (0xfa, 8), (0x16, 6), (0x17, 6), (0x18, 6),
    (0x0, 5), (0x1, 5), (0x2, 5), (0x19, 6),
    (0x1a, 6), (0x1b, 6), (0x1c, 6), (0x1d, 6),
    (0x1e, 6), (0x1f, 6), (0x5c, 7), (0xfb, 8),
    (0x7ffc, 15), (0x20, 6), (0xffb, 12), (0x3fc, 10),
    (0x1ffa, 13), (0x21, 6), (0x5d, 7), (0x5e, 7),
    (0x5f, 7), (0x60, 7), (0x61, 7), (0x62, 7),
    (0x63, 7), (0x64, 7), (0x65, 7), (0x66, 7),
    (0x67, 7), (0x68, 7), (0x69, 7), (0x6a, 7),
    (0x6b, 7), (0x6c, 7), (0x6d, 7), (0x6e, 7),
    (0x6f, 7), (0x70, 7), (0x71, 7), (0x72, 7),
    (0xfc, 8), (0x73, 7), (0xfd, 8), (0x1ffb, 13),
    (0x7fff0, 19), (0x1ffc, 13), (0x3ffc, 14), (0x22, 6),
    (0x7ffd, 15), (0x3, 5), (0x23, 6), (0x4, 5),
    (0x24, 6), (0x5, 5), (0x25, 6), (0x26, 6),
    (0x27, 6), (0x6, 5), (0x74, 7), (0x75, 7),
    (0x28, 6), (0x29, 6), (0x2a, 6), (0x7, 5),
    (0x2b, 6), (0x76, 7), (0x2c, 6), (0x8, 5),
    (0x9, 5), (0x2d, 6), (0x77, 7), (0x78, 7),
    (0x79, 7), (0x7a, 7), (0x7b, 7), (0x7ffe, 15),
    (0x7fc, 11), (0x3ffd, 14), (0x1ffd, 13), (0xffffffc, 28),
    (0xfffe6, 20), (0x3fffd2, 22), (0xfffe7, 20), (0xfffe8, 20),
    (0x3fffd3, 22), (0x3fffd4, 22), (0x3fffd5, 22), (0x7fffd9, 23),
    (0x3fffd6, 22), (0x7fffda, 23), (0x7fffdb, 23), (0x7fffdc, 23),
    (0x7fffdd, 23), (0x7fffde, 23), (0xffffeb, 24), (0x7fffdf, 23),
    (0xffffec, 24), (0xffffed, 24), (0x3fffd7, 22), (0x7fffe0, 23),
    (0xffffee, 24), (0x7fffe1, 23), (0x7fffe2, 23), (0x7fffe3, 23),
    (0x7fffe4, 23), (0x1fffdc, 21), (0x3fffd8, 22), (0x7fffe5, 23),
    (0x3fffd9, 22), (0x7fffe6, 23), (0x7fffe7, 23), (0xffffef, 24),
    (0x3fffda, 22), (0x1fffdd, 21), (0xfffe9, 20), (0x3fffdb, 22),
    (0x3fffdc, 22), (0x7fffe8, 23), (0x7fffe9, 23), (0x1fffde, 21),
    (0x7fffea, 23), (0x3fffdd, 22), (0x3fffde, 22), (0xfffff0, 24),
    (0x1fffdf, 21), (0x3fffdf, 22), (0x7fffeb, 23), (0x7fffec, 23),
    (0x1fffe0, 21), (0x1fffe1, 21), (0x3fffe0, 22), (0x1fffe2, 21),
    (0x7fffed, 23), (0x3fffe1, 22), (0x7fffee, 23), (0x7fffef, 23),
    (0xfffea, 20), (0x3fffe2, 22), (0x3fffe3, 22), (0x3fffe4, 22),
    (0x7ffff0, 23), (0x3fffe5, 22), (0x3fffe6, 22), (0x7ffff1, 23),
    (0x3ffffe0, 26), (0x3ffffe1, 26), (0xfffeb, 20), (0x7fff1, 19),
    (0x3fffe7, 22), (0x7ffff2, 23), (0x3fffe8, 22), (0x1ffffec, 25),
    (0x3ffffe2, 26), (0x3ffffe3, 26), (0x3ffffe4, 26), (0x7ffffde, 27),
    (0x7ffffdf, 27), (0x3ffffe5, 26), (0xfffff1, 24), (0x1ffffed, 25),
    (0x7fff2, 19), (0x1fffe3, 21), (0x3ffffe6, 26), (0x7ffffe0, 27),
    (0x7ffffe1, 27), (0x3ffffe7, 26), (0x7ffffe2, 27), (0xfffff2, 24),
    (0x1fffe4, 21), (0x1fffe5, 21), (0x3ffffe8, 26), (0x3ffffe9, 26),
    (0xffffffd, 28), (0x7ffffe3, 27), (0x7ffffe4, 27), (0x7ffffe5, 27),
    (0xfffec, 20), (0xfffff3, 24), (0xfffed, 20), (0x1fffe6, 21),
    (0x3fffe9, 22), (0x1fffe7, 21), (0x1fffe8, 21), (0x7ffff3, 23),
    (0x3fffea, 22), (0x3fffeb, 22), (0x1ffffee, 25), (0x1ffffef, 25),
    (0xfffff4, 24), (0xfffff5, 24), (0x3ffffea, 26), (0x7ffff4, 23),
    (0x3ffffeb, 26), (0x7ffffe6, 27), (0x3ffffec, 26), (0x3ffffed, 26),
    (0x7ffffe7, 27), (0x7ffffe8, 27), (0x7ffffe9, 27), (0x7ffffea, 27),
    (0x7ffffeb, 27), (0xffffffe, 28), (0x7ffffec, 27), (0x7ffffed, 27),
    (0x7ffffee, 27), (0x7ffffef, 27), (0x7fffff0, 27), (0x3ffffee, 26),
    (0x3fffffff, 30),
];

/// The end-of-string symbol, which must never be decoded.
const EOS: u16 = 256;
/// Bits the fast table looks at.
const FAST_BITS: u32 = 9;
/// The longest code.
const MAX_LEN: usize = 30;

/// The code is canonical (checked by a test): the codes of one length are consecutive,
/// in symbol order. These describe each length's range.
struct Canonical {
    /// First code of each length.
    first: [u32; MAX_LEN + 1],
    /// How many codes each length has.
    count: [u32; MAX_LEN + 1],
    /// Where each length's symbols start in `syms`.
    offset: [u16; MAX_LEN + 1],
    /// Symbols ordered by (length, symbol).
    syms: [u16; 257],
    /// Indexed by the next 9 bits: `symbol << 4 | length` for codes up to 9 bits, else 0.
    fast: [u16; 1 << FAST_BITS],
}

const TABLES: Canonical = build();

const fn build() -> Canonical {
    let mut t = Canonical {
        first: [0; MAX_LEN + 1],
        count: [0; MAX_LEN + 1],
        offset: [0; MAX_LEN + 1],
        syms: [0; 257],
        fast: [0; 1 << FAST_BITS],
    };
    let mut n = 0;
    let mut len = 1;
    while len <= MAX_LEN {
        t.offset[len] = n as u16;
        let mut s = 0;
        while s < 257 {
            let (code, l) = CODES[s];
            if l as usize == len {
                if t.count[len] == 0 {
                    t.first[len] = code;
                }
                t.count[len] += 1;
                t.syms[n] = s as u16;
                n += 1;
                if len as u32 <= FAST_BITS {
                    let spare = FAST_BITS - len as u32;
                    let base = (code << spare) as usize;
                    let mut k = 0;
                    while k < (1 << spare) {
                        t.fast[base + k] = ((s as u16) << 4) | len as u16;
                        k += 1;
                    }
                }
            }
            s += 1;
        }
        len += 1;
    }
    t
}

/// Appends the decoding of `src` to `dst`.
pub(crate) fn decode(src: &[u8], dst: &mut Vec<u8>) -> Result<(), HpackError> {
    // Decoded text is at most 8/5 of the input (the shortest code is 5 bits).
    dst.reserve(src.len() + src.len() / 2 + 1);
    let t = &TABLES;
    // Bits are kept left-aligned in `acc`; `nbits` of them are input.
    let mut acc: u64 = 0;
    let mut nbits: u32 = 0;
    let mut input = src.iter();
    loop {
        while nbits <= 56 {
            let Some(&b) = input.next() else { break };
            acc |= u64::from(b) << (56 - nbits);
            nbits += 8;
        }
        if nbits == 0 {
            return Ok(());
        }
        let e = t.fast[(acc >> (64 - FAST_BITS)) as usize];
        let (sym, len) = if e != 0 && u32::from(e & 0xF) <= nbits {
            (e >> 4, u32::from(e & 0xF))
        } else {
            match slow(t, acc, nbits) {
                Some(found) => found,
                None => {
                    // No whole code left: what remains must be padding, at most 7 bits,
                    // all ones (a prefix of EOS). With more input left a code would
                    // always have been found: the code is complete.
                    let ones = !0u64 << (64 - nbits);
                    return if nbits <= 7 && acc & ones == ones {
                        Ok(())
                    } else {
                        Err(HpackError::InvalidHuffman)
                    };
                }
            }
        };
        if sym == EOS {
            return Err(HpackError::InvalidHuffman);
        }
        dst.push(sym as u8);
        acc <<= len;
        nbits -= len;
    }
}

/// Finds a code longer than the fast table covers (or a short one near the end).
#[cold]
fn slow(t: &Canonical, acc: u64, nbits: u32) -> Option<(u16, u32)> {
    let mut len = 5;
    while len <= MAX_LEN && len as u32 <= nbits {
        let code = (acc >> (64 - len)) as u32;
        let i = code.wrapping_sub(t.first[len]);
        if i < t.count[len] {
            let sym = *t.syms.get(usize::from(t.offset[len]) + i as usize)?;
            return Some((sym, len as u32));
        }
        len += 1;
    }
    None
}

/// The length of the Huffman encoding of `src`, in bytes.
pub(crate) fn encoded_len(src: &[u8]) -> usize {
    let bits: usize = src
        .iter()
        .map(|&b| usize::from(CODES[usize::from(b)].1))
        .sum();
    bits.div_ceil(8)
}

/// Appends the Huffman encoding of `src`, padded with ones to a whole byte.
pub(crate) fn encode(src: &[u8], dst: &mut Vec<u8>) {
    dst.reserve(encoded_len(src));
    let mut acc: u64 = 0;
    let mut nbits: u32 = 0;
    for &b in src {
        let (code, len) = CODES[usize::from(b)];
        acc = (acc << len) | u64::from(code);
        nbits += u32::from(len);
        while nbits >= 8 {
            nbits -= 8;
            dst.push((acc >> nbits) as u8);
        }
    }
    if nbits > 0 {
        let pad = 8 - nbits;
        dst.push(((acc << pad) | ((1 << pad) - 1)) as u8);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Appendix B's code is canonical, which the decoder's range look-up relies on.
    #[test]
    fn code_is_canonical() {
        let mut order: Vec<usize> = (0..257).collect();
        order.sort_by_key(|&s| (CODES[s].1, s));
        for w in order.windows(2) {
            let (c0, l0) = CODES[w[0]];
            let (c1, l1) = CODES[w[1]];
            assert_eq!(c1, (c0 + 1) << (l1 - l0), "symbols {} {}", w[0], w[1]);
        }
    }

    /// RFC 7541 C.4.1: "www.example.com".
    #[test]
    fn appendix_c4_string() {
        let enc = [
            0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff,
        ];
        let mut out = Vec::new();
        decode(&enc, &mut out).unwrap();
        assert_eq!(out, b"www.example.com");
        let mut back = Vec::new();
        encode(b"www.example.com", &mut back);
        assert_eq!(back, enc);
        assert_eq!(encoded_len(b"www.example.com"), enc.len());
    }

    /// Section 5.2: every byte value round-trips, including the 30-bit codes.
    #[test]
    fn all_bytes_round_trip() {
        let all: Vec<u8> = (0..=255).collect();
        let mut enc = Vec::new();
        encode(&all, &mut enc);
        let mut dec = Vec::new();
        decode(&enc, &mut dec).unwrap();
        assert_eq!(dec, all);
    }

    /// Section 5.2: padding longer than 7 bits, padding not all ones, and an EOS symbol
    /// are decoding errors.
    #[test]
    fn bad_padding_and_eos() {
        let mut out = Vec::new();
        // 'a' is 00011 (5 bits); 0x1f pads with 3 ones: fine.
        assert!(decode(&[0x1f], &mut out).is_ok());
        assert_eq!(out, b"a");
        // 'a' then 3 zero bits: padding not ones.
        assert_eq!(decode(&[0x18], &mut out), Err(HpackError::InvalidHuffman));
        // A full byte of ones after a symbol: padding of 11 bits.
        assert_eq!(
            decode(&[0x1f, 0xff], &mut out),
            Err(HpackError::InvalidHuffman)
        );
        // EOS itself: 30 ones, then two more padding ones.
        assert_eq!(
            decode(&[0xff, 0xff, 0xff, 0xff], &mut out),
            Err(HpackError::InvalidHuffman)
        );
        // Nothing at all is the empty string; a lone byte of ones is 8 bits of padding.
        out.clear();
        assert!(decode(&[], &mut out).is_ok());
        assert!(out.is_empty());
        assert_eq!(decode(&[0xff], &mut out), Err(HpackError::InvalidHuffman));
    }
}
