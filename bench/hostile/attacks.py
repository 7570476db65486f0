#!/usr/bin/env python3
"""Measures `twirl serve` under issue #12's attacks, on loopback, and prints
one Markdown row per attack: what was done, and what the server's memory,
CPU and a probe client saw.

    cargo build --release -p twirl-cli
    python3 bench/hostile/attacks.py [path/to/twirl]

Every wait is bounded; each attack runs against a fresh server.
"""
import os, signal, socket, subprocess, sys, threading, time

BIN = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "../../target/release/twirl")
TICK = os.sysconf("SC_CLK_TCK")


def serve(*args, env=None):
    p = subprocess.Popen([BIN, "serve", *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         env={**os.environ, **(env or {})}, text=True)
    eps = []
    for _ in args:
        if not _.startswith("-") and "@" in _:
            line = p.stdout.readline().strip()
            eps.append(line.rsplit(" ", 1)[1])
    return p, eps


def addr(ep):
    host, port = ep.split(":", 1)[1].rsplit(":", 1)
    return host, int(port)


def rss_mib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_s(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / TICK


def probe_ms(a, n=20):
    """Median round trip of a fresh connection sending one line to echo-like a."""
    times = []
    for _ in range(n):
        t0 = time.monotonic()
        with socket.create_connection(a, timeout=10) as s:
            s.sendall(b"probe\n")
            s.recv(64)
        times.append((time.monotonic() - t0) * 1000)
    times.sort()
    return times[len(times) // 2]


def stop(p):
    p.send_signal(signal.SIGTERM)
    try:
        return p.wait(timeout=15)
    except subprocess.TimeoutExpired:
        p.kill()
        return "killed"


def non_readers(plugin, clients, each, payload):
    p, eps = serve(f"{plugin}@tcp:0", "echo@tcp:0")
    a, probe = addr(eps[0]), addr(eps[1])
    before = rss_mib(p.pid)
    socks = []

    def flood():
        s = socket.create_connection(a, timeout=10)
        s.settimeout(1.0)
        socks.append(s)
        sent = 0
        try:
            while sent < each:
                s.sendall(payload)
                sent += len(payload)
        except OSError:
            pass

    ts = [threading.Thread(target=flood) for _ in range(clients)]
    [t.start() for t in ts]
    [t.join(30) for t in ts]
    grew = rss_mib(p.pid) - before
    ms = probe_ms(probe)
    [s.close() for s in socks]
    stop(p)
    return grew, ms


def sigterm_caps(clients, each):
    p, eps = serve("caps@tcp:0")
    a = addr(eps[0])
    resets, bad, started = [0], [0], threading.Semaphore(0)

    def client():
        s = socket.create_connection(a, timeout=15)
        def write():
            try:
                chunk = b"capitalize this!" * 4096
                sent = 0
                while sent < each:
                    s.sendall(chunk)
                    sent += len(chunk)
                s.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        w = threading.Thread(target=write)
        w.start()
        got, told = 0, False
        try:
            while True:
                d = s.recv(65536)
                if not d:
                    break
                got += len(d)
                if not told and got > 256 * 1024:
                    told = True
                    started.release()
        except ConnectionResetError:
            resets[0] += 1
        except OSError:
            bad[0] += 1
        if not told:
            started.release()
        w.join(15)
        s.close()

    ts = [threading.Thread(target=client) for _ in range(clients)]
    [t.start() for t in ts]
    for _ in range(clients):
        started.acquire(timeout=30)
    code = stop(p)
    [t.join(30) for t in ts]
    return resets[0], bad[0], code


def tricklers(n, idle):
    p, eps = serve("--idle-timeout", str(idle), "--max-conns", str(n + 100), "chat@tcp:0")
    a = addr(eps[0])
    socks = []
    for _ in range(n):
        s = socket.create_connection(a, timeout=10)
        s.setblocking(False)
        socks.append(s)
    t0 = time.monotonic()
    open_ = n
    while open_ and time.monotonic() - t0 < idle * 3:
        open_ = 0
        for s in socks:
            try:
                s.send(b"x")  # a byte, never a line
                open_ += 1
            except OSError:
                pass
        time.sleep(1)
    took = time.monotonic() - t0
    [s.close() for s in socks]
    stop(p)
    return open_, took


def chat_burst(n):
    p, eps = serve("--max-conns", str(n + 100), "chat@tcp:0", "echo@tcp:0")
    a, probe = addr(eps[0]), addr(eps[1])
    c0 = cpu_s(p.pid)
    socks = [socket.create_connection(a, timeout=10) for _ in range(n)]
    ms = probe_ms(probe)
    cpu = cpu_s(p.pid) - c0
    [s.close() for s in socks]
    stop(p)
    return cpu, ms


def amf_trickle(n, seconds):
    p, eps = serve("amf@tcp:0", "echo@tcp:0")
    a, probe = addr(eps[0]), addr(eps[1])
    # A 60 KB packet of many small properties, sent a byte every 10 ms.
    body = b"".join(b"\x00\x05key%02d" % (i % 100) + b"\x00" + b"\x40\x00\x00\x00\x00\x00\x00\x00" for i in range(4000))
    packet = b"\x00\x00\x00\x00\x00\x01\x00\x01t\x00\x02/1\xff\xff\xff\xff\x03" + body
    socks = [socket.create_connection(a, timeout=10) for _ in range(n)]
    c0, t0, i = cpu_s(p.pid), time.monotonic(), 0
    while time.monotonic() - t0 < seconds:
        for s in socks:
            s.send(packet[i:i + 1])
        i += 1
        time.sleep(0.01)
    pct = (cpu_s(p.pid) - c0) / (time.monotonic() - t0) * 100
    ms = probe_ms(probe)
    [s.close() for s in socks]
    stop(p)
    return pct, ms


print("| attack | result |")
print("|---|---|")
grew, ms = non_readers("echo", 32, 60 << 20, b"x" * 65536)
print(f"| 32 clients each send 60 MiB to `echo` and never read | server RSS grew {grew:.1f} MiB; probe p50 {ms:.2f} ms |")
grew, ms = non_readers("time", 16, 60 << 20, b"\n" * 65536)
print(f"| 16 clients send `\\n` bytes to `time` and never read | server RSS grew {grew:.1f} MiB; probe p50 {ms:.2f} ms |")
resets, bad, code = sigterm_caps(100, 8 << 20)
print(f"| SIGTERM while 100 `caps` clients are mid-transfer (8 MiB each) | {resets} resets, {bad} other errors; exit {code} |")
left, took = tricklers(2000, 5)
print(f"| 2,000 connections to `chat` sending 1 byte a second, `--idle-timeout 5` | {left} still open after {took:.1f} s |")
cpu, ms = chat_burst(2000)
print(f"| 2,000 chat joins in a burst | {cpu:.2f} s of server CPU; probe p50 {ms:.2f} ms |")
pct, ms = amf_trickle(200, 10)
print(f"| 200 partial 60 KB AMF packets trickled 1 byte per 10 ms (10 s) | {pct:.0f}% CPU; probe p50 {ms:.2f} ms |")
