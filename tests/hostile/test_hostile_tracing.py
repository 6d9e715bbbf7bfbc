"""Tracing under attack: the caller's X-Ray segments while every hostile responder of
test_hostile_upstream answers it, and both daemons' segments for hostile requests (bytes
outside ASCII, control characters and quotes in the path, the Host and the User-Agent; the
longest headers libmicrohttpd lets in).

Every datagram is checked against X-Ray's rules (scripts/xray_collector.py's parse_datagram); the call's
subsegment must carry the failure as a fault with the caller's own reason, and the daemons
keep serving."""

import pytest

from hostile_util import StoreGuard, http_request, raw_send
from test_hostile_upstream import CASES, TIMEOUT_MS, get_root_through, RSS_SMALL, SMALL_MAX
from xray_collector import Collector

FAULT_PREFIX = "Failed to reach Service B: "


@pytest.fixture(scope="module")
def collector():
    c = Collector()
    yield c
    c.close()
    assert not c.errors, "datagrams broke X-Ray's rules:\n" + "\n".join(c.errors[:5])


@pytest.fixture(scope="module")
def fake():
    from hostile_util import RawServer
    s = RawServer()
    yield s
    s.close()


@pytest.fixture(scope="module")
def traced_caller(module_daemons, fake, collector):
    d = module_daemons.start("caller", env={
        "RESPONDER_URL": fake.url, "UPSTREAM_TIMEOUT_MS": TIMEOUT_MS, "BREAKER_THRESHOLD": 0,
        "UPSTREAM_MAX_BYTES": SMALL_MAX, "XRAY_TRACING": 1, "XRAY_SAMPLING_RATE": 1,
        "AWS_XRAY_DAEMON_ADDRESS": collector.address})
    g = StoreGuard(d)
    g.seed()
    return g


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_responder_is_a_fault_in_the_trace(traced_caller, fake, collector, name):
    handler, reason = CASES[name]
    collector.reset()
    why, _, _ = get_root_through(traced_caller, fake, handler, reason, RSS_SMALL)
    collector.settle()
    roots = [s for s in collector.segments("caller")
             if s["http"]["request"]["url"].endswith("/") and "subsegments" in s]
    assert len(roots) == 1, collector.documents
    seg = roots[0]
    assert seg["http"]["response"]["status"] == 200 and "fault" not in seg
    sub = seg["subsegments"][0]
    assert sub["fault"] is True, sub
    message = sub["cause"]["exceptions"][0]["message"]
    assert why == FAULT_PREFIX + message or why.startswith(FAULT_PREFIX + message[:200]), \
        (why, message)
    status = sub["http"].get("response", {}).get("status", 0)
    assert status == 0 or status >= 200, sub


HOSTILE_HEADS = {
    "bytes outside ASCII in the user agent":
        b"GET /data HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: \xff\xfe\xc3\x28 \x80\r\n\r\n",
    "quotes and backslashes everywhere":
        b'GET /data?a="\\x"&b=\\ HTTP/1.1\r\nHost: "evil\\\r\nUser-Agent: "}]{\\\r\n\r\n',
    "escaped control characters in the path":
        b"GET /data%00%01%1b%7f%ff HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    "a 7 KB user agent and host":
        b"GET /data HTTP/1.1\r\nHost: " + b"h" * 3000 + b"\r\nUser-Agent: " + b"u" * 4000 +
        b"\r\n\r\n",
    "a long path":
        b"GET /" + b"p" * 6000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    "no Host header, HTTP/1.0":
        b"GET /data HTTP/1.0\r\n\r\n",
}


@pytest.fixture(scope="module")
def traced_responder(module_daemons, collector):
    d = module_daemons.start("responder", env={
        "XRAY_TRACING": 1, "XRAY_SAMPLING_RATE": 1, "AWS_XRAY_DAEMON_ADDRESS": collector.address})
    return StoreGuard(d)


@pytest.mark.parametrize("name", list(HOSTILE_HEADS))
def test_hostile_request_gives_a_valid_segment(traced_responder, collector, name):
    collector.reset()
    out = raw_send(traced_responder.port, [HOSTILE_HEADS[name]], timeout=5)
    assert out.data.startswith(b"HTTP/1."), out
    status = int(out.data.split(b" ", 2)[1])
    print(f"{name}: {status}")
    collector.settle()
    segs = collector.segments("responder")
    if status == 431 or status == 414:
        # libmicrohttpd refused the head before the daemon saw a request: nothing to trace.
        assert segs == []
    else:
        assert len(segs) == 1, collector.documents
        req = segs[0]["http"]["request"]
        assert all(0x20 <= ord(ch) < 0x7f for v in req.values() if isinstance(v, str)
                   for ch in v), req
        assert segs[0]["http"]["response"]["status"] == status
    assert http_request(traced_responder.port, "GET", "/data").status == 200
