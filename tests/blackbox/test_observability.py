"""Observability: exact /metrics counters, EMF records, trace propagation, X-Served-By.

Issue: "Counters are exact: the tests drive known traffic and check every number".
Every number is derived from traffic this file sends; nothing is asserted that
could not fail. All traffic goes to 127.0.0.1; every wait is bounded.
"""

import http.client
import json
import re
import signal
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from blackbox_util import (HOST, REQUEST_TIMEOUT_S, UPSTREAM_ERROR_PREFIX, expect_json,
                           free_port, http_request, post_json, wait_until)

PROM_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\.)*)"')
TRACEPARENT_RE = re.compile(r'^00-([0-9a-f]{32})-([0-9a-f]{16})-0([01])$')
AMZN_RE = re.compile(r'^Root=1-([0-9a-f]{8})-([0-9a-f]{24});Parent=([0-9a-f]{16});Sampled=([01])$')
ROUTES = ("/data", "/health", "/metrics", "other")
UPSTREAM_OUTCOMES = ("ok", "refused", "timeout", "dns", "http_status", "invalid_body",
                     "too_large", "breaker_open", "error")
TASK_ID = "0123456789abcdef0123456789abcdef"
OTHER_TASK_ID = "fedcba9876543210fedcba9876543210"


# ---------------------------------------------------------------- /metrics parsing

class Metrics:
    """Parsed Prometheus text; validates the format while parsing."""

    def __init__(self, text):
        self.text = text
        self.samples = []          # (name, labels dict, float)
        self.help = {}
        self.types = {}
        for line in text.split("\n"):
            if line == "":
                continue
            if line.startswith("#"):
                parts = line.split(" ", 3)
                assert len(parts) >= 3 and parts[1] in ("HELP", "TYPE"), \
                    f"bad comment line in /metrics: {line!r}"
                if parts[1] == "HELP":
                    self.help[parts[2]] = parts[3] if len(parts) > 3 else ""
                else:
                    assert len(parts) == 4 and parts[3] in (
                        "counter", "gauge", "histogram", "summary", "untyped"), \
                        f"bad TYPE line: {line!r}"
                    assert parts[2] not in self.types, f"TYPE given twice: {line!r}"
                    self.types[parts[2]] = parts[3]
                continue
            m = SAMPLE_RE.match(line)
            assert m, f"/metrics line is neither `name{{labels}} value` nor `name value`: {line!r}"
            name, labels_text, value = m.groups()
            labels = {}
            if labels_text is not None:
                pos = 0
                while pos < len(labels_text):
                    lm = LABEL_RE.match(labels_text, pos)
                    assert lm, f"bad label set in /metrics line {line!r}"
                    assert lm.group(1) not in labels, f"label repeated: {line!r}"
                    labels[lm.group(1)] = lm.group(2)
                    pos = lm.end()
                    if pos < len(labels_text):
                        assert labels_text[pos] == ",", f"bad label separator: {line!r}"
                        pos += 1
            try:
                v = float(value)
            except ValueError:
                raise AssertionError(f"value is not a number in /metrics line {line!r}")
            family = self.family(name)
            assert family in self.types, f"sample {line!r} before/without a # TYPE {family} line"
            assert family in self.help, f"sample {line!r} without a # HELP {family} line"
            key = (name, tuple(sorted(labels.items())))
            assert key not in {(n, tuple(sorted(l.items()))) for n, l, _ in self.samples}, \
                f"series written twice: {line!r}"
            self.samples.append((name, labels, v))

    def family(self, name):
        for suffix in ("_bucket", "_sum", "_count"):
            if name.endswith(suffix) and self.types.get(name[:-len(suffix)]) == "histogram":
                return name[:-len(suffix)]
        return name

    def series(self, name, **match):
        return [(l, v) for n, l, v in self.samples
                if n == name and all(l.get(k) == str(x) for k, x in match.items())]

    def value(self, name, **labels):
        """Value of the one series with exactly these labels (None if absent)."""
        want = {k: str(x) for k, x in labels.items()}
        found = [v for n, l, v in self.samples if n == name and l == want]
        assert len(found) <= 1
        return found[0] if found else None

    def need(self, name, **labels):
        v = self.value(name, **labels)
        assert v is not None, f"/metrics has no series {name}{labels}:\n{self.text}"
        return v


def get_metrics(port):
    r = http_request(port, "GET", "/metrics")
    assert r.status == 200, r
    return Metrics(r.body.decode("utf-8")), r


def requests_total(m):
    """{(route, method, code): value} of every http_requests_total series."""
    out = {}
    for labels, v in m.series("http_requests_total"):
        assert set(labels) == {"route", "method", "code"}, labels
        out[(labels["route"], labels["method"], labels["code"])] = v
    return out


def check_histogram(m, name, count, **labels):
    """Buckets cumulative, le="+Inf" == _count == count, _sum >= 0."""
    buckets = [(l["le"], v) for l, v in m.series(name + "_bucket", **labels)]
    assert buckets, f"no {name}_bucket series for {labels}"
    les = [float("inf") if le == "+Inf" else float(le) for le, _ in buckets]
    assert les == sorted(les) and les[-1] == float("inf"), f"{name}{labels}: bad le order {les}"
    counts = [v for _, v in buckets]
    assert counts == sorted(counts), f"{name}{labels}: buckets not cumulative {buckets}"
    c = m.need(name + "_count", **labels)
    assert counts[-1] == c, f"{name}{labels}: +Inf bucket {counts[-1]} != _count {c}"
    assert c == count, f"{name}{labels}: _count is {c}, expected {count}"
    s = m.need(name + "_sum", **labels)
    assert s >= 0 and (count > 0 or s == 0), f"{name}{labels}: _sum {s} for {count} observations"
    return s


