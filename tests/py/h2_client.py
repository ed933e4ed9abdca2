#!/usr/bin/env python3
"""Frame-level HTTP/2 cases against `ringmaster http` with hyper-h2 (Python `h2`).

Usage: h2_client.py HOST:PORT SERVER_PID
       h2_client.py HOST:PORT stall
       h2_client.py HOST:PORT drip

Cleartext with prior knowledge (h2c). Every loop is bounded in count and time; the
address must be 127.0.0.1. The last case sends SIGTERM to SERVER_PID and checks the
GOAWAY. With `stall`, the one case is a client that keeps its window at zero, against a
server started with a short `--h2-stall-timeout` (about a second). With `drip`, the one
case is a request body sent a byte at a time, slower than the server's minimum body
rate, against the same short stall timeout: it must get 408 and RST_STREAM NO_ERROR
while another stream on the connection is answered. Prints "ok" when
every case passed; exits non-zero with the failing case otherwise.
"""

import os
import signal
import socket
import sys
import time

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings

DEADLINE = 10.0  # seconds per case


class Conn:
    def __init__(self, addr, window=None, validate=True):
        host, port = addr.rsplit(":", 1)
        assert host == "127.0.0.1", host
        self.sock = socket.create_connection((host, int(port)), timeout=DEADLINE)
        self.sock.settimeout(1.0)
        cfg = h2.config.H2Configuration(
            client_side=True,
            validate_outbound_headers=validate,
            normalize_outbound_headers=validate,
        )
        self.h2 = h2.connection.H2Connection(config=cfg)
        self.h2.initiate_connection()
        if window is not None:
            self.h2.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
        self.flush()
        self.events = []
        self.bodies = {}
        self.ended = []
        self.closed = False

    def flush(self):
        data = self.h2.data_to_send()
        if data:
            self.sock.sendall(data)

    def get(self, path, method="GET", body=None, extra=(), end=True):
        sid = self.h2.get_next_available_stream_id()
        headers = [
            (":method", method),
            (":scheme", "http"),
            (":authority", "127.0.0.1"),
            (":path", path),
        ] + list(extra)
        self.h2.send_headers(sid, headers, end_stream=end and body is None)
        if body is not None:
            self.h2.send_data(sid, body, end_stream=True)
        self.flush()
        return sid

    def pump(self, until, limit=DEADLINE, ack_data=True):
        """Reads and handles events until `until()` is true; bounded by `limit` seconds."""
        end = time.monotonic() + limit
        while not until():
            if time.monotonic() > end:
                raise AssertionError("timed out; events: %r" % self.events[-10:])
            if self.closed:
                raise AssertionError("connection closed; events: %r" % self.events[-10:])
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not data:
                self.closed = True
                continue
            for ev in self.h2.receive_data(data):
                self.events.append(ev)
                if isinstance(ev, h2.events.DataReceived):
                    self.bodies[ev.stream_id] = self.bodies.get(ev.stream_id, b"") + ev.data
                    if ack_data:
                        self.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, h2.events.StreamEnded):
                    self.ended.append(ev.stream_id)
            self.flush()

    def of(self, kind):
        return [e for e in self.events if isinstance(e, kind)]

    def status(self, sid):
        for e in self.of(h2.events.ResponseReceived):
            if e.stream_id == sid:
                return dict(e.headers)[b":status"]
        return None


def settings_and_ack(addr):
    c = Conn(addr)
    c.pump(lambda: c.of(h2.events.SettingsAcknowledged) and c.of(h2.events.RemoteSettingsChanged))
    s = c.h2.remote_settings
    assert s.max_concurrent_streams == 128, s.max_concurrent_streams
    assert s.max_frame_size == 16384, s.max_frame_size
    assert s.header_table_size <= 4096, s.header_table_size


def ping(addr):
    c = Conn(addr)
    c.h2.ping(b"rm-ping!")
    c.flush()
    c.pump(lambda: c.of(h2.events.PingAckReceived))
    assert c.of(h2.events.PingAckReceived)[0].ping_data == b"rm-ping!"


