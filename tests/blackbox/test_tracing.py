"""X-Ray tracing: the real daemons' UDP datagrams, caught and checked against X-Ray's rules.

Every datagram goes through scripts/xray_collector.py's parse_datagram (framing, size, every field's rule); a
test fails on any datagram that breaks a rule. Then each test checks what the documents say:
the caller's segment and its remote subsegment, the responder's segment continuing the trace
(its parent_id the subsegment's id), the sampling decision honoured both ways, and what
happens to segments that cannot be sent.
"""

import json
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from blackbox_util import (HOST, free_port, http_connection, http_request, post_json,
                           wait_until)
from test_resilience import metric, metrics
from xray_collector import Collector, check_link

AMZN_RE = re.compile(r"^Root=1-([0-9a-f]{8})-([0-9a-f]{24});Parent=([0-9a-f]{16});Sampled=([01])$")
COLLECTOR = Path(__file__).resolve().parents[2] / "scripts" / "xray_collector.py"
IN_ROOT = "Root=1-5759e988-bd862e3fe1be46a994272793"


@pytest.fixture
def collector():
    c = Collector()
    yield c
    c.close()
    assert not c.errors, "datagrams broke X-Ray's rules:\n" + "\n".join(c.errors[:5])


def tracing_env(collector, **extra):
    env = {"XRAY_TRACING": "1", "AWS_XRAY_DAEMON_ADDRESS": collector.address}
    env.update({k: str(v) for k, v in extra.items()})
    return env


@pytest.fixture
def traced(daemons, collector):
    """Factory: a traced responder and a traced caller in front of it, with extra env for both."""
    def start(responder_env=None, caller_env=None, **both):
        r = daemons.start("responder", env=tracing_env(collector, **both, **(responder_env or {})))
        c = daemons.start("caller", env=tracing_env(collector, RESPONDER_URL=r.url, **both,
                                                    **(caller_env or {})))
        collector.reset()
        return c, r
    return start


def amzn(resp):
    m = AMZN_RE.match(resp.header("X-Amzn-Trace-Id") or "")
    assert m, resp
    return m


def test_get_root_is_one_trace_across_both_daemons(traced, collector):
    caller, responder = traced(XRAY_SAMPLING_RATE=1)
    post_json(responder.port, {"k": "v"})
    collector.reset()
    r = http_request(caller.port, "GET", "/", headers={"User-Agent": "trace-test/1"})
    assert r.status == 200
    docs = collector.settle()
    callers = [d for d in docs if d["name"] == "caller"]
    responders = [d for d in docs if d["name"] == "responder"]
    assert len(callers) == 1 and len(responders) == 1, docs
    seg = callers[0]
    m = amzn(r)
    # The answer's trace header names the caller's segment and its decision.
    assert seg["trace_id"] == f"1-{m.group(1)}-{m.group(2)}"
    assert seg["id"] == m.group(3) and m.group(4) == "1"
    assert "parent_id" not in seg
    req, resp = seg["http"]["request"], seg["http"]["response"]
    assert req == {"method": "GET", "url": f"http://{HOST}:{caller.port}/",
                   "client_ip": "127.0.0.1", "user_agent": "trace-test/1"}
    assert resp == {"status": 200, "content_length": len(r.body)}
    assert seg["annotations"]["request_id"] == r.header("X-Request-Id")
    assert seg["service"] == {"version": r.header("X-App-Version")}
    assert not any(k in seg for k in ("error", "fault", "throttle"))
    sub, linked = check_link(seg, responders)
    assert len(linked) == 1
    assert sub["name"] == HOST and sub["namespace"] == "remote"
    assert sub["http"]["request"] == {"method": "GET", "url": f"{responder.url}/data",
                                      "traced": True}
    assert sub["http"]["response"]["status"] == 200
    assert sub["http"]["response"]["content_length"] == \
        linked[0]["http"]["response"]["content_length"]
    assert sub["annotations"] == {"attempts": 1, "retries": 0, "breaker": "closed",
                                  "breaker_allowed": True}
    # The responder saw the caller's request id, and answered GET /data.
    assert linked[0]["annotations"]["request_id"] == r.header("X-Request-Id")
    assert linked[0]["http"]["request"]["url"] == f"http://{HOST}:{responder.port}/data"


