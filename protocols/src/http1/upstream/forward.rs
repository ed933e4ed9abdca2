//! What a proxy changes in the fields it passes on (RFC 9110 §7.6): hop-by-hop fields
//! removed both ways (`Connection` and every field it names, `Keep-Alive`, `TE`,
//! `Trailer`, `Transfer-Encoding`, `Upgrade`, `Proxy-Connection`), `Via` added,
//! `X-Forwarded-For` appended to and `X-Forwarded-Proto` set on requests. Framing
//! fields (`Content-Length`, `Transfer-Encoding`) never pass: each side's framing is
//! written afresh from the proxy's own parse, so what the upstream sees is one
//! well-framed request whatever the client sent.

use std::io::Write as _;

use crate::http1::head::list;

/// The `Via` value this proxy adds (RFC 9110 §7.6.3).
pub const VIA: &str = "1.1 ringmaster";

/// Fields that are always hop-by-hop, beside those `Connection` names (and
/// `Content-Length`, which each side writes from its own framing).
pub const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-connection",
    "content-length",
];

/// Whether a field stays on this hop only.
fn hop_by_hop(name: &str, named: &[&[u8]]) -> bool {
    // By length first: most fields match no name of that length, and are passed on
    // after one comparison at most.
    let listed = match name.len() {
        2 => name.eq_ignore_ascii_case("te"),
        7 => name.eq_ignore_ascii_case("trailer") || name.eq_ignore_ascii_case("upgrade"),
        10 => name.eq_ignore_ascii_case("connection") || name.eq_ignore_ascii_case("keep-alive"),
        14 => name.eq_ignore_ascii_case("content-length"),
        16 => name.eq_ignore_ascii_case("proxy-connection"),
        17 => name.eq_ignore_ascii_case("transfer-encoding"),
        _ => false,
    };
    listed
        || named
            .iter()
            .any(|n| name.as_bytes().eq_ignore_ascii_case(n))
}

/// Whether `value` (a `Connection` field's) names `option`.
pub fn names_option(value: &[u8], option: &str) -> bool {
    list(value).any(|t| t.eq_ignore_ascii_case(option.as_bytes()))
}

/// The end-to-end fields of a message, as pairs borrowed from it, without its
/// hop-by-hop and framing fields. Values stay bytes: obs-text (0x80-0xFF) passes as
/// opaque data (RFC 9110 section 5.5), byte for byte; the parser has already refused
/// CR, LF and NUL in a value, and the encoders refuse them again.
pub fn end_to_end<'a>(
    fields: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> Vec<(&'a str, &'a [u8])> {
    // One pass: the fields `Connection` names (none, in most messages) are taken out
    // after it, so a message without the field is read once.
    let mut named: Vec<&[u8]> = Vec::new();
    let mut out = Vec::with_capacity(16);
    for (name, value) in fields {
        if name.len() == 10 && name.eq_ignore_ascii_case("connection") {
            named.extend(list(value));
        }
        if !hop_by_hop(name, &[]) {
            out.push((name, value));
        }
    }
    if !named.is_empty() {
        out.retain(|&(name, _)| !hop_by_hop(name, &named));
    }
    out
}

/// Appends `ip` as text: IPv4 digit by digit (the common case, without the formatting
/// machinery), IPv6 through `Display`; into the reused buffer, no string of its own.
fn push_ip(buf: &mut Vec<u8>, ip: std::net::IpAddr) {
    match ip {
        std::net::IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    buf.push(b'.');
                }
                if octet >= 100 {
                    buf.push(b'0' + octet / 100);
                }
                if octet >= 10 {
                    buf.push(b'0' + octet / 10 % 10);
                }
                buf.push(b'0' + octet % 10);
            }
        }
        std::net::IpAddr::V6(_) => {
            let _ = write!(buf, "{ip}");
        }
    }
}

