//! Response encoding: status line, the fields the protocol owns, chunk framing, and the
//! cached `Date` value.
//!
//! The protocol owns the framing fields (`Content-Length`, `Transfer-Encoding`,
//! `Connection`) and `Date`/`Server`; application fields with those names are dropped, as
//! are fields whose name is not a token or whose value holds CR, LF or another control
//! byte, so an application can never split a response or desynchronise the framing.
//! Everything is appended to a caller's `Vec<u8>`; nothing here allocates on its own.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Length of an IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
pub const DATE_LEN: usize = 29;

/// The `Date` field value, formatted at most once per second per shard.
///
/// Formatting a date costs more than the rest of a small response head; caching it per
/// shard (no sharing, no atomics) makes it a 29-byte copy per response.
#[derive(Debug, Clone)]
pub struct DateCache {
    value: [u8; DATE_LEN],
    /// When the wall-clock second changes next; `None` forces a refresh.
    next: Option<Instant>,
}

impl Default for DateCache {
    fn default() -> Self {
        let mut d = DateCache {
            value: imf_fixdate(0),
            next: None,
        };
        d.refresh(Instant::now());
        d
    }
}

impl DateCache {
    /// A cache holding the current date.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reformats the value if `now` (the shard's loop clock) has passed the next second
    /// boundary. Cheap when it has not: one comparison.
    pub fn refresh(&mut self, now: Instant) {
        if self.next.is_some_and(|next| now < next) {
            return;
        }
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        self.value = imf_fixdate(since.as_secs());
        let to_next_second = Duration::from_nanos(1_000_000_000 - u64::from(since.subsec_nanos()));
        self.next = Some(now + to_next_second);
    }

    /// The current value, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
    pub fn value(&self) -> &[u8; DATE_LEN] {
        &self.value
    }
}

/// Formats seconds since the Unix epoch as an RFC 9110 IMF-fixdate.
pub fn imf_fixdate(secs: u64) -> [u8; DATE_LEN] {
    const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (hour, min, sec) = (rem / 3600, rem % 3600 / 60, rem % 60);
    let weekday = DAYS[(days % 7) as usize];
    let (year, month, day) = civil_from_days(days);

    let mut out = *b"Thu, 01 Jan 1970 00:00:00 GMT";
    out[..3].copy_from_slice(weekday);
    put2(&mut out[5..7], day);
    out[8..11].copy_from_slice(MONTHS[(month - 1) as usize % 12]);
    let year = year % 10_000;
    put2(&mut out[12..14], year / 100);
    put2(&mut out[14..16], year % 100);
    put2(&mut out[17..19], hour);
    put2(&mut out[20..22], min);
    put2(&mut out[23..25], sec);
    out
}

fn put2(dst: &mut [u8], v: u64) {
    dst[0] = b'0' + (v / 10 % 10) as u8;
    dst[1] = b'0' + (v % 10) as u8;
}

/// Days since 1970-01-01 to (year, month 1..=12, day 1..=31), proleptic Gregorian.
/// Howard Hinnant's `civil_from_days`, restricted to dates after the epoch.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// The reason phrase for a status code (empty for codes without a registered one, which
/// RFC 9112 allows).
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        102 => "Processing",
        103 => "Early Hints",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

/// True for statuses whose responses never carry content (RFC 9110 6.4.1).
pub fn status_has_no_body(status: u16) -> bool {
    (100..200).contains(&status) || status == 204 || status == 304
}

/// How a response body is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `Content-Length: n`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Neither: the body ends when the connection closes (HTTP/1.0 streaming).
    UntilClose,
    /// No body and no length field (1xx, 204, 304).
    None,
}

/// What the `Connection` field says, if anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnField {
    /// No field: the HTTP/1.1 default (persistent).
    Omit,
    /// `Connection: close`: this is the last response on the connection.
    Close,
    /// `Connection: keep-alive`: an HTTP/1.0 client asked to keep the connection.
    KeepAlive,
    /// `Connection: Upgrade`: a 101 switching the connection to another protocol.
    Upgrade,
}

/// Appends `n` in decimal.
pub fn put_u64(buf: &mut Vec<u8>, mut n: u64) {
    // Fast paths for the common sizes (a Content-Length of a small body): one append.
    if n < 10 {
        buf.push(b'0' + n as u8);
        return;
    }
    if n < 100 {
        buf.extend_from_slice(&[b'0' + (n / 10) as u8, b'0' + (n % 10) as u8]);
        return;
    }
    if n < 10_000 {
        let d = [
            b'0' + (n / 1000) as u8,
            b'0' + (n / 100 % 10) as u8,
            b'0' + (n / 10 % 10) as u8,
            b'0' + (n % 10) as u8,
        ];
        let skip = if n < 1000 { 1 } else { 0 };
        buf.extend_from_slice(&d[skip..]);
        return;
    }
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&tmp[i..]);
}

