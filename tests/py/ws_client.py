"""Python `websockets` (asyncio client) against `ringmaster ws`.

Usage:
  ws_client.py echo ADDR LIMIT [CAFILE]      sizes up to LIMIT, fragments, ping/pong, close
                                             codes, invalid UTF-8 across fragments,
                                             unmasked frame, oversize (wss:// with CAFILE)
  ws_client.py broadcast ADDR N [CAFILE]     N clients, each sends one message, each must
                                             receive all N exactly once

Prints `ok` and exits 0 when every check passed; otherwise raises. Every wait is bounded.

The asyncio client, not the threaded sync one: the sync client reads a TLS socket in one
thread while writing it in another, which races in OpenSSL when TLS 1.3 session tickets
arrive during the opening handshake (it hangs against any TLS 1.3 server, socat included).
"""

import asyncio
import contextlib
import os
import socket
import ssl
import struct
import sys
import time

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode

T = 30  # seconds: bound on every single wait


def open_ws(addr, cafile):
    return connect(
        f"{'wss' if cafile else 'ws'}://{addr}/",
        ssl=ssl.create_default_context(cafile=cafile) if cafile else None,
        server_hostname="localhost" if cafile else None,
        proxy=None,
        open_timeout=T,
        close_timeout=T,
        max_size=None,
        ping_interval=None,
    )


async def recv(ws):
    return await asyncio.wait_for(ws.recv(), T)


async def closed_with(ws, code):
    """Waits (bounded) for the server's close; checks its code."""
    try:
        while True:
            await recv(ws)
    except ConnectionClosed:
        pass
    rcvd = ws.protocol.close_rcvd
    got = rcvd.code if rcvd else None
    assert got == code, f"expected close {code}, got {got} ({rcvd})"


async def echo(addr, limit, cafile):
    async with open_ws(addr, cafile) as ws:
        # permessage-deflate was offered (the client's default) and must be declined.
        ext = ws.response.headers.get("Sec-WebSocket-Extensions")
        assert ext is None, ws.response.headers
        for n in [0, 1, 125, 126, 65535, 65536, 1 << 20, limit]:
            text = ("é" * (n // 2)) + ("x" * (n % 2))
            await ws.send(text)
            assert await recv(ws) == text, f"text of {n} bytes"
            data = os.urandom(n)
            await ws.send(data)
            assert await recv(ws) == data, f"binary of {n} bytes"
        # Fragmented: an iterable is sent as one message in several frames.
        await ws.send(["frag", "mented ", "€uro"])
        assert await recv(ws) == "fragmented €uro"
        await ws.send([b"\x00", b"\x01\x02"])
        assert await recv(ws) == b"\x00\x01\x02"
        # Ping, pong.
        pong = await ws.ping(b"are you there")
        await asyncio.wait_for(pong, T)
        await ws.close(4001, "done")
        assert ws.protocol.close_rcvd.code == 4001, ws.protocol.close_rcvd

    # Invalid UTF-8 split across fragments: 0xF4 | 0x90 0x80 0x80 (above U+10FFFF).
    async with open_ws(addr, cafile) as ws:
        async with ws.send_context():
            ws.protocol.send_text(b"ok\xf4", fin=False)
        async with ws.send_context():
            ws.protocol.send_continuation(b"\x90\x80\x80", fin=True)
        await closed_with(ws, 1007)

    # Oversize: one byte over the limit.
    async with open_ws(addr, cafile) as ws:
        await ws.send(b"\x00" * (limit + 1))
        await closed_with(ws, 1009)

    # Close codes: a reserved code is a protocol error.
    async with open_ws(addr, cafile) as ws:
        async with ws.send_context():
            ws.protocol.send_frame(Frame(Opcode.CLOSE, struct.pack("!H", 1005)))
        await closed_with(ws, 1002)

    # Unmasked frame: by hand on a plain socket (plaintext only).
    if not cafile:
        unmasked(addr)


def unmasked(addr):
    host, port = addr.rsplit(":", 1)
    s = socket.create_connection((host.strip("[]"), int(port)), timeout=T)
    s.sendall(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        assert chunk, "closed during handshake"
        buf += chunk
    assert buf.startswith(b"HTTP/1.1 101"), buf
    buf = buf.split(b"\r\n\r\n", 1)[1]
    # Text frame, FIN, no mask bit.
    s.sendall(struct.pack("!BB", 0x81, 10) + b"not masked")
    deadline = time.time() + T
    while len(buf) < 4 and time.time() < deadline:
        chunk = s.recv(4096)
        if not chunk:
            break
        buf += chunk
    assert buf[0] == 0x88 and struct.unpack("!H", buf[2:4])[0] == 1002, buf
    s.close()


async def broadcast(addr, n, cafile):
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(open_ws(addr, cafile)) for _ in range(n)]
        for i, ws in enumerate(clients):
            await ws.send(f"from {i}")
        want = sorted(f"from {i}" for i in range(n))
        for ws in clients:
            got = sorted([await recv(ws) for _ in range(n)])
            assert got == want, got
        for ws in clients:
            try:
                extra = await asyncio.wait_for(ws.recv(), 0.2)
                raise AssertionError(f"duplicate delivery: {extra!r}")
            except asyncio.TimeoutError:
                pass


def main():
    mode, addr = sys.argv[1], sys.argv[2]
    if mode == "echo":
        cafile = sys.argv[4] if len(sys.argv) > 4 else None
        asyncio.run(echo(addr, int(sys.argv[3]), cafile))
    elif mode == "broadcast":
        cafile = sys.argv[4] if len(sys.argv) > 4 else None
        asyncio.run(broadcast(addr, int(sys.argv[3]), cafile))
    else:
        raise SystemExit(f"unknown mode {mode}")
    print("ok")


if __name__ == "__main__":
    main()
