"""Every error answer of the spec, on both daemons, and that errors store nothing."""

import json
import socket
import time

import pytest

from blackbox_util import (HOST, expect_error, expect_json, http_request, parse_raw_response,
                           post_json, recv_response_while_sending)

BOTH = ["caller", "responder"]


@pytest.fixture(params=BOTH)
def daemon(request, daemons):
    """Each daemon alone (the caller pointed at a port where nothing listens)."""
    if request.param == "responder":
        return daemons.start("responder")
    return daemons.start("caller", env={"RESPONDER_URL": "http://127.0.0.1:9"})


@pytest.fixture(params=BOTH)
def small_limit_daemon(request, daemons):
    env = {"BODY_MAX_BYTES": "100"}
    if request.param == "caller":
        env["RESPONDER_URL"] = "http://127.0.0.1:9"
    return daemons.start(request.param, env=env)


def assert_store_empty(d):
    assert expect_json(http_request(d.port, "GET", "/data"), 200) == {"stored_data": []}


# ---------------------------------------------------------------- 400

@pytest.mark.parametrize("body", [b"", b"{}", b"{ }", b" {}\n"], ids=["empty", "obj", "obj-ws", "obj-nl"])
def test_no_data_provided(daemon, body):
    r = post_json(daemon.port, body)
    assert expect_json(r, 400) == {"error": "No data provided"}
    assert_store_empty(daemon)


def test_no_data_provided_with_charset(daemon):
    r = post_json(daemon.port, b"{}", content_type="application/json; charset=utf-8")
    assert expect_json(r, 400) == {"error": "No data provided"}


BAD_BODIES = {
    "truncated": b'{"a":',
    "unquoted-key": b"{a:1}",
    "trailing-garbage": b'{"a":1}x',
    "two-objects": b'{"a":1}{"b":2}',
    "single-quotes": b"{'a':1}",
    "trailing-comma": b'{"a":1,}',
    "not-json": b"hello",
    "array": b"[1,2,3]",
    "array-of-object": b'[{"a":1}]',
    "empty-array": b"[]",
    "string": b'"just a string"',
    "number": b"42",
    "float": b"1.5",
    "null": b"null",
    "true": b"true",
    "invalid-utf8-value": b'{"a":"\xff\xfe"}',
    "invalid-utf8-key": b'{"\xc3\x28":1}',
    "overlong-utf8": b'{"a":"\xc0\xaf"}',
    "duplicate-keys": b'{"a":1,"a":2}',
    "duplicate-nested-keys": b'{"o":{"k":1,"k":1}}',
    "nul-escape-in-value": b'{"a":"x\\u0000y"}',
    "nul-escape-in-key": b'{"a\\u0000":1}',
    "raw-nul-byte": b'{"a":"x\x00y"}',
}


@pytest.mark.parametrize("body", list(BAD_BODIES.values()), ids=list(BAD_BODIES))
def test_bad_body_is_400(daemon, body):
    r = post_json(daemon.port, body)
    expect_error(r, 400)
    assert_store_empty(daemon)
    # the daemon is still fine afterwards
    assert post_json(daemon.port, {"ok": 1}).status == 201


# ---------------------------------------------------------------- 415

@pytest.mark.parametrize("ctype", [None, "text/plain", "application/x-www-form-urlencoded",
                                   "multipart/form-data; boundary=x", "application/jsonx",
                                   "text/json", "application/xml", ""],
                         ids=["missing", "text-plain", "form", "multipart", "jsonx",
                              "text-json", "xml", "empty"])
def test_wrong_content_type_is_415(daemon, ctype):
    r = post_json(daemon.port, b'{"a":1}', content_type=ctype)
    expect_error(r, 415)
    assert_store_empty(daemon)


@pytest.mark.parametrize("ctype", ["application/json; charset=utf-8",
                                   "application/json;charset=utf-8",
                                   "application/json; charset=UTF-8"])
def test_content_type_parameters_accepted(daemon, ctype):
    r = post_json(daemon.port, b'{"a":1}', content_type=ctype)
    assert expect_json(r, 201)["stored_data"] == {"a": 1}


# ---------------------------------------------------------------- 413

def _obj_of_size(n):
    """A JSON object body of exactly n bytes."""
    base = b'{"k":""}'
    return b'{"k":"' + b"x" * (n - len(base)) + b'"}'


def test_body_exactly_at_limit_accepted(small_limit_daemon):
    body = _obj_of_size(100)
    assert len(body) == 100
    r = post_json(small_limit_daemon.port, body)
    assert expect_json(r, 201)["stored_data"] == json.loads(body)


def test_body_one_byte_over_limit_is_413(small_limit_daemon):
    body = _obj_of_size(101)
    r = post_json(small_limit_daemon.port, body)
    expect_error(r, 413)
    assert_store_empty(small_limit_daemon)


