"""The request log: one JSON line per request on stdout."""

import pytest

from blackbox_util import http_request, post_json

FIELDS = {"time", "level", "service", "method", "path", "status", "bytes", "duration_ms",
          "request_id"}


def check_record(rec, service, method, path, status, rid):
    missing = FIELDS - set(rec)
    assert not missing, f"log line lacks {sorted(missing)}: {rec}"
    assert rec["level"] == "info", rec
    assert rec["service"] == service, rec
    assert rec["method"] == method, rec
    assert rec["path"] == path, rec
    assert rec["status"] == status and isinstance(rec["status"], int), rec
    assert isinstance(rec["bytes"], int) and not isinstance(rec["bytes"], bool) \
        and rec["bytes"] >= 0, rec
    assert isinstance(rec["duration_ms"], (int, float)) and rec["duration_ms"] >= 0, rec
    assert rec["request_id"] == rid, rec
    assert isinstance(rec["time"], (str, int, float)) and rec["time"] not in ("", 0), rec


@pytest.mark.parametrize("name", ["caller", "responder"])
def test_one_json_line_per_request(daemons, responder, name):
    d = responder if name == "responder" else \
        daemons.start("caller", env={"RESPONDER_URL": responder.url})
    cases = [
        ("GET", "/health", None, None, 200, "log-health-1"),
        ("POST", "/data", b'{"a":1}', "application/json", 201, "log-post-2"),
        ("POST", "/data", b"{}", "application/json", 400, "log-post-3"),
        ("POST", "/data", b'{"a":1}', "text/plain", 415, "log-post-4"),
        ("GET", "/data", None, None, 200, "log-get-5"),
        ("GET", "/nowhere", None, None, 404, "log-404-6"),
        ("DELETE", "/data", None, None, 405, "log-405-7"),
    ]
    if name == "caller":
        cases.append(("GET", "/", None, None, 200, "log-root-8"))
    for method, path, body, ctype, status, rid in cases:
        headers = {"X-Request-Id": rid}
        if ctype:
            headers["Content-Type"] = ctype
        r = http_request(d.port, method, path, body=body, headers=headers)
        assert r.status == status, r
    for method, path, body, ctype, status, rid in cases:
        recs = d.records_for(rid)
        assert len(recs) == 1, \
            f"expected exactly one log line for request {rid} ({method} {path}), got {recs}; " \
            f"stdout so far: {d.stdout()[-2000:]!r}"
        check_record(recs[0], name, method, path, status, rid)


def test_generated_request_id_is_logged(responder):
    r = http_request(responder.port, "GET", "/data")
    rid = r.header("X-Request-Id")
    assert rid
    recs = responder.records_for(rid)
    assert len(recs) == 1, f"no log line carries the generated id {rid}"
    check_record(recs[0], "responder", "GET", "/data", 200, rid)


def test_every_stdout_line_is_json(daemons, caller, responder):
    for d in (caller, responder):
        for _ in range(3):
            http_request(d.port, "GET", "/health")
        post_json(d.port, {"x": 1})
        post_json(d.port, b"not json")
    http_request(caller.port, "GET", "/")
    for d in (caller, responder):
        recs = d.records_for("never-used-id", timeout=0.3)   # lets lines land; parses all
        assert recs == []
        assert any(isinstance(r, dict) and r.get("path") == "/health" for r in d.log_records()), \
            f"{d.name} logged no request on stdout: {d.stdout()[-1000:]!r}"


def test_log_level_warn_suppresses_request_lines(daemons):
    d = daemons.start("responder", env={"LOG_LEVEL": "warn"})
    r = http_request(d.port, "GET", "/data", headers={"X-Request-Id": "quiet-1"})
    assert r.status == 200
    post_json(d.port, {"a": 1}, headers={"X-Request-Id": "quiet-2"})
    # a control daemon at info logs the same requests, so the wait below is meaningful
    ctl = daemons.start("responder", env={"LOG_LEVEL": "info"})
    http_request(ctl.port, "GET", "/data", headers={"X-Request-Id": "loud-1"})
    assert ctl.records_for("loud-1"), "the info-level control daemon logged nothing"
    assert d.records_for("quiet-1", timeout=0.3) == []
    assert d.records_for("quiet-2", timeout=0.1) == []
