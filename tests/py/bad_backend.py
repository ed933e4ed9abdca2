#!/usr/bin/env python3
"""A misbehaving HTTP/1.1 backend for end-to-end tests of the HTTP client / upstream pool.

Usage: bad_backend.py --mode MODE [--listen 127.0.0.1:0] [--delay-ms N] [--idle-close-ms N]

Prints exactly one line to stderr once listening, `bad_backend MODE listening on HOST:PORT`,
then serves until killed (SIGTERM / SIGINT exit 0). One thread per connection, at most
MAX_CONNS at once (further connections wait in the listen backlog).

Every mode first reads a whole request: the head up to CRLF CRLF and then its body
(Content-Length or chunked). Then:

  ok               keep-alive; 200, text/plain, Content-Length, body `hello from TARGET\\n`
  chunked          like ok, the body sent chunked in 3 chunks (3 separate writes)
  close-delimited  200 without Content-Length or Transfer-Encoding: body, then close
  reset            no answer: SO_LINGER {1, 0} and close (an RST)
  stall            no answer; the socket stays open until the client closes it
  stall-second     like ok for a connection's first request; no answer to the next (as
                   stall)
  malformed        a garbage status line (`HTTP/1.1 2x0 Nope`), then close
  bad-framing      both `Content-Length: 5` and `Transfer-Encoding: chunked`, then close
  mid-body-close   `Content-Length: 1000`, 100 body bytes, then close (a FIN)
  slow             like ok, after waiting --delay-ms (default 2000) for each request
  close-idle       like ok, but a connection idle for --idle-close-ms (default 200) after a
                   response is closed (a FIN, no reset)
  one-shot         like ok, with `Connection: close`, and closes after each response
  echo-head        like ok, but the body is the request exactly as received: its head (up to
                   the blank line), CRLF CRLF, then its decoded body; and the request's
                   `X-A` value, when it has one, comes back as the response field `X-Seen-A`
                   byte for byte (obs-text included)
  trailers         like chunked, the body saying what the request carried (`te: VALUE` or
                   `te: -`, then `trailer: NAME: VALUE` for each trailer field of a chunked
                   request body, then `body: BODY`), and ending with a trailer section:
                   `X-Checksum: LEN` (the body's length), `Set-Cookie: late=1` (a field
                   not allowed in trailers) and `X-Done: yes`, whatever the request's TE;
                   a target ending in `?pad=N` puts a line of N `x` before `body:`
  upgrade-echo     a request naming `Upgrade` gets `101 Switching Protocols` (that `Upgrade`
                   value); then every byte is echoed back until the client's end of
                   stream (a FIN, or close_notify under --tls-cert), after which
                   `after-eof\n` is sent and the connection closed (close_notify first
                   under TLS): a tunnel's half-close, seen from the upstream
  early-hints      like ok, each answer preceded by two interim responses sent apart:
                   `102 Processing`, then `103 Early Hints` with `Link: </style.css>;
                   rel=preload` and `Connection: X-Hop` plus `X-Hop: 1` (hop-by-hop
                   fields a proxy must drop)
  hold-body        like ok, except that a request whose target starts with `/hold` has only
                   its head read: its body is never read and it gets no answer (the
                   connection stays open, unread, for HOLD_S): an upstream slower than
                   the client's upload, for backpressure tests
  drop-second      like ok for a connection's first request; its second request is read
                   and the connection closed without an answer (a FIN): the race of a
                   pooled connection the server closes just as the client reuses it

--tls-cert FILE --tls-key FILE serve TLS (any mode) with that certificate and key.

The answering modes (ok, chunked, slow, close-idle, one-shot) also answer `GET /__stats`
with `{"connections": N, "requests": M}`: N connections ever accepted (the one asking
included), M requests answered (the /__stats requests themselves not counted). They honour
a client's `Connection: close`, answer `Expect: 100-continue`, and send no body to HEAD.
"Close" is always graceful unless the mode says reset: shutdown(SHUT_WR), then read and
discard what the client still sends (for at most DRAIN_S), then close.
"""

import argparse
import json
import os
import signal
import socket
import ssl
import struct
import sys
import threading
import time

MAX_CONNS = 256
MAX_HEAD = 64 * 1024
DRAIN_S = 1.0
HOLD_S = 60.0

