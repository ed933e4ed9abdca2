//! RFC 7541 Appendix C, the bounds, and properties of the decoder and encoder together.

use super::*;
use proptest::prelude::*;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

type Fields = Vec<(Vec<u8>, Vec<u8>)>;

fn decode_all(d: &mut Decoder, block: &[u8]) -> Result<Fields, HpackError> {
    let mut out = Vec::new();
    d.decode(block, |f| out.push((f.name.to_vec(), f.value.to_vec())))?;
    Ok(out)
}

fn fields(list: &[(&str, &str)]) -> Fields {
    list.iter()
        .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect()
}

/// One step of an Appendix C sequence: the block, the fields it decodes to, the dynamic
/// table after it (newest first) and the table's size.
struct Step<'a> {
    block: &'a str,
    fields: &'a [(&'a str, &'a str)],
    table: &'a [(&'a str, &'a str)],
    size: usize,
}

fn run(d: &mut Decoder, steps: &[Step<'_>]) {
    for (i, s) in steps.iter().enumerate() {
        assert_eq!(
            decode_all(d, &hex(s.block)).unwrap(),
            fields(s.fields),
            "step {i}"
        );
        assert_eq!(d.entries(), fields(s.table), "step {i}");
        assert_eq!(d.table_size(), s.size, "step {i}");
    }
}

/// C.2.1: literal field with indexing.
#[test]
fn c2_1_literal_with_indexing() {
    let mut d = Decoder::new(1 << 16);
    run(
        &mut d,
        &[Step {
            block: "400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572",
            fields: &[("custom-key", "custom-header")],
            table: &[("custom-key", "custom-header")],
            size: 55,
        }],
    );
}

/// C.2.2: literal field without indexing (indexed name).
#[test]
fn c2_2_literal_without_indexing() {
    let mut d = Decoder::new(1 << 16);
    run(
        &mut d,
        &[Step {
            block: "040c 2f73 616d 706c 652f 7061 7468",
            fields: &[(":path", "/sample/path")],
            table: &[],
            size: 0,
        }],
    );
}

/// C.2.3: literal field never indexed, reported as sensitive.
#[test]
fn c2_3_literal_never_indexed() {
    let mut d = Decoder::new(1 << 16);
    let mut got = Vec::new();
    d.decode(&hex("1008 7061 7373 776f 7264 0673 6563 7265 74"), |f| {
        got.push((f.name.to_vec(), f.value.to_vec(), f.sensitive))
    })
    .unwrap();
    assert_eq!(got, vec![(b"password".to_vec(), b"secret".to_vec(), true)]);
    assert_eq!(d.table_len(), 0);
}

/// C.2.4: indexed field.
#[test]
fn c2_4_indexed() {
    let mut d = Decoder::new(1 << 16);
    run(
        &mut d,
        &[Step {
            block: "82",
            fields: &[(":method", "GET")],
            table: &[],
            size: 0,
        }],
    );
}

const REQ1: &[(&str, &str)] = &[
    (":method", "GET"),
    (":scheme", "http"),
    (":path", "/"),
    (":authority", "www.example.com"),
];
const REQ2: &[(&str, &str)] = &[
    (":method", "GET"),
    (":scheme", "http"),
    (":path", "/"),
    (":authority", "www.example.com"),
    ("cache-control", "no-cache"),
];
const REQ3: &[(&str, &str)] = &[
    (":method", "GET"),
    (":scheme", "https"),
    (":path", "/index.html"),
    (":authority", "www.example.com"),
    ("custom-key", "custom-value"),
];
const REQ_T1: &[(&str, &str)] = &[(":authority", "www.example.com")];
const REQ_T2: &[(&str, &str)] = &[
    ("cache-control", "no-cache"),
    (":authority", "www.example.com"),
];
const REQ_T3: &[(&str, &str)] = &[
    ("custom-key", "custom-value"),
    ("cache-control", "no-cache"),
    (":authority", "www.example.com"),
];

const C3: [&str; 3] = [
    "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
    "8286 84be 5808 6e6f 2d63 6163 6865",
    "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
];
const C4: [&str; 3] = [
    "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
    "8286 84be 5886 a8eb 1064 9cbf",
    "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
];

fn request_steps(blocks: [&'static str; 3]) -> [Step<'static>; 3] {
    [
        Step {
            block: blocks[0],
            fields: REQ1,
            table: REQ_T1,
            size: 57,
        },
        Step {
            block: blocks[1],
            fields: REQ2,
            table: REQ_T2,
            size: 110,
        },
        Step {
            block: blocks[2],
            fields: REQ3,
            table: REQ_T3,
            size: 164,
        },
    ]
}

/// C.3: three requests, no Huffman, one dynamic table.
#[test]
fn c3_requests_without_huffman() {
    run(&mut Decoder::new(1 << 16), &request_steps(C3));
}

/// C.4: the same requests, Huffman coded.
#[test]
fn c4_requests_with_huffman() {
    run(&mut Decoder::new(1 << 16), &request_steps(C4));
}

/// C.4 from the encoder's side: its policy (static matches, indexing, Huffman when
/// shorter) produces the RFC's blocks byte for byte.
#[test]
fn c4_encoder_reproduces_the_blocks() {
    let mut e = Encoder::new(4096);
    for (req, block) in [REQ1, REQ2, REQ3].iter().zip(C4) {
        let mut out = Vec::new();
        e.encode(
            req.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())),
            &mut out,
        );
        assert_eq!(out, hex(block));
    }
    assert_eq!(e.entries(), fields(REQ_T3));
    assert_eq!(e.table_size(), 164);
}

