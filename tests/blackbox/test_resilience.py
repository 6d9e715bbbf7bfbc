"""Resilience: caller retries and retry budget, circuit breaker, rate limiting, fault injection.

Issue: "Black-box tests show each behaviour: the retry budget holds under a failing
responder, the breaker opens, fails fast, probes and closes, the rate limiter answers
429 at the configured rate, and fault injection produces the configured share of errors".
All traffic goes to 127.0.0.1; every wait is bounded.
"""

import http.client
import json
import re
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from blackbox_util import (HOST, UPSTREAM_ERROR_PREFIX, expect_error, expect_json, free_port,
                           http_request, post_json, wait_until)

SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
BREAKER_RE = re.compile(r"circuit breaker open after (\d+) failed calls in a row; "
                        r"next try in (\d+) ms")


# ---------------------------------------------------------------- helpers

def metrics(port):
    """{(name, ((label, value), ...)): float} from GET /metrics."""
    r = http_request(port, "GET", "/metrics")
    assert r.status == 200, r
    out = {}
    for line in r.body.decode().split("\n"):
        if not line or line.startswith("#"):
            continue
        m = SAMPLE_RE.match(line)
        assert m, line
        labels = tuple(sorted(re.findall(r'(\w+)="([^"]*)"', m.group(2) or "")))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def metric(port_or_dict, name, **labels):
    m = port_or_dict if isinstance(port_or_dict, dict) else metrics(port_or_dict)
    key = (name, tuple(sorted((k, str(v)) for k, v in labels.items())))
    assert key in m, f"/metrics has no {name}{labels}"
    return m[key]


def settle(port, name, value, timeout=1.0, **labels):
    """Poll /metrics until name{labels} == value (bounded); returns the last figure.

    Used for http_requests_total after traffic on other connections: the daemons
    count a request only after its answer is sent (reported as a bug)."""
    last = []

    key = (name, tuple(sorted((k, str(v)) for k, v in labels.items())))

    def check():
        last[:] = [metrics(port).get(key)]
        return last[0] == value
    wait_until(check, timeout)
    return last[0]


def outcomes(port):
    m = metrics(port)
    return {dict(k[1])["outcome"]: v for k, v in m.items() if k[0] == "upstream_requests_total"}


def get_root(port, headers=None, timeout=10):
    r = http_request(port, "GET", "/", headers=headers, timeout=timeout)
    return r, expect_json(r, 200)


def upstream_error(body):
    rsd = body["responder_service_data"]
    assert isinstance(rsd, dict) and isinstance(rsd.get("error"), str), \
        f"expected an upstream error, got {rsd!r}"
    assert rsd["error"].startswith(UPSTREAM_ERROR_PREFIX), rsd
    return rsd["error"][len(UPSTREAM_ERROR_PREFIX):]


class ScriptedResponder:
    """Fake responder answering GET /data from a script.

    script: list of (status, delay_s) consumed one per request; `then` is used
    once the script is used up. A 200 answers {"stored_data": [{"n": <index>}]}.
    """

    def __init__(self, script=(), then=(200, 0.0)):
        self.lock = threading.Condition()
        self.stop = threading.Event()
        self.script = list(script)
        self.then = then
        self.hits = []              # (monotonic time, headers)
        outer = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            wbufsize = -1           # one write per answer (no Nagle/delayed-ACK stalls)

            def do_GET(self):
                with outer.lock:
                    idx = len(outer.hits)
                    outer.hits.append((time.monotonic(), dict(self.headers)))
                    status, delay = outer.script.pop(0) if outer.script else outer.then
                    outer.lock.notify_all()
                if delay:
                    outer.stop.wait(delay)
                if status == 200:
                    body = json.dumps({"stored_data": [{"n": idx}]}).encode()
                else:
                    body = json.dumps({"error": f"status {status}"}).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer((HOST, 0), H)
        self.server.daemon_threads = True
        self.server.request_queue_size = 256
        self.port = self.server.server_address[1]
        self.url = f"http://{HOST}:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def set(self, script=None, then=None):
        with self.lock:
            if script is not None:
                self.script = list(script)
            if then is not None:
                self.then = then

    @property
    def count(self):
        with self.lock:
            return len(self.hits)

    def close(self):
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def scripted():
    made = []

    def make(script=(), then=(200, 0.0)):
        s = ScriptedResponder(script, then)
        made.append(s)
        return s
    yield make
    for s in made:
        s.close()