def raw_stored_data_list(port):
    """Exact bytes between the brackets of GET /data's stored_data array, and the list."""
    r = http_request(port, "GET", "/data")
    body = expect_json(r, 200)
    text = r.body.decode("utf-8")
    inner = text[text.index("[") + 1:text.rindex("]")]
    return inner, body["stored_data"]


# ---------------------------------------------------------------- responder counters

def test_metrics_content_type_and_format(daemons):
    d = daemons.start("responder")
    post_json(d.port, {"a": 1})
    m, r = get_metrics(d.port)
    assert r.header("Content-Type") == PROM_CONTENT_TYPE
    # every family the spec lists is there with HELP and TYPE
    for fam, typ in [("http_requests_total", "counter"),
                     ("http_request_duration_seconds", "histogram"),
                     ("http_requests_in_flight", "gauge"),
                     ("http_read_timeouts_total", "counter"),
                     ("http_connections_open", "gauge"), ("http_connection_limit", "gauge"),
                     ("http_connections_closed_total", "counter"),
                     ("http_answer_bytes_held", "gauge"), ("http_answer_bytes_limit", "gauge"),
                     ("store_objects", "gauge"), ("store_bytes", "gauge"),
                     ("store_max_objects", "gauge"), ("store_max_bytes", "gauge")]:
        assert m.types.get(fam) == typ, f"# TYPE {fam} {typ} missing: {m.types}"
        assert fam in m.help
    assert m.text.endswith("\n")
    # the responder has no caller-only series
    assert not m.series("upstream_requests_total")
    assert m.need("store_max_objects") == 1000000
    assert m.need("store_max_bytes") == 67108864
    assert m.need("http_read_timeouts_total") == 0
    # the connection figures: this one open, every reason counted from zero, the limits
    assert m.need("http_connections_open") >= 1
    assert m.need("http_connection_limit") == 1024
    assert m.need("http_answer_bytes_limit") == 134217728
    assert m.need("http_answer_bytes_held") >= 0
    for reason in ("evicted_idle", "per_address_limit", "over_limit", "read_deadline",
                   "slow_reader", "drained_after_refusal"):
        assert m.need("http_connections_closed_total", reason=reason) == 0


class KeepAlive:
    """One keep-alive connection. The daemons count a request when it completes,
    after its answer is sent; on one connection that happens before the next
    request is handled, so figures read over the same connection are exact
    (across connections, see test_request_counted_before_next_connection_sees_it)."""

    def __init__(self, port):
        self.port = port
        self.conn = http.client.HTTPConnection(HOST, port, timeout=REQUEST_TIMEOUT_S)

    def req(self, method, path, body=None, headers=None):
        return http_request(self.port, method, path, body=body, headers=headers, conn=self.conn)

    def post(self, obj_or_bytes, content_type="application/json"):
        body = obj_or_bytes if isinstance(obj_or_bytes, bytes) else json.dumps(obj_or_bytes)
        h = {"Content-Type": content_type} if content_type else {}
        return self.req("POST", "/data", body=body, headers=h)

    def metrics(self):
        r = self.req("GET", "/metrics")
        assert r.status == 200, r
        return Metrics(r.body.decode("utf-8"))

    def close(self):
        self.conn.close()


def settle(port, pred, timeout=1.0):
    """GET /metrics until pred(Metrics) holds (bounded); returns the last Metrics."""
    last = []

    def check():
        last[:] = [get_metrics(port)[0]]
        return pred(last[0])
    wait_until(check, timeout)
    return last[0]


def log_count(d, **match):
    return sum(1 for r in d.log_records()
               if isinstance(r, dict) and "status" in r
               and all(r.get(k) == v for k, v in match.items()))


def test_responder_request_counters_exact(daemons):
    d = daemons.start("responder", env={"BODY_MAX_BYTES": 200})
    p = d.port
    c = KeepAlive(p)
    try:
        base = requests_total(c.metrics())          # /metrics #1
        assert set(base) <= {("/health", "GET", "200")}, \
            f"before any other traffic only wait_ready's GET /health may be counted " \
            f"(and not this /metrics): {base}"
        # 413 may close the connection: send it on its own
        assert post_json(p, {"big": "x" * 300}).status == 413
        objs = [{"k": 1}, {"name": "two", "list": [1, 2]}, {"z": {"nested": True}, "a": None}]
        for o in objs:
            expect_json(c.post(o), 201)
        for bad in (b"{}", b"{not json"):
            assert c.post(bad).status == 400
        assert c.post({"x": 1}, content_type=None).status == 415
        c.metrics()                                 # /metrics #2
        for _ in range(4):
            assert c.req("GET", "/data").status == 200
        for _ in range(2):
            assert c.req("HEAD", "/data").status == 200
        assert c.req("GET", "/nope").status == 404
        assert c.req("DELETE", "/data").status == 405
        assert c.req("POST", "/health").status == 405
        for _ in range(3):
            assert c.req("GET", "/health").status == 200
        assert c.req("HEAD", "/health").status == 200
        c.metrics()                                 # /metrics #3
        m = c.metrics()                             # not counted in its own answer
    finally:
        c.close()
    health = log_count(d, path="/health", method="GET", status=200)
    assert health >= 4, "wait_ready's GET /health and our 3"
    expected = {
        ("/data", "POST", "201"): 3,
        ("/data", "POST", "400"): 2,
        ("/data", "POST", "415"): 1,
        ("/data", "POST", "413"): 1,
        ("/data", "GET", "200"): 4,
        ("/data", "HEAD", "200"): 2,
        ("/data", "other", "405"): 1,
        ("/health", "POST", "405"): 1,
        ("other", "GET", "404"): 1,
        ("/health", "GET", "200"): health,
        ("/health", "HEAD", "200"): 1,
        ("/metrics", "GET", "200"): 3,
    }
    assert requests_total(m) == expected

    per_route = {r: 0 for r in ROUTES}
    for (route, _, _), v in expected.items():
        per_route[route] += v
    for route in ROUTES:
        check_histogram(m, "http_request_duration_seconds", per_route[route], route=route)
    assert m.need("http_requests_in_flight") == 1, \
        "the /metrics request being answered is in flight"

    inner, stored = raw_stored_data_list(p)
    assert stored == objs
    assert m.need("store_objects") == 3
    assert m.need("store_bytes") == len(inner.encode("utf-8")), \
        f"store_bytes should be the length of {inner!r}"