@pytest.mark.parametrize("path,body,headers,status,flags", [
    ("/data", b"{not json", {"Content-Type": "application/json"}, 400, {"error"}),
    ("/nowhere", None, {}, 404, {"error"}),
    ("/data", b"{}", {"Content-Type": "text/plain"}, 415, {"error"}),
])
def test_error_flags_follow_the_status(daemons, collector, path, body, headers, status, flags):
    d = daemons.start("responder", env=tracing_env(collector, XRAY_SAMPLING_RATE=1))
    collector.reset()
    method = "POST" if body is not None else "GET"
    r = http_request(d.port, method, path, body=body, headers=headers)
    assert r.status == status
    segs = [s for s in collector.settle() if s["http"]["request"]["url"].endswith(path)]
    assert len(segs) == 1
    assert {f for f in ("error", "throttle", "fault") if segs[0].get(f)} == flags
    assert segs[0]["http"]["response"]["status"] == status


def test_throttled_request_is_error_and_throttle(daemons, collector):
    d = daemons.start("responder", env=tracing_env(collector, XRAY_SAMPLING_RATE=1,
                                                   RATE_LIMIT_RPS=1, RATE_LIMIT_BURST=1,
                                                   CONNECTION_LIMIT_EXEMPT="::2"))
    collector.reset()
    statuses = [post_json(d.port, {"i": i}).status for i in range(3)]
    assert 429 in statuses
    throttled = [s for s in collector.settle() if s["http"]["response"]["status"] == 429]
    assert throttled and all(s["error"] is True and s["throttle"] is True for s in throttled)


@pytest.mark.parametrize("header,recorded", [
    ({"X-Amzn-Trace-Id": IN_ROOT + ";Parent=53995c3f42cd8ad8;Sampled=0"}, False),
    ({"traceparent": "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-00"}, False),
    ({"X-Amzn-Trace-Id": IN_ROOT + ";Parent=53995c3f42cd8ad8;Sampled=1"}, True),
    ({"traceparent": "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01"}, True),
])
def test_incoming_decision_is_honoured_by_both(traced, collector, header, recorded):
    # The rule alone would sample nothing: only the header can make these recorded.
    caller, _ = traced(XRAY_SAMPLING_RESERVOIR=0, XRAY_SAMPLING_RATE=0)
    r = http_request(caller.port, "GET", "/", headers=header)
    assert r.status == 200
    assert amzn(r).group(4) == ("1" if recorded else "0")
    docs = collector.settle()
    if not recorded:
        assert docs == []
        return
    names = sorted(d["name"] for d in docs)
    assert names == ["caller", "responder"], docs
    seg = collector.segments("caller")[0]
    assert seg["trace_id"] == "1-5759e988-bd862e3fe1be46a994272793"
    assert seg["parent_id"] == "53995c3f42cd8ad8"
    check_link(seg, collector.segments("responder"))
    m = metrics(caller.port)
    assert metric(m, "xray_sampling_decisions_total", by="header", sampled="true") == 1
    assert metric(m, "xray_sampling_decisions_total", by="rule", sampled="true") == 0


def test_undecided_requests_follow_the_reservoir(daemons, collector):
    d = daemons.start("responder", env=tracing_env(collector, XRAY_SAMPLING_RESERVOIR=1,
                                                   XRAY_SAMPLING_RATE=0))
    collector.reset()
    # The reservoir counts seconds of the monotonic clock, Python's time.monotonic() too:
    # start at the turn of a second, after the readiness checks' second.
    m = metrics(d.port)
    m0_yes = metric(m, "xray_sampling_decisions_total", by="rule", sampled="true")
    m0_total = m0_yes + metric(m, "xray_sampling_decisions_total", by="rule", sampled="false")
    time.sleep(1 - time.monotonic() % 1 + 0.01)
    answers = [http_request(d.port, "GET", "/data",
                            headers={"X-Amzn-Trace-Id": IN_ROOT + ";Sampled=?"} if i % 2 else {})
               for i in range(20)]
    sampled = [a for a in answers if amzn(a).group(4) == "1"]
    docs = [x for x in collector.settle() if x["http"]["request"]["url"].endswith("/data")]
    # One a second: the 20 requests span one second, two on a slow machine.
    assert 1 <= len(sampled) <= 2, [a.header("X-Amzn-Trace-Id") for a in answers]
    assert len(docs) == len(sampled)
    assert sorted(d["id"] for d in docs) == sorted(amzn(a).group(3) for a in sampled)
    # Every request is counted by its decision, this /metrics one too (a skipped path).
    m = metrics(d.port)
    yes = metric(m, "xray_sampling_decisions_total", by="rule", sampled="true")
    no = metric(m, "xray_sampling_decisions_total", by="rule", sampled="false")
    assert yes + no == m0_total + 20 + 1
    assert yes - m0_yes in (len(sampled), len(sampled) + 1)