/// Appends `n` in lowercase hex (chunk sizes).
fn put_hex(buf: &mut Vec<u8>, mut n: u64) {
    let mut tmp = [0u8; 16];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b"0123456789abcdef"[(n & 0xf) as usize];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&tmp[i..]);
}

/// `tchar` of RFC 9110 5.6.2, as a table (a field name is checked per response, so this
/// is on the hot path).
pub(crate) const TCHAR: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        i += 1;
    }
    t
};

/// `bytes` is a token (RFC 9110 section 5.6.2): one or more tchars.
pub(crate) fn is_token(bytes: &[u8]) -> bool {
    // Non-short-circuiting fold: no early exit, so the loop is branch-free.
    !bytes.is_empty() && bytes.iter().fold(true, |ok, &b| ok & TCHAR[usize::from(b)])
}

/// `bytes` may stand in a field value: visible ASCII, obs-text, SP and HTAB; no CR, LF,
/// NUL or other control byte.
pub(crate) fn is_field_text(bytes: &[u8]) -> bool {
    // Branch-free, as in `is_token`: this runs over every byte of every field forwarded.
    bytes
        .iter()
        .fold(true, |ok, &b| ok & (b == b'\t' || (b >= 0x20 && b != 0x7f)))
}

/// True if the application may send this field: a token name, a value free of control
/// bytes, and not one of the fields the protocol owns.
pub fn field_allowed(name: &str, value: &str) -> bool {
    field_bytes_allowed(name, value.as_bytes())
}

/// [`field_allowed`] for a value held as bytes: obs-text (0x80-0xFF) is allowed and
/// passed on as opaque data (RFC 9110 section 5.5), as a proxy relays it.
pub fn field_bytes_allowed(name: &str, value: &[u8]) -> bool {
    let n = name.as_bytes();
    let token = is_token(n);
    let clean = is_field_text(value);
    // Dispatch on length first: most application fields match none of these lengths.
    let owned = match n.len() {
        4 => n.eq_ignore_ascii_case(b"date"),
        6 => n.eq_ignore_ascii_case(b"server"),
        10 => n.eq_ignore_ascii_case(b"connection"),
        14 => n.eq_ignore_ascii_case(b"content-length"),
        17 => n.eq_ignore_ascii_case(b"transfer-encoding"),
        _ => false,
    };
    token && clean && !owned
}

/// Response header fields checked and encoded once, for responses sent many times.
///
/// [`field_allowed`] runs over every byte of every field of every response built from a
/// plain list; a `FieldSet` is checked (and its refused fields dropped) when it is made,
/// and each response then costs one copy of its encoded bytes. Build it once (per shard,
/// or in a `static`) and pass it with `Response::field_set`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldSet {
    /// `\r\nName: value` for each allowed field, in order.
    encoded: Vec<u8>,
    dropped: usize,
}

impl FieldSet {
    /// Checks and encodes `fields`; refused ones (see [`field_allowed`]) are left out and
    /// counted in [`FieldSet::dropped`].
    pub fn new(fields: &[(&str, &str)]) -> Self {
        let mut set = FieldSet::default();
        for &(name, value) in fields {
            if field_allowed(name, value) {
                push_field(&mut set.encoded, name, value);
            } else {
                set.dropped += 1;
            }
        }
        set
    }

    /// How many of the fields given to [`FieldSet::new`] were refused.
    pub fn dropped(&self) -> usize {
        self.dropped
    }

    /// The fields kept, as (name, value), for an encoder other than HTTP/1.1's.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        // `encoded` is `\r\nName: value` per field, made from `&str`s; a name holds no
        // `:` and a value no CR or LF, so the splits are exact.
        std::str::from_utf8(&self.encoded)
            .unwrap_or_default()
            .split("\r\n")
            .skip(1)
            .filter_map(|f| f.split_once(": "))
    }
}