def test_request_counted_before_next_connection_sees_it(daemons):
    """Spec: a request is counted when it completes; earlier requests (earlier /metrics
    ones included) are counted in a later /metrics answer. So a client that has read a
    whole answer and then asks /metrics on a new connection must see that request."""
    d = daemons.start("responder")
    time.sleep(0.2)                     # let wait_ready's requests settle
    h0 = requests_total(get_metrics(d.port)[0]).get(("/health", "GET", "200"), 0)
    assert h0 >= 1
    n = 600
    misses = []
    for i in range(n):
        assert http_request(d.port, "GET", "/health").status == 200
        rt = requests_total(get_metrics(d.port)[0])
        health = rt.get(("/health", "GET", "200"), 0)
        metrics = rt.get(("/metrics", "GET", "200"), 0)
        if (health, metrics) != (h0 + i + 1, i + 1):
            misses.append((i, health - h0 - i - 1, metrics - i - 1))
    assert not misses, \
        f"{len(misses)} of {n} /metrics answers did not count every request answered before " \
        f"(iteration, missing /health, missing /metrics as negative numbers): {misses[:6]}"


def test_store_gauges_follow_store_on_caller(daemons):
    d = daemons.start("caller", env={"RESPONDER_URL": f"http://{HOST}:{free_port()}"})
    m, _ = get_metrics(d.port)
    assert m.need("store_objects") == 0 and m.need("store_bytes") == 0
    objs = [{"héllo": "wörld"}, {"n": [1, 2, {"x": "y"}]}, {"e": ""}, {"q": "\"quoted\""}]
    for o in objs:
        expect_json(post_json(d.port, o), 201)
    inner, stored = raw_stored_data_list(d.port)
    assert stored == objs
    m, _ = get_metrics(d.port)
    assert m.need("store_objects") == len(objs)
    assert m.need("store_bytes") == len(inner.encode("utf-8")), inner


# ---------------------------------------------------------------- caller upstream outcomes

def upstream_counts(m):
    out = {}
    for labels, v in m.series("upstream_requests_total"):
        out[labels["outcome"]] = v
    assert set(out) == set(UPSTREAM_OUTCOMES), \
        f"every outcome must be written, zeros included: {sorted(out)}"
    return out


def get_root(port, headers=None, timeout=10):
    r = http_request(port, "GET", "/", headers=headers, timeout=timeout)
    body = expect_json(r, 200)
    return r, body


def upstream_error(body):
    rsd = body["responder_service_data"]
    assert isinstance(rsd, dict) and isinstance(rsd.get("error"), str), rsd
    assert rsd["error"].startswith(UPSTREAM_ERROR_PREFIX), rsd
    return rsd["error"]


def test_caller_upstream_ok_counts(daemons):
    resp = daemons.start("responder")
    c = daemons.start("caller", env={"RESPONDER_URL": resp.url, "RETRY_MAX": 0,
                                     "BREAKER_THRESHOLD": 0})
    expect_json(post_json(resp.port, {"r": 1}), 201)
    n = 4
    ka = KeepAlive(c.port)
    try:
        for _ in range(n):
            body = expect_json(ka.req("GET", "/"), 200)
            assert body["responder_service_data"] == [{"r": 1}]
        m = ka.metrics()
    finally:
        ka.close()
    counts = upstream_counts(m)
    assert counts == {o: (n if o == "ok" else 0) for o in UPSTREAM_OUTCOMES}
    check_histogram(m, "upstream_request_duration_seconds", n)
    assert m.need("upstream_retries_total") == 0
    assert m.need("upstream_breaker_state") == 0
    got = requests_total(m)
    assert got[("/", "GET", "200")] == n
    check_histogram(m, "http_request_duration_seconds", n, route="/")
    # the responder counted one GET /data per call (on another connection: allow it to
    # settle, see test_request_counted_before_next_connection_sees_it)
    rm = settle(resp.port, lambda m: requests_total(m).get(("/data", "GET", "200")) == n)
    assert requests_total(rm)[("/data", "GET", "200")] == n


@pytest.mark.parametrize("outcome", ["refused", "http_status", "invalid_body", "timeout",
                                     "too_large"])
def test_caller_upstream_failure_outcomes(daemons, fake_responder, outcome):
    env = {"RETRY_MAX": 0, "BREAKER_THRESHOLD": 0, "RESPONDER_URL": fake_responder.url}
    if outcome == "refused":
        env["RESPONDER_URL"] = f"http://{HOST}:{free_port()}"
    elif outcome == "http_status":
        fake_responder.configure(status=500, body={"stored_data": []})
    elif outcome == "invalid_body":
        fake_responder.configure(body=b"this is not json at all")
    elif outcome == "timeout":
        fake_responder.configure(delay=2.0)
        env["UPSTREAM_TIMEOUT_MS"] = 150
    elif outcome == "too_large":
        fake_responder.configure(body={"stored_data": ["x" * 2000]})
        env["UPSTREAM_MAX_BYTES"] = 500
    c = daemons.start("caller", env=env)
    n = 3
    ka = KeepAlive(c.port)
    for _ in range(n):
        t0 = time.monotonic()
        body = expect_json(ka.req("GET", "/"), 200)
        assert time.monotonic() - t0 < 1.5
        msg = upstream_error(body)
        if outcome == "timeout":
            assert "timed out" in msg
        elif outcome == "http_status":
            assert "HTTP 500" in msg
        elif outcome == "refused":
            assert "connect" in msg.lower()
    m = ka.metrics()
    ka.close()
    counts = upstream_counts(m)
    assert counts == {o: (n if o == outcome else 0) for o in UPSTREAM_OUTCOMES}
    assert requests_total(m)[("/", "GET", "200")] == n
    check_histogram(m, "upstream_request_duration_seconds", n)
    if outcome == "timeout":
        s = m.need("upstream_request_duration_seconds_sum")
        assert 0.1 * n <= s < 1.0 * n, f"each attempt lasted ~150 ms, sum is {s}"
    if outcome != "refused":
        # the fake may record a timed-out request late on a loaded machine
        assert fake_responder.wait_for_requests(n, 2.0) == n
        time.sleep(0.1)
        assert len(fake_responder.requests) == n, "RETRY_MAX=0: one request per call"