const RESP1: &[(&str, &str)] = &[
    (":status", "302"),
    ("cache-control", "private"),
    ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
    ("location", "https://www.example.com"),
];
const RESP2: &[(&str, &str)] = &[
    (":status", "307"),
    ("cache-control", "private"),
    ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
    ("location", "https://www.example.com"),
];
const RESP3: &[(&str, &str)] = &[
    (":status", "200"),
    ("cache-control", "private"),
    ("date", "Mon, 21 Oct 2013 20:13:22 GMT"),
    ("location", "https://www.example.com"),
    ("content-encoding", "gzip"),
    (
        "set-cookie",
        "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1",
    ),
];
const RESP_T1: &[(&str, &str)] = &[
    ("location", "https://www.example.com"),
    ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
    ("cache-control", "private"),
    (":status", "302"),
];
const RESP_T2: &[(&str, &str)] = &[
    (":status", "307"),
    ("location", "https://www.example.com"),
    ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
    ("cache-control", "private"),
];
const RESP_T3: &[(&str, &str)] = &[
    (
        "set-cookie",
        "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1",
    ),
    ("content-encoding", "gzip"),
    ("date", "Mon, 21 Oct 2013 20:13:22 GMT"),
];

fn response_steps(blocks: [&'static str; 3]) -> [Step<'static>; 3] {
    [
        Step {
            block: blocks[0],
            fields: RESP1,
            table: RESP_T1,
            size: 222,
        },
        Step {
            block: blocks[1],
            fields: RESP2,
            table: RESP_T2,
            size: 222,
        },
        Step {
            block: blocks[2],
            fields: RESP3,
            table: RESP_T3,
            size: 215,
        },
    ]
}

/// C.5: three responses with a 256-byte table, so entries get evicted.
#[test]
fn c5_responses_without_huffman() {
    let blocks = [
        "4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133
         2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70
         6c65 2e63 6f6d",
        "4803 3330 37c1 c0bf",
        "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d
         54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049
         5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e
         3d31",
    ];
    run(
        &mut Decoder::with_table_size(256, 1 << 16),
        &response_steps(blocks),
    );
}

/// C.6: the same responses, Huffman coded.
#[test]
fn c6_responses_with_huffman() {
    let blocks = [
        "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6
         2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
        "4883 640e ffc1 c0bf",
        "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab
         77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f
         9587 3160 65c0 03ed 4ee5 b106 3d50 07",
    ];
    run(
        &mut Decoder::with_table_size(256, 1 << 16),
        &response_steps(blocks),
    );
}

/// C.5/C.6 through our encoder with a 256-byte cap: what it sends (its own policy) the
/// decoder reads back, and both tables stay identical.
#[test]
fn responses_round_trip_with_a_small_table() {
    let mut e = Encoder::new(256);
    let mut d = Decoder::new(1 << 16);
    for resp in [RESP1, RESP2, RESP3] {
        let mut out = Vec::new();
        e.encode(
            resp.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())),
            &mut out,
        );
        assert_eq!(decode_all(&mut d, &out).unwrap(), fields(resp));
        assert_eq!(d.entries(), e.entries());
    }
}