# ---------------------------------------------------------------- retries

def test_503_once_is_retried(daemons, scripted):
    fake = scripted([(503, 0)])
    c = daemons.start("caller", env={"RESPONDER_URL": fake.url, "RETRY_BACKOFF_MS": 10})
    r, body = get_root(c.port, headers={"X-Request-Id": "retry-1"})
    assert body["responder_service_data"] == [{"n": 1}], \
        "the second attempt's answer should be used after a 503"
    assert fake.count == 2
    # both attempts carry the same request id
    assert [h.get("X-Request-Id") for _, h in fake.hits] == ["retry-1", "retry-1"]
    m = metrics(c.port)
    assert metric(m, "upstream_retries_total") == 1
    assert metric(m, "upstream_requests_total", outcome="ok") == 1
    assert metric(m, "upstream_requests_total", outcome="http_status") == 0
    assert metric(m, "upstream_request_duration_seconds_count") == 2, "histogram is per attempt"


def test_503_retried_up_to_retry_max(daemons, scripted):
    fake = scripted(then=(503, 0))
    c = daemons.start("caller", env={"RESPONDER_URL": fake.url, "RETRY_MAX": 3,
                                     "RETRY_BACKOFF_MS": 5, "BREAKER_THRESHOLD": 0})
    _, body = get_root(c.port)
    assert "503" in upstream_error(body)
    time.sleep(0.1)
    assert fake.count == 4
    m = metrics(c.port)
    assert metric(m, "upstream_retries_total") == 3
    assert metric(m, "upstream_requests_total", outcome="http_status") == 1


def test_500_is_not_retried(daemons, scripted):
    fake = scripted([(500, 0)])
    c = daemons.start("caller", env={"RESPONDER_URL": fake.url, "RETRY_MAX": 3})
    _, body = get_root(c.port)
    assert "HTTP 500" in upstream_error(body)
    time.sleep(0.2)
    assert fake.count == 1
    assert metric(c.port, "upstream_retries_total") == 0


def test_retry_max_zero_disables_retries(daemons, scripted):
    fake = scripted([(503, 0)])
    c = daemons.start("caller", env={"RESPONDER_URL": fake.url, "RETRY_MAX": 0})
    _, body = get_root(c.port)
    assert "503" in upstream_error(body)
    time.sleep(0.2)
    assert fake.count == 1
    m = metrics(c.port)
    assert metric(m, "upstream_retries_total") == 0
    assert metric(m, "upstream_retry_budget_exhausted_total") == 0
    # the next call gets the (now healthy) responder
    assert get_root(c.port)[1]["responder_service_data"] == [{"n": 1}]


def test_refused_connection_is_retried(daemons):
    c = daemons.start("caller", env={"RESPONDER_URL": f"http://{HOST}:{free_port()}",
                                     "RETRY_MAX": 2, "RETRY_BACKOFF_MS": 5,
                                     "BREAKER_THRESHOLD": 0})
    _, body = get_root(c.port)
    assert "connect" in upstream_error(body).lower()
    m = metrics(c.port)
    assert metric(m, "upstream_retries_total") == 2
    assert metric(m, "upstream_requests_total", outcome="refused") == 1
    assert metric(m, "upstream_request_duration_seconds_count") == 3