# ---------------------------------------------------------------- EMF

def emf_records(d):
    return [r for r in d.log_records() if isinstance(r, dict) and "_aws" in r]


def check_emf_record(rec, service, namespace="ServiceConnectDemo"):
    aws = rec["_aws"]
    assert isinstance(aws["Timestamp"], int) and abs(aws["Timestamp"] / 1000 - time.time()) < 120
    cwm = aws["CloudWatchMetrics"]
    assert isinstance(cwm, list) and len(cwm) >= 1
    d0 = cwm[0]
    assert d0["Namespace"] == namespace
    assert d0["Dimensions"] == [["Service"]]
    assert rec["Service"] == service
    names = [mm["Name"] for mm in d0["Metrics"]]
    assert len(names) == len(set(names))
    for mm in d0["Metrics"]:
        assert isinstance(mm.get("Unit"), str) and mm["Unit"]
        v = rec.get(mm["Name"])
        assert isinstance(v, (int, float)) and not isinstance(v, bool), \
            f"metric {mm['Name']} is not a top-level number in {rec}"
    want = {"StoredObjects", "StoredBytes", "Requests", "Errors4xx", "Errors5xx",
            "LatencyAverage", "InFlight"}
    if service == "caller":
        want |= {"UpstreamCalls", "UpstreamFailures", "BreakerOpen"}
    assert want <= set(names), f"missing EMF metrics {want - set(names)}"
    return names


def test_emf_periodic_records_add_up(daemons):
    d = daemons.start("responder", env={"METRICS_EMF": 1, "METRICS_EMF_INTERVAL_S": 1,
                                        "METRICS_EMF_NAMESPACE": "DemoTests"})
    sent_4xx = 0
    for i in range(5):
        expect_json(post_json(d.port, {"i": i}), 201)
    for _ in range(3):
        assert http_request(d.port, "GET", "/data").status == 200
    assert http_request(d.port, "GET", "/missing").status == 404
    assert post_json(d.port, b"{}").status == 400
    sent_4xx += 2
    # wait for a periodic record that follows this traffic
    t_sent = time.time()
    assert wait_until(lambda: any(r["_aws"]["Timestamp"] / 1000 > t_sent + 0.05
                                  for r in emf_records(d)), 3.5), \
        f"no periodic EMF record within 3.5 s at METRICS_EMF_INTERVAL_S=1: {d.stdout()[-2000:]}"
    periodic = emf_records(d)
    # more traffic, then SIGTERM: the final record must carry it
    for i in range(2):
        expect_json(post_json(d.port, {"late": i}), 201)
    assert post_json(d.port, b"[1]").status == 400
    sent_4xx += 1
    d.signal(signal.SIGTERM)
    assert d.wait_exit(5) == 0
    recs = emf_records(d)
    assert len(recs) > len(periodic), "no EMF record written at shutdown"
    for r in recs:
        check_emf_record(r, "responder", namespace="DemoTests")
    ts = [r["_aws"]["Timestamp"] for r in recs]
    assert ts == sorted(ts)
    gaps = [b - a for a, b in zip(ts[:len(periodic)], ts[1:len(periodic)])]
    assert all(800 <= g <= 1700 for g in gaps), f"periodic records not ~1 s apart: {ts}"
    logged = [r for r in d.log_records() if isinstance(r, dict) and "status" in r and "path" in r]
    assert sum(r["Requests"] for r in recs) == len(logged), \
        "EMF Requests deltas must add up to every request answered"
    assert len(logged) >= 13
    # the periodic records carry the first batch, the later ones exactly the late traffic
    assert sum(r["Requests"] for r in periodic) >= 10
    late = recs[len(periodic):]
    assert (sum(r["Requests"] for r in late), sum(r["Errors4xx"] for r in late)) == (3, 1)
    assert sum(r["Errors4xx"] for r in recs) == sent_4xx
    assert sum(r["Errors5xx"] for r in recs) == 0
    assert recs[-1]["StoredObjects"] == 7
    assert recs[-1]["InFlight"] == 0


def test_emf_final_record_at_sigterm(daemons, fake_responder):
    c = daemons.start("caller", env={"METRICS_EMF": 1, "METRICS_EMF_INTERVAL_S": 3600,
                                     "RESPONDER_URL": fake_responder.url,
                                     "RETRY_MAX": 0, "BREAKER_THRESHOLD": 0})
    expect_json(post_json(c.port, {"a": "b"}), 201)
    for _ in range(2):
        assert get_root(c.port)[1]["responder_service_data"] == []
    fake_responder.configure(status=500)
    for _ in range(3):
        upstream_error(get_root(c.port)[1])
    time.sleep(0.2)
    before = emf_records(c)
    assert before == [], f"no periodic record expected within an hour: {before}"
    c.signal(signal.SIGTERM)
    assert c.wait_exit(5) == 0
    recs = emf_records(c)
    assert len(recs) == 1, f"expected exactly one EMF record at shutdown, got {recs}"
    r = recs[0]
    check_emf_record(r, "caller")
    logged = [x for x in c.log_records() if isinstance(x, dict) and "status" in x and "path" in x]
    assert r["Requests"] == len(logged)
    assert r["UpstreamCalls"] == 5
    assert r["UpstreamFailures"] == 3
    assert r["BreakerOpen"] == 0
    assert r["StoredObjects"] == 1
    assert r["StoredBytes"] == len('{"a":"b"}')
    assert r["Errors4xx"] == 0 and r["Errors5xx"] == 0
    assert r["LatencyAverage"] >= 0