/// The application's fields for one response head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fields<'a> {
    /// A list, checked with [`field_allowed`] as it is written.
    List(&'a [(&'a str, &'a str)]),
    /// Fields checked and encoded once.
    Set(&'a FieldSet),
}

fn push_field(buf: &mut Vec<u8>, name: &str, value: &str) {
    push_field_bytes(buf, name, value.as_bytes());
}

fn push_field_bytes(buf: &mut Vec<u8>, name: &str, value: &[u8]) {
    buf.extend_from_slice(b"\r\n");
    buf.extend_from_slice(name.as_bytes());
    buf.extend_from_slice(b": ");
    buf.extend_from_slice(value);
}

/// Appends a response head. Returns how many application fields were dropped by
/// [`field_allowed`].
pub fn write_head(
    buf: &mut Vec<u8>,
    status: u16,
    date: &[u8; DATE_LEN],
    framing: Framing,
    conn: ConnField,
    fields: &[(&str, &str)],
) -> usize {
    write_head_fields(buf, status, date, framing, conn, Fields::List(fields))
}

/// [`write_head`] for either kind of [`Fields`]. Returns how many application fields
/// were dropped (for a [`FieldSet`], the ones dropped when it was made).
pub fn write_head_fields(
    buf: &mut Vec<u8>,
    status: u16,
    date: &[u8; DATE_LEN],
    framing: Framing,
    conn: ConnField,
    fields: Fields<'_>,
) -> usize {
    // One reservation for the fixed part and the fields, instead of a check per piece.
    let fields_len: usize = match fields {
        Fields::List(list) => list.iter().map(|(n, v)| n.len() + v.len() + 4).sum(),
        Fields::Set(set) => set.encoded.len(),
    };
    write_head_start(buf, status, date, framing, conn, fields_len);
    let mut dropped = 0;
    match fields {
        Fields::List(list) => {
            for &(name, value) in list {
                if field_allowed(name, value) {
                    push_field(buf, name, value);
                } else {
                    dropped += 1;
                }
            }
        }
        Fields::Set(set) => {
            buf.extend_from_slice(&set.encoded);
            dropped = set.dropped;
        }
    }
    buf.extend_from_slice(b"\r\n\r\n");
    dropped
}

/// [`write_head`] for fields whose values are bytes, checked with
/// [`field_bytes_allowed`]: obs-text passes as it came (a proxy relaying an upstream's
/// fields). Returns how many fields were dropped.
pub fn write_head_bytes(
    buf: &mut Vec<u8>,
    status: u16,
    date: &[u8; DATE_LEN],
    framing: Framing,
    conn: ConnField,
    fields: &[(&str, &[u8])],
) -> usize {
    let fields_len: usize = fields.iter().map(|(n, v)| n.len() + v.len() + 4).sum();
    write_head_start(buf, status, date, framing, conn, fields_len);
    end_head_bytes(buf, fields)
}

/// Appends the fields [`field_bytes_allowed`] accepts and the end of the head; returns
/// how many were dropped.
fn end_head_bytes(buf: &mut Vec<u8>, fields: &[(&str, &[u8])]) -> usize {
    let mut dropped = 0;
    for &(name, value) in fields {
        if field_bytes_allowed(name, value) {
            push_field_bytes(buf, name, value);
        } else {
            dropped += 1;
        }
    }
    buf.extend_from_slice(b"\r\n\r\n");
    dropped
}

/// `HTTP/1.1 STATUS REASON`, without its CRLF.
fn push_status_line(buf: &mut Vec<u8>, status: u16) {
    buf.extend_from_slice(b"HTTP/1.1 ");
    put_u64(buf, u64::from(status));
    buf.push(b' ');
    buf.extend_from_slice(reason(status).as_bytes());
}

/// An interim (1xx) response head: the status line and `fields` (those
/// [`field_bytes_allowed`] accepts, so no framing or `Connection` field), no `Server`
/// or `Date`. Returns how many fields were dropped.
pub fn write_interim_bytes(buf: &mut Vec<u8>, status: u16, fields: &[(&str, &[u8])]) -> usize {
    push_status_line(buf, status.clamp(100, 199));
    end_head_bytes(buf, fields)
}

/// A response head up to its application fields: status line, `Server`, `Date`, the
/// framing field and `Connection`, with room reserved for `fields_len` more bytes.
fn write_head_start(
    buf: &mut Vec<u8>,
    status: u16,
    date: &[u8; DATE_LEN],
    framing: Framing,
    conn: ConnField,
    fields_len: usize,
) {
    let status = status.clamp(100, 999);
    buf.reserve(128 + fields_len);
    match status_prefix(status) {
        Some(prefix) => buf.extend_from_slice(prefix),
        None => {
            push_status_line(buf, status);
            buf.extend_from_slice(b"\r\nServer: ringmaster\r\nDate: ");
        }
    }
    buf.extend_from_slice(date);
    match framing {
        Framing::Length(n) => {
            buf.extend_from_slice(b"\r\nContent-Length: ");
            put_u64(buf, n);
        }
        Framing::Chunked => buf.extend_from_slice(b"\r\nTransfer-Encoding: chunked"),
        Framing::UntilClose | Framing::None => {}
    }
    match conn {
        ConnField::Omit => {}
        ConnField::Close => buf.extend_from_slice(b"\r\nConnection: close"),
        ConnField::KeepAlive => buf.extend_from_slice(b"\r\nConnection: keep-alive"),
        ConnField::Upgrade => buf.extend_from_slice(b"\r\nConnection: Upgrade"),
    }
}

/// The start of a response head up to the `Date` value, ready-made for the most common
/// statuses (one copy instead of formatting the status line each time).
fn status_prefix(status: u16) -> Option<&'static [u8]> {
    macro_rules! prefix {
        ($code:literal $reason:literal) => {
            concat!(
                "HTTP/1.1 ",
                $code,
                " ",
                $reason,
                "\r\nServer: ringmaster\r\nDate: "
            )
            .as_bytes()
        };
    }
    Some(match status {
        200 => prefix!("200" "OK"),
        204 => prefix!("204" "No Content"),
        304 => prefix!("304" "Not Modified"),
        400 => prefix!("400" "Bad Request"),
        404 => prefix!("404" "Not Found"),
        500 => prefix!("500" "Internal Server Error"),
        503 => prefix!("503" "Service Unavailable"),
        _ => return None,
    })
}

