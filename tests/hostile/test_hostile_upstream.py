"""A hostile responder behind the caller: 100 MiB answers, garbage, the wrong JSON
shape, a 500, one byte a second, silence.

For each, the caller's GET / answers 200 within UPSTREAM_TIMEOUT_MS + slack with
"responder_service_data": {"error": "Failed to reach Service B: <reason>"}, its
own data intact, its memory (VmRSS) bounded, and it keeps serving afterwards.
"""

import os
import threading
import time

import pytest

from hostile_util import (
    SANITIZED, UPSTREAM_ERROR_PREFIX, MiB, RawServer, StoreGuard, expect_json, http_request,
    read_request_head, rss_bytes,
)

TIMEOUT_MS = 2000
SLACK_S = 1.0
SMALL_MAX = 8 * MiB                      # UPSTREAM_MAX_BYTES of the main caller
DEFAULT_MAX = 75497472                   # the caller's default UPSTREAM_MAX_BYTES (72 MiB)
HUNDRED_MIB = 100 * MiB
RSS_SMALL = (512 if SANITIZED else 64) * MiB
RSS_DEFAULT = (768 if SANITIZED else 72 + 48) * MiB
HANDLER_BOUND_S = 10.0                    # no fake handler runs longer than this


# --------------------------------------------------------------------------
# fake responder behaviours (each bounded in time and bytes)
# --------------------------------------------------------------------------

def send_all(conn, server, data):
    conn.sendall(data)
    server.count_sent(len(data))


def answer(status=200, body=b"", ctype=b"application/json", reason=b"OK"):
    def handler(conn, server):
        read_request_head(conn)
        head = b"HTTP/1.1 %d %s\r\nContent-Length: %d\r\nConnection: close\r\n" % (
            status, reason, len(body))
        if ctype:
            head += b"Content-Type: " + ctype + b"\r\n"
        send_all(conn, server, head + b"\r\n" + body)
    return handler


def stream(total, chunked):
    """200 with `total` bytes of body that starts like a stored_data answer, sent in pieces."""
    def handler(conn, server):
        read_request_head(conn)
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
        head += b"Transfer-Encoding: chunked\r\n" if chunked else b"Content-Length: %d\r\n" % total
        send_all(conn, server, head + b"\r\n")
        piece = b'{"stored_data":[' + b'"x",' * (64 * 1024)
        piece = piece[:256 * 1024]
        sent, t0 = 0, time.monotonic()
        conn.settimeout(2)
        while sent < total and not server.stop.is_set() and \
                time.monotonic() - t0 < HANDLER_BOUND_S:
            p = piece[:total - sent]
            send_all(conn, server, b"%x\r\n%s\r\n" % (len(p), p) if chunked else p)
            sent += len(p)
            piece = b'"x",' * (64 * 1024)
        if chunked and sent >= total:
            send_all(conn, server, b"0\r\n\r\n")
    return handler


def drip(prefix, then=b"", interval=1.0):
    """Sends prefix at once, then `then` one byte every interval (bounded)."""
    def handler(conn, server):
        read_request_head(conn)
        if prefix:
            send_all(conn, server, prefix)
        t0 = time.monotonic()
        for i in range(len(then)):
            if server.stop.wait(interval) or time.monotonic() - t0 > HANDLER_BOUND_S:
                return
            send_all(conn, server, then[i:i + 1])
    return handler


def silent(conn, server):
    read_request_head(conn)
    server.stop.wait(HANDLER_BOUND_S)


def close_at_once(conn, server):
    read_request_head(conn)


def reset_at_once(conn, server):
    import socket
    import struct
    read_request_head(conn)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def raw(data):
    def handler(conn, server):
        read_request_head(conn)
        send_all(conn, server, data)
    return handler


GARBAGE = os.urandom(64 * 1024)
DEEP = b'{"stored_data":[' + b"[" * 100_000 + b"]" * 100_000 + b"]}"

