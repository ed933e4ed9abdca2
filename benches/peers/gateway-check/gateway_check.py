#!/usr/bin/env python3
"""gateway_check: does a gateway of the gateway benchmark do what the benchmark assumes?

Usage: gateway_check.py GATEWAY_BIN [EXTRA_ARGS...]
  e.g. gateway_check.py target/release/examples/gateway --shards 1
       gateway_check.py benches/peers/axum-gateway/target/release/axum-gateway

Starts the gateway (`GATEWAY_BIN --listen 127.0.0.1:0 --backend ADDR EXTRA_ARGS...`, ready
once it prints `listening on ADDR` on stderr) in front of small backends made here, and
checks, one line each:
  - a Content-Length answer: status, Content-Type, Content-Length and the body upper-cased;
    `GET PATH?QUERY` reaches the backend as it was sent, with `Host: ADDR`
  - keep-alive on both sides: 20 requests on one client connection use 1 backend connection
  - a chunked answer (sent in three pieces 0.4 s apart): answered chunked, upper-cased, and
    streamed (the first piece reaches the client before the backend sends the last)
  - a backend that accepts and never answers: 504 after about 5 s
  - a backend port that refuses connections: 502
Exit 0 when all pass, 1 otherwise. Only the Python standard library.
"""

import re
import socket
import subprocess
import sys
import threading
import time

PIECE_GAP = 0.4


class Backend:
    """A tiny HTTP/1.1 backend on 127.0.0.1: `mode` is "length", "chunked" or "silent"."""

    def __init__(self, mode):
        self.mode = mode
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.addr = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.accepted = 0
        self.heads = []
        self.last_piece_at = None
        threading.Thread(target=self.accept_loop, daemon=True).start()

    def accept_loop(self):
        while True:
            conn, _ = self.sock.accept()
            self.accepted += 1
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def serve(self, conn):
        buf = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                head, buf = buf.split(b"\r\n\r\n", 1)
                self.heads.append(head.decode("latin-1"))
                if self.mode == "silent":
                    time.sleep(30)
                    return
                if self.mode == "length":
                    body = b"Hello, Mixed Case 123 world!"
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/x-check\r\nContent-Length: %d\r\n\r\n%s"
                                 % (len(body), body))
                else:
                    conn.sendall(b"HTTP/1.1 201 Created\r\nContent-Type: text/x-chunks\r\n"
                                 b"Transfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n")
                    time.sleep(PIECE_GAP)
                    conn.sendall(b"7\r\n-second\r\n")
                    time.sleep(PIECE_GAP)
                    self.last_piece_at = time.monotonic()
                    conn.sendall(b"6\r\n-third\r\n0\r\n\r\n")


def read_response(sock, buf=b""):
    """One response from `sock`: (status, headers dict, body, time the first body byte came,
    leftover bytes). Understands Content-Length and chunked."""
    def more():
        data = sock.recv(65536)
        if not data:
            raise EOFError("the gateway closed the connection")
        return data

    while b"\r\n\r\n" not in buf:
        buf += more()
    head, buf = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}
    first_body_at = time.monotonic() if buf else None
    if "content-length" in headers:
        n = int(headers["content-length"])
        while len(buf) < n:
            buf += more()
            first_body_at = first_body_at or time.monotonic()
        return status, headers, buf[:n], first_body_at, buf[n:]
    if headers.get("transfer-encoding", "").lower() != "chunked":
        return status, headers, b"", None, buf
    body = b""
    while True:
        while b"\r\n" not in buf:
            buf += more()
            first_body_at = first_body_at or time.monotonic()
        size_line, buf = buf.split(b"\r\n", 1)
        size = int(size_line.split(b";")[0], 16)
        while len(buf) < size + 2:
            buf += more()
        body, buf = body + buf[:size], buf[size + 2:]
        if size == 0:
            return status, headers, body, first_body_at, buf


