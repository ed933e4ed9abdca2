#!/usr/bin/env python3
"""How much a proxy's peak memory grows while a body streams through it faster than
one side can take it (issue 16: backpressure must bound what the proxy holds).

usage: benches/proxy-held-memory.py PROXY_BIN SCENARIO BACKEND_BIN
  SCENARIO: up (128 MiB POST echoed back, fast reader), upslow (64 MiB, reader sleeping
  0.5 ms per 64 KiB read), down (48 MiB /bytes download), downslow (the same, slow
  reader), h2down (the same download over h2c by Python's hyper-h2 with its default
  windows, each DATA frame's bytes acknowledged as read). Prints the growth of the proxy's VmHWM after a warm-up transfer (which
  faults in the buffer ring and the allocator's pools every later transfer reuses).
"""
import socket, subprocess, sys, threading, time, re
def start(binary, args):
    p = subprocess.Popen([binary]+args, stderr=subprocess.PIPE, text=True)
    line = p.stderr.readline()
    addr = re.search(r'listening on (\S+)', line).group(1)
    h, port = addr.rsplit(':',1)
    threading.Thread(target=lambda: p.stderr.read(), daemon=True).start()
    return p, (h, int(port))
def hwm(pid):
    for l in open(f'/proc/{pid}/status'):
        if l.startswith('VmHWM'): return int(l.split()[1])
def upload(addr, n, slow_read=0.0):
    s = socket.create_connection(addr)
    s.sendall(f'POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {n}\r\n\r\n'.encode())
    got = [0]
    def rd():
        while True:
            d = s.recv(1<<16)
            if not d: break
            got[0]+=len(d)
            if got[0] >= n: break
            if slow_read: time.sleep(slow_read)
    t = threading.Thread(target=rd); t.start()
    chunk = bytes(1<<20)
    for _ in range(n>>20): s.sendall(chunk)
    t.join(); s.close()
def download(addr, n, slow_read):
    s = socket.create_connection(addr)
    s.sendall(f'GET /bytes/{n} HTTP/1.1\r\nHost: x\r\n\r\n'.encode())
    got=0
    while got < n:
        d = s.recv(1<<16)
        if not d: break
        got += len(d)
        if slow_read: time.sleep(slow_read)
    s.close()
def h2_download(addr, n):
    import h2.connection, h2.config, h2.events
    s = socket.create_connection(addr)
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    c.initiate_connection()
    c.send_headers(1, [(':method', 'GET'), (':path', f'/bytes/{n}'), (':scheme', 'http'),
                       (':authority', 'x')], end_stream=True)
    s.sendall(c.data_to_send())
    got, done = 0, False
    while not done:
        d = s.recv(1 << 16)
        if not d: break
        for e in c.receive_data(d):
            if isinstance(e, h2.events.DataReceived):
                got += len(e.data)
                c.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
            elif isinstance(e, (h2.events.StreamEnded, h2.events.StreamReset)):
                done = True
        s.sendall(c.data_to_send())
    s.close()
    assert got == n, f'h2 download got {got} of {n} bytes'
binary, scen = sys.argv[1], sys.argv[2]
be, ba = start(sys.argv[3], ['http','--listen','127.0.0.1:0','--shards','1','--max-body','300000000'])
px, pa = start(binary, ['proxy','--listen','127.0.0.1:0','--shards','1','--upstream',f'{ba[0]}:{ba[1]}','--max-body','300000000'])
time.sleep(0.2)
download(pa, 32<<20, 0); upload(pa, 32<<20)
b = hwm(px.pid)
if scen == 'up': upload(pa, 128<<20)
elif scen == 'upslow': upload(pa, 64<<20, 0.0005)
elif scen == 'down': download(pa, 48<<20, 0)
elif scen == 'downslow': download(pa, 48<<20, 0.0005)
elif scen == 'h2down': h2_download(pa, 48<<20)
print(scen, 'grew', (hwm(px.pid)-b)//1024, 'MiB')
px.terminate(); be.terminate(); px.wait(); be.wait()