def test_declared_content_length_too_large_refused_before_body(small_limit_daemon):
    """Only the headers are sent: the answer must come without the body being read."""
    with socket.create_connection((HOST, small_limit_daemon.port), timeout=3) as s:
        s.sendall(b"POST /data HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 50000000\r\n\r\n")
        t0 = time.monotonic()
        data = recv_response_while_sending(s, [], timeout=3)
    assert data, "no answer within 3 s to a POST whose Content-Length exceeds BODY_MAX_BYTES " \
                 "(the daemon seems to wait for the body)"
    status, headers, body = parse_raw_response(data)
    assert status == 413, data[:300]
    assert headers.get("content-type", "").split(";")[0].strip() == "application/json"
    assert isinstance(json.loads(body).get("error"), str)
    assert time.monotonic() - t0 < 3
    assert_store_empty(small_limit_daemon)


def test_declared_content_length_over_default_limit(daemon):
    with socket.create_connection((HOST, daemon.port), timeout=3) as s:
        s.sendall(b"POST /data HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 1048577\r\n\r\n")
        data = recv_response_while_sending(s, [], timeout=3)
    assert data, "no answer to Content-Length 1048577 (default BODY_MAX_BYTES is 1048576)"
    assert parse_raw_response(data)[0] == 413, data[:300]


def _chunked(parts):
    out = []
    for p in parts:
        out.append(b"%x\r\n%s\r\n" % (len(p), p))
    return out


def test_chunked_body_growing_too_large_is_413(small_limit_daemon):
    parts = [b'{"k":"'] + [b"y" * 20] * 200 + [b'"}']
    with socket.create_connection((HOST, small_limit_daemon.port), timeout=3) as s:
        s.sendall(b"POST /data HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n")
        data = recv_response_while_sending(s, _chunked(parts) + [b"0\r\n\r\n"], timeout=3)
    assert data, "no answer to a chunked body larger than BODY_MAX_BYTES"
    status, _, body = parse_raw_response(data)
    assert status == 413, data[:300]
    assert isinstance(json.loads(body).get("error"), str)
    assert_store_empty(small_limit_daemon)


def test_chunked_body_within_limit_accepted(small_limit_daemon):
    parts = [b'{"k":', b'"abc"', b',"n":', b"[1,2]}"]
    with socket.create_connection((HOST, small_limit_daemon.port), timeout=3) as s:
        s.sendall(b"POST /data HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n")
        data = recv_response_while_sending(s, _chunked(parts) + [b"0\r\n\r\n"], timeout=3)
    status, _, body = parse_raw_response(data)
    assert status == 201, data[:300]
    assert json.loads(body)["stored_data"] == {"k": "abc", "n": [1, 2]}


def test_daemon_healthy_after_413(small_limit_daemon):
    with socket.create_connection((HOST, small_limit_daemon.port), timeout=3) as s:
        s.sendall(b"POST /data HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 5000\r\n\r\n")
        recv_response_while_sending(s, [], timeout=3)
    assert expect_json(http_request(small_limit_daemon.port, "GET", "/health"), 200) == \
        {"status": "ok"}
    assert post_json(small_limit_daemon.port, {"a": 1}).status == 201


# ---------------------------------------------------------------- 405 / 404

def _allow_set(resp):
    allow = resp.header("Allow")
    assert allow is not None, f"405 answer without an Allow header: {resp!r}"
    return {m.strip().upper() for m in allow.split(",") if m.strip()}


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_data_wrong_method_405(daemon, method):
    r = http_request(daemon.port, method, "/data", body=b'{"a":1}',
                     headers={"Content-Type": "application/json"})
    expect_error(r, 405)
    assert _allow_set(r) == {"GET", "HEAD", "POST"}
    assert_store_empty(daemon)


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_health_wrong_method_405(daemon, method):
    r = http_request(daemon.port, method, "/health", body=b'{"a":1}',
                     headers={"Content-Type": "application/json"})
    expect_error(r, 405)
    assert _allow_set(r) == {"GET", "HEAD"}


@pytest.mark.parametrize("method", ["POST", "DELETE"])
def test_caller_root_wrong_method_405(daemons, method):
    d = daemons.start("caller", env={"RESPONDER_URL": "http://127.0.0.1:9"})
    r = http_request(d.port, method, "/", body=b'{"a":1}',
                     headers={"Content-Type": "application/json"})
    expect_error(r, 405)
    assert _allow_set(r) == {"GET", "HEAD"}


@pytest.mark.parametrize("method,path", [("GET", "/nope"), ("GET", "/data/1"),
                                         ("POST", "/nothing"), ("GET", "/healthz"),
                                         ("DELETE", "/x/y/z"), ("GET", "/DATA")])
def test_unknown_path_404(daemon, method, path):
    r = http_request(daemon.port, method, path, body=b'{"a":1}' if method == "POST" else None,
                     headers={"Content-Type": "application/json"} if method == "POST" else {})
    expect_error(r, 404)
    assert_store_empty(daemon)


# ---------------------------------------------------------------- 507