/// The request fields for the upstream: the end-to-end ones (`Host` unchanged), an
/// `Expect` dropped (the body is already here), `X-Forwarded-For` with `client`
/// appended, `X-Forwarded-Proto` set to `proto`, and `Via`. `scratch` holds the new
/// `X-Forwarded-For` value.
pub fn request_fields<'a>(
    fields: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    client: Option<std::net::IpAddr>,
    proto: &'a str,
    scratch: &'a mut Vec<u8>,
) -> Vec<(&'a str, &'a [u8])> {
    let mut out = end_to_end(fields);
    scratch.clear();
    for (n, v) in &out {
        if n.eq_ignore_ascii_case("x-forwarded-for") {
            if !scratch.is_empty() {
                scratch.extend_from_slice(b", ");
            }
            scratch.extend_from_slice(v.trim_ascii());
        }
    }
    if let Some(ip) = client {
        if !scratch.is_empty() {
            scratch.extend_from_slice(b", ");
        }
        push_ip(scratch, ip);
    }
    out.retain(|(n, _)| {
        !n.eq_ignore_ascii_case("x-forwarded-for")
            && !n.eq_ignore_ascii_case("x-forwarded-proto")
            && !n.eq_ignore_ascii_case("expect")
    });
    if !scratch.is_empty() {
        out.push(("X-Forwarded-For", scratch.as_slice()));
    }
    out.push(("X-Forwarded-Proto", proto.as_bytes()));
    out.push(("Via", VIA.as_bytes()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quick_check_knows_exactly_the_listed_names() {
        for name in HOP_BY_HOP {
            assert!(hop_by_hop(name, &[]), "{name}");
            assert!(hop_by_hop(&name.to_ascii_uppercase(), &[]), "{name}");
        }
        for name in [
            "Host",
            "Accept",
            "Tee",
            "Trailers",
            "Upgrade-Insecure-Requests",
            "X",
        ] {
            assert!(!hop_by_hop(name, &[]), "{name}");
        }
        assert!(hop_by_hop("X-Drop", &[b"x-drop"]));
    }

    #[test]
    fn an_address_is_written_as_display_writes_it() {
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "10.20.30.40",
            "255.255.255.255",
            "1.100.9.99",
            "::1",
            "2001:db8::8a2e:370:7334",
        ] {
            let ip: std::net::IpAddr = ip.parse().unwrap();
            let mut buf = b"x, ".to_vec();
            push_ip(&mut buf, ip);
            assert_eq!(buf, format!("x, {ip}").into_bytes());
        }
    }

    fn f<'a>(list: &'a [(&'a str, &'a str)]) -> impl Iterator<Item = (&'a str, &'a [u8])> {
        list.iter().map(|(n, v)| (*n, v.as_bytes()))
    }

    fn text<'a>(pairs: &[(&'a str, &'a [u8])]) -> Vec<(&'a str, &'a str)> {
        pairs
            .iter()
            .map(|&(n, v)| (n, std::str::from_utf8(v).unwrap()))
            .collect()
    }

    #[test]
    fn hop_by_hop_and_named_fields_are_removed() {
        let list = [
            ("Host", "example.com"),
            ("Connection", "keep-alive, X-Secret"),
            ("X-Secret", "1"),
            ("Keep-Alive", "timeout=5"),
            ("TE", "trailers"),
            ("Trailer", "X-T"),
            ("Transfer-Encoding", "chunked"),
            ("Content-Length", "5"),
            ("Upgrade", "h2c"),
            ("Proxy-Connection", "keep-alive"),
            ("Accept", "*/*"),
        ];
        let out = end_to_end(f(&list));
        assert_eq!(text(&out), [("Host", "example.com"), ("Accept", "*/*")]);
    }

    #[test]
    fn forwarded_for_is_appended_and_proto_and_via_set() {
        let list = [
            ("Host", "h"),
            ("X-Forwarded-For", "10.0.0.1"),
            ("x-forwarded-for", "10.0.0.2 "),
            ("X-Forwarded-Proto", "gopher"),
            ("Expect", "100-continue"),
        ];
        let mut s = Vec::new();
        let ip = Some("127.0.0.1".parse().unwrap());
        let out = request_fields(f(&list), ip, "https", &mut s);
        assert_eq!(
            text(&out),
            [
                ("Host", "h"),
                ("X-Forwarded-For", "10.0.0.1, 10.0.0.2, 127.0.0.1"),
                ("X-Forwarded-Proto", "https"),
                ("Via", VIA),
            ]
        );
    }

    #[test]
    fn obs_text_passes_byte_for_byte() {
        let fields = [
            ("X-A", &b"caf\xe9"[..]),
            ("X-Bin", &b"\xff\xfe \x80"[..]),
            ("Connection", &b"X-Gone"[..]),
            ("X-Gone", &b"\xe9"[..]),
        ];
        let out = end_to_end(fields.iter().map(|(n, v)| (*n, *v)));
        assert_eq!(
            out,
            [("X-A", &b"caf\xe9"[..]), ("X-Bin", &b"\xff\xfe \x80"[..])]
        );
    }
}