def out_of_order(addr):
    c = Conn(addr)
    t0 = time.monotonic()
    slow = c.get("/delay/500")
    fast = c.get("/plaintext")
    c.pump(lambda: fast in c.ended)
    fast_at = time.monotonic() - t0
    assert slow not in c.ended, "the delayed stream ended first"
    assert fast_at < 0.4, "stream 3 waited %.3f s" % fast_at
    assert c.bodies[fast] == b"Hello, World!", c.bodies[fast]
    c.pump(lambda: slow in c.ended)
    assert c.status(slow) == b"200"
    # Many concurrent streams on one connection, all answered.
    sids = [c.get("/plaintext") for _ in range(50)]
    c.pump(lambda: all(s in c.ended for s in sids))
    assert all(c.bodies[s] == b"Hello, World!" for s in sids)


def flow_control(addr):
    c = Conn(addr, window=1000)
    c.pump(lambda: c.of(h2.events.SettingsAcknowledged))
    sid = c.get("/bytes/100000")
    c.pump(lambda: sid in c.ended, limit=20)
    body = c.bodies.get(sid, b"")
    assert len(body) == 100000 and body == b"x" * 100000, len(body)
    frames = [e for e in c.of(h2.events.DataReceived) if e.stream_id == sid]
    assert max(len(e.data) for e in frames) <= 1000, "a DATA frame overran the window"
    # A request body larger than the first window (the server opens it again).
    body = os.urandom(200000)
    sid = c.get("/echo", method="POST", end=False)
    # Sent in pieces within the server's windows.
    sent = 0
    end = time.monotonic() + DEADLINE
    while sent < len(body):
        assert time.monotonic() < end, "request body stalled"
        room = min(c.h2.local_flow_control_window(sid), c.h2.max_outbound_frame_size)
        if room <= 0:
            c.pump(lambda: c.h2.local_flow_control_window(sid) > 0, limit=5)
            continue
        piece = body[sent:sent + room]
        sent += len(piece)
        c.h2.send_data(sid, piece, end_stream=sent == len(body))
        c.flush()
    c.pump(lambda: sid in c.ended)
    assert c.bodies[sid] == body, "echo differs"


def rst_stream(addr):
    c = Conn(addr)
    slow = c.get("/delay/300")
    c.h2.reset_stream(slow, h2.errors.ErrorCodes.CANCEL)
    c.flush()
    fast = c.get("/plaintext")
    c.pump(lambda: fast in c.ended)
    time.sleep(0.4)
    c.pump(lambda: True)
    assert slow not in c.ended
    assert not c.of(h2.events.ConnectionTerminated)


def bad_pseudo_header(addr):
    c = Conn(addr, validate=False)
    sid = c.h2.get_next_available_stream_id()
    c.h2.send_headers(
        sid,
        [(":method", "GET"), (":scheme", "http"), (":path", "/plaintext"), (":bogus", "1")],
        end_stream=True,
    )
    c.flush()
    c.pump(lambda: c.of(h2.events.StreamReset))
    r = c.of(h2.events.StreamReset)[0]
    assert r.stream_id == sid and r.error_code == h2.errors.ErrorCodes.PROTOCOL_ERROR, r
    # Uppercase field names are malformed too; the connection goes on.
    sid = c.h2.get_next_available_stream_id()
    c.h2.send_headers(
        sid,
        [(":method", "GET"), (":scheme", "http"), (":path", "/plaintext"), ("X-Up", "1")],
        end_stream=True,
    )
    c.flush()
    c.pump(lambda: len(c.of(h2.events.StreamReset)) == 2)
    ok = c.get("/plaintext")
    c.pump(lambda: ok in c.ended)


def rapid_reset(addr):
    c = Conn(addr)
    c.pump(lambda: c.of(h2.events.SettingsAcknowledged))
    for _ in range(400):
        sid = c.get("/delay/1000")
        c.h2.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
    c.flush()
    c.pump(lambda: c.of(h2.events.ConnectionTerminated))
    t = c.of(h2.events.ConnectionTerminated)[0]
    assert t.error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM, t


