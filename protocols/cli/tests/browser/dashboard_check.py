"""Drives headless Chromium over the DevTools protocol against a twirl
dashboard: the page must load with no console error, its numbers must
change after traffic is sent to a plugin, and a screenshot is saved.

usage: dashboard_check.py CHROMIUM DASHBOARD_URL ECHO_PORT SCREENSHOT [SECONDS_OF_TRAFFIC]
       dashboard_check.py CHROMIUM LAB_DASHBOARD_URL lab SCREENSHOT
Prints one JSON line: the numbers before and after, the errors, the screenshot.
With `lab` (twirl deadlock --dashboard): waits for the four runs to be drawn,
each with its outcome, and reports their outcomes instead.
Every wait is bounded; the browser is killed on the way out.
"""
import base64, json, os, shutil, socket, struct, subprocess, sys, tempfile, threading, time, urllib.request

chromium, url, shot = sys.argv[1], sys.argv[2], sys.argv[4]
lab = sys.argv[3] == "lab"
echo_port = 0 if lab else int(sys.argv[3])
traffic_seconds = float(sys.argv[5]) if len(sys.argv) > 5 else 0.0
DEADLINE = time.monotonic() + 60


def left():
    return max(0.1, DEADLINE - time.monotonic())


class WebSocket:
    """The least of RFC 6455 a DevTools client needs: text frames, masked out."""

    def __init__(self, ws_url):
        assert ws_url.startswith("ws://")
        hostport, path = ws_url[5:].split("/", 1)
        host, port = hostport.rsplit(":", 1)
        self.s = socket.create_connection((host, int(port)), timeout=left())
        key = base64.b64encode(os.urandom(16)).decode()
        self.s.sendall((f"GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\n"
                        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.s.recv(4096)
            if not chunk:
                raise RuntimeError("websocket handshake: closed")
            head += chunk
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise RuntimeError("websocket handshake refused: %r" % head[:80])
        self.buf = head.split(b"\r\n\r\n", 1)[1]

    def send(self, text):
        data = text.encode()
        n = len(data)
        header = bytes([0x81])
        if n < 126:
            header += bytes([0x80 | n])
        elif n < 65536:
            header += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            header += bytes([0x80 | 127]) + struct.pack(">Q", n)
        mask = os.urandom(4)
        self.s.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def _need(self, n):
        while len(self.buf) < n:
            self.s.settimeout(left())
            chunk = self.s.recv(1 << 20)
            if not chunk:
                raise RuntimeError("websocket closed")
            self.buf += chunk

    def recv(self):
        message = b""
        while True:
            self._need(2)
            b0, b1 = self.buf[0], self.buf[1]
            n, at = b1 & 0x7F, 2
            if n == 126:
                self._need(4); n = struct.unpack(">H", self.buf[2:4])[0]; at = 4
            elif n == 127:
                self._need(10); n = struct.unpack(">Q", self.buf[2:10])[0]; at = 10
            self._need(at + n)
            payload, self.buf = self.buf[at:at + n], self.buf[at + n:]
            message += payload
            if b0 & 0x80:
                return message.decode()


class Page:
    def __init__(self, ws):
        self.ws, self.next_id, self.errors = ws, 0, []

    def call(self, method, **params):
        self.next_id += 1
        me = self.next_id
        self.ws.send(json.dumps({"id": me, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == me:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.event(msg)

    def event(self, msg):
        m, p = msg.get("method"), msg.get("params", {})
        if m == "Runtime.exceptionThrown":
            self.errors.append("exception: " + json.dumps(p.get("exceptionDetails", {}))[:300])
        elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            self.errors.append("console.error: " + json.dumps(p.get("args", []))[:300])
        elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            self.errors.append("log: " + p["entry"].get("text", "")[:300])

    def eval(self, expr):
        r = self.call("Runtime.evaluate", expression=expr, returnByValue=True)
        return r.get("result", {}).get("value")

    def wait_for(self, expr, what):
        while time.monotonic() < DEADLINE:
            value = self.eval(expr)
            if value:
                return value
            time.sleep(0.1)
        raise RuntimeError("timed out waiting for " + what)


NUMBERS = "JSON.stringify(Object.fromEntries(['v-accepted','v-bytes_in','v-bytes_out','v-open','v-events_rate']" \
          ".map(id => [id, document.getElementById(id).textContent])))"


def traffic(seconds):
    """One echo exchange of 100 KB; with `seconds`, several connections
    for that long, one of them not reading for a while (its buffer rises)."""
    def exchange(n):
        with socket.create_connection(("127.0.0.1", echo_port), timeout=10) as s:
            s.sendall(b"x" * n)
            got = 0
            while got < n:
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += len(chunk)
            return got
    assert exchange(100_000) == 100_000
    if seconds <= 0:
        return
    end = time.monotonic() + seconds
    lazies = [socket.create_connection(("127.0.0.1", echo_port), timeout=10) for _ in range(3)]
    for lazy in lazies:
        lazy.setblocking(False)
    while time.monotonic() < end:
        exchange(2_000_000)
        for lazy in lazies:
            try:
                lazy.send(b"y" * 65536)
            except BlockingIOError:
                pass
    for lazy in lazies:
        lazy.close()


def main():
    profile = tempfile.mkdtemp(prefix="twirl-chromium-")
    args = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--user-data-dir=" + profile, "--remote-debugging-port=0", "--window-size=1400,1250", "about:blank"]
    browser = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = os.path.join(profile, "DevToolsActivePort")
        while not os.path.exists(port_file) or not open(port_file).read().strip():
            if browser.poll() is not None or time.monotonic() > DEADLINE:
                raise RuntimeError("chromium did not start its DevTools endpoint")
            time.sleep(0.05)
        port = int(open(port_file).read().split()[0])
        targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=left()))
        page_ws = next(t["webSocketDebuggerUrl"] for t in targets if t.get("type") == "page")
        page = Page(WebSocket(page_ws))
        page.call("Runtime.enable")
        page.call("Log.enable")
        page.call("Page.enable")
        page.call("Page.navigate", url=url)
        page.wait_for("window.twirlUpdates >= 2", "two updates of the page")
        if lab:
            outcomes = page.wait_for(
                "(() => { const o = [...document.querySelectorAll('.run .outcome')].map(e => e.textContent);"
                " return o.length === 4 && !o.includes('running...') ? JSON.stringify(o) : null })()",
                "the four runs and their outcomes")
            png = base64.b64decode(page.call("Page.captureScreenshot", format="png")["data"])
            with open(shot, "wb") as f:
                f.write(png)
            print(json.dumps({"outcomes": json.loads(outcomes), "errors": page.errors, "screenshot": shot}))
            return
        before = json.loads(page.eval(NUMBERS))
        t = threading.Thread(target=traffic, args=(traffic_seconds,))
        t.start()
        if traffic_seconds <= 0:
            t.join(timeout=left())
        page.wait_for(f"{NUMBERS} !== {json.dumps(json.dumps(before))} && "
                      f"document.getElementById('v-accepted').textContent !== {json.dumps(before['v-accepted'])}",
                      "the numbers to change")
        page.wait_for(f"window.twirlUpdates >= {page.eval('window.twirlUpdates') + 2}", "two more updates")
        after = json.loads(page.eval(NUMBERS))
        if traffic_seconds > 0:
            # A picture while the traffic flows (the lazy readers' buffers up).
            time.sleep(traffic_seconds * 0.6)
        png = base64.b64decode(page.call("Page.captureScreenshot", format="png")["data"])
        t.join(timeout=left())
        with open(shot, "wb") as f:
            f.write(png)
        print(json.dumps({"before": before, "after": after, "errors": page.errors, "screenshot": shot,
                          "png_bytes": len(png)}))
    finally:
        browser.kill()
        browser.wait(timeout=10)
        shutil.rmtree(profile, ignore_errors=True)


main()