@pytest.mark.parametrize("which", BOTH)
def test_store_max_items_507(daemons, which):
    env = {"STORE_MAX_ITEMS": "3"}
    if which == "caller":
        env["RESPONDER_URL"] = "http://127.0.0.1:9"
    d = daemons.start(which, env=env)
    for i in range(3):
        assert expect_json(post_json(d.port, {"i": i}), 201)["stored_data"] == {"i": i}
    for i in range(3, 5):
        expect_error(post_json(d.port, {"i": i}), 507)
    assert expect_json(http_request(d.port, "GET", "/data"), 200) == \
        {"stored_data": [{"i": 0}, {"i": 1}, {"i": 2}]}


@pytest.mark.parametrize("which", BOTH)
def test_store_max_bytes_507(daemons, which):
    limit = 200
    env = {"STORE_MAX_BYTES": str(limit)}
    if which == "caller":
        env["RESPONDER_URL"] = "http://127.0.0.1:9"
    d = daemons.start(which, env=env)
    accepted = []
    got_507 = False
    for i in range(40):               # 40 objects of ~20 bytes: far over 200 bytes
        obj = {"n": i, "pad": "abcdefgh"}
        r = post_json(d.port, obj)
        if r.status == 507:
            expect_error(r, 507)
            got_507 = True
            break
        assert expect_json(r, 201)["stored_data"] == obj
        accepted.append(obj)
    assert got_507, f"no 507 after storing {len(accepted)} objects with STORE_MAX_BYTES={limit}"
    assert accepted, "the very first small object was refused"
    compact = sum(len(json.dumps(o, separators=(",", ":"))) for o in accepted)
    assert compact <= limit, f"store holds {compact} serialized bytes, over STORE_MAX_BYTES={limit}"
    # still refused, and every 201'd object is still there in order
    expect_error(post_json(d.port, {"n": 999, "pad": "abcdefgh"}), 507)
    assert expect_json(http_request(d.port, "GET", "/data"), 200) == {"stored_data": accepted}


@pytest.mark.parametrize("which", BOTH)
def test_single_object_bigger_than_store_is_507(daemons, which):
    env = {"STORE_MAX_BYTES": "50"}
    if which == "caller":
        env["RESPONDER_URL"] = "http://127.0.0.1:9"
    d = daemons.start(which, env=env)
    expect_error(post_json(d.port, {"big": "z" * 200}), 507)
    assert expect_json(http_request(d.port, "GET", "/data"), 200) == {"stored_data": []}
    assert expect_json(post_json(d.port, {"s": 1}), 201)["stored_data"] == {"s": 1}
    assert expect_json(http_request(d.port, "GET", "/data"), 200) == {"stored_data": [{"s": 1}]}


# ---------------------------------------------------------------- X-Request-Id

@pytest.mark.parametrize("rid", ["abc", "A-1_b.c", "x" * 64, "0", "a.b-c_D"])
def test_request_id_echoed_when_valid(daemon, rid):
    for method, path in [("GET", "/health"), ("GET", "/data"), ("GET", "/missing")]:
        r = http_request(daemon.port, method, path, headers={"X-Request-Id": rid})
        assert r.header("X-Request-Id") == rid, (method, path, r)
    r = post_json(daemon.port, {"a": 1}, headers={"X-Request-Id": rid})
    assert r.status == 201 and r.header("X-Request-Id") == rid
    r = post_json(daemon.port, b"{}", headers={"X-Request-Id": rid})
    assert r.status == 400 and r.header("X-Request-Id") == rid


@pytest.mark.parametrize("rid", ["x" * 65, "has space", "semi;colon", "slash/y", "caf\u00e9", "a\tb",
                                 "quote\"d"],
                         ids=["too-long", "space", "semicolon", "slash", "non-ascii", "tab", "quote"])
def test_request_id_generated_when_invalid(daemon, rid):
    r = http_request(daemon.port, "GET", "/health",
                     headers={"X-Request-Id": rid.encode("utf-8")})
    got = r.header("X-Request-Id")
    assert got and got != rid, r
    assert r.header_count("X-Request-Id") == 1
    assert len(got) <= 64 and all(c.isalnum() or c in "._-" for c in got), got


def test_request_id_generated_when_absent_and_unique(daemon):
    ids = set()
    for path in ["/health", "/data", "/health", "/nope"]:
        r = http_request(daemon.port, "GET", path)
        got = r.header("X-Request-Id")
        assert got, f"no X-Request-Id on {path}: {r!r}"
        assert r.header_count("X-Request-Id") == 1
        ids.add(got)
    r = post_json(daemon.port, {"a": 1})
    ids.add(r.header("X-Request-Id"))
    assert len(ids) == 5, f"generated request ids are not unique: {ids}"


def test_empty_request_id_replaced(daemon):
    r = http_request(daemon.port, "GET", "/health", headers={"X-Request-Id": ""})
    assert r.header("X-Request-Id"), r