# name -> (handler, substring expected in the reason, or None for any)
CASES = {
    "100 MiB with Content-Length": (stream(HUNDRED_MIB, chunked=False), "UPSTREAM_MAX_BYTES"),
    "100 MiB chunked": (stream(HUNDRED_MIB, chunked=True), "UPSTREAM_MAX_BYTES"),
    "raw garbage instead of HTTP": (raw(GARBAGE), None),
    "HTTP 200 with a garbage body": (answer(body=GARBAGE), "invalid JSON"),
    "HTTP 200 with an HTML body": (answer(body=b"<html>hi</html>", ctype=b"text/html"),
                                   "invalid JSON"),
    "HTTP 200 with an empty body": (answer(body=b""), "invalid JSON"),
    "stored_data is an object": (answer(body=b'{"stored_data":{"a":1}}'), "no stored_data array"),
    "stored_data is a string": (answer(body=b'{"stored_data":"[1,2]"}'), "no stored_data array"),
    "stored_data missing": (answer(body=b'{"data":[{"a":1}]}'), "no stored_data array"),
    "top-level array": (answer(body=b'[{"stored_data":[]}]'), "no stored_data array"),
    "nested stored_data only": (answer(body=b'{"x":{"stored_data":[]}}'), "no stored_data array"),
    "truncated JSON": (answer(body=b'{"stored_data":[{"a":1},{"b":'), "invalid JSON"),
    "text after the JSON": (answer(body=b'{"stored_data":[]} trailing'), "invalid JSON"),
    "duplicate stored_data": (answer(body=b'{"stored_data":[],"stored_data":{}}'), None),
    "invalid UTF-8 in data": (answer(body=b'{"stored_data":[{"a":"\xff\xfe"}]}'), "invalid JSON"),
    "100000-deep nesting": (answer(body=DEEP), "invalid JSON"),
    "HTTP 500 with JSON": (answer(500, b'{"stored_data":[]}', reason=b"Internal Server Error"),
                           "HTTP 500"),
    "HTTP 500 with no body": (answer(500, b"", ctype=None, reason=b"Internal Server Error"),
                              "HTTP 500"),
    "HTTP 503 every time": (answer(503, b'{"error":"x"}', reason=b"Service Unavailable"),
                            "HTTP 503"),
    "HTTP 302 redirect": (raw(b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:1/data\r\n"
                              b"Content-Length: 0\r\nConnection: close\r\n\r\n"), "HTTP 302"),
    "HTTP 204": (raw(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"), "HTTP 204"),
    "closes without answering": (close_at_once, None),
    "resets without answering": (reset_at_once, None),
    "10,000 response headers": (raw(b"HTTP/1.1 200 OK\r\n" + b"".join(
        b"X-H%d: %s\r\n" % (i, b"v" * 100) for i in range(10_000)) +
        b"Content-Length: 18\r\n\r\n" + b'{"stored_data":[]}'), None),
    "Content-Length larger than the body": (raw(
        b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n"
        b'{"stored_data":[]}'), None),
    "answers one byte a second (status line)": (drip(b"", b"HTTP/1.1 200 OK\r\n"), "timed out"),
    "answers one byte a second (body)": (drip(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 18\r\n\r\n",
        b'{"stored_data":[]}'), "timed out"),
    "accepts and never answers": (silent, "timed out"),
}


@pytest.fixture(scope="module")
def fake():
    s = RawServer()
    yield s
    s.close()


def start_caller(module_daemons, fake, **env):
    e = {"RESPONDER_URL": fake.url, "UPSTREAM_TIMEOUT_MS": TIMEOUT_MS, "BREAKER_THRESHOLD": 0}
    e.update(env)
    d = module_daemons.start("caller", env=e)
    g = StoreGuard(d)
    g.seed()
    return g


@pytest.fixture(scope="module")
def caller_small(module_daemons, fake):
    return start_caller(module_daemons, fake, UPSTREAM_MAX_BYTES=SMALL_MAX)


@pytest.fixture(scope="module")
def caller_default(module_daemons, fake):
    return start_caller(module_daemons, fake)


class RssSampler:
    """Samples a process's VmRSS every 10 ms in a thread; .peak after stop()."""

    def __init__(self, pid):
        self.pid = pid
        self.peak = rss_bytes(pid)
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, rss_bytes(self.pid))

    def stop(self):
        self._stop.set()
        self._t.join(timeout=2)
        self.peak = max(self.peak, rss_bytes(self.pid))
        return self.peak


def get_root_through(guard, fake, handler, reason_part, rss_limit):
    fake.handler = handler
    sampler = RssSampler(guard.daemon.pid)
    try:
        t0 = time.monotonic()
        r = http_request(guard.port, "GET", "/", timeout=TIMEOUT_MS / 1000 + 10)
        elapsed = time.monotonic() - t0
    finally:
        peak = sampler.stop()
        fake.handler = None
    body = expect_json(r, 200)
    assert elapsed <= TIMEOUT_MS / 1000 + SLACK_S, \
        f"GET / took {elapsed:.2f} s (deadline {TIMEOUT_MS} ms + {SLACK_S} s)"
    assert isinstance(body, dict) and set(body) == {"caller_service_data",
                                                     "responder_service_data"}, body
    own = expect_json(http_request(guard.port, "GET", "/data"), 200)["stored_data"]
    assert body["caller_service_data"] == own, "GET / lists other data than GET /data"
    err = body["responder_service_data"]
    assert isinstance(err, dict) and set(err) == {"error"}, \
        f"expected the documented error object, got {str(err)[:500]}"
    assert err["error"].startswith(UPSTREAM_ERROR_PREFIX), err
    if reason_part is not None:
        assert reason_part in err["error"], f"reason should mention {reason_part!r}: {err}"
    assert peak < rss_limit, f"caller VmRSS peaked at {peak / MiB:.1f} MiB " \
                             f"(limit {rss_limit / MiB:.0f} MiB)"
    guard.check()
    return err["error"], elapsed, peak


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_responder(caller_small, fake, name):
    handler, reason = CASES[name]
    why, elapsed, peak = get_root_through(caller_small, fake, handler, reason, RSS_SMALL)
    print(f"{name}: {elapsed:.2f} s, peak VmRSS {peak / MiB:.1f} MiB: {why}")


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_100_mib_with_the_default_upstream_max_bytes(caller_default, fake, chunked):
    """With the default 72 MiB limit the caller may buffer up to 72 MiB, never 100."""
    why, elapsed, peak = get_root_through(caller_default, fake, stream(HUNDRED_MIB, chunked),
                                          None, RSS_DEFAULT)
    assert "UPSTREAM_MAX_BYTES" in why or "timed out" in why, why
    print(f"default limit, chunked={chunked}: {elapsed:.2f} s, peak {peak / MiB:.1f} MiB: {why}")
    # The buffer is released afterwards.
    time.sleep(0.2)
    after = rss_bytes(caller_default.daemon.pid)
    assert after < RSS_SMALL, f"caller keeps {after / MiB:.1f} MiB after the call"


def test_many_hostile_calls_at_once(caller_small, fake):
    """20 concurrent GET / while the responder drips: all answered within the deadline."""
    fake.handler = drip(b"HTTP/1.1 200 OK\r\nContent-Length: 18\r\n\r\n", b'{"stored_data":[]}')
    results = []

    def one():
        t0 = time.monotonic()
        try:
            r = http_request(caller_small.port, "GET", "/", timeout=10)
            results.append((r.status, time.monotonic() - t0, r.body))
        except OSError as e:
            results.append((None, time.monotonic() - t0, repr(e).encode()))

    sampler = RssSampler(caller_small.daemon.pid)
    threads = [threading.Thread(target=one, daemon=True) for _ in range(20)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=15)
    finally:
        peak = sampler.stop()
        fake.handler = None
    assert len(results) == 20, results
    for status, elapsed, body in results:
        assert status == 200 and b"Failed to reach Service B" in body, (status, body[:300])
        assert elapsed <= TIMEOUT_MS / 1000 + SLACK_S, f"{elapsed:.2f} s"
    assert peak < RSS_SMALL
    caller_small.check()


def test_caller_still_reaches_a_sane_responder_afterwards(caller_small, fake):
    """After all that, a well-behaved answer is used again (nothing stuck or poisoned)."""
    fake.handler = answer(body=b'{"stored_data":[{"from":"fake"}]}')
    try:
        r = http_request(caller_small.port, "GET", "/", timeout=5)
    finally:
        fake.handler = None
    body = expect_json(r, 200)
    assert body["responder_service_data"] == [{"from": "fake"}], body
    caller_small.check()