# ---------------------------------------------------------------- traces

def trace_headers(r):
    tp = r.header("traceparent")
    am = r.header("X-Amzn-Trace-Id")
    assert tp and r.header_count("traceparent") == 1, r
    assert am and r.header_count("X-Amzn-Trace-Id") == 1, r
    m1 = TRACEPARENT_RE.match(tp)
    assert m1, f"bad traceparent {tp!r}"
    m2 = AMZN_RE.match(am)
    assert m2, f"bad X-Amzn-Trace-Id {am!r}"
    trace, span, sampled = m1.groups()
    assert m2.group(1) + m2.group(2) == trace, f"{tp!r} and {am!r} name different traces"
    assert m2.group(3) == span, f"{tp!r} and {am!r} name different spans"
    assert m2.group(4) == sampled
    assert trace != "0" * 32 and span != "0" * 16
    return trace, span, sampled


IN_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
IN_SPAN = "00f067aa0ba902b7"
IN_TP = f"00-{IN_TRACE}-{IN_SPAN}-01"
AMZN_TRACE = "5759e988bd862e3fe1be46a994272793"
IN_AMZN = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"


@pytest.fixture
def resp(daemons):
    return daemons.start("responder")


def _log_trace(d, rid):
    recs = d.records_for(rid)
    assert len(recs) == 1, f"expected one log line for request {rid}: {recs}"
    return recs[0].get("trace_id")


def test_traceparent_continued(resp):
    r = http_request(resp.port, "GET", "/health",
                     headers={"traceparent": IN_TP, "X-Request-Id": "tp-cont"})
    trace, span, sampled = trace_headers(r)
    assert trace == IN_TRACE
    assert span != IN_SPAN, "the answer's span must be a new span, not the caller's"
    assert sampled == "1"
    assert _log_trace(resp, "tp-cont") == IN_TRACE


def test_traceparent_wins_over_amzn(resp):
    r = http_request(resp.port, "GET", "/data",
                     headers={"traceparent": IN_TP, "X-Amzn-Trace-Id": IN_AMZN})
    assert trace_headers(r)[0] == IN_TRACE


def test_amzn_trace_id_continued(resp):
    r = http_request(resp.port, "POST", "/data", body=b'{"t":1}',
                     headers={"X-Amzn-Trace-Id": IN_AMZN, "Content-Type": "application/json",
                              "X-Request-Id": "amzn-cont"})
    assert r.status == 201
    trace, span, _ = trace_headers(r)
    assert trace == AMZN_TRACE
    assert span != "53995c3f42cd8ad8"
    assert _log_trace(resp, "amzn-cont") == AMZN_TRACE


@pytest.mark.parametrize("bad", [
    "00-" + "0" * 32 + "-00f067aa0ba902b7-01",                 # all-zero trace id
    "00-4bf92f3577b34da6a3ce929d0e0e4736-" + "0" * 16 + "-01",  # all-zero parent id
    "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  # upper case
    "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",   # short trace id
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",     # no flags
    "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # forbidden version
    "garbage",
])
def test_invalid_traceparent_replaced(resp, bad):
    t0 = time.time()
    r = http_request(resp.port, "GET", "/health", headers={"traceparent": bad})
    trace, span, _ = trace_headers(r)
    assert trace != IN_TRACE and trace.lower() != IN_TRACE
    assert abs(int(trace[:8], 16) - t0) <= 5, f"new trace {trace} should start with epoch seconds"


def test_invalid_traceparent_falls_back_to_valid_amzn(resp):
    r = http_request(resp.port, "GET", "/health",
                     headers={"traceparent": "00-zz-yy-01", "X-Amzn-Trace-Id": IN_AMZN})
    assert trace_headers(r)[0] == AMZN_TRACE


@pytest.mark.parametrize("bad", [
    "Root=1-5759e988-bd862e3fe1be46a99427279;Parent=53995c3f42cd8ad8;Sampled=1",  # 23 hex
    "Root=2-5759e988-bd862e3fe1be46a994272793",
    "Root=1-5759e98g-bd862e3fe1be46a994272793",
    "Parent=53995c3f42cd8ad8;Sampled=1",
    "nonsense",
])
def test_invalid_amzn_trace_id_replaced(resp, bad):
    t0 = time.time()
    r = http_request(resp.port, "GET", "/health", headers={"X-Amzn-Trace-Id": bad})
    trace, _, _ = trace_headers(r)
    assert trace != AMZN_TRACE and not trace.endswith("bd862e3fe1be46a994272793")
    assert abs(int(trace[:8], 16) - t0) <= 5


def test_fresh_traces_are_distinct(resp):
    seen = set()
    for _ in range(20):
        trace, span, _ = trace_headers(http_request(resp.port, "GET", "/health"))
        seen.add(trace)
    assert len(seen) == 20


def test_caller_and_responder_log_same_trace(daemons, resp):
    c = daemons.start("caller", env={"RESPONDER_URL": resp.url})
    r, body = get_root(c.port, headers={"X-Request-Id": "one-call-1"})
    assert body["responder_service_data"] == []
    trace, span, _ = trace_headers(r)
    crec = c.records_for("one-call-1")
    rrec = resp.records_for("one-call-1")
    assert len(crec) == 1 and len(rrec) == 1, (crec, rrec)
    assert crec[0]["path"] == "/" and rrec[0]["path"] == "/data"
    assert crec[0]["trace_id"] == trace == rrec[0]["trace_id"]
    # with an incoming traceparent the whole chain keeps it
    r, _ = get_root(c.port, headers={"X-Request-Id": "one-call-2", "traceparent": IN_TP})
    assert trace_headers(r)[0] == IN_TRACE
    assert c.records_for("one-call-2")[0]["trace_id"] == IN_TRACE
    rr = resp.records_for("one-call-2")
    assert len(rr) == 1 and rr[0]["trace_id"] == IN_TRACE