/// Section 6.3: a size update above the advertised SETTINGS_HEADER_TABLE_SIZE is a
/// COMPRESSION_ERROR; one at or below it shrinks the table.
#[test]
fn size_update_above_the_limit_is_an_error() {
    let mut d = Decoder::new(1 << 16);
    // 001 11111 + 4097 - 31 = 4066 = 0xe2 0x1f.
    let err = decode_all(&mut d, &[0x3f, 0xe2, 0x1f]).unwrap_err();
    assert_eq!(err, HpackError::TableSizeTooLarge(4097));
    assert_eq!(err.code(), ErrorCode::CompressionError);
    assert!(err.is_connection_error());
    let mut d = Decoder::new(1 << 16);
    decode_all(&mut d, &hex(C3[0])).unwrap();
    assert_eq!(d.table_size(), 57);
    // Size update to 0 empties the table, then indexed :method GET.
    assert_eq!(
        decode_all(&mut d, &[0x20, 0x82]).unwrap(),
        fields(&[(":method", "GET")])
    );
    assert_eq!(d.table_size(), 0);
}

/// Section 4.2: a size update after a field is an error, as is a block that does not
/// start with one after we lowered SETTINGS_HEADER_TABLE_SIZE.
#[test]
fn size_update_placement() {
    let mut d = Decoder::new(1 << 16);
    assert_eq!(
        decode_all(&mut d, &[0x82, 0x20]),
        Err(HpackError::MisplacedSizeUpdate)
    );
    let mut d = Decoder::new(1 << 16);
    d.set_max_table_size(100);
    assert_eq!(
        decode_all(&mut d, &[0x82]),
        Err(HpackError::MisplacedSizeUpdate)
    );
    let mut d = Decoder::new(1 << 16);
    d.set_max_table_size(100);
    // Two updates in a row are allowed (section 4.2): to 0, then to 100 (0x3f 0x45).
    assert!(decode_all(&mut d, &[0x20, 0x3f, 0x45, 0x82]).is_ok());
    assert_eq!(
        decode_all(&mut d, &[0x3f, 0x46]),
        Err(HpackError::TableSizeTooLarge(101))
    );
}

/// The encoder signals a table size change from the peer's SETTINGS, and the decoder
/// in step with it accepts the block.
#[test]
fn encoder_signals_table_size_changes() {
    let mut e = Encoder::new(4096);
    let mut d = Decoder::new(1 << 16);
    let resp: &[(&[u8], &[u8])] = &[(b":status", b"200"), (b"server", b"ringmaster")];
    let mut out = Vec::new();
    e.encode(resp.iter().copied(), &mut out);
    decode_all(&mut d, &out).unwrap();
    // Peer lowers to 0, then raises to 1024 before our next block: both are signalled.
    e.set_max_table_size(0);
    e.set_max_table_size(1024);
    out.clear();
    e.encode(resp.iter().copied(), &mut out);
    assert_eq!(&out[..3], &[0x20, 0x3f, 0xe1]);
    assert_eq!(decode_all(&mut d, &out).unwrap().len(), 2);
    assert_eq!(d.entries(), e.entries());
}

