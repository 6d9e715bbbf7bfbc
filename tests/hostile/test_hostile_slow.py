"""Slow clients: one byte a second (slowloris), silent connections, slow bodies.

With REQUEST_READ_TIMEOUT_S=2 the daemon must close each within about 2-3.5 s,
count it in http_read_timeouts_total, and keep serving everyone else meanwhile.
"""

import socket
import threading
import time

import pytest

from hostile_util import HOST, drip, http_request, metric_value, seeded_pair

READ_TIMEOUT = 2
EARLIEST = READ_TIMEOUT - 0.3     # a close before this is not the read deadline
LATEST = READ_TIMEOUT + 1.5       # the deadline watcher checks every 250 ms


@pytest.fixture(scope="module")
def slow_guards(module_daemons):
    return seeded_pair(module_daemons, READ_TIMEOUT)


@pytest.fixture(params=["responder", "caller"])
def slow_target(request, slow_guards):
    g = slow_guards[request.param]
    g.check("before the case")
    yield g
    g.check("after the case")


REQUEST = (b"POST /data HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
           b"Content-Length: 13\r\n\r\n{\"slow\":true}")


def assert_closed_by_deadline(result):
    seconds, how, sent = result
    assert how == "closed", f"connection not closed by the read deadline: {how} after " \
                            f"{seconds:.2f} s, {sent} bytes sent"
    assert EARLIEST <= seconds <= LATEST, \
        f"closed after {seconds:.2f} s ({sent} bytes sent); expected {EARLIEST}-{LATEST} s"


def test_one_byte_a_second_is_closed_by_the_read_deadline(slow_target):
    port = slow_target.port
    before = metric_value(port, "http_read_timeouts_total") or 0
    assert_closed_by_deadline(drip(port, REQUEST))
    after = metric_value(port, "http_read_timeouts_total")
    assert after is not None and after >= before + 1, \
        f"http_read_timeouts_total went from {before} to {after}"
    slow_target.check()


def test_silent_connection_is_closed_by_the_read_deadline(slow_target):
    assert_closed_by_deadline(drip(slow_target.port, b""))
    slow_target.check()


def test_slow_body_after_fast_headers_is_closed(slow_target):
    head, _, body = REQUEST.partition(b"\r\n\r\n")
    s = socket.create_connection((HOST, slow_target.port), timeout=5)
    try:
        t0 = time.monotonic()
        s.sendall(head + b"\r\n\r\n")
        s.settimeout(0.05)
        how, i = "timeout", 0
        while time.monotonic() - t0 < 10:
            if i < len(body) and time.monotonic() - t0 >= i:
                try:
                    s.send(body[i:i + 1])
                    i += 1
                except (BrokenPipeError, ConnectionResetError):
                    how = "closed"
                    break
            try:
                c = s.recv(4096)
            except socket.timeout:
                continue
            except ConnectionResetError:
                how = "closed"
                break
            if not c:
                how = "closed"
                break
            how = "answered"
            break
        seconds = time.monotonic() - t0
    finally:
        s.close()
    assert how == "closed" and EARLIEST <= seconds <= LATEST, (how, seconds)
    slow_target.check()


def test_idle_keep_alive_connection_is_closed(slow_target):
    """After a complete answer, an idle keep-alive connection is closed by the same deadline."""
    s = socket.create_connection((HOST, slow_target.port), timeout=10)
    try:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while b'{"status":"ok"}' not in data:
            c = s.recv(4096)
            assert c, "closed before answering"
            data += c
        t0 = time.monotonic()
        s.settimeout(LATEST + 2)
        try:
            c = s.recv(4096)
        except ConnectionResetError:
            c = b""
        seconds = time.monotonic() - t0
    finally:
        s.close()
    assert c == b"", f"unexpected data on an idle connection: {c!r}"
    assert EARLIEST <= seconds <= LATEST, f"idle connection closed after {seconds:.2f} s"
    slow_target.check()


def test_many_drippers_do_not_starve_other_clients(slow_target):
    """200 slowloris connections at once: other clients are served promptly meanwhile,
    and every dripper is closed by the deadline."""
    port = slow_target.port
    n = 200
    results = [None] * n

    def run(i):
        try:
            results[i] = drip(port, REQUEST, limit_s=8)
        except OSError as e:
            results[i] = (0.0, f"error {e}", 0)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    worst = 0.0
    for _ in range(10):
        t0 = time.monotonic()
        r = http_request(port, "GET", "/health", timeout=5)
        worst = max(worst, time.monotonic() - t0)
        assert r.status == 200, r
        time.sleep(0.1)
    for t in threads:
        t.join(timeout=12)
    assert worst < 1.0, f"/health took {worst:.2f} s while 200 drippers were connected"
    bad = [r for r in results if r is None or r[1] != "closed" or not r[0] <= LATEST + 0.5]
    assert not bad, f"{len(bad)} drippers not closed in time, e.g. {bad[:5]}"
    slow_target.check()
