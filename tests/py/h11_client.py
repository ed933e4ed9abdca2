#!/usr/bin/env python3
"""A strict HTTP/1.1 client (h11) against `ringmaster http`.

Usage: h11_client.py HOST:PORT

Runs several exchanges on ONE connection (h11 rejects any framing or protocol error
it sees), then checks that `Connection: close` is honoured. Prints `ok` and exits 0
on success; any failure raises (exit 1).
"""
import socket
import sys

import h11


def exchange(sock, conn, method, target, body=b"", headers=(), chunked=False):
    hdrs = [("Host", "ringmaster")] + list(headers)
    if chunked:
        hdrs.append(("Transfer-Encoding", "chunked"))
    elif body or method == "POST":
        hdrs.append(("Content-Length", str(len(body))))
    out = conn.send(h11.Request(method=method, target=target, headers=hdrs))
    if chunked:
        for i in range(0, len(body), 7):
            out += conn.send(h11.Data(data=body[i:i + 7]))
    elif body:
        out += conn.send(h11.Data(data=body))
    out += conn.send(h11.EndOfMessage())
    sock.sendall(out)

    response, data = None, b""
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            chunk = sock.recv(65536)
            conn.receive_data(chunk)
            continue
        if isinstance(event, h11.InformationalResponse):
            continue
        if isinstance(event, h11.Response):
            response = event
        elif isinstance(event, h11.Data):
            data += bytes(event.data)
        elif isinstance(event, h11.EndOfMessage):
            break
        elif isinstance(event, h11.ConnectionClosed):
            raise AssertionError("connection closed mid-response")
    return response, data


def header(resp, name):
    for n, v in resp.headers:
        if n.decode().lower() == name.lower():
            return v.decode()
    return None


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=10)
    conn = h11.Connection(our_role=h11.CLIENT)

    def next_cycle():
        assert conn.our_state is h11.DONE and conn.their_state is h11.DONE, (conn.our_state, conn.their_state)
        conn.start_next_cycle()

    r, body = exchange(sock, conn, "GET", "/plaintext")
    assert r.status_code == 200 and body == b"Hello, World!", (r, body)
    assert header(r, "content-type") == "text/plain"
    assert header(r, "server") == "ringmaster"
    assert header(r, "date", ).endswith(" GMT")
    next_cycle()

    r, body = exchange(sock, conn, "GET", "/json")
    assert r.status_code == 200 and body == b'{"message":"Hello, World!"}', (r, body)
    next_cycle()

    r, body = exchange(sock, conn, "HEAD", "/plaintext")
    assert r.status_code == 200 and body == b"" and header(r, "content-length") == "13", r
    next_cycle()

    payload = bytes(range(256)) * 40
    r, body = exchange(sock, conn, "POST", "/echo", payload, chunked=True)
    assert r.status_code == 200 and body == payload, (r, len(body))
    next_cycle()

    r, body = exchange(sock, conn, "POST", "/echo", b"abc", headers=[("Expect", "100-continue")])
    assert r.status_code == 200 and body == b"abc", (r, body)
    next_cycle()

    r, body = exchange(sock, conn, "GET", "/bytes/300000")
    assert r.status_code == 200 and body == b"x" * 300000, (r, len(body))
    next_cycle()

    r, body = exchange(sock, conn, "GET", "/delay/20")
    assert r.status_code == 200 and body == b"OK", (r, body)
    next_cycle()

    r, body = exchange(sock, conn, "GET", "/nope")
    assert r.status_code == 404, r
    next_cycle()

    r, body = exchange(sock, conn, "DELETE", "/json")
    assert r.status_code == 405 and header(r, "allow") == "GET, HEAD", r
    next_cycle()

    r, body = exchange(sock, conn, "GET", "/plaintext", headers=[("Connection", "close")])
    assert r.status_code == 200 and header(r, "connection") == "close", r
    assert conn.our_state is h11.MUST_CLOSE, conn.our_state
    sock.settimeout(5)
    assert sock.recv(1) == b"", "server did not close after Connection: close"
    sock.close()
    print("ok")


if __name__ == "__main__":
    main()