def test_timeout_is_not_retried(daemons, scripted):
    fake = scripted(then=(200, 2.0))
    c = daemons.start("caller", env={"RESPONDER_URL": fake.url, "RETRY_MAX": 3,
                                     "UPSTREAM_TIMEOUT_MS": 1500,
                                     "UPSTREAM_ATTEMPT_TIMEOUT_MS": 200})
    t0 = time.monotonic()
    _, body = get_root(c.port)
    took = time.monotonic() - t0
    assert "timed out" in upstream_error(body)
    assert 0.15 <= took < 0.9, f"one 200 ms attempt expected, took {took:.3f} s"
    assert wait_until(lambda: fake.count >= 1, 2.0), "the attempt never reached the fake"
    time.sleep(0.3)
    assert fake.count == 1, "a timed-out attempt must not be retried"
    m = metrics(c.port)
    assert metric(m, "upstream_retries_total") == 0
    assert metric(m, "upstream_requests_total", outcome="timeout") == 1


def test_retry_budget_limits_retries(daemons, scripted):
    fake = scripted(then=(503, 0))
    c = daemons.start("caller", env={"RESPONDER_URL": fake.url, "RETRY_MAX": 3,
                                     "RETRY_BUDGET_PERCENT": 20, "RETRY_BACKOFF_MS": 1,
                                     "BREAKER_THRESHOLD": 0})
    calls = 200
    conn = http.client.HTTPConnection(HOST, c.port, timeout=5)
    try:
        for _ in range(calls):
            r = http_request(c.port, "GET", "/", conn=conn)
            assert r.status == 200
    finally:
        conn.close()
    time.sleep(0.1)
    m = metrics(c.port)
    retries = metric(m, "upstream_retries_total")
    seen = fake.count
    assert seen == calls + retries, \
        f"fake saw {seen}, caller counted {calls} calls + {retries} retries"
    # budget: 10 tokens at start + 0.2 per call, one per retry
    bound = calls * (1 + 0.20) + 10
    assert seen <= bound + 1, f"retry budget not respected: {seen} requests for {calls} calls"
    assert retries >= 10 + 0.2 * calls - 5, \
        f"only {retries} retries although the budget allowed ~{10 + 0.2 * calls:.0f}"
    exhausted = metric(m, "upstream_retry_budget_exhausted_total")
    assert exhausted > 0
    # without a budget limit there would have been 3 retries per call
    assert retries + exhausted >= calls, (retries, exhausted)
    assert metric(m, "upstream_requests_total", outcome="http_status") == calls


# ---------------------------------------------------------------- circuit breaker

def breaker_counts(port):
    m = metrics(port)
    return (metric(m, "upstream_breaker_state"),
            {s: metric(m, "upstream_breaker_transitions_total", state=s)
             for s in ("closed", "open", "half_open")})