/// Section 5.1 and our bound: a huge integer in an index, a string length or a size
/// update fails cleanly.
#[test]
fn huge_integers_fail_cleanly() {
    let huge = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f];
    for first in [0xffu8, 0x7f, 0x3f, 0x0f] {
        let mut block = vec![first];
        block.extend_from_slice(&huge[1..]);
        let mut d = Decoder::new(1 << 16);
        assert_eq!(
            decode_all(&mut d, &block),
            Err(HpackError::IntegerOverflow),
            "{first:#x}"
        );
    }
    // A literal whose string length is huge.
    let mut d = Decoder::new(1 << 16);
    assert_eq!(
        decode_all(&mut d, &[0x00, 0x7f, 0xff, 0xff, 0xff, 0x0f]),
        Err(HpackError::Truncated)
    );
}

/// Section 2.3.3: index 0 and indices past the table are errors.
#[test]
fn invalid_indices() {
    let mut d = Decoder::new(1 << 16);
    assert_eq!(
        decode_all(&mut d, &[0x80]),
        Err(HpackError::InvalidIndex(0))
    );
    assert_eq!(
        decode_all(&mut d, &[0xbe]),
        Err(HpackError::InvalidIndex(62))
    );
    assert_eq!(
        decode_all(&mut d, &[0x7e, 0x00]),
        Err(HpackError::InvalidIndex(62))
    );
    assert_eq!(decode_all(&mut d, &[0x40]), Err(HpackError::Truncated));
}

/// RFC 9113 section 6.5.2: the decoded list counts name + value + 32 per field. Past
/// the limit the callback stops, the error is a stream-level one, and the table stays
/// in step (the next block decodes).
#[test]
fn header_list_limit_stops_cleanly_and_keeps_sync() {
    // :method GET is 7 + 3 + 32 = 42 bytes; four fit in 170, the fifth does not.
    let mut d = Decoder::new(170);
    let mut block = vec![0x82; 4];
    let mut n = 0;
    d.decode(&block, |_| n += 1).unwrap();
    assert_eq!(n, 4);
    // Over the limit, and a literal with indexing after the overflow point.
    block.push(0x82);
    block.extend_from_slice(&hex(
        "400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572",
    ));
    let mut n = 0;
    let err = d.decode(&block, |_| n += 1).unwrap_err();
    assert_eq!(err, HpackError::HeaderListTooLarge { limit: 170 });
    assert!(!err.is_connection_error());
    assert_eq!(n, 4);
    assert_eq!(d.table_len(), 1, "the entry was still added");
    assert_eq!(
        decode_all(&mut d, &[0xbe]).unwrap(),
        fields(&[("custom-key", "custom-header")])
    );
}

/// An HPACK bomb: one large entry, then a block referencing it thousands of times. The
/// callback sees only what fits the list limit and no memory grows.
#[test]
fn hpack_bomb_is_bounded() {
    let mut d = Decoder::new(16 * 1024);
    let mut e = Encoder::new(4096);
    let big = vec![b'x'; 1500];
    let mut block = Vec::new();
    e.encode([(&b"x-big"[..], &big[..])], &mut block);
    decode_all(&mut d, &block).unwrap();
    assert_eq!(d.table_len(), 1);
    let bomb = vec![0xbe; 100_000];
    let mut delivered = 0usize;
    let err = d.decode(&bomb, |f| delivered += f.name.len() + f.value.len() + 32);
    assert_eq!(
        err,
        Err(HpackError::HeaderListTooLarge { limit: 16 * 1024 })
    );
    assert!(delivered <= 16 * 1024);
}