def get(addr, path, sock=None):
    """GET `path` from the gateway (on `sock`, else a new connection) and its response."""
    own = sock is None
    if own:
        host, port = addr.rsplit(":", 1)
        sock = socket.create_connection((host, int(port)), timeout=15)
    try:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n".encode())
        return read_response(sock)
    finally:
        if own:
            sock.close()


class Gateway:
    """The gateway under test, in front of `backend`."""

    def __init__(self, cmd, backend):
        self.proc = subprocess.Popen(cmd[:1] + ["--listen", "127.0.0.1:0", "--backend", backend] + cmd[1:],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        line = self.proc.stderr.readline()
        m = re.search(r"listening on (\S+)", line)
        if not m:
            self.proc.kill()
            raise SystemExit(f"gateway_check: the gateway did not print `listening on ADDR`: {line.strip()!r}")
        self.addr = m.group(1)
        threading.Thread(target=self.proc.stderr.read, daemon=True).start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.kill()
        self.proc.wait()


def check(results, what, ok, detail=""):
    """Records and prints one check."""
    results.append(ok)
    print(f"{'ok  ' if ok else 'FAIL'} {what}" + (f": {detail}" if detail and not ok else ""), flush=True)


def main():
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if len(sys.argv) >= 2 else 2
    cmd = sys.argv[1:]
    results = []

    be = Backend("length")
    with Gateway(cmd, be.addr) as gw:
        status, headers, body, _, _ = get(gw.addr, "/some/path?x=1&Y=Two")
        check(results, "Content-Length answer: status 200, body upper-cased",
              status == 200 and body == b"HELLO, MIXED CASE 123 WORLD!", f"{status} {body!r}")
        check(results, "Content-Type and Content-Length forwarded",
              headers.get("content-type") == "text/x-check" and headers.get("content-length") == "28", str(headers))
        req = be.heads[-1].split("\r\n") if be.heads else [""]
        host = [ln.split(":", 1)[1].strip() for ln in req[1:] if ln.lower().startswith("host:")]
        check(results, "backend request: GET with the same path and query, Host: the backend",
              req[0] == "GET /some/path?x=1&Y=Two HTTP/1.1" and host == [be.addr], repr(be.heads[-1:]))
        before = be.accepted
        host, port = gw.addr.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=15) as s:
            try:
                bodies = [get(gw.addr, f"/n/{i}", s)[2] for i in range(20)]
                ok = all(b == b"HELLO, MIXED CASE 123 WORLD!" for b in bodies)
            except (OSError, EOFError):
                ok = False
        check(results, "keep-alive: 20 requests on one client connection, 1 backend connection",
              ok and be.accepted - before <= 1, f"{be.accepted - before} new backend connections")

    be = Backend("chunked")
    with Gateway(cmd, be.addr) as gw:
        status, headers, body, first_at, _ = get(gw.addr, "/chunks")
        check(results, "chunked answer: status 201, chunked, body upper-cased",
              status == 201 and headers.get("transfer-encoding", "").lower() == "chunked"
              and "content-length" not in headers and body == b"FIRST-SECOND-THIRD"
              and headers.get("content-type") == "text/x-chunks", f"{status} {headers} {body!r}")
        check(results, "chunked answer streamed: the first piece arrived before the last was sent",
              first_at is not None and be.last_piece_at is not None and first_at < be.last_piece_at,
              f"first body byte at {first_at}, last piece sent at {be.last_piece_at}")

    be = Backend("silent")
    with Gateway(cmd, be.addr) as gw:
        t0 = time.monotonic()
        status = get(gw.addr, "/silent")[0]
        took = time.monotonic() - t0
        check(results, "silent backend: 504 after about 5 s", status == 504 and 4.5 <= took <= 7,
              f"{status} after {took:.1f} s")

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = "127.0.0.1:%d" % s.getsockname()[1]
    with Gateway(cmd, closed) as gw:
        status = get(gw.addr, "/refused")[0]
        check(results, "refused backend: 502", status == 502, str(status))

    print(f"{sum(results)} passed, {len(results) - sum(results)} failed")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