/// The interim response sent before reading a body the client holds back.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Appends the framing before a chunk of `len` bytes (the data follows, then
/// [`CHUNK_END`]). Zero-length chunks must not be framed: they would end the body.
pub fn write_chunk_start(buf: &mut Vec<u8>, len: usize) {
    put_hex(buf, len as u64);
    buf.extend_from_slice(b"\r\n");
}

/// The CRLF after each chunk's data.
pub const CHUNK_END: &[u8] = b"\r\n";

/// The last chunk and an empty trailer section: the end of a chunked body.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// Whether a field may travel in a trailer section (RFC 9110 section 6.5.1): a valid
/// field (as [`field_allowed`] checks it) whose name is none of those a recipient needs
/// before the content, which a trailer would arrive too late for or could be used to
/// smuggle past checks made on the header section: framing (`Content-Length`,
/// `Transfer-Encoding`, `Trailer`, `TE`), hop-by-hop (`Connection`, `Keep-Alive`,
/// `Proxy-Connection`, `Upgrade`), routing (`Host`), authentication, request modifiers
/// and controls, response controls and content format. Both directions and both roles
/// use this one list, so what a peer may not send here is never passed on.
pub fn trailer_allowed(name: &str, value: &str) -> bool {
    const REFUSED: &[&str] = &[
        "age",
        "authorization",
        "cache-control",
        "connection",
        "content-encoding",
        "content-length",
        "content-range",
        "content-type",
        "cookie",
        "date",
        "expect",
        "expires",
        "host",
        "if-match",
        "if-modified-since",
        "if-none-match",
        "if-range",
        "if-unmodified-since",
        "keep-alive",
        "location",
        "max-forwards",
        "pragma",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "range",
        "retry-after",
        "server",
        "set-cookie",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "vary",
        "www-authenticate",
    ];
    field_allowed(name, value) && !REFUSED.iter().any(|r| r.eq_ignore_ascii_case(name))
}

/// Appends the last chunk and a trailer section made of `trailers` (those
/// [`trailer_allowed`] accepts; the others are dropped), ending a chunked body. Returns
/// how many fields were dropped. With no field left it is [`LAST_CHUNK`].
pub fn write_last_chunk(buf: &mut Vec<u8>, trailers: &[(&str, &str)]) -> usize {
    buf.extend_from_slice(b"0\r\n");
    let mut dropped = 0;
    for &(name, value) in trailers {
        if trailer_allowed(name, value) {
            buf.extend_from_slice(name.as_bytes());
            buf.extend_from_slice(b": ");
            buf.extend_from_slice(value.as_bytes());
            buf.extend_from_slice(b"\r\n");
        } else {
            dropped += 1;
        }
    }
    buf.extend_from_slice(b"\r\n");
    dropped
}

/// Appends a complete response with an in-memory body (the body is omitted, but its
/// length still announced, when `head_only`).
pub fn write_simple(
    buf: &mut Vec<u8>,
    status: u16,
    date: &[u8; DATE_LEN],
    conn: ConnField,
    fields: Fields<'_>,
    body: &[u8],
    head_only: bool,
) -> usize {
    let framing = if status_has_no_body(status) {
        Framing::None
    } else {
        Framing::Length(body.len() as u64)
    };
    let dropped = write_head_fields(buf, status, date, framing, conn, fields);
    if !head_only && framing != Framing::None {
        buf.extend_from_slice(body);
    }
    dropped
}

#[cfg(test)]
mod tests;