def test_caller_forwards_trace_headers_with_its_span(caller_with_fake, fake_responder):
    c = caller_with_fake(RETRY_MAX=0)
    for headers in ({}, {"traceparent": IN_TP}, {"X-Amzn-Trace-Id": IN_AMZN}):
        n = len(fake_responder.requests)
        h = dict(headers, **{"X-Request-Id": f"fwd-{n}"})
        r, _ = get_root(c.port, headers=h)
        trace, span, sampled = trace_headers(r)
        if "traceparent" in headers:
            assert trace == IN_TRACE
        if "X-Amzn-Trace-Id" in headers:
            assert trace == AMZN_TRACE
        assert len(fake_responder.requests) == n + 1
        fh = fake_responder.requests[-1]["headers"]
        assert fh.get("x-request-id") == f"fwd-{n}"
        m = TRACEPARENT_RE.match(fh.get("traceparent", ""))
        assert m, f"caller sent no valid traceparent: {fh}"
        assert m.group(1) == trace, "responder must see the caller's trace id"
        # The call is a span of its own, a child of the caller's (X-Ray's remote subsegment):
        # the responder's parent is that span, named alike in both headers.
        assert m.group(2) != span and m.group(2) != "0" * 16, \
            "responder's parent span must be the call's own span"
        a = AMZN_RE.match(fh.get("x-amzn-trace-id", ""))
        assert a, f"caller sent no valid X-Amzn-Trace-Id: {fh}"
        assert a.group(1) + a.group(2) == trace and a.group(3) == m.group(2)
        assert a.group(4) == sampled and m.group(3)[-1] == sampled


def test_responder_continues_callers_trace_with_new_span(daemons, resp):
    c = daemons.start("caller", env={"RESPONDER_URL": resp.url})
    r, _ = get_root(c.port, headers={"X-Request-Id": "span-chain"})
    trace, caller_span, _ = trace_headers(r)
    # the responder's own answer to the caller is invisible; its log line must
    # share the trace, and a direct call with the caller's context gets a new span
    assert resp.records_for("span-chain")[0]["trace_id"] == trace
    r2 = http_request(resp.port, "GET", "/data",
                      headers={"traceparent": f"00-{trace}-{caller_span}-01"})
    t2, s2, _ = trace_headers(r2)
    assert t2 == trace and s2 != caller_span


# ---------------------------------------------------------------- X-Served-By

class MetadataServer:
    """Fake ECS task metadata endpoint: GET /v4/<id>/task -> {"TaskARN": ...}."""

    def __init__(self, arns):
        self.arns = arns            # {"/v4/xyz/task": arn}
        self.hits = []
        outer = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                outer.hits.append(self.path)
                arn = outer.arns.get(self.path)
                if arn is None:
                    body, status = b'{"error":"not found"}', 404
                else:
                    body = json.dumps({"Cluster": "demo", "TaskARN": arn,
                                       "Family": "x", "Containers": []}).encode()
                    status = 200
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer((HOST, 0), H)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def uri(self, ident):
        return f"http://{HOST}:{self.port}/v4/{ident}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def metadata():
    s = MetadataServer({
        "/v4/xyz/task": f"arn:aws:ecs:us-east-1:123456789012:task/demo/{TASK_ID}",
        "/v4/abc/task": f"arn:aws:ecs:us-east-1:123456789012:task/demo/{OTHER_TASK_ID}",
    })
    yield s
    s.close()


def test_served_by_defaults_to_hostname(daemons):
    host = socket.gethostname()
    for name in ("responder", "caller"):
        d = daemons.start(name, env={"RESPONDER_URL": f"http://{HOST}:{free_port()}"})
        for method, path in (("GET", "/health"), ("GET", "/metrics"), ("GET", "/nope"),
                             ("POST", "/data")):
            r = http_request(d.port, method, path)
            assert r.header("X-Served-By") == host, (name, path, r)
            assert r.header_count("X-Served-By") == 1


def test_served_by_task_id_from_metadata(daemons, metadata):
    resp = daemons.start("responder",
                         env={"ECS_CONTAINER_METADATA_URI_V4": metadata.uri("xyz")})
    assert "/v4/xyz/task" in metadata.hits
    for method, path in (("GET", "/health"), ("GET", "/data"), ("DELETE", "/data"),
                         ("GET", "/nope")):
        assert http_request(resp.port, method, path).header("X-Served-By") == TASK_ID
    c = daemons.start("caller", env={"ECS_CONTAINER_METADATA_URI_V4": metadata.uri("abc"),
                                     "RESPONDER_URL": resp.url})
    r, body = get_root(c.port)
    assert body["responder_service_data"] == []
    assert r.header("X-Served-By") == OTHER_TASK_ID
    assert r.header("X-Upstream-Served-By") == TASK_ID
    # metadata is read once at start
    hits = len(metadata.hits)
    for _ in range(3):
        get_root(c.port)
    assert len(metadata.hits) == hits


def test_upstream_served_by_is_responder_hostname(daemons, resp):
    c = daemons.start("caller", env={"RESPONDER_URL": resp.url})
    r, _ = get_root(c.port)
    direct = http_request(resp.port, "GET", "/health").header("X-Served-By")
    assert direct == socket.gethostname()
    assert r.header("X-Upstream-Served-By") == direct
    # not on other caller answers
    assert http_request(c.port, "GET", "/health").header("X-Upstream-Served-By") is None


def test_no_upstream_served_by_when_responder_down(daemons):
    c = daemons.start("caller", env={"RESPONDER_URL": f"http://{HOST}:{free_port()}",
                                     "RETRY_MAX": 0})
    r, body = get_root(c.port)
    upstream_error(body)
    assert r.header("X-Upstream-Served-By") is None
    assert r.header("X-Served-By") == socket.gethostname()