def test_breaker_opens_fails_fast_probes_and_closes(daemons, scripted):
    fake = scripted(then=(500, 0))
    c = daemons.start("caller", env={"RESPONDER_URL": fake.url, "RETRY_MAX": 0,
                                     "BREAKER_THRESHOLD": 3, "BREAKER_COOLDOWN_MS": 1000})
    for i in range(3):
        assert breaker_counts(c.port)[0] == 0, f"breaker open after only {i} failures"
        assert "HTTP 500" in upstream_error(get_root(c.port)[1])
    t_open = time.monotonic()
    assert fake.count == 3
    state, trans = breaker_counts(c.port)
    assert state == 1 and trans == {"closed": 0, "open": 1, "half_open": 0}

    # fails fast without contacting the responder (timing: all well under the 1 s
    # cooldown, the fastest within a few ms; tolerant of a loaded machine)
    times = []
    for _ in range(3):
        t0 = time.monotonic()
        _, body = get_root(c.port)
        took = time.monotonic() - t0
        msg = upstream_error(body)
        m = BREAKER_RE.search(msg)
        assert m, f"expected the circuit-breaker message, got {msg!r}"
        assert m.group(1) == "3"
        left = 1000 - (time.monotonic() - t_open) * 1000
        assert 0 < int(m.group(2)) <= min(1000, left + 30), \
            f"next try in {m.group(2)} ms, but only ~{left:.0f} ms of cooldown are left"
        times.append(took)
    assert max(times) < 0.25 and min(times) < 0.05, \
        f"an open breaker must answer at once, took {[round(t * 1000, 1) for t in times]} ms"
    assert fake.count == 3
    assert outcomes(c.port)["breaker_open"] == 3

    # responder healthy again, but slow, so that we can watch the half-open state
    fake.set(then=(200, 0.4))
    wait = 1.0 - (time.monotonic() - t_open) + 0.05
    if wait > 0:
        time.sleep(wait)
    with ThreadPoolExecutor(max_workers=1) as ex:
        probe = ex.submit(get_root, c.port)
        assert wait_until(lambda: fake.count == 4, 1.0), "no probe reached the responder"
        assert breaker_counts(c.port)[0] == 2, "breaker should be half-open during the probe"
        for _ in range(2):
            t0 = time.monotonic()
            msg = upstream_error(get_root(c.port)[1])
            assert time.monotonic() - t0 < 0.1
            assert "circuit breaker" in msg, msg
        _, body = probe.result(timeout=5)
    assert body["responder_service_data"] == [{"n": 3}]
    assert fake.count == 4, "exactly one probe while half-open"
    state, trans = breaker_counts(c.port)
    assert state == 0 and trans == {"closed": 1, "open": 1, "half_open": 1}
    fake.set(then=(200, 0))
    assert get_root(c.port)[1]["responder_service_data"] == [{"n": 4}]
    o = outcomes(c.port)
    assert (o["ok"], o["http_status"], o["breaker_open"]) == (2, 3, 5)

    err = c.stderr()
    assert re.search(r"circuit breaker closed -> open", err), err
    assert re.search(r"circuit breaker open -> half[-_ ]open", err), err
    assert re.search(r"circuit breaker half[-_ ]open -> closed", err), err


def test_breaker_failed_probe_reopens(daemons):
    port = free_port()
    c = daemons.start("caller", env={"RESPONDER_URL": f"http://{HOST}:{port}", "RETRY_MAX": 0,
                                     "BREAKER_THRESHOLD": 2, "BREAKER_COOLDOWN_MS": 300})
    for _ in range(2):
        assert "connect" in upstream_error(get_root(c.port)[1]).lower()
    assert "circuit breaker open after 2 failed calls" in upstream_error(get_root(c.port)[1])
    time.sleep(0.4)
    msg = upstream_error(get_root(c.port)[1])      # the probe: still refused
    assert "connect" in msg.lower(), msg
    state, trans = breaker_counts(c.port)
    assert state == 1 and trans == {"closed": 0, "open": 2, "half_open": 1}
    msg = upstream_error(get_root(c.port)[1])
    assert "circuit breaker open" in msg
    o = outcomes(c.port)
    assert (o["refused"], o["breaker_open"]) == (3, 2)
    assert re.search(r"half[-_ ]open -> open", c.stderr())


def test_breaker_counts_consecutive_failures_only(daemons, scripted):
    fake = scripted([(500, 0), (500, 0), (200, 0), (500, 0), (500, 0)])
    c = daemons.start("caller", env={"RESPONDER_URL": fake.url, "RETRY_MAX": 0,
                                     "BREAKER_THRESHOLD": 3, "BREAKER_COOLDOWN_MS": 5000})
    for _ in range(5):
        get_root(c.port)
    assert fake.count == 5
    assert breaker_counts(c.port)[0] == 0, "a success in between resets the failure run"
    fake.set(then=(500, 0))
    upstream_error(get_root(c.port)[1])
    assert fake.count == 6
    assert breaker_counts(c.port)[0] == 1