MODES = ("ok", "chunked", "close-delimited", "reset", "stall", "malformed", "bad-framing",
         "mid-body-close", "slow", "close-idle", "one-shot", "drop-second", "echo-head",
         "trailers", "upgrade-echo", "hold-body", "early-hints", "stall-second")
ANSWERING = ("ok", "chunked", "slow", "close-idle", "one-shot", "drop-second", "echo-head",
             "trailers", "hold-body", "early-hints")
# --tag: every answer carries `X-Backend: TAG` (which backend answered, behind a balancer).
TAG = b""
# --tls-cert/--tls-key: the server-side TLS context every accepted connection is wrapped in.
TLS = None


class Closed(Exception):
    """The client closed (or broke) the connection before a whole request arrived."""


class BadRequest(Exception):
    pass


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.connections = 0
        self.requests = 0

    def connected(self):
        with self.lock:
            self.connections += 1

    def answered(self):
        with self.lock:
            self.requests += 1

    def json(self):
        with self.lock:
            return json.dumps({"connections": self.connections, "requests": self.requests})


class Reader:
    """Buffered reads from one socket; bytes past a request stay for the next (pipelining)."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise Closed()
        self.buf += data

    def until(self, delim, limit):
        while True:
            i = self.buf.find(delim)
            if i >= 0:
                out, self.buf = self.buf[:i], self.buf[i + len(delim):]
                return out
            if len(self.buf) > limit:
                raise BadRequest("line or head too long")
            self.fill()

    def exact(self, n):
        while len(self.buf) < n:
            self.fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def wait_readable(self, timeout):
        """True when a byte is buffered or arrives within `timeout` seconds; False if not."""
        if self.buf:
            return True
        self.sock.settimeout(timeout)
        try:
            self.fill()
        except socket.timeout:
            return False
        finally:
            self.sock.settimeout(None)
        return True


class Request:
    def __init__(self, method, target, version, headers):
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers  # lower-cased name -> list of values (bytes)
        self.raw_head = b""
        self.body = b""
        self.trailers = []  # (name, value) of a chunked body's trailer section

    def header(self, name):
        values = self.headers.get(name, [])
        return b", ".join(values) if values else None

    def tokens(self, name):
        value = self.header(name) or b""
        return {t.strip().lower() for t in value.split(b",") if t.strip()}

    def wants_close(self):
        conn = self.tokens(b"connection")
        if self.version == b"HTTP/1.0":
            return b"keep-alive" not in conn
        return b"close" in conn


def read_request(reader, sock, send_continue, hold=False):
    """One request; with `hold`, a target starting with /hold has only its head read
    (its `held` is then True)."""
    head = reader.until(b"\r\n\r\n", MAX_HEAD)
    lines = head.split(b"\r\n")
    while lines and lines[0] == b"":  # tolerate stray CRLFs between requests
        lines.pop(0)
    if not lines:
        raise BadRequest("empty head")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
        raise BadRequest("bad request line")
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip():
            raise BadRequest("bad header line")
        headers.setdefault(name.lower(), []).append(value.strip())
    req = Request(parts[0], parts[1], parts[2], headers)
    req.raw_head = head
    req.body = b""
    req.held = hold and req.target.startswith(b"/hold")
    if req.held:
        return req
    te = req.header(b"transfer-encoding")
    cl = req.headers.get(b"content-length")
    if te is not None and cl is not None:
        raise BadRequest("both Content-Length and Transfer-Encoding")
    if send_continue and b"100-continue" in req.tokens(b"expect"):
        sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
    if te is not None:
        if te.strip().lower() != b"chunked":
            raise BadRequest("unsupported Transfer-Encoding")
        req.body, req.trailers = read_chunked(reader)
    elif cl is not None:
        if len(set(cl)) != 1 or not cl[0].isdigit():
            raise BadRequest("bad Content-Length")
        req.body = reader.exact(int(cl[0]))
    return req


def read_chunked(reader):
    body = b""
    while True:
        size_line = reader.until(b"\r\n", 4096)
        size = size_line.split(b";", 1)[0].strip()
        try:
            n = int(size, 16)
        except ValueError:
            raise BadRequest("bad chunk size") from None
        if n == 0:
            trailers = []
            while True:
                line = reader.until(b"\r\n", MAX_HEAD)
                if line == b"":
                    return body, trailers
                name, sep, value = line.partition(b":")
                if not sep or not name or name != name.strip():
                    raise BadRequest("bad trailer line")
                trailers.append((name, value.strip()))
        body += reader.exact(n)
        if reader.exact(2) != b"\r\n":
            raise BadRequest("chunk not followed by CRLF")


def graceful_close(sock):
    """A FIN, then read and drop whatever the client still sends (so close() sends no RST)."""
    try:
        sock.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + DRAIN_S
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            sock.settimeout(left)
            if not sock.recv(65536):
                break
    except OSError:
        pass
    finally:
        sock.close()


def reset_close(sock):
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def answer(sock, req, mode, stats, close):
    """Sends one response in an answering mode."""
    if req.method == b"GET" and req.target == b"/__stats":
        ctype, body, counted = b"application/json", stats.json().encode() + b"\n", False
    elif mode == "echo-head":
        # What arrived, exactly: the head as received, a blank line, the body.
        ctype, body, counted = b"text/plain", req.raw_head + b"\r\n\r\n" + req.body, True
    elif mode == "trailers":
        body = b"hello from " + req.target + b"\n"
        body += b"te: " + (req.header(b"te") or b"-") + b"\n"
        for name, value in req.trailers:
            body += b"trailer: " + name + b": " + value + b"\n"
        pad = req.target.rpartition(b"?pad=")[2]
        if pad.isdigit():
            body += b"x" * int(pad) + b"\n"
        body += b"body: " + req.body + b"\n"
        ctype, counted = b"text/plain", True
    else:
        ctype, body, counted = b"text/plain", b"hello from " + req.target + b"\n", True
    if counted:
        # Before the answer leaves: a client that has it and then asks /__stats must
        # find it counted.
        stats.answered()
    head = b"HTTP/1.1 200 OK\r\nContent-Type: " + ctype + b"\r\n"
    if TAG:
        head += b"X-Backend: " + TAG + b"\r\n"
    if mode == "echo-head" and req.header(b"x-a") is not None:
        head += b"X-Seen-A: " + req.header(b"x-a") + b"\r\n"
    # Which address the client connected from (a proxy's --source-addrs).
    head += b"X-Peer: " + sock.getpeername()[0].encode() + b"\r\n"
    if close:
        head += b"Connection: close\r\n"
    elif req.version == b"HTTP/1.0":
        head += b"Connection: keep-alive\r\n"
    with_body = req.method != b"HEAD"
    if mode == "early-hints" and counted:
        sock.sendall(b"HTTP/1.1 102 Processing\r\n\r\n")
        time.sleep(0.05)
        sock.sendall(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n"
                     b"Connection: X-Hop\r\nX-Hop: 1\r\n\r\n")
        time.sleep(0.05)
    if mode == "trailers" and counted:
        sock.sendall(head + b"Transfer-Encoding: chunked\r\nTrailer: X-Checksum, X-Done\r\n\r\n")
        if with_body:
            sock.sendall(b"%x\r\n%s\r\n" % (len(body), body))
            sock.sendall(b"0\r\nX-Checksum: %d\r\nSet-Cookie: late=1\r\nX-Done: yes\r\n\r\n"
                         % len(body))
    elif mode == "chunked" and counted:
        sock.sendall(head + b"Transfer-Encoding: chunked\r\n\r\n")
        if with_body:
            third = len(body) // 3
            for piece in (body[:third], body[third:2 * third], body[2 * third:]):
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
            sock.sendall(b"0\r\n\r\n")
    else:
        head += b"Content-Length: %d\r\n\r\n" % len(body)
        sock.sendall(head + body if with_body else head)


def serve(sock, args, stats):
    mode = args.mode
    reader = Reader(sock)
    first = True
    first_request = True
    while True:
        if mode == "close-idle" and not first:
            if not reader.wait_readable(args.idle_close_ms / 1000):
                graceful_close(sock)
                return
        first = False
        try:
            req = read_request(reader, sock, mode in ANSWERING, hold=mode == "hold-body")
        except BadRequest:
            sock.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
                         b"Connection: close\r\n\r\n")
            graceful_close(sock)
            return

        if mode == "drop-second" and not first_request:
            graceful_close(sock)
            return
        if args.mode == "stall-second":
            mode = "ok" if first_request else "stall"
        first_request = False
        if req.held:
            time.sleep(HOLD_S)
            sock.close()
            return
        if mode in ANSWERING:
            if mode == "slow":
                time.sleep(args.delay_ms / 1000)
            close = mode == "one-shot" or req.wants_close()
            answer(sock, req, mode, stats, close)
            if close:
                graceful_close(sock)
                return
            continue

        if mode == "upgrade-echo":
            upgrade_echo(sock, reader, req)
        elif mode == "reset":
            reset_close(sock)
        elif mode == "stall":
            while sock.recv(65536):
                pass
            sock.close()
        elif mode == "close-delimited":
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n"
                         b"hello from " + req.target + b"\n")
            stats.answered()
            graceful_close(sock)
        elif mode == "malformed":
            sock.sendall(b"HTTP/1.1 2x0 Nope\r\n\r\n")
            graceful_close(sock)
        elif mode == "bad-framing":
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
            graceful_close(sock)
        elif mode == "mid-body-close":
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                         b"Content-Length: 1000\r\n\r\n" + b"x" * 100)
            graceful_close(sock)
        return


def upgrade_echo(sock, reader, req):
    """101, then echo until the client's end of stream, then `after-eof` and close."""
    upgrade = req.header(b"upgrade")
    if upgrade is None:
        sock.sendall(b"HTTP/1.1 426 Upgrade Required\r\nContent-Length: 0\r\n\r\n")
        graceful_close(sock)
        return
    sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                 b"Upgrade: " + upgrade + b"\r\n\r\n")
    if reader.buf:
        sock.sendall(reader.buf)
        reader.buf = b""
    while True:
        data = sock.recv(65536)
        if not data:
            break
        sock.sendall(data)
    # The client's half is closed; this half still carries bytes.
    sock.sendall(b"after-eof\n")
    if isinstance(sock, ssl.SSLSocket):
        try:
            sock = sock.unwrap()  # close_notify (the client's already came)
        except (OSError, ValueError):
            pass
    graceful_close(sock)