def test_metadata_unreachable_falls_back_to_hostname(daemons, metadata):
    for uri in (f"http://{HOST}:{free_port()}/v4/none", metadata.uri("unknown")):
        t0 = time.monotonic()
        d = daemons.start("responder", env={"ECS_CONTAINER_METADATA_URI_V4": uri})
        assert time.monotonic() - t0 < 4
        assert http_request(d.port, "GET", "/health").header("X-Served-By") == \
            socket.gethostname()


def test_sampled_flag_propagated(resp):
    r = http_request(resp.port, "GET", "/health",
                     headers={"traceparent": f"00-{IN_TRACE}-{IN_SPAN}-00"})
    trace, _, sampled = trace_headers(r)
    assert (trace, sampled) == (IN_TRACE, "0")
    r = http_request(resp.port, "GET", "/health",
                     headers={"X-Amzn-Trace-Id": IN_AMZN.replace("Sampled=1", "Sampled=0")})
    trace, _, sampled = trace_headers(r)
    assert (trace, sampled) == (AMZN_TRACE, "0")


# ---------------------------------------------------------------- more exact figures

def test_in_flight_and_buckets_with_delayed_requests(daemons):
    d = daemons.start("responder", env={"FAULT_DELAY_MS": 400, "FAULT_DELAY_RATE": 1})
    results = []
    threads = [threading.Thread(target=lambda: results.append(
        http_request(d.port, "GET", "/data"))) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.15)
    m, _ = get_metrics(d.port)
    assert m.need("http_requests_in_flight") == 4, "3 delayed GET /data + this /metrics"
    assert m.need("http_request_duration_seconds_count", route="/data") == 0, \
        "requests are counted when they complete"
    for t in threads:
        t.join(timeout=5)
    assert [r.status for r in results] == [200] * 3
    # answered on other connections: allow the count to settle (see
    # test_request_counted_before_next_connection_sees_it)
    m = settle(d.port, lambda m: m.need("http_request_duration_seconds_count", route="/data") == 3
               and m.need("http_requests_in_flight") == 1)
    assert m.need("http_requests_in_flight") == 1
    check_histogram(m, "http_request_duration_seconds", 3, route="/data")
    assert m.need("http_request_duration_seconds_bucket", route="/data", le="0.25") == 0
    assert m.need("http_request_duration_seconds_bucket", route="/data", le="0.5") == 3
    s = m.need("http_request_duration_seconds_sum", route="/data")
    assert 1.2 <= s < 1.5, f"3 requests delayed 400 ms, _sum {s}"
    assert requests_total(m)[("/data", "GET", "200")] == 3


def test_read_timeouts_counted(daemons):
    d = daemons.start("responder", env={"REQUEST_READ_TIMEOUT_S": 1})
    assert get_metrics(d.port)[0].need("http_read_timeouts_total") == 0
    socks = []
    try:
        for partial in (b"GET /health HTTP/1.1\r\nHost: x\r\n", b""):
            s = socket.create_connection((HOST, d.port), timeout=4)
            if partial:
                s.sendall(partial)
            socks.append(s)
        t0 = time.monotonic()
        for s in socks:
            try:
                data = s.recv(4096)
                while data:
                    data = s.recv(4096)
            except (ConnectionResetError, socket.timeout):
                pass
        assert time.monotonic() - t0 < 3.5
    finally:
        for s in socks:
            s.close()
    assert wait_until(lambda: get_metrics(d.port)[0].need("http_read_timeouts_total") == 2, 2.0)


def test_caller_upstream_dns_outcome(daemons):
    name = "no-such-responder.invalid"
    t0 = time.monotonic()
    try:
        socket.getaddrinfo(name, 5000)
        pytest.skip(f"{name} resolves here")
    except socket.gaierror:
        pass
    if time.monotonic() - t0 > 0.5:
        pytest.skip("the resolver is too slow here to tell a DNS failure from a timeout")
    c = daemons.start("caller", env={"RESPONDER_URL": f"http://{name}:5000", "RETRY_MAX": 0,
                                     "BREAKER_THRESHOLD": 0})
    for _ in range(2):
        upstream_error(get_root(c.port)[1])
    counts = upstream_counts(get_metrics(c.port)[0])
    assert counts == {o: (2 if o == "dns" else 0) for o in UPSTREAM_OUTCOMES}


def test_emf_latency_and_error_figures(daemons):
    d = daemons.start("responder", env={"METRICS_EMF": 1, "METRICS_EMF_INTERVAL_S": 3600,
                                        "FAULT_DELAY_MS": 200, "STORE_MAX_ITEMS": 1})
    for _ in range(2):
        assert http_request(d.port, "GET", "/data").status == 200
    assert post_json(d.port, {"only": 1}).status == 201
    assert post_json(d.port, {"too": "many"}).status == 507
    assert http_request(d.port, "PUT", "/health").status == 405
    d.signal(signal.SIGTERM)
    assert d.wait_exit(5) == 0
    recs = emf_records(d)
    assert len(recs) == 1, recs
    r = recs[0]
    check_emf_record(r, "responder")
    logged = [x for x in d.log_records() if isinstance(x, dict) and "status" in x and "path" in x]
    assert r["Requests"] == len(logged)
    assert (r["Errors4xx"], r["Errors5xx"]) == (1, 1)
    assert (r["StoredObjects"], r["StoredBytes"]) == (1, len('{"only":1}'))
    avg = sum(x["duration_ms"] for x in logged) / len(logged)
    assert avg > 400 / len(logged)          # two 200 ms requests among them
    assert abs(r["LatencyAverage"] - avg) <= max(2.0, 0.1 * avg), \
        f"LatencyAverage {r['LatencyAverage']} ms, request log average {avg:.3f} ms"


