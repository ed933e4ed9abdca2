#!/usr/bin/env python3
"""h2_holder: opens N idle HTTP/2 (h2c, prior knowledge) connections and holds them.

Each connection sends the preface and SETTINGS, one `GET /plaintext`, reads the whole
response (and the server's SETTINGS, acknowledged), so the server holds it as an idle
HTTP/2 connection with its HPACK tables in use. Prints `ready OPEN FAILED` on stdout once
all are set up, then holds them until stdin closes or --hold seconds pass. Uses Python's
`h2` (hyper-h2). Connections are set up one after another (bounded waits).
"""

import argparse
import socket
import sys
import time

import h2.config
import h2.connection
import h2.events


def open_one(addr, timeout):
    host, port = addr.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=timeout)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    sid = conn.get_next_available_stream_id()
    conn.send_headers(sid, [(":method", "GET"), (":path", "/plaintext"),
                            (":scheme", "http"), (":authority", addr)], end_stream=True)
    s.sendall(conn.data_to_send())
    done = False
    deadline = time.monotonic() + timeout
    while not done and time.monotonic() < deadline:
        data = s.recv(65536)
        if not data:
            raise ConnectionError("closed")
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.StreamEnded) and ev.stream_id == sid:
                done = True
        out = conn.data_to_send()
        if out:
            s.sendall(out)
    if not done:
        raise TimeoutError("no response")
    return s, conn


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--addr", required=True)
    p.add_argument("--connections", type=int, default=2000)
    p.add_argument("--hold", type=float, default=60.0)
    a = p.parse_args()
    held, failed = [], 0
    for _ in range(a.connections):
        try:
            held.append(open_one(a.addr, 5.0))
        except (OSError, ConnectionError, TimeoutError):
            failed += 1
    print(f"ready {len(held)} {failed}", flush=True)
    deadline = time.monotonic() + a.hold
    while time.monotonic() < deadline:
        if not sys.stdin.readable() or sys.stdin.read(1) == "":
            break
    return 0


if __name__ == "__main__":
    sys.exit(main())