def test_fixed_rate_samples_its_share(daemons, collector):
    d = daemons.start("responder", env=tracing_env(collector, XRAY_SAMPLING_RESERVOIR=0,
                                                   XRAY_SAMPLING_RATE=0.25))
    collector.reset()
    n = 400
    for _ in range(n):
        http_request(d.port, "GET", "/data")
    docs = collector.settle()
    # Binomial(400, 0.25): mean 100, standard deviation 8.7; this is over 4.5 of them.
    assert 60 <= len(docs) <= 140, len(docs)
    assert all(x["http"]["request"]["url"].endswith("/data") for x in docs)


def test_retries_and_breaker_are_annotated(daemons, collector, fake_responder):
    fake_responder.configure(status=503, body={"error": "down"})
    c = daemons.start("caller", env=tracing_env(
        collector, XRAY_SAMPLING_RATE=1, RESPONDER_URL=fake_responder.url, RETRY_MAX=1,
        RETRY_BACKOFF_MS=1, RETRY_BUDGET_PERCENT=100, BREAKER_THRESHOLD=2,
        BREAKER_COOLDOWN_MS=60000))
    collector.reset()
    for _ in range(3):
        assert http_request(c.port, "GET", "/").status == 200
    collector.settle()
    segs = sorted(collector.segments("caller"), key=lambda s: s["start_time"])
    assert len(segs) == 3
    subs = [s["subsegments"][0] for s in segs]
    for sub in subs[:2]:
        assert sub["annotations"] == {"attempts": 2, "retries": 1, "breaker": "closed",
                                      "breaker_allowed": True}
        assert sub["fault"] is True and sub["http"]["response"]["status"] == 503
        assert "HTTP 503" in sub["cause"]["exceptions"][0]["message"]
    # The third call meets the open breaker: no attempt, and the segment says why.
    assert subs[2]["annotations"] == {"attempts": 0, "retries": 0, "breaker": "open",
                                      "breaker_allowed": False}
    assert subs[2]["fault"] is True and "response" not in subs[2]["http"]
    assert "circuit breaker open" in subs[2]["cause"]["exceptions"][0]["message"]
    # The caller answered 200 (the original API), so its own segment has no fault.
    assert not any(s.get("fault") for s in segs)
    # Each attempt named the call's subsegment as its parent.
    parents = [q["headers"]["x-amzn-trace-id"] for q in fake_responder.requests]
    assert len(parents) == 4
    for i, sub in enumerate(subs[:2]):
        for p in parents[2 * i:2 * i + 2]:
            assert f"Parent={sub['id']};Sampled=1" in p and segs[i]["trace_id"][2:10] in p


def test_unreachable_responder_is_a_fault_with_its_cause(daemons, collector):
    c = daemons.start("caller", env=tracing_env(
        collector, XRAY_SAMPLING_RATE=1, RESPONDER_URL=f"http://{HOST}:{free_port()}",
        RETRY_MAX=0))
    collector.reset()
    assert http_request(c.port, "GET", "/").status == 200
    collector.settle()
    sub = collector.segments("caller")[0]["subsegments"][0]
    assert sub["fault"] is True and "response" not in sub["http"]
    assert sub["annotations"]["attempts"] == 1
    assert "connect" in sub["cause"]["exceptions"][0]["message"].lower()


def test_large_documents_are_split_then_trimmed_never_broken(traced, collector):
    caller, _ = traced(XRAY_SAMPLING_RATE=1, XRAY_SEGMENT_MAX_BYTES=700)
    r = http_request(caller.port, "GET", "/")
    assert r.status == 200
    collector.settle()
    assert all(len(d) <= 700 for d in collector.datagrams)
    standalone = [d for d in collector.documents if d.get("type") == "subsegment"]
    assert len(standalone) == 1
    seg = collector.segments("caller")[0]
    assert "subsegments" not in seg
    assert standalone[0]["parent_id"] == seg["id"]
    assert standalone[0]["trace_id"] == seg["trace_id"]
    assert metric(caller.port, "xray_segments_split_total") == 1
    # A 4 KB user agent: cut, and still valid.
    r = http_request(caller.port, "GET", "/data", headers={"User-Agent": "u" * 4000})
    assert r.status == 200
    collector.settle()
    seg = [s for s in collector.segments("caller") if s["http"]["request"]["url"].endswith("/data")]
    assert len(seg[0]["http"]["request"]["user_agent"]) == 256
    assert metric(caller.port, "xray_segments_trimmed_total") == 1
    assert all(len(d) <= 700 for d in collector.datagrams)