def test_breaker_off_with_threshold_zero(daemons, scripted):
    fake = scripted(then=(500, 0))
    c = daemons.start("caller", env={"RESPONDER_URL": fake.url, "RETRY_MAX": 0,
                                     "BREAKER_THRESHOLD": 0})
    for _ in range(12):
        assert "HTTP 500" in upstream_error(get_root(c.port)[1])
    assert fake.count == 12
    state, trans = breaker_counts(c.port)
    assert state == 0 and trans == {"closed": 0, "open": 0, "half_open": 0}


# ---------------------------------------------------------------- rate limiting

def burst(port, n, headers=None, tag="b"):
    t0 = time.monotonic()
    res = [post_json(port, {tag: i}, headers=headers) for i in range(n)]
    return res, time.monotonic() - t0


def check_429(r):
    msg = expect_error(r, 429)
    assert msg.startswith("Rate limit exceeded"), msg
    ra = r.header("Retry-After")
    assert ra is not None and re.fullmatch(r"[0-9]+", ra) and int(ra) >= 1, \
        f"429 needs Retry-After with whole seconds >= 1, got {ra!r}"
    return int(ra)


def test_rate_limit_burst_then_refill(daemons):
    d = daemons.start("responder", env={"RATE_LIMIT_RPS": 5, "RATE_LIMIT_BURST": 5})
    res, took = burst(d.port, 20)
    ok = [r for r in res if r.status == 201]
    assert all(r.status in (201, 429) for r in res), [r.status for r in res]
    assert 5 <= len(ok) <= 5 + took * 5 + 1, f"{len(ok)} accepted in {took:.3f} s"
    assert [r.status for r in res[:5]] == [201] * 5
    limited = [r for r in res if r.status == 429]
    for r in limited:
        assert check_429(r) <= 2
    # never limited: /health, /metrics, GET /data (and HEAD /data)
    for _ in range(10):
        for method, path in (("GET", "/health"), ("GET", "/metrics"), ("GET", "/data"),
                             ("HEAD", "/data")):
            assert http_request(d.port, method, path).status == 200, (method, path)
    stored = expect_json(http_request(d.port, "GET", "/data"), 200)["stored_data"]
    assert len(stored) == len(ok), "only 201 answers store objects"
    assert settle(d.port, "http_requests_total", len(limited),
                  route="/data", method="POST", code="429") == len(limited)
    assert settle(d.port, "http_requests_total", len(ok),
                  route="/data", method="POST", code="201") == len(ok)

    time.sleep(1.1)
    res2, took2 = burst(d.port, 20, tag="c")
    ok2 = sum(r.status == 201 for r in res2)
    assert 5 <= ok2 <= 5 + took2 * 5 + 1, f"after 1.1 s idle {ok2} accepted (burst 5)"


def test_rate_limit_slow_rate_retry_after(daemons):
    d = daemons.start("caller", env={"RATE_LIMIT_RPS": "0.5", "RATE_LIMIT_BURST": 1,
                                     "RESPONDER_URL": f"http://{HOST}:{free_port()}"})
    assert post_json(d.port, {"a": 1}).status == 201
    r = post_json(d.port, {"a": 2})
    ra = check_429(r)
    assert ra == 2, f"one token every 2 s: Retry-After should be 2, got {ra}"
    # other methods on /data and other routes are not limited
    assert post_json(d.port, {"a": 3}, path="/nope").status == 404
    assert http_request(d.port, "GET", "/data").status == 200


def test_rate_limit_trusts_last_forwarded_for(daemons):
    d = daemons.start("responder", env={"RATE_LIMIT_RPS": "0.2", "RATE_LIMIT_BURST": 2,
                                        "TRUST_FORWARDED_FOR": 1})

    def post(xff):
        return post_json(d.port, {"x": xff}, headers={"X-Forwarded-For": xff}).status

    assert [post("10.0.0.1") for _ in range(3)] == [201, 201, 429]
    assert post("10.0.0.2") == 201, "another X-Forwarded-For address has its own bucket"
    assert post("192.0.2.7, 10.0.0.1") == 429, "the LAST X-Forwarded-For address is the client"
    assert post("10.0.0.1, 10.0.0.3") == 201, "the LAST X-Forwarded-For address is the client"
    assert post("10.0.0.1,10.0.0.3") == 201
    assert post("10.0.0.2") == 201
    assert post("10.0.0.2") == 429
    # without the header the peer address is the client, a bucket of its own
    assert [post_json(d.port, {"peer": i}).status for i in range(3)] == [201, 201, 429]


