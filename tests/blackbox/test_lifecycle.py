"""--healthcheck, signals and draining."""

import http.client
import signal
import socket
import subprocess
import threading
import time

import pytest

from blackbox_util import (HOST, FakeResponder, base_env, binary, expect_json, free_port,
                           http_request)

BOTH = ["caller", "responder"]


def run_healthcheck(name, port, timeout=6):
    t0 = time.monotonic()
    p = subprocess.run([str(binary(name)), "--healthcheck"], env=base_env(PORT=port),
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    return p.returncode, time.monotonic() - t0, p


# ---------------------------------------------------------------- --healthcheck

@pytest.mark.parametrize("name", BOTH)
def test_healthcheck_ok_against_running_daemon(daemons, name):
    d = daemons.start(name, env={"RESPONDER_URL": "http://127.0.0.1:9"})
    rc, took, p = run_healthcheck(name, d.port)
    assert rc == 0, f"--healthcheck against a running {name}: exit {rc}, stderr {p.stderr!r}"
    assert took < 2.5


@pytest.mark.parametrize("name", BOTH)
def test_healthcheck_fails_when_nothing_listens(name):
    rc, took, p = run_healthcheck(name, free_port())
    assert rc == 1, f"--healthcheck with nothing listening: exit {rc}, stderr {p.stderr!r}"
    assert took < 2.0 + 1.0, f"--healthcheck took {took:.2f} s"


@pytest.mark.parametrize("name", BOTH)
def test_healthcheck_bounded_when_server_hangs(name):
    """Something accepts the connection but never answers: exit 1 within 2 s."""
    with socket.socket() as srv:
        srv.bind((HOST, 0))
        srv.listen(8)
        rc, took, p = run_healthcheck(name, srv.getsockname()[1])
    assert rc == 1, f"exit {rc}, stderr {p.stderr!r}"
    assert took < 2.0 + 1.0, f"--healthcheck against a silent server took {took:.2f} s (bound 2 s)"


@pytest.mark.parametrize("name", BOTH)
def test_healthcheck_fails_on_non_200(name):
    fake = FakeResponder()
    try:
        fake.configure(status=503, body={"status": "down"})
        rc, took, p = run_healthcheck(name, fake.port)
        assert rc == 1, f"--healthcheck against a 503 /health: exit {rc}"
        assert any(r["path"] == "/health" for r in fake.requests), fake.requests
        fake.configure(status=200, body={"status": "ok"})
        rc, took, p = run_healthcheck(name, fake.port)
        assert rc == 0, f"--healthcheck against a 200 /health: exit {rc}"
    finally:
        fake.close()


# ---------------------------------------------------------------- signals

@pytest.mark.parametrize("name", BOTH)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_idle_daemon_exits_0_on_signal(daemons, name, sig):
    d = daemons.start(name, env={"RESPONDER_URL": "http://127.0.0.1:9"})
    assert http_request(d.port, "GET", "/health").status == 200
    d.signal(sig)
    rc = d.wait_exit(3)
    assert rc is not None, f"idle {name} still running 3 s after {sig.name}"
    assert rc == 0, f"{name} exited with {rc} after {sig.name}; stderr {d.stderr()[-1500:]!r}"


def _slow_gets(port, n, results, timeout=10):
    def one(i):
        try:
            r = http_request(port, "GET", "/", timeout=timeout)
            results[i] = r
        except Exception as e:           # recorded, asserted by the test
            results[i] = e
    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    return threads


def test_sigterm_drains_in_flight_requests(caller_with_fake, fake_responder):
    fake_responder.configure(delay=1.0, body={"stored_data": [{"slow": True}]})
    c = caller_with_fake(DRAIN_TIMEOUT_MS="5000", UPSTREAM_TIMEOUT_MS="5000")
    n = 5
    results = [None] * n
    threads = _slow_gets(c.port, n, results)
    seen = fake_responder.wait_for_requests(n, timeout=3)
    assert seen >= 1, "no request reached the fake responder"
    time.sleep(0.1)
    t0 = time.monotonic()
    c.signal(signal.SIGTERM)
    for t in threads:
        t.join(timeout=10)
    for i, r in enumerate(results):
        assert not isinstance(r, Exception) and r is not None, \
            f"in-flight request {i} did not complete after SIGTERM: {r!r}"
        assert expect_json(r, 200)["responder_service_data"] == [{"slow": True}], r
    rc = c.wait_exit(5.0 + 2.0 - (time.monotonic() - t0))
    assert rc is not None, "caller did not exit within DRAIN_TIMEOUT_MS + 2 s after SIGTERM"
    assert rc == 0, f"caller exited with status {rc} after draining; stderr {c.stderr()[-1500:]!r}"
    assert seen == n, f"only {seen} of {n} requests were in flight at the responder"


def test_sigterm_stops_accepting_new_connections(caller_with_fake, fake_responder):
    fake_responder.configure(delay=1.5)
    c = caller_with_fake(DRAIN_TIMEOUT_MS="5000", UPSTREAM_TIMEOUT_MS="5000")
    results = [None]
    threads = _slow_gets(c.port, 1, results)
    assert fake_responder.wait_for_requests(1, timeout=3) >= 1
    c.signal(signal.SIGTERM)
    time.sleep(0.3)
    served = None
    try:
        r = http_request(c.port, "GET", "/health", timeout=1.0)
        served = r.status
    except (OSError, http.client.HTTPException):
        pass
    assert served is None, \
        f"a new connection after SIGTERM was still served (HTTP {served})"
    threads[0].join(timeout=10)
    assert not isinstance(results[0], Exception) and results[0] is not None, results[0]
    assert results[0].status == 200
    assert c.wait_exit(5) == 0


def test_drain_bounded_by_drain_timeout(caller_with_fake, fake_responder):
    fake_responder.configure(delay=8)
    c = caller_with_fake(DRAIN_TIMEOUT_MS="500", UPSTREAM_TIMEOUT_MS="10000")
    results = [None]
    threads = _slow_gets(c.port, 1, results, timeout=12)
    assert fake_responder.wait_for_requests(1, timeout=3) >= 1
    t0 = time.monotonic()
    c.signal(signal.SIGTERM)
    rc = c.wait_exit(0.5 + 2.5)
    took = time.monotonic() - t0
    assert rc is not None, "caller still running 3 s after SIGTERM with DRAIN_TIMEOUT_MS=500"
    assert rc == 0, f"caller exited with status {rc} after the drain timeout (spec: exit 0); " \
                    f"stderr tail: {c.stderr()[-1500:]!r}"
    assert took < 3.0
    threads[0].join(timeout=5)
    # The call still in flight when the drain ran out is ended, and its client answered.
    r = results[0]
    assert not isinstance(r, Exception) and r is not None, \
        f"the GET / in flight at the end of the drain got no answer: {r!r}"
    error = expect_json(r, 200)["responder_service_data"]["error"]
    assert "shutting down" in error, error


def test_responder_drains_in_flight_upload(daemons):
    """A POST whose body is still arriving when SIGTERM comes is still stored and answered."""
    d = daemons.start("responder", env={"DRAIN_TIMEOUT_MS": "5000"})
    body = b'{"late": "upload"}'
    with socket.create_connection((HOST, d.port), timeout=5) as s:
        s.sendall(b"POST /data HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(body) + body[:5])
        time.sleep(0.3)
        d.signal(signal.SIGTERM)
        time.sleep(0.3)
        s.sendall(body[5:])
        data = b""
        while b"}" not in data.partition(b"\r\n\r\n")[2]:
            c = s.recv(4096)
            if not c:
                break
            data += c
    assert data.startswith(b"HTTP/1.1 201"), data[:200]
    assert d.wait_exit(5) == 0


@pytest.mark.parametrize("name", BOTH)
def test_sigterm_right_after_ready_exits_0(daemons, name):
    """SIGTERM as soon as /health first answers (what an orchestrator may do) must still
    be a clean drain and exit 0, never the default action of the signal. The window is
    short, so the start/stop is repeated."""
    outcomes = {}
    errors = []
    for _ in range(60):
        d = daemons.start(name, env={"RESPONDER_URL": "http://127.0.0.1:9"}, wait=False)
        deadline = time.monotonic() + 5
        while True:
            assert time.monotonic() < deadline, \
                f"{name} not ready within 5 s (running: {d.running()}); stderr: " \
                f"{d.stderr()[-1500:]!r}"
            try:
                if http_request(d.port, "GET", "/health", timeout=0.5).status == 200:
                    break
            except (OSError, http.client.HTTPException):
                time.sleep(0.001)
        d.signal(signal.SIGTERM)
        rc = d.wait_exit(5)
        outcomes[rc] = outcomes.get(rc, 0) + 1
        if rc != 0 and len(errors) < 3:
            errors.append(d.stderr()[-1500:])
    assert outcomes == {0: 60}, \
        f"exit statuses of 60 {name}s sent SIGTERM right after readiness: {outcomes} " \
        f"(-15 = killed by the signal's default action: some thread does not block SIGTERM); " \
        f"stderr of the first: {errors!r}"


def test_drain_timeout_exit_is_clean_repeatedly(daemons):
    """Drain timing out with upstream calls in flight must still exit 0 (no abort)."""
    fake = FakeResponder()
    outcomes = {}
    errs = []
    try:
        fake.configure(delay=8)
        for i in range(10):
            c = daemons.start("caller", env={"RESPONDER_URL": fake.url,
                                             "DRAIN_TIMEOUT_MS": "100",
                                             "UPSTREAM_TIMEOUT_MS": "10000"})
            results = [None] * 3
            threads = _slow_gets(c.port, 3, results, timeout=10)
            assert fake.wait_for_requests(3 * (i + 1), timeout=3) >= 3 * (i + 1)
            c.signal(signal.SIGTERM)
            rc = c.wait_exit(3)
            outcomes[rc] = outcomes.get(rc, 0) + 1
            if rc != 0:
                errs.append(c.stderr()[-600:])
            for t in threads:
                t.join(timeout=5)
    finally:
        fake.close()
    assert outcomes == {0: 10}, f"exit statuses after a timed-out drain: {outcomes}; {errs[:1]}"
