"""Helpers for the hostile-input battery.

Builds on the black-box suite's helpers (tests/blackbox/blackbox_util.py,
imported read-only): daemons from BIN_DIR (default <repo>/bin) on free
loopback ports, stopped by PID. Adds: a store guard that proves nothing stored
earlier is lost or altered, raw-socket exchanges that tell an answer from a
clean close, /proc memory readings, and a scriptable raw TCP server standing in
for a hostile responder.

All traffic goes to 127.0.0.1; every loop is bounded in count and in time.
"""

import json
import resource
import select
import socket
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "blackbox"))
sys.path.insert(0, str(HERE.parents[1] / "scripts"))

from blackbox_util import (  # noqa: E402,F401  (re-exported for the tests)
    BIN_DIR, HOST, UPSTREAM_ERROR_PREFIX, DaemonFactory, expect_error, expect_json,
    http_request, parse_raw_response, post_json, wait_until,
)

__all__ = [
    "BIN_DIR", "HOST", "UPSTREAM_ERROR_PREFIX", "DaemonFactory", "expect_error", "expect_json",
    "http_request", "parse_raw_response", "post_json", "wait_until",
    "MiB", "READ_TIMEOUT_S", "CLOSE_SLACK_S", "SANITIZED", "rss_bytes", "raise_nofile",
    "Outcome", "raw_send", "seeded_pair", "assert_json_error_or_close", "assert_4xx_or_close",
    "SEED_OBJECTS", "StoreGuard", "metric_value", "RawServer", "read_request_head",
]

MiB = 1024 * 1024

# REQUEST_READ_TIMEOUT_S of the shared, seeded daemons: the backstop that closes
# a connection whose request never completes.
READ_TIMEOUT_S = 3
# How long after that deadline a close may take (each server thread checks at the deadline).
CLOSE_SLACK_S = 1.5


