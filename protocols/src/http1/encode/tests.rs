//! Unit tests of response encoding: heads, fields, chunk framing, the `Date` cache.

use super::*;

#[test]
fn dates() {
    assert_eq!(&imf_fixdate(0), b"Thu, 01 Jan 1970 00:00:00 GMT");
    assert_eq!(&imf_fixdate(784_111_777), b"Sun, 06 Nov 1994 08:49:37 GMT");
    assert_eq!(&imf_fixdate(951_782_400), b"Tue, 29 Feb 2000 00:00:00 GMT");
    assert_eq!(
        &imf_fixdate(1_709_164_799),
        b"Wed, 28 Feb 2024 23:59:59 GMT"
    );
    assert_eq!(
        &imf_fixdate(1_709_251_200),
        b"Fri, 01 Mar 2024 00:00:00 GMT"
    );
    assert_eq!(
        &imf_fixdate(4_102_444_800),
        b"Fri, 01 Jan 2100 00:00:00 GMT"
    );
}

#[test]
fn date_cache_refreshes_only_on_new_second() {
    let mut d = DateCache::new();
    let first = *d.value();
    let next = d.next.unwrap();
    d.refresh(next - Duration::from_millis(1));
    assert_eq!(d.next, Some(next), "no refresh before the boundary");
    assert_eq!(*d.value(), first);
    d.refresh(next);
    assert!(d.next.unwrap() > next);
}

#[test]
fn head_layout() {
    let date = imf_fixdate(0);
    let mut buf = Vec::new();
    let dropped = write_simple(
        &mut buf,
        200,
        &date,
        ConnField::Close,
        Fields::List(&[
            ("Content-Type", "text/plain"),
            ("X-Bad", "a\r\nb"),
            ("Content-Length", "9"),
        ]),
        b"hi",
        false,
    );
    assert_eq!(dropped, 2);
    assert_eq!(
        buf,
        b"HTTP/1.1 200 OK\r\nServer: ringmaster\r\nDate: Thu, 01 Jan 1970 00:00:00 GMT\r\n\
          Content-Length: 2\r\nConnection: close\r\nContent-Type: text/plain\r\n\r\nhi"
    );
}

#[test]
fn head_only_and_bodyless_statuses() {
    let date = imf_fixdate(0);
    let mut buf = Vec::new();
    write_simple(
        &mut buf,
        200,
        &date,
        ConnField::Omit,
        Fields::List(&[]),
        b"hello",
        true,
    );
    let s = String::from_utf8(buf).unwrap();
    assert!(s.contains("Content-Length: 5\r\n"));
    assert!(s.ends_with("\r\n\r\n"));
    let mut buf = Vec::new();
    write_simple(
        &mut buf,
        204,
        &date,
        ConnField::Omit,
        Fields::List(&[]),
        b"ignored",
        false,
    );
    let s = String::from_utf8(buf).unwrap();
    assert!(!s.contains("Content-Length"));
    assert!(s.ends_with("\r\n\r\n"));
}

#[test]
fn numbers() {
    let mut b = Vec::new();
    put_u64(&mut b, 0);
    b.push(b' ');
    put_u64(&mut b, u64::MAX);
    b.push(b' ');
    put_hex(&mut b, 0x1a2b);
    assert_eq!(b, b"0 18446744073709551615 1a2b");
    for n in (0..20_000).chain([99_999, 100_000, 1 << 40]) {
        let mut b = Vec::new();
        put_u64(&mut b, n);
        assert_eq!(b, n.to_string().as_bytes());
    }
}

#[test]
fn ready_made_status_lines_match_the_general_ones() {
    for status in 100..1000 {
        if let Some(prefix) = status_prefix(status) {
            let want = format!(
                "HTTP/1.1 {status} {}\r\nServer: ringmaster\r\nDate: ",
                reason(status)
            );
            assert_eq!(prefix, want.as_bytes());
        }
    }
}

#[test]
fn field_set_writes_what_the_list_writes() {
    let date = imf_fixdate(0);
    let list: &[(&str, &str)] = &[
        ("Content-Type", "text/plain"),
        ("Content-Length", "99"),
        ("X-Ok", "yes"),
        ("Bad Name", "v"),
        ("X-Split", "a\r\nInjected: 1"),
    ];
    let set = FieldSet::new(list);
    assert_eq!(set.dropped(), 3);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let da = write_simple(
        &mut a,
        200,
        &date,
        ConnField::Omit,
        Fields::List(list),
        b"x",
        false,
    );
    let db = write_simple(
        &mut b,
        200,
        &date,
        ConnField::Omit,
        Fields::Set(&set),
        b"x",
        false,
    );
    assert_eq!(a, b);
    assert_eq!((da, db), (3, 3));
    let text = String::from_utf8(b).unwrap();
    assert!(text.contains("\r\nContent-Type: text/plain\r\nX-Ok: yes\r\n\r\nx"));
    assert!(!text.contains("Injected") && !text.contains("99"));
}

#[test]
fn field_name_table_is_tchar() {
    for b in 0..=255u8 {
        let want = b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        assert_eq!(TCHAR[usize::from(b)], want, "{b}");
    }
}

#[test]
fn trailer_section_keeps_only_allowed_fields() {
    let mut buf = Vec::new();
    let dropped = write_last_chunk(
        &mut buf,
        &[
            ("X-Checksum", "sha256=abc"),
            ("transfer-encoding", "chunked"),
            ("Host", "elsewhere"),
            ("Authorization", "Basic x"),
            ("X-Bad", "a\r\nInjected: 1"),
            ("Server-Timing", "db;dur=53"),
        ],
    );
    assert_eq!(dropped, 4);
    assert_eq!(
        buf,
        b"0\r\nX-Checksum: sha256=abc\r\nServer-Timing: db;dur=53\r\n\r\n"
    );
    buf.clear();
    assert_eq!(write_last_chunk(&mut buf, &[]), 0);
    assert_eq!(buf, LAST_CHUNK);
}

#[test]
fn framing_routing_and_hop_by_hop_fields_are_not_trailers() {
    for name in [
        "Content-Length",
        "TRANSFER-ENCODING",
        "TE",
        "Trailer",
        "Connection",
        "Keep-Alive",
        "Upgrade",
        "Host",
        "Authorization",
        "Proxy-Authorization",
        "Content-Type",
        "Content-Encoding",
        "Cache-Control",
        "Set-Cookie",
    ] {
        assert!(!trailer_allowed(name, "x"), "{name}");
    }
    for name in ["X-Checksum", "Grpc-Status", "Server-Timing", "Digest"] {
        assert!(trailer_allowed(name, "x"), "{name}");
    }
    assert!(!trailer_allowed("Bad Name", "x"));
}

#[test]
fn an_interim_head_has_its_fields_and_no_framing_or_connection_fields() {
    let mut buf = Vec::new();
    let dropped = write_interim_bytes(
        &mut buf,
        103,
        &[
            ("Link", b"</a.css>; rel=preload"),
            ("Content-Length", b"5"),
            ("Connection", b"close"),
            ("X-Opaque", b"caf\xe9"),
        ],
    );
    assert_eq!(dropped, 2);
    assert_eq!(
        buf,
        b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\nX-Opaque: caf\xe9\r\n\r\n"
    );
}