def test_no_emf_by_default(daemons):
    d = daemons.start("responder")
    expect_json(post_json(d.port, {"a": 1}), 201)
    d.signal(signal.SIGTERM)
    assert d.wait_exit(5) == 0
    assert emf_records(d) == []
    assert d.log_records(), "request lines still written"


def test_metadata_hanging_is_bounded(daemons):
    """A metadata endpoint that accepts and never answers must not stop the start."""
    hang = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        hang.bind((HOST, 0))
        hang.listen(8)                  # never accepted: the kernel completes the handshake
        uri = f"http://{HOST}:{hang.getsockname()[1]}/v4/hang"
        t0 = time.monotonic()
        d = daemons.start("responder", env={"ECS_CONTAINER_METADATA_URI_V4": uri})
        assert time.monotonic() - t0 < 4
        assert http_request(d.port, "GET", "/health").header("X-Served-By") == \
            socket.gethostname()
    finally:
        hang.close()


@pytest.mark.parametrize("uri", ["https://127.0.0.1:1/v4/x", "not a url", ""])
def test_metadata_unsupported_uri_falls_back(daemons, uri):
    d = daemons.start("responder", env={"ECS_CONTAINER_METADATA_URI_V4": uri})
    assert http_request(d.port, "GET", "/health").header("X-Served-By") == socket.gethostname()


def test_emf_caller_breaker_open(daemons):
    c = daemons.start("caller", env={"METRICS_EMF": 1, "METRICS_EMF_INTERVAL_S": 3600,
                                     "RESPONDER_URL": f"http://{HOST}:{free_port()}",
                                     "RETRY_MAX": 0, "BREAKER_THRESHOLD": 2,
                                     "BREAKER_COOLDOWN_MS": 60000})
    for _ in range(2):
        assert "connect" in upstream_error(get_root(c.port)[1]).lower()
    assert "circuit breaker open" in upstream_error(get_root(c.port)[1])
    c.signal(signal.SIGTERM)
    assert c.wait_exit(5) == 0
    recs = emf_records(c)
    assert len(recs) == 1, recs
    check_emf_record(recs[0], "caller")
    assert recs[0]["BreakerOpen"] == 1
    assert (recs[0]["UpstreamCalls"], recs[0]["UpstreamFailures"]) == (3, 3)


# ---------------------------------------------------------------- X-App-Version

def build_info(port):
    text = http_request(port, "GET", "/metrics").body.decode()
    return re.findall(r'^app_build_info\{service="([^"]*)",version="([^"]*)"\} 1$', text, re.M)


def test_every_answer_carries_the_version(daemons):
    for name, version in (("responder", "2.0.1-rc.1+abc_7"), ("caller", "9")):
        d = daemons.start(name, env={"APP_VERSION": version,
                                     "RESPONDER_URL": f"http://{HOST}:{free_port()}"})
        for method, path in (("GET", "/health"), ("GET", "/metrics"), ("GET", "/nope"),
                             ("POST", "/data"), ("DELETE", "/data")):
            r = http_request(d.port, method, path)
            assert r.header("X-App-Version") == version, (name, method, path, r)
            assert r.header_count("X-App-Version") == 1
        assert build_info(d.port) == [(name, version)]


def test_version_defaults_to_the_built_in_one(daemons):
    d = daemons.start("responder", env={"APP_VERSION": ""})
    built_in = http_request(d.port, "GET", "/health").header("X-App-Version")
    assert re.fullmatch(r"[A-Za-z0-9._+-]{1,64}", built_in or ""), built_in
    assert build_info(d.port) == [("responder", built_in)]


def test_caller_names_the_responder_version_in_header_and_log(daemons):
    resp = daemons.start("responder", env={"APP_VERSION": "2.0.0"})
    c = daemons.start("caller", env={"APP_VERSION": "1.0.0", "RESPONDER_URL": resp.url})
    r, body = get_root(c.port, headers={"X-Request-Id": "version-line"})
    assert body == {"caller_service_data": [], "responder_service_data": []}
    assert r.header("X-App-Version") == "1.0.0"
    assert r.header("X-Upstream-Version") == "2.0.0"
    line = c.records_for("version-line")[0]
    assert line["upstream_version"] == "2.0.0"
    assert line["upstream_served_by"] == r.header("X-Upstream-Served-By")
    # only GET / asks the responder
    other = http_request(c.port, "GET", "/health", headers={"X-Request-Id": "no-upstream"})
    assert other.header("X-Upstream-Version") is None
    assert "upstream_version" not in c.records_for("no-upstream")[0]


def test_caller_without_an_answer_names_no_version(daemons):
    c = daemons.start("caller", env={"RESPONDER_URL": f"http://{HOST}:{free_port()}",
                                     "RETRY_MAX": 0})
    r, body = get_root(c.port)
    upstream_error(body)
    assert r.header("X-Upstream-Version") is None


@pytest.mark.parametrize("value,kept", [("3.1 tail", "3.1"), ("  7\tx", "7"),
                                        ("caf\u00e9", "caf"), ("", None)])
def test_caller_keeps_only_a_printable_word_of_the_version(daemons, fake_responder,
                                                            value, kept):
    fake_responder.configure(headers={"X-App-Version": value})
    c = daemons.start("caller", env={"RESPONDER_URL": fake_responder.url})
    r, _ = get_root(c.port)
    assert r.header("X-Upstream-Version") == kept


@pytest.mark.parametrize("reuse,connections", [("1", 1), ("0", 4)])
def test_connection_reuse_setting(daemons, fake_responder, reuse, connections):
    """UPSTREAM_CONNECTION_REUSE=0 opens a connection a call, each resolved anew."""
    c = daemons.start("caller", env={"RESPONDER_URL": fake_responder.url, "THREADS": "1",
                                     "UPSTREAM_CONNECTION_REUSE": reuse})
    for _ in range(4):
        get_root(c.port)
    assert len(fake_responder.requests) == 4
    assert len({req["peer"] for req in fake_responder.requests}) == connections
