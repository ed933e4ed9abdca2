//! Responses in the shapes real servers send them (field order, case, framing choices of
//! nginx, Node.js, Go's net/http, Python's http.server, Apache), decoded whole and one
//! byte at a time. Self-contained: the bytes are written out here, no server is run.

use super::tests::{bytewise, one, Seen};
use crate::http1::encode::Framing;
use crate::http1::head::Version;

fn check(method: &str, input: &[u8], eof: bool) -> Vec<Seen> {
    let whole = one(method, input, eof);
    assert_eq!(whole, bytewise(&[method], input, eof));
    assert!(
        !whole.iter().any(|s| matches!(s, Seen::Error(_))),
        "{whole:?}"
    );
    whole
}

fn body_of(s: &[Seen]) -> Vec<u8> {
    s.iter()
        .filter_map(|e| match e {
            Seen::Body(b) => Some(b.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

#[test]
fn nginx_static_file() {
    let input = b"HTTP/1.1 200 OK\r\n\
Server: nginx/1.24.0 (Ubuntu)\r\n\
Date: Tue, 04 Mar 2025 10:15:02 GMT\r\n\
Content-Type: text/html\r\n\
Content-Length: 40\r\n\
Last-Modified: Mon, 03 Mar 2025 09:00:00 GMT\r\n\
Connection: keep-alive\r\n\
ETag: \"67c5703c-28\"\r\n\
Accept-Ranges: bytes\r\n\
\r\n\
<html><body>Welcome nginx</body></html>\n";
    let s = check("GET", input, false);
    let Seen::Head {
        status,
        framing,
        keep_alive,
        headers,
        ..
    } = &s[0]
    else {
        panic!("{s:?}")
    };
    assert_eq!(
        (*status, *framing, *keep_alive),
        (200, Framing::Length(40), true)
    );
    assert_eq!(headers.len(), 8);
    assert_eq!(body_of(&s).len(), 40);
    assert!(matches!(s.last(), Some(Seen::End { reusable: true, .. })));
}

#[test]
fn nginx_not_modified_and_error_page_with_close() {
    let s = check(
        "GET",
        b"HTTP/1.1 304 Not Modified\r\nServer: nginx\r\nDate: Tue, 04 Mar 2025 10:15:02 GMT\r\n\
Last-Modified: Mon, 03 Mar 2025 09:00:00 GMT\r\nConnection: keep-alive\r\nETag: \"67c5703c-28\"\r\n\r\n",
        false,
    );
    assert_eq!(s.len(), 2);
    let s = check(
        "GET",
        b"HTTP/1.1 400 Bad Request\r\nServer: nginx\r\nDate: Tue, 04 Mar 2025 10:15:02 GMT\r\n\
Content-Type: text/html\r\nContent-Length: 28\r\nConnection: close\r\n\r\n<html>400 Bad Request</html>",
        false,
    );
    assert!(matches!(
        s.last(),
        Some(Seen::End {
            reusable: false,
            ..
        })
    ));
}

#[test]
fn node_chunked_lowercase_fields() {
    // Node's http module: lowercase names as the application set them, chunked when no
    // length was set, `Keep-Alive: timeout=5`.
    let input = b"HTTP/1.1 200 OK\r\n\
content-type: application/json\r\n\
x-powered-by: Express\r\n\
Date: Tue, 04 Mar 2025 10:15:02 GMT\r\n\
Connection: keep-alive\r\n\
Keep-Alive: timeout=5\r\n\
Transfer-Encoding: chunked\r\n\
\r\n\
d\r\n{\"ok\":true,\"n\r\n6\r\n\":42}\n\r\n0\r\n\r\n";
    let s = check("GET", input, false);
    let Seen::Head {
        framing, headers, ..
    } = &s[0]
    else {
        panic!("{s:?}")
    };
    assert_eq!(*framing, Framing::Chunked);
    assert_eq!(headers[0].0, "content-type");
    assert_eq!(body_of(&s), b"{\"ok\":true,\"n\":42}\n");
    assert!(matches!(s.last(), Some(Seen::End { reusable: true, .. })));
}

#[test]
fn go_net_http_chunked_with_trailers() {
    // Go flushes a chunk per Flush and announces trailers with `Trailer`.
    let input = b"HTTP/1.1 200 OK\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Trailer: X-Checksum\r\n\
Date: Tue, 04 Mar 2025 10:15:02 GMT\r\n\
Transfer-Encoding: chunked\r\n\
\r\n\
6\r\nfirst\n\r\n7\r\nsecond\n\r\n0\r\nX-Checksum: abc123\r\n\r\n";
    let s = check("GET", input, false);
    assert_eq!(body_of(&s), b"first\nsecond\n");
    assert_eq!(
        s.last(),
        Some(&Seen::End {
            trailers: vec![("X-Checksum".into(), b"abc123".to_vec())],
            reusable: true
        })
    );
}

#[test]
fn python_http_server_is_http10_and_closes() {
    let input = b"HTTP/1.0 200 OK\r\n\
Server: SimpleHTTP/0.6 Python/3.12.3\r\n\
Date: Tue, 04 Mar 2025 10:15:02 GMT\r\n\
Content-type: text/plain\r\n\
Content-Length: 6\r\n\
Last-Modified: Mon, 03 Mar 2025 09:00:00 GMT\r\n\
\r\n\
hello\n";
    let s = check("GET", input, false);
    let Seen::Head {
        version,
        keep_alive,
        ..
    } = &s[0]
    else {
        panic!("{s:?}")
    };
    assert_eq!((*version, *keep_alive), (Version::Http10, false));
    assert!(matches!(
        s.last(),
        Some(Seen::End {
            reusable: false,
            ..
        })
    ));
    // Its error pages have no length: the body runs to the close.
    let s = check(
        "GET",
        b"HTTP/1.0 501 Unsupported method ('PATCH')\r\nServer: SimpleHTTP/0.6 Python/3.12.3\r\n\
Content-Type: text/html;charset=utf-8\r\nConnection: close\r\n\r\n<html>501</html>\n",
        true,
    );
    assert_eq!(body_of(&s), b"<html>501</html>\n");
}

#[test]
fn apache_head_response() {
    let s = check(
        "HEAD",
        b"HTTP/1.1 200 OK\r\nDate: Tue, 04 Mar 2025 10:15:02 GMT\r\nServer: Apache/2.4.58 (Ubuntu)\r\n\
Last-Modified: Mon, 03 Mar 2025 09:00:00 GMT\r\nETag: \"29af-62f5e0c1d2f40\"\r\nAccept-Ranges: bytes\r\n\
Content-Length: 10671\r\nVary: Accept-Encoding\r\nContent-Type: text/html\r\n\r\n",
        false,
    );
    assert_eq!(s.len(), 2);
    assert!(matches!(
        &s[0],
        Seen::Head {
            framing: Framing::None,
            ..
        }
    ));
}

#[test]
fn ringmaster_server_output_reads_back() {
    // The server role's own encoder, read by the client role.
    use crate::http1::encode::{
        write_head, write_simple, ConnField, Fields, CHUNK_END, LAST_CHUNK,
    };
    let date = b"Tue, 04 Mar 2025 10:15:02 GMT";
    let mut wire = Vec::new();
    write_simple(
        &mut wire,
        200,
        date,
        ConnField::Omit,
        Fields::List(&[("X-A", "1")]),
        b"hi",
        false,
    );
    write_head(
        &mut wire,
        200,
        date,
        Framing::Chunked,
        ConnField::Close,
        &[],
    );
    crate::http1::encode::write_chunk_start(&mut wire, 3);
    wire.extend_from_slice(b"abc");
    wire.extend_from_slice(CHUNK_END);
    wire.extend_from_slice(LAST_CHUNK);
    let s = super::tests::feed(
        &mut super::tests::codec_after(&["GET", "GET"]),
        &[&wire],
        false,
    )
    .0;
    assert_eq!(body_of(&s), b"hiabc");
    assert!(matches!(
        s.last(),
        Some(Seen::End {
            reusable: false,
            ..
        })
    ));
}