def test_segment_too_large_even_trimmed_is_dropped_and_counted(daemons, collector):
    d = daemons.start("responder", env=tracing_env(collector, XRAY_SAMPLING_RATE=1,
                                                   XRAY_SEGMENT_MAX_BYTES=512))
    collector.reset()
    http_request(d.port, "GET", "/data", headers={"User-Agent": "u" * 4000,
                                                  "X-Request-Id": "r" * 100})
    collector.settle()
    m = metrics(d.port)
    dropped = metric(m, "xray_segments_dropped_total", reason="too_large")
    assert dropped + metric(m, "xray_segments_sent_total") >= 1
    assert all(len(x) <= 512 for x in collector.datagrams)
    if dropped == 0:
        assert metric(m, "xray_segments_trimmed_total") >= 1


def test_no_daemon_listening_costs_only_a_counter(daemons):
    # A UDP port nobody listens on: the kernel answers ICMP port unreachable.
    nobody = free_port()
    d = daemons.start("responder", env={"XRAY_TRACING": "1", "XRAY_SAMPLING_RATE": "1",
                                        "AWS_XRAY_DAEMON_ADDRESS": f"127.0.0.1:{nobody}"})
    for i in range(50):
        assert post_json(d.port, {"i": i}).status == 201

    # A server thread sends the segments of what it answered when it next waits, so the last
    # answer can reach the client (and /metrics be read on the other thread) a moment before
    # its segment is counted.
    def settled():
        m = metrics(d.port)
        figures = (metric(m, "xray_segments_sent_total"),
                   metric(m, "xray_segments_dropped_total", reason="refused"),
                   metric(m, "xray_sampling_decisions_total", by="rule", sampled="true"))
        return figures if figures[0] == figures[2] else None

    figures = wait_until(settled, 5)
    assert figures is not None, "a sampled request's segment was never handed on"
    sent, refused, sampled = figures
    assert refused >= 1
    # A refusal reports an earlier datagram (sent, and lost); the one that met it is sent
    # again at once. Every sampled request had its segment handed on (/metrics is not sampled).
    assert sent == sampled == 50
    assert refused <= sent


def test_tracing_off_sends_nothing(daemons, collector):
    r = daemons.start("responder", env={"AWS_XRAY_DAEMON_ADDRESS": collector.address,
                                        "XRAY_SAMPLING_RATE": "1"})
    c = daemons.start("caller", env={"AWS_XRAY_DAEMON_ADDRESS": collector.address,
                                     "RESPONDER_URL": r.url})
    assert http_request(c.port, "GET", "/").status == 200
    assert collector.settle() == []
    assert "xray_" not in http_request(c.port, "GET", "/metrics").body.decode()


def test_forwarded_client_is_recorded_when_trusted(daemons, collector):
    d = daemons.start("responder", env=tracing_env(collector, XRAY_SAMPLING_RATE=1,
                                                   TRUST_FORWARDED_FOR=1))
    collector.reset()
    http_request(d.port, "GET", "/data", headers={"X-Forwarded-For": "203.0.113.9"})
    seg = collector.settle()[0]
    assert seg["http"]["request"]["client_ip"] == "203.0.113.9"
    assert seg["http"]["request"]["x_forwarded_for"] is True


def test_segment_name_and_address_forms(daemons, collector):
    d = daemons.start("responder", env=tracing_env(
        collector, XRAY_SAMPLING_RATE=1, AWS_XRAY_TRACING_NAME="svc-b @ demo",
        AWS_XRAY_DAEMON_ADDRESS=f"tcp:127.0.0.1:1 udp:{collector.address}"))
    collector.reset()
    http_request(d.port, "GET", "/data")
    assert [s["name"] for s in collector.settle()] == ["svc-b @ demo"]


