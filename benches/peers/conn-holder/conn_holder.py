#!/usr/bin/env python3
"""conn-holder: opens N idle HTTP/1.1 keep-alive connections and holds them.

Each connection sends one `GET /plaintext` and reads its whole response (status 200,
Content-Length body), so the server has served a request on it and holds it as an idle
keep-alive connection, as it would between a browser's requests. Then the connection
stays open, silent, until this program ends.

Used by scripts/bench-compare (memory-idle) to measure a server's memory per idle connection. Python 3
standard library only (selectors, non-blocking sockets); at most --in-flight
connections are being set up at once, so the server's accept queue never overflows.

With --sources K > 1 the connections are spread over the source addresses 127.0.0.2 ..
127.0.0.(K+1), K x ~28,000 ephemeral ports, so 100,000 connections fit (the whole of
127.0.0.0/8 is loopback on Linux).

When all connections are set up (or have failed) it prints one line on stdout,
`ready OPEN FAILED`, and holds the connections until its standard input closes or
--hold seconds have passed, whichever comes first. Every wait is bounded.
"""

import argparse
import os
import selectors
import socket
import sys
import time

# Linux: bind() to an address without picking a port yet; connect() picks it per
# 4-tuple, so a source address is not limited to one use of each port across servers.
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--addr", required=True, help="server IP:PORT (loopback only)")
    p.add_argument("--connections", type=int, default=10_000)
    p.add_argument("--sources", type=int, default=1,
                   help="spread over 127.0.0.2 .. 127.0.0.(K+1) (default 1: no bind)")
    p.add_argument("--path", default="/plaintext")
    p.add_argument("--in-flight", type=int, default=256,
                   help="connections being set up at once (default 256)")
    p.add_argument("--setup-timeout", type=float, default=300.0,
                   help="give up on connections not set up after this many seconds")
    p.add_argument("--hold", type=float, default=600.0,
                   help="hold the connections at most this many seconds (default 600)")
    a = p.parse_args()
    host, _, port = a.addr.rpartition(":")
    host = host.strip("[]")
    if not (host.startswith("127.") or host == "::1"):
        p.error("--addr must be a loopback address")
    if not 1 <= a.connections <= 1_000_000 or not 1 <= a.sources <= 250:
        p.error("--connections must be 1..1000000 and --sources 1..250")
    a.host, a.port = host, int(port)
    return a


class Conn:
    __slots__ = ("sock", "buf", "state")

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.state = "connecting"


def response_complete(buf):
    """None while incomplete; True for a complete 200 response; False for anything else."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = buf[:end].decode("latin-1").split("\r\n")
    if len(head[0].split(" ")) < 2 or head[0].split(" ")[1] != "200":
        return False
    length = 0
    for line in head[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    have = len(buf) - end - 4
    if have < length:
        return None
    return have == length


def main():
    a = parse_args()
    family = socket.AF_INET6 if ":" in a.host else socket.AF_INET
    request = (f"GET {a.path} HTTP/1.1\r\nHost: {a.host}\r\n"
               "User-Agent: conn-holder\r\nAccept: */*\r\n\r\n").encode()
    sel = selectors.DefaultSelector()
    held = []  # idle keep-alive connections (their sockets stay open)
    started = failed = in_flight = 0
    errors = {}
    deadline = time.monotonic() + a.setup_timeout

    def fail(conn, why):
        nonlocal failed, in_flight
        errors[why] = errors.get(why, 0) + 1
        failed += 1
        in_flight -= 1
        sel.unregister(conn.sock)
        conn.sock.close()

    while (len(held) + failed < a.connections) and time.monotonic() < deadline:
        while started < a.connections and in_flight < a.in_flight:
            s = socket.socket(family, socket.SOCK_STREAM)
            s.setblocking(False)
            if a.sources > 1 and family == socket.AF_INET:
                s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
                s.bind((f"127.0.0.{2 + started % a.sources}", 0))
            err = s.connect_ex((a.host, a.port))
            started += 1
            in_flight += 1
            conn = Conn(s)
            sel.register(s, selectors.EVENT_WRITE, conn)
            if err not in (0, 115):  # EINPROGRESS
                fail(conn, os.strerror(err))
        for key, _ in sel.select(timeout=1.0):
            conn = key.data
            s = conn.sock
            if conn.state == "connecting":
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    fail(conn, os.strerror(err))
                    continue
                try:
                    s.send(request)  # small: goes whole into an empty socket buffer
                except OSError as e:
                    fail(conn, e.strerror or str(e))
                    continue
                conn.state = "reading"
                sel.modify(s, selectors.EVENT_READ, conn)
                continue
            try:
                data = s.recv(65536)
            except BlockingIOError:
                continue
            except OSError as e:
                fail(conn, e.strerror or str(e))
                continue
            if not data:
                fail(conn, "closed by server")
                continue
            conn.buf += data
            done = response_complete(conn.buf)
            if done is None:
                continue
            if not done:
                fail(conn, "bad response")
                continue
            sel.unregister(s)
            in_flight -= 1
            held.append(s)
    timed_out = a.connections - len(held) - failed
    if timed_out:
        errors["setup timeout"] = timed_out
    print(f"ready {len(held)} {a.connections - len(held)}", flush=True)
    if errors:
        print("conn-holder: failures: " + ", ".join(f"{k}: {v}" for k, v in errors.items()),
              file=sys.stderr)
    # Hold until stdin closes (the script is done measuring) or --hold runs out.
    hold = selectors.DefaultSelector()
    end = time.monotonic() + a.hold
    try:
        hold.register(sys.stdin, selectors.EVENT_READ)
    except (PermissionError, ValueError):
        end = 0.0  # stdin is /dev/null or a file: it is "closed" already
    while time.monotonic() < end:
        if hold.select(timeout=min(1.0, max(0.0, end - time.monotonic()))):
            if not sys.stdin.buffer.read1(4096):
                break
    for s in held:
        s.close()
    return 0 if held else 1


if __name__ == "__main__":
    sys.exit(main())