def test_rate_limit_ignores_forwarded_for_by_default(daemons):
    d = daemons.start("responder", env={"RATE_LIMIT_RPS": "0.2", "RATE_LIMIT_BURST": 2})

    def post(xff):
        return post_json(d.port, {"x": xff}, headers={"X-Forwarded-For": xff}).status

    assert [post("10.0.0.1"), post("10.0.0.1")] == [201, 201]
    assert post("10.0.0.2") == 429, "X-Forwarded-For must be ignored without TRUST_FORWARDED_FOR"
    assert post_json(d.port, {"no": "xff"}).status == 429


def test_rate_limit_off_by_default(daemons):
    d = daemons.start("responder")
    res, _ = burst(d.port, 40)
    assert all(r.status == 201 for r in res)


# ---------------------------------------------------------------- fault injection

def fault_run(env, n, daemons):
    d = daemons.start("responder", env=env)
    conn = http.client.HTTPConnection(HOST, d.port, timeout=5)
    statuses = []
    try:
        for _ in range(n):
            r = http_request(d.port, "GET", "/data", conn=conn)
            statuses.append(r.status)
            if r.status == 503:
                msg = expect_error(r, 503)
                assert msg.startswith("Injected fault"), msg
            else:
                assert r.status == 200, r
    finally:
        conn.close()
    return d, statuses


def test_fault_error_rate_share_and_reproducible(daemons):
    env = {"FAULT_ERROR_RATE": "0.3", "FAULT_SEED": 42}
    n = 500
    d1, s1 = fault_run(env, n, daemons)
    share = s1.count(503) / n
    assert 0.24 <= share <= 0.36, f"503 share {share:.3f}, configured 0.3"
    assert settle(d1.port, "http_requests_total", s1.count(503),
                  route="/data", method="GET", code="503") == s1.count(503)
    # faults apply to GET /data only
    for i in range(20):
        assert post_json(d1.port, {"i": i}).status == 201
        assert http_request(d1.port, "GET", "/health").status == 200
    d1.stop()
    _, s2 = fault_run(env, n, daemons)
    assert s2 == s1, "same seed and same request sequence must give the same faults"
    _, s3 = fault_run({"FAULT_ERROR_RATE": "0.3", "FAULT_SEED": 43}, n, daemons)
    assert s3 != s1, "a different seed should give a different fault sequence"


def test_fault_error_rate_zero_and_one(daemons):
    _, s0 = fault_run({"FAULT_ERROR_RATE": "0"}, 50, daemons)
    assert s0 == [200] * 50
    _, s1 = fault_run({"FAULT_ERROR_RATE": "1"}, 50, daemons)
    assert s1 == [503] * 50