def test_collector_prints_the_trace_tree_and_the_service_map(daemons, tmp_path):
    port = free_port()
    out = tmp_path / "segments.jsonl"
    proc = subprocess.Popen(
        [sys.executable if sys.executable.startswith("/usr/bin/") else "/usr/bin/python3",
         str(COLLECTOR), "--listen", f"127.0.0.1:{port}", "--out", str(out), "--quiet-ms", "200",
         "--hide", "/data"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert proc.stdout.readline().startswith(b"xray-collector: listening")
        env = {"XRAY_TRACING": "1", "XRAY_SAMPLING_RATE": "1",
               "AWS_XRAY_DAEMON_ADDRESS": f"127.0.0.1:{port}"}
        r = daemons.start("responder", env=env)
        c = daemons.start("caller", env=dict(env, RESPONDER_URL=r.url))
        got = http_request(c.port, "GET", "/")
        assert got.status == 200
        assert http_request(r.port, "GET", "/data").status == 200  # a trace of its own, hidden
        time.sleep(0.8)
    finally:
        proc.send_signal(signal.SIGINT)
        text = proc.communicate(timeout=10)[0].decode()
    assert proc.returncode == 0, text
    trace_id = "1-{}-{}".format(*amzn(got).groups()[:2])
    assert f"trace {trace_id}" in text, text
    block = text[text.index(f"trace {trace_id}"):].splitlines()
    assert block[1].startswith(f"  caller  GET http://{HOST}:{c.port}/ 200 ")
    assert block[2].startswith(f"    {HOST} (remote)  GET {r.url}/data 200 ")
    assert "attempts=1" in block[2] and "breaker=closed" in block[2]
    assert block[3].startswith(f"      responder  GET {r.url}/data 200 ")
    assert "caller -> responder: 1 calls, 0 faults, 0 errors" in text
    assert "0 invalid" in text
    # The direct GET /data's trace is hidden, counted, and kept in the file.
    assert "1 traces hidden" in text, text
    docs = [json.loads(line) for line in out.read_text().splitlines()]
    assert trace_id in {d["trace_id"] for d in docs}
    assert sum(d["http"]["request"]["url"] == f"{r.url}/data" for d in docs) == 2


def test_health_checks_and_scrapes_are_not_sampled_unless_asked(daemons, collector):
    d = daemons.start("responder", env=tracing_env(collector, XRAY_SAMPLING_RATE=1))
    collector.reset()
    for path in ("/health", "/metrics", "/health"):
        assert amzn(http_request(d.port, "GET", path)).group(4) == "0"
    asked = http_request(d.port, "GET", "/health",
                         headers={"X-Amzn-Trace-Id": IN_ROOT + ";Sampled=1"})
    assert amzn(asked).group(4) == "1"
    docs = collector.settle()
    assert [x["http"]["request"]["url"] for x in docs] == [f"http://{HOST}:{d.port}/health"]
    # XRAY_SAMPLING_SKIP_PATHS set and empty: every path follows the rule.
    e = daemons.start("responder", env=tracing_env(collector, XRAY_SAMPLING_RATE=1,
                                                   XRAY_SAMPLING_SKIP_PATHS=""))
    assert amzn(http_request(e.port, "GET", "/health")).group(4) == "1"
    f = daemons.start("responder", env=tracing_env(collector, XRAY_SAMPLING_RATE=1,
                                                   XRAY_SAMPLING_SKIP_PATHS="/data"))
    assert amzn(http_request(f.port, "GET", "/data")).group(4) == "0"
    assert amzn(http_request(f.port, "GET", "/health")).group(4) == "1"


def test_segments_of_one_turn_leave_together_each_exactly_once(daemons, collector):
    # THREADS=1: every request goes through one loop, so the segments of the requests it
    # answers in one turn leave in one send, cut by the kernel into their datagrams.
    d = daemons.start("responder", env=tracing_env(collector, XRAY_SAMPLING_RATE=1, THREADS=1))
    collector.reset()
    ids = []

    def client(k):
        conn = http_connection(d.port)
        try:
            for i in range(50):
                r = http_request(d.port, "GET", "/data", conn=conn,
                                 headers={"User-Agent": "u" * (k * 40)})
                ids.append(amzn(r).group(3))
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    docs = collector.settle()
    assert len(ids) == 400
    # Every segment once, whole, with its own id, whatever size its neighbours were padded to.
    assert sorted(x["id"] for x in docs) == sorted(ids)
    m = metrics(d.port)
    assert metric(m, "xray_segments_sent_total") == 400
    assert metric(m, "xray_segment_batches_total") >= 1
    padded = [g for g in collector.datagrams if g.endswith(b" ")]
    assert padded, "no datagram of a batch was padded"
