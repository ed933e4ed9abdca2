//! Unit tests of the chunked body decoder.

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

/// The trailer fields of a whole body, as (name, value) strings.
fn trailers_of(d: &ChunkedDecoder) -> Vec<(String, String)> {
    d.trailers()
        .iter()
        .map(|(n, v)| (n.to_owned(), String::from_utf8_lossy(v).into_owned()))
        .collect()
}

#[test]
fn trailers_are_kept_trimmed_and_in_order() {
    let input = b"5\r\nhello\r\n0\r\nX-Sum: 1\r\nY:\r\nZ:\t a b \t\r\nX-Sum:2\r\n\r\nNEXT";
    let mut d = ChunkedDecoder::new(1 << 20, 1024);
    let n = d.decode(input, &mut |_| {}).unwrap();
    assert_eq!(n, input.len() - 4);
    let want = [("X-Sum", "1"), ("Y", ""), ("Z", "a b"), ("X-Sum", "2")];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    assert_eq!(trailers_of(&d), want);
    assert_eq!(d.trailers().get("x-sum"), Some(&b"1"[..]));
}

#[test]
fn trailers_are_the_same_at_every_split_point_and_empty_until_done() {
    let input = b"3\r\nabc\r\n0\r\nA: 1\r\nBb: two words\r\n\r\n";
    let mut whole = ChunkedDecoder::new(1 << 20, 1024);
    whole.decode(input, &mut |_| {}).unwrap();
    let want = trailers_of(&whole);
    assert_eq!(want.len(), 2);
    for at in 0..input.len() {
        let mut d = ChunkedDecoder::new(1 << 20, 1024);
        let (a, b) = input.split_at(at);
        assert_eq!(d.decode(a, &mut |_| {}).unwrap(), a.len());
        assert!(d.trailers().is_empty(), "split at {at}");
        d.decode(b, &mut |_| {}).unwrap();
        assert!(d.is_done());
        assert_eq!(trailers_of(&d), want, "split at {at}");
    }
}

#[test]
fn no_trailers_no_fields() {
    let mut d = ChunkedDecoder::new(1 << 20, 1024);
    d.decode(b"3\r\nabc\r\n0\r\n\r\n", &mut |_| {}).unwrap();
    assert!(d.is_done());
    assert!(d.trailers().is_empty());
}

#[test]
fn trailer_section_over_its_limit_is_refused() {
    let mut d = ChunkedDecoder::new(1 << 20, 8);
    let r = d.decode(b"0\r\nX-Long: 123456\r\n\r\n", &mut |_| {});
    assert_eq!(r, Err(BodyError::TrailersTooLarge));
    assert!(d.trailers().is_empty());
}