def connection(sock, args, stats, slots):
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if TLS is not None:
            sock = TLS.wrap_socket(sock, server_side=True)
        serve(sock, args, stats)
    except (Closed, OSError):
        pass
    finally:
        sock.close()  # a no-op when already closed
        slots.release()


def parse_listen(text):
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError("expected HOST:PORT, got %r" % text)
    return host.strip("[]"), int(port)


def main():
    p = argparse.ArgumentParser(description="A misbehaving HTTP/1.1 backend for tests.")
    p.add_argument("--mode", required=True, choices=MODES)
    p.add_argument("--listen", type=parse_listen, default=("127.0.0.1", 0))
    p.add_argument("--delay-ms", type=int, default=2000)
    p.add_argument("--idle-close-ms", type=int, default=200)
    p.add_argument("--tag", default="", help="answer with `X-Backend: TAG`")
    p.add_argument("--tls-cert", help="serve TLS with this PEM certificate (with --tls-key)")
    p.add_argument("--tls-key", help="the PEM private key of --tls-cert")
    args = p.parse_args()
    global TAG, TLS
    TAG = args.tag.encode()
    if args.tls_cert:
        TLS = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        TLS.load_cert_chain(args.tls_cert, args.tls_key)

    def stop(signum, frame):
        os._exit(0)  # threads may be blocked in recv(); nothing to flush or clean up

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    host, port = args.listen
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    lsock = socket.socket(family, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind((host, port))
    lsock.listen(1024)
    bound = lsock.getsockname()
    shown = "[%s]" % bound[0] if family == socket.AF_INET6 else bound[0]
    print("bad_backend %s listening on %s:%d" % (args.mode, shown, bound[1]),
          file=sys.stderr, flush=True)

    stats = Stats()
    slots = threading.BoundedSemaphore(MAX_CONNS)
    while True:
        slots.acquire()
        try:
            sock, _ = lsock.accept()
        except OSError:
            slots.release()
            continue
        stats.connected()
        threading.Thread(target=connection, args=(sock, args, stats, slots), daemon=True).start()


if __name__ == "__main__":
    main()