def test_fault_delay_only_get_data(daemons):
    d = daemons.start("responder", env={"FAULT_DELAY_MS": 300, "FAULT_DELAY_RATE": 1,
                                        "THREADS": 1})
    for _ in range(2):
        r = http_request(d.port, "GET", "/data")
        assert r.status == 200
        assert 0.3 <= r.elapsed < 1.5, f"GET /data took {r.elapsed:.3f} s, delay is 300 ms"
    # not delayed (a delayed one would take >= 300 ms): all < 0.25 s, the fastest < 50 ms
    ht, pt = [], []
    for _ in range(3):
        r = http_request(d.port, "GET", "/health")
        assert r.status == 200
        ht.append(r.elapsed)
        r = post_json(d.port, {"p": 1})
        assert r.status == 201
        pt.append(r.elapsed)
    assert max(ht) < 0.25 and min(ht) < 0.05, f"/health took {ht}"
    assert max(pt) < 0.25 and min(pt) < 0.05, f"POST /data took {pt}"

    # delays do not hold the (single) server thread
    with ThreadPoolExecutor(max_workers=4) as ex:
        t0 = time.monotonic()
        futs = [ex.submit(http_request, d.port, "GET", "/data") for _ in range(4)]
        time.sleep(0.1)
        h = http_request(d.port, "GET", "/health")
        assert h.status == 200 and h.elapsed < 0.15, \
            f"/health took {h.elapsed:.3f} s while GET /data requests were delayed"
        res = [f.result(timeout=5) for f in futs]
        took = time.monotonic() - t0
    assert all(r.status == 200 for r in res)
    assert took < 0.9, f"4 concurrent delayed GET /data took {took:.3f} s with THREADS=1"


def test_fault_delay_rate_share(daemons):
    d = daemons.start("responder", env={"FAULT_DELAY_MS": 40, "FAULT_DELAY_RATE": "0.5",
                                        "FAULT_SEED": 7})
    slow = 0
    n = 60
    for _ in range(n):
        r = http_request(d.port, "GET", "/data")
        assert r.status == 200
        slow += r.elapsed >= 0.04
    assert 0.25 * n <= slow <= 0.75 * n, f"{slow} of {n} delayed at FAULT_DELAY_RATE=0.5"


def test_delayed_request_answered_during_drain(daemons):
    d = daemons.start("responder", env={"FAULT_DELAY_MS": 800})       # FAULT_DELAY_RATE 1
    with ThreadPoolExecutor(max_workers=1) as ex:
        fut = ex.submit(http_request, d.port, "GET", "/data")
        time.sleep(0.2)
        d.signal(signal.SIGTERM)
        r = fut.result(timeout=5)
    assert r.status == 200 and r.json() == {"stored_data": []}
    assert r.elapsed >= 0.75
    assert d.wait_exit(5) == 0


# ---------------------------------------------------------------- more retry and limiter details

def test_backoff_bounded_and_overall_deadline(daemons, scripted):
    fake = scripted(then=(503, 0))
    c = daemons.start("caller", env={"RESPONDER_URL": fake.url, "RETRY_MAX": 2,
                                     "RETRY_BACKOFF_MS": 150, "BREAKER_THRESHOLD": 0})
    gaps = []
    for _ in range(4):
        n = fake.count
        get_root(c.port)
        hits = [t for t, _ in fake.hits[n:]]
        assert len(hits) == 3
        gaps.append((hits[1] - hits[0], hits[2] - hits[1]))
    # full jitter: the wait before retry n is at most RETRY_BACKOFF_MS * 2^(n-1)
    # (plus an attempt's overhead, generous for a loaded machine), and random below it
    for g1, g2 in gaps:
        assert g1 <= 0.15 + 0.25 and g2 <= 0.30 + 0.25, gaps
    assert any(g1 < 0.09 for g1, _ in gaps) or any(g2 < 0.18 for _, g2 in gaps), \
        f"backoff does not look jittered: {gaps}"
    # the overall deadline bounds attempts and backoff together
    fake.set(then=(503, 0.3))
    c2 = daemons.start("caller", env={"RESPONDER_URL": fake.url, "RETRY_MAX": 5,
                                      "RETRY_BACKOFF_MS": 1, "BREAKER_THRESHOLD": 0,
                                      "UPSTREAM_TIMEOUT_MS": 800})
    n = fake.count
    t0 = time.monotonic()
    _, body = get_root(c2.port)
    took = time.monotonic() - t0
    upstream_error(body)
    assert took < 0.8 + 0.4, f"UPSTREAM_TIMEOUT_MS=800 is the overall deadline, took {took:.3f} s"
    assert 2 <= fake.count - n <= 3