def sanitized_build():
    """True when BIN_DIR holds AddressSanitizer binaries (memory bounds are then looser)."""
    try:
        with open(BIN_DIR / "responder", "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


SANITIZED = sanitized_build()


def rss_bytes(pid):
    """VmRSS of a process, from /proc/PID/status (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def raise_nofile(want):
    """Raise this process's soft RLIMIT_NOFILE to want (capped by the hard limit); returns it.

    Daemons started afterwards inherit the raised limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class Outcome:
    """What a raw exchange gave: an HTTP answer, a clean close, or a hang (timeout)."""

    def __init__(self, data, closed, timed_out, error, elapsed):
        self.data = data
        self.closed = closed          # the server closed (FIN or RST)
        self.timed_out = timed_out    # neither answer nor close before the deadline
        self.error = error            # exception text, if any
        self.elapsed = elapsed
        self.status = None
        self.headers = {}
        self.body = b""
        if b"\r\n\r\n" in data and data.startswith(b"HTTP/"):
            try:
                self.status, self.headers, self.body = parse_raw_response(data)
            except (ValueError, IndexError):
                self.status = None

    def __repr__(self):
        return (f"<Outcome status={self.status} closed={self.closed} timed_out={self.timed_out} "
                f"error={self.error} elapsed={self.elapsed:.2f}s data={self.data[:200]!r}>")


def raw_send(port, chunks, timeout=10.0, stop_on_answer=True, half_close=False, read_all=False):
    """Send chunks (bytes or iterable of bytes) over a fresh connection and read the result.

    Sending stops as soon as the server answers or closes; reading stops when a
    whole answer (by Content-Length) is in (unless read_all), the server closes,
    or timeout."""
    if isinstance(chunks, bytes):
        chunks = [chunks]
    t0 = time.monotonic()
    deadline = t0 + timeout
    data, closed, error = b"", False, None
    s = socket.create_connection((HOST, port), timeout=timeout)
    try:
        s.setblocking(False)
        sent_all = True
        for chunk in chunks:
            if time.monotonic() >= deadline:
                sent_all = False
                break
            view = memoryview(chunk)
            while view:
                r, w, _ = select.select([s], [s], [], max(0.0, deadline - time.monotonic()))
                if r and stop_on_answer:
                    break
                if not w:
                    if time.monotonic() >= deadline:
                        break
                    continue
                try:
                    n = s.send(view)
                except (BlockingIOError, InterruptedError):
                    continue
                except (BrokenPipeError, ConnectionResetError) as e:
                    error = type(e).__name__
                    break
                view = view[n:]
            if view:
                sent_all = False
                break
        if sent_all and half_close and error is None:
            try:
                s.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        s.setblocking(True)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            s.settimeout(left)
            try:
                c = s.recv(65536)
            except socket.timeout:
                break
            except (ConnectionResetError, BrokenPipeError) as e:
                closed, error = True, error or type(e).__name__
                break
            if not c:
                closed = True
                break
            data += c
            if not read_all and b"\r\n\r\n" in data:
                try:
                    _, hdrs, body = parse_raw_response(data)
                except (ValueError, IndexError):
                    continue
                if "content-length" in hdrs and len(body) >= int(hdrs["content-length"]):
                    break
    finally:
        s.close()
    elapsed = time.monotonic() - t0
    timed_out = not closed and not (b"\r\n\r\n" in data)
    return Outcome(data, closed, timed_out, error, elapsed)


def assert_json_error_or_close(out, statuses=None):
    """An Outcome is acceptable: a JSON {"error": "..."} answer (status in statuses), or a clean close.

    Returns the status (None for a close)."""
    assert not out.timed_out, f"server neither answered nor closed: {out!r}"
    if out.status is None:
        assert out.closed, f"no HTTP answer and no close: {out!r}"
        assert out.data == b"" or not out.data.startswith(b"HTTP/"), \
            f"half an HTTP answer: {out!r}"
        return None
    if statuses is not None:
        assert out.status in statuses, f"expected one of {statuses} or a close, got {out!r}"
    ctype = out.headers.get("content-type", "")
    if ctype.split(";")[0].strip().lower() == "application/json":
        body = json.loads(out.body.decode("utf-8"))
        assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"], \
            f"JSON error answer without an 'error' string: {out!r}"
    return out.status


def assert_4xx_or_close(out, also=()):
    """An Outcome is a 4xx answer (any body: libmicrohttpd's own are HTML) or a clean close.

    also: further statuses accepted (e.g. 505 for an unknown HTTP version)."""
    assert not out.timed_out, f"server neither answered nor closed: {out!r}"
    if out.status is None:
        assert out.closed, f"no HTTP answer and no close: {out!r}"
        return None
    assert 400 <= out.status < 500 or out.status in also, \
        f"expected a 4xx or a close, got {out!r}"
    return out.status


# --------------------------------------------------------------------------
# store guard: nothing stored earlier is lost or altered
# --------------------------------------------------------------------------

SEED_OBJECTS = [
    b'{"key":"value"}',
    b'{"id":"seed-1","n":42,"f":-0.5,"t":true,"z":null,"list":[1,"two",{"three":3}]}',
    b'{"unicode":"\xc3\xa9t\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80","esc":"a\\"b\\\\c\\n\\u00e9"}',
    b'{"big":123456789012345678901234567890,"nested":{"a":{"b":{"c":[[[]]]}}}}',
]


class StoreGuard:
    """Seeds a daemon's store and checks GET /data byte for byte after each case.

    When a check fails, the guard takes what it saw as its new baseline, so
    that one failing case does not make every later case fail too."""

    PREFIX = b'{"stored_data":['
    SUFFIX = b"]}"

    def __init__(self, daemon):
        self.daemon = daemon
        self.inner = b""          # the stored objects, comma-separated, as GET /data lists them

    @property
    def port(self):
        return self.daemon.port

    def expected(self):
        return self.PREFIX + self.inner + self.SUFFIX

    def seed(self):
        for obj in SEED_OBJECTS:
            self.store(obj)
        self.check("after seeding")

    def store(self, compact_bytes):
        r = post_json(self.port, compact_bytes)
        assert r.status == 201, f"seeding {compact_bytes!r}: {r!r}"
        self.accepted(compact_bytes)

    def accepted(self, compact_bytes):
        """Records an object that a case stored (or was meant to store)."""
        self.inner = self.inner + b"," + compact_bytes if self.inner else compact_bytes

    def check(self, what="after the case"):
        """The daemon is up, /health answers 200, and GET /data is exactly what was stored."""
        assert self.daemon.running(), \
            f"{self.daemon.name} died {what}; stderr tail: {self.daemon.stderr()[-3000:]!r}"
        h = http_request(self.port, "GET", "/health", timeout=5)
        assert h.status == 200, f"/health {what}: {h!r}"
        r = http_request(self.port, "GET", "/data", timeout=10)
        assert r.status == 200, f"GET /data {what}: {r!r}"
        exp = self.expected()
        if r.body != exp:
            if r.body.startswith(self.PREFIX) and r.body.endswith(self.SUFFIX):
                self.inner = r.body[len(self.PREFIX):-len(self.SUFFIX)]
            raise AssertionError(
                f"stored data changed {what}:\n expected {exp[-600:]!r}\n got      {r.body[-600:]!r}")


def metric_value(port, name):
    """A sample's value from GET /metrics (name with labels, exactly as written), or None."""
    r = http_request(port, "GET", "/metrics", timeout=5)
    assert r.status == 200, r
    for line in r.body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return None


# --------------------------------------------------------------------------
# a raw TCP server standing in for a hostile responder
# --------------------------------------------------------------------------

class RawServer:
    """Accepts on 127.0.0.1 and hands each connection to the current handler(sock, stop).

    Handlers run in their own threads, must watch stop (a threading.Event) and
    must bound their own work; the connection is closed when the handler returns."""

    def __init__(self, handler=None):
        self.handler = handler
        self.stop = threading.Event()
        self.connections = 0
        self.bytes_sent = 0
        self._lock = threading.Lock()
        self._threads = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((HOST, 0))
        self.sock.listen(128)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self._accepter = threading.Thread(target=self._accept_loop, daemon=True)
        self._accepter.start()

    @property
    def url(self):
        return f"http://{HOST}:{self.port}"

    def count_sent(self, n):
        with self._lock:
            self.bytes_sent += n

    def _accept_loop(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                self.connections += 1
            t = threading.Thread(target=self._serve, args=(conn, self.handler), daemon=True)
            self._threads.append(t)
            t.start()

    def _serve(self, conn, handler):
        try:
            conn.settimeout(5)
            if handler is not None:
                handler(conn, self)
        except OSError:
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def close(self):
        self.stop.set()
        self._accepter.join(timeout=2)
        self.sock.close()
        for t in self._threads:
            t.join(timeout=2)


def read_request_head(conn, limit=65536, timeout=5.0):
    """Reads a request's head (up to the blank line); returns bytes (bounded)."""
    data = b""
    deadline = time.monotonic() + timeout
    while b"\r\n\r\n" not in data and len(data) < limit and time.monotonic() < deadline:
        conn.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            c = conn.recv(4096)
        except socket.timeout:
            break
        if not c:
            break
        data += c
    return data


def seeded_pair(factory, read_timeout_s):
    """{'responder': StoreGuard, 'caller': StoreGuard}: both daemons started by factory with
    REQUEST_READ_TIMEOUT_S=read_timeout_s, the caller pointed at the responder, both seeded."""
    env = {"REQUEST_READ_TIMEOUT_S": read_timeout_s}
    responder = factory.start("responder", env=env)
    caller = factory.start("caller", env=dict(env, RESPONDER_URL=responder.url))
    guards = {"responder": StoreGuard(responder), "caller": StoreGuard(caller)}
    for g in guards.values():
        g.seed()
    return guards


def drip(port, data, interval=1.0, limit_s=10.0, first_delay=0.0):
    """Sends data one byte every interval until the server closes; returns (seconds, how, sent).

    how: "closed" (EOF or reset), "answered" (an HTTP answer came), "server sent ..." (other
    bytes, such as a TLS record) or "timeout"."""
    s = socket.create_connection((HOST, port), timeout=limit_s)
    t0 = time.monotonic()
    sent = 0
    try:
        s.settimeout(0.05)
        deadline = t0 + limit_s
        next_send = t0 + first_delay
        while time.monotonic() < deadline:
            if sent < len(data) and time.monotonic() >= next_send:
                try:
                    s.send(data[sent:sent + 1])
                    sent += 1
                except (BrokenPipeError, ConnectionResetError):
                    return time.monotonic() - t0, "closed", sent
                next_send += interval
            try:
                c = s.recv(4096)
            except socket.timeout:
                continue
            except ConnectionResetError:
                return time.monotonic() - t0, "closed", sent
            if not c:
                return time.monotonic() - t0, "closed", sent
            if c.startswith(b"HTTP/"):
                return time.monotonic() - t0, "answered", sent
            return time.monotonic() - t0, f"server sent {c[:20]!r}", sent
        return time.monotonic() - t0, "timeout", sent
    finally:
        s.close()