def zero_window_stall(addr):
    """A response stuck on a zero stream window is reset with CANCEL after the stall
    timeout; the connection goes on."""
    c = Conn(addr, window=0)
    c.pump(lambda: c.of(h2.events.SettingsAcknowledged))
    start = time.monotonic()
    sid = c.get("/bytes/1000")
    c.pump(lambda: c.of(h2.events.StreamReset), limit=5)
    waited = time.monotonic() - start
    r = c.of(h2.events.StreamReset)[0]
    assert r.stream_id == sid, r
    assert r.error_code == h2.errors.ErrorCodes.CANCEL, r
    assert 0.5 <= waited <= 4.0, waited
    assert c.status(sid) == b"200" and not c.bodies.get(sid), c.bodies
    # A bodiless answer still comes on the same connection.
    head = c.get("/plaintext", method="HEAD")
    c.pump(lambda: head in c.ended)
    assert c.status(head) == b"200"
    assert not c.of(h2.events.ConnectionTerminated)


def goaway_on_sigterm(addr, pid):
    c = Conn(addr)
    sid = c.get("/delay/300")
    c.pump(lambda: c.of(h2.events.SettingsAcknowledged))
    os.kill(pid, signal.SIGTERM)
    # hyper-h2 takes any GOAWAY as the end of the connection and refuses frames after
    # it, so what follows is read as raw frames: GOAWAY NO_ERROR naming the open
    # stream, then that stream's response to its end, then the close.
    raw = b""
    end = time.monotonic() + DEADLINE
    while True:
        assert time.monotonic() < end, "no close after GOAWAY: %r" % raw[:200]
        try:
            data = c.sock.recv(65536)
        except socket.timeout:
            continue
        if not data:
            break
        raw += data
    frames = []
    pos = 0
    while pos + 9 <= len(raw):
        length = int.from_bytes(raw[pos:pos + 3], "big")
        kind, flags = raw[pos + 3], raw[pos + 4]
        stream = int.from_bytes(raw[pos + 5:pos + 9], "big") & 0x7FFFFFFF
        payload = raw[pos + 9:pos + 9 + length]
        frames.append((kind, flags, stream, payload))
        pos += 9 + length
    goaways = [i for i, f in enumerate(frames) if f[0] == 7]
    assert goaways, "no GOAWAY: %r" % frames
    g = frames[goaways[0]][3]
    last, code = int.from_bytes(g[0:4], "big"), int.from_bytes(g[4:8], "big")
    assert (last, code) == (sid, 0), (last, code)
    after = frames[goaways[0] + 1:]
    assert any(k == 1 and s == sid for k, _, s, _ in after), "no response HEADERS"
    assert any(k == 0 and s == sid and f & 1 for k, f, s, _ in after), "no END_STREAM"


def slow_drip(addr):
    c = Conn(addr)
    drip = c.get("/echo", method="POST", end=False)
    end = time.monotonic() + DEADLINE
    # A byte every 0.3 s (far under 1 KiB/s) until the server gives up on the stream.
    while not c.of(h2.events.StreamReset):
        assert time.monotonic() < end, "no answer to a slow drip; events: %r" % c.events[-10:]
        c.h2.send_data(drip, b"x")
        c.flush()
        try:
            c.pump(lambda: c.of(h2.events.StreamReset), limit=0.3)
        except AssertionError:
            pass
    reset = c.of(h2.events.StreamReset)[0]
    assert reset.stream_id == drip, reset
    assert reset.error_code == h2.errors.ErrorCodes.NO_ERROR, reset
    assert c.status(drip) == b"408", c.status(drip)
    # The connection goes on.
    fast = c.get("/plaintext")
    c.pump(lambda: fast in c.ended)
    assert c.bodies[fast] == b"Hello, World!"


def main():
    single = {"stall": zero_window_stall, "drip": slow_drip}
    if sys.argv[2] in single:
        case = single[sys.argv[2]]
        try:
            case(sys.argv[1])
        except Exception as e:  # noqa: BLE001
            print("FAIL %s: %r" % (case.__name__, e))
            sys.exit(1)
        print("ok")
        return
    addr, pid = sys.argv[1], int(sys.argv[2])
    cases = [
        settings_and_ack,
        ping,
        out_of_order,
        flow_control,
        rst_stream,
        bad_pseudo_header,
        rapid_reset,
    ]
    for case in cases:
        try:
            case(addr)
        except Exception as e:  # noqa: BLE001 - report which case failed
            print("FAIL %s: %r" % (case.__name__, e))
            sys.exit(1)
    try:
        goaway_on_sigterm(addr, pid)
    except Exception as e:  # noqa: BLE001
        print("FAIL goaway_on_sigterm: %r" % (e,))
        sys.exit(1)
    print("ok")


if __name__ == "__main__":
    main()