/// The encoder's policy: a repeated field is one byte the second time; sensitive fields
/// are never indexed (section 7.1.3); content-length is not indexed.
#[test]
fn encoder_policy() {
    let mut e = Encoder::new(4096);
    let resp: &[(&[u8], &[u8])] = &[
        (b":status", b"200"),
        (b"content-type", b"text/plain"),
        (b"server", b"ringmaster"),
        (b"content-length", b"13"),
        (b"set-cookie", b"id=1"),
    ];
    let mut first = Vec::new();
    e.encode(resp.iter().copied(), &mut first);
    let mut second = Vec::new();
    e.encode(resp.iter().copied(), &mut second);
    assert_eq!(second[0], 0x88, ":status 200 is static index 8");
    assert_eq!(
        &second[1..3],
        &[0xbf, 0xbe],
        "content-type and server are dynamic entries"
    );
    assert_eq!(
        second[3], 0x0f,
        "content-length literal without indexing, name index 28"
    );
    assert_eq!(e.entries().len(), 2);
    let mut d = Decoder::new(1 << 16);
    let mut got = Vec::new();
    for block in [&first, &second] {
        d.decode(block, |f| got.push((f.name.to_vec(), f.sensitive)))
            .unwrap();
    }
    assert_eq!(got[4], (b"set-cookie".to_vec(), true));
    assert_eq!(got[9], (b"set-cookie".to_vec(), true));
}

fn field_strategy() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
    let names = prop_oneof![
        Just(b":status".to_vec()),
        Just(b"content-type".to_vec()),
        Just(b"server".to_vec()),
        Just(b"date".to_vec()),
        Just(b"set-cookie".to_vec()),
        Just(b"content-length".to_vec()),
        proptest::collection::vec(b'a'..=b'z', 1..12),
    ];
    let values = prop_oneof![
        Just(b"200".to_vec()),
        Just(b"text/plain".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..40),
        proptest::collection::vec(any::<u8>(), 0..400),
    ];
    (names, values)
}

proptest! {
    /// Encoder then decoder gives back the fields in order, block after block, with both
    /// tables identical, whatever the table cap and the peer's table size.
    #[test]
    fn encode_decode_round_trip(
        blocks in proptest::collection::vec(proptest::collection::vec(field_strategy(), 0..12), 1..6),
        cap in prop_oneof![Just(0usize), Just(64), Just(256), Just(4096)],
        peer in prop_oneof![Just(None), Just(Some(0usize)), Just(Some(100)), Just(Some(4096))],
    ) {
        let mut e = Encoder::new(cap);
        let mut d = Decoder::new(usize::MAX);
        for (i, block) in blocks.iter().enumerate() {
            if i == 1 {
                if let Some(p) = peer {
                    e.set_max_table_size(p);
                }
            }
            let mut out = Vec::new();
            e.encode(block.iter().map(|(n, v)| (&n[..], &v[..])), &mut out);
            prop_assert_eq!(&decode_all(&mut d, &out).unwrap(), block);
            prop_assert_eq!(d.entries(), e.entries());
            prop_assert!(d.table_size() <= cap);
        }
    }

    /// Arbitrary bytes never panic a fresh or a warmed decoder, and what it calls back
    /// never adds up past the list limit.
    #[test]
    fn arbitrary_blocks_never_panic(block in proptest::collection::vec(any::<u8>(), 0..300)) {
        for warm in [false, true] {
            let mut d = Decoder::new(1024);
            if warm {
                decode_all(&mut d, &hex(C3[0])).unwrap();
                decode_all(&mut d, &hex(C3[1])).unwrap();
            }
            let mut total = 0;
            let _ = d.decode(&block, |f| total += f.name.len() + f.value.len() + 32);
            prop_assert!(total <= 1024);
            prop_assert!(d.table_size() <= DEFAULT_TABLE_SIZE);
        }
    }

    /// Huffman round-trips any bytes, and decoding arbitrary bytes never panics.
    #[test]
    fn huffman_round_trip(s in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut enc = Vec::new();
        huffman::encode(&s, &mut enc);
        prop_assert_eq!(enc.len(), huffman::encoded_len(&s));
        let mut dec = Vec::new();
        huffman::decode(&enc, &mut dec).unwrap();
        prop_assert_eq!(dec, s.clone());
        let mut junk = Vec::new();
        let _ = huffman::decode(&s, &mut junk);
    }
}