def test_breaker_counts_a_call_once_after_retries(daemons, scripted):
    fake = scripted(then=(503, 0))
    c = daemons.start("caller", env={"RESPONDER_URL": fake.url, "RETRY_MAX": 1,
                                     "RETRY_BACKOFF_MS": 1, "BREAKER_THRESHOLD": 2,
                                     "BREAKER_COOLDOWN_MS": 5000})
    upstream_error(get_root(c.port)[1])
    assert fake.count == 2
    assert breaker_counts(c.port)[0] == 0, "one failed call (with its retry) is one failure"
    upstream_error(get_root(c.port)[1])
    assert fake.count == 4
    assert breaker_counts(c.port)[0] == 1
    assert "circuit breaker open after 2 failed calls" in upstream_error(get_root(c.port)[1])
    assert fake.count == 4


def test_rate_limit_default_burst_is_rps(daemons):
    d = daemons.start("responder", env={"RATE_LIMIT_RPS": 3})
    res, took = burst(d.port, 10)
    ok = sum(r.status == 201 for r in res)
    assert [r.status for r in res[:3]] == [201] * 3
    assert ok <= 3 + took * 3 + 1, f"{ok} accepted in {took:.3f} s with RPS 3, default burst 3"
    for r in res:
        if r.status != 201:
            check_429(r)


@pytest.mark.parametrize("name,var,value", [
    ("caller", "RETRY_MAX", "6"),
    ("caller", "RETRY_MAX", "-1"),
    ("caller", "RETRY_BUDGET_PERCENT", "abc"),
    ("caller", "RETRY_BACKOFF_MS", "x"),
    ("caller", "BREAKER_THRESHOLD", "-1"),
    ("caller", "BREAKER_COOLDOWN_MS", "soon"),
    ("caller", "UPSTREAM_ATTEMPT_TIMEOUT_MS", "abc"),
    ("responder", "RATE_LIMIT_RPS", "-1"),
    ("responder", "RATE_LIMIT_RPS", "fast"),
    ("responder", "FAULT_ERROR_RATE", "1.5"),
    ("responder", "FAULT_ERROR_RATE", "-0.1"),
    ("responder", "FAULT_DELAY_MS", "60001"),
    ("responder", "FAULT_DELAY_RATE", "2"),
    ("responder", "METRICS_EMF_INTERVAL_S", "0"),
    ("responder", "METRICS_EMF_INTERVAL_S", "3601"),
    ("caller", "REQUEST_READ_TIMEOUT_S", "never"),
])
def test_invalid_resilience_setting_exits_2(daemons, name, var, value):
    d = daemons.start(name, env={var: value, "RESPONDER_URL": f"http://{HOST}:{free_port()}"},
                      wait=False)
    rc = d.wait_exit(3)
    assert rc == 2, f"{var}={value!r}: exit status {rc}, expected 2"
    lines = [l for l in d.stderr().splitlines() if l.strip()]
    assert len(lines) == 1 and var in lines[0], f"stderr should be one line naming {var}: {lines}"


def test_caller_retries_injected_faults_of_real_responder(daemons):
    resp = daemons.start("responder", env={"FAULT_ERROR_RATE": 1})
    c = daemons.start("caller", env={"RESPONDER_URL": resp.url, "RETRY_MAX": 2,
                                     "RETRY_BACKOFF_MS": 1, "BREAKER_THRESHOLD": 0})
    for _ in range(3):
        assert "503" in upstream_error(get_root(c.port)[1])
    assert settle(resp.port, "http_requests_total", 9,
                  route="/data", method="GET", code="503") == 9
    cm = metrics(c.port)
    assert metric(cm, "upstream_retries_total") == 6
    assert metric(cm, "upstream_requests_total", outcome="http_status") == 3
    assert metric(cm, "upstream_request_duration_seconds_count") == 9
