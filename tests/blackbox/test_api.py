"""The happy-path API: the original README flow, storage order, key order, HEAD."""

import json
import shutil
import subprocess

import pytest

from blackbox_util import (HOST, expect_json, http_request, post_json)

MSG_A = "Data stored successfully in Service A"
MSG_B = "Data stored successfully in Service B"


def test_readme_curl_flow_with_http_client(caller, responder):
    r = post_json(caller.port, b'{"key": "value"}')
    assert expect_json(r, 201) == {"message": MSG_A, "stored_data": {"key": "value"}}

    r = post_json(responder.port, b'{"key": "value"}')
    assert expect_json(r, 201) == {"message": MSG_B, "stored_data": {"key": "value"}}

    r = http_request(responder.port, "GET", "/data")
    assert expect_json(r, 200) == {"stored_data": [{"key": "value"}]}

    r = http_request(caller.port, "GET", "/")
    assert expect_json(r, 200) == {"caller_service_data": [{"key": "value"}],
                                   "responder_service_data": [{"key": "value"}]}


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_readme_curl_flow_verbatim_with_curl(caller, responder):
    """The four curl commands of the original README, unchanged but for the host:port."""
    def curl(*args):
        p = subprocess.run(["curl", "-sS", "--max-time", "5", "-w", "\n%{http_code}", *args],
                           capture_output=True, timeout=10, env={"PATH": "/usr/bin:/bin"})
        assert p.returncode == 0, p.stderr
        body, _, code = p.stdout.decode().rpartition("\n")
        return int(code), json.loads(body)

    c = f"http://{HOST}:{caller.port}"
    s = f"http://{HOST}:{responder.port}"
    assert curl("-X", "POST", "-H", "Content-Type: application/json", "-d", '{"key": "value"}',
                f"{c}/data") == (201, {"message": MSG_A, "stored_data": {"key": "value"}})
    assert curl("-X", "POST", "-H", "Content-Type: application/json", "-d", '{"key": "value"}',
                f"{s}/data") == (201, {"message": MSG_B, "stored_data": {"key": "value"}})
    assert curl(f"{s}/data") == (200, {"stored_data": [{"key": "value"}]})
    assert curl(f"{c}/") == (200, {"caller_service_data": [{"key": "value"}],
                                   "responder_service_data": [{"key": "value"}]})


@pytest.mark.parametrize("which", ["caller", "responder"])
def test_get_data_initially_empty(which, request):
    d = request.getfixturevalue(which)
    r = http_request(d.port, "GET", "/data")
    assert expect_json(r, 200) == {"stored_data": []}


@pytest.mark.parametrize("which", ["caller", "responder"])
def test_get_data_oldest_first(which, request):
    d = request.getfixturevalue(which)
    for i in range(6):
        assert post_json(d.port, {"i": i, "tag": f"n{i}"}).status == 201
    r = http_request(d.port, "GET", "/data")
    assert expect_json(r, 200) == {"stored_data": [{"i": i, "tag": f"n{i}"} for i in range(6)]}


@pytest.mark.parametrize("which", ["caller", "responder"])
def test_key_order_preserved_in_post_answer_and_get(which, request):
    d = request.getfixturevalue(which)
    r = post_json(d.port, b'{"b":1,"a":2}')
    body = expect_json(r, 201)
    assert list(body["stored_data"].keys()) == ["b", "a"]
    assert r.body.index(b'"b"') < r.body.index(b'"a"'), r.body

    keys = ["zeta", "alpha", "mid", "beta", "omega", "a1", "Z", "_", "0"]
    raw = "{" + ",".join(f'"{k}":{i}' for i, k in enumerate(keys)) + "}"
    assert post_json(d.port, raw).status == 201

    r = http_request(d.port, "GET", "/data")
    stored = expect_json(r, 200)["stored_data"]
    assert list(stored[0].keys()) == ["b", "a"]
    assert list(stored[1].keys()) == keys
    # raw bytes: b before a inside the first stored object
    first = r.body[r.body.index(b"[") :]
    assert first.index(b'"b"') < first.index(b'"a"'), r.body


@pytest.mark.parametrize("which", ["caller", "responder"])
def test_stored_object_is_compact(which, request):
    """The spec: stored compactly (no spaces), key order as sent."""
    d = request.getfixturevalue(which)
    assert post_json(d.port, b'{ "b" : 1 ,\n "a" : [ 1 , 2 ] }').status == 201
    r = http_request(d.port, "GET", "/data")
    expect_json(r, 200)
    assert b'{"b":1,"a":[1,2]}' in r.body, \
        f"stored object should appear compactly as {{\"b\":1,\"a\":[1,2]}} in {r.body!r}"


def test_caller_get_root_merges_both_stores_in_order(caller, responder):
    for i in range(3):
        assert post_json(caller.port, {"c": i}).status == 201
    for i in range(2):
        assert post_json(responder.port, {"r": i}).status == 201
    r = http_request(caller.port, "GET", "/")
    assert expect_json(r, 200) == {"caller_service_data": [{"c": 0}, {"c": 1}, {"c": 2}],
                                   "responder_service_data": [{"r": 0}, {"r": 1}]}
    # the caller's POST /data does not touch the responder's store and vice versa
    assert expect_json(http_request(responder.port, "GET", "/data"), 200) == \
        {"stored_data": [{"r": 0}, {"r": 1}]}
    assert expect_json(http_request(caller.port, "GET", "/data"), 200) == \
        {"stored_data": [{"c": 0}, {"c": 1}, {"c": 2}]}


def test_caller_root_passes_responder_key_order_through(caller, responder):
    assert post_json(responder.port, b'{"y":1,"x":2}').status == 201
    r = http_request(caller.port, "GET", "/")
    body = expect_json(r, 200)
    assert list(body["responder_service_data"][0].keys()) == ["y", "x"]
    tail = r.body[r.body.index(b'"responder_service_data"'):]
    assert tail.index(b'"y"') < tail.index(b'"x"'), r.body


@pytest.mark.parametrize("which", ["caller", "responder"])
def test_values_round_trip(which, request):
    d = request.getfixturevalue(which)
    obj = {"unicode": "h\u00e9llo \u65e5\u672c \U0001F600", "esc": "quote\" back\\ nl\n tab\t",
           "n": None, "t": True, "f": False, "int": -42, "big": 9007199254740991,
           "float": 2.5, "arr": [1, "two", [3], {"four": 4}], "nested": {"deep": {"er": []}},
           "empty_obj": {}, "empty_str": ""}
    r = post_json(d.port, json.dumps(obj, ensure_ascii=False).encode("utf-8"),
                  content_type="application/json; charset=utf-8")
    assert expect_json(r, 201)["stored_data"] == obj
    assert expect_json(http_request(d.port, "GET", "/data"), 200) == {"stored_data": [obj]}


@pytest.mark.parametrize("which", ["caller", "responder"])
def test_large_body_under_default_limit_accepted(which, request):
    d = request.getfixturevalue(which)
    obj = {"blob": "x" * 900_000}
    r = post_json(d.port, obj, timeout=10)
    assert expect_json(r, 201)["stored_data"] == obj
    assert expect_json(http_request(d.port, "GET", "/data", timeout=10), 200) == \
        {"stored_data": [obj]}


@pytest.mark.parametrize("which", ["caller", "responder"])
def test_health(which, request):
    d = request.getfixturevalue(which)
    assert expect_json(http_request(d.port, "GET", "/health"), 200) == {"status": "ok"}


@pytest.mark.parametrize("which,path", [("caller", "/health"), ("caller", "/data"),
                                        ("caller", "/"), ("responder", "/health"),
                                        ("responder", "/data")])
def test_head_on_get_routes(which, path, request):
    import http.client
    d = request.getfixturevalue(which)
    get = http_request(d.port, "GET", path)
    assert get.status == 200
    conn = http.client.HTTPConnection(HOST, d.port, timeout=5)
    try:
        head = http_request(d.port, "HEAD", path, conn=conn)
        assert head.status == 200, head
        assert head.body == b""
        cl = head.header("Content-Length")
        if cl is not None and path != "/":
            assert int(cl) == len(get.body), (cl, get.body)
        # a body sent after the HEAD headers would corrupt this next answer
        again = http_request(d.port, "GET", "/health", conn=conn)
        assert expect_json(again, 200) == {"status": "ok"}
    finally:
        conn.close()


def test_keep_alive_connection_serves_several_requests(responder):
    import http.client
    conn = http.client.HTTPConnection(HOST, responder.port, timeout=5)
    try:
        for i in range(5):
            r = http_request(responder.port, "POST", "/data", body=json.dumps({"k": i}),
                             headers={"Content-Type": "application/json"}, conn=conn)
            assert r.status == 201, r
        r = http_request(responder.port, "GET", "/data", conn=conn)
        assert expect_json(r, 200) == {"stored_data": [{"k": i} for i in range(5)]}
    finally:
        conn.close()


def test_expect_100_continue_post(responder):
    """curl sends Expect: 100-continue for bodies over 1 KiB."""
    import socket
    body = json.dumps({"pad": "p" * 4000}).encode()
    with socket.create_connection((HOST, responder.port), timeout=5) as s:
        s.sendall(b"POST /data HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\nExpect: 100-continue\r\n\r\n" % len(body))
        s.settimeout(1.0)
        try:
            first = s.recv(4096)
        except socket.timeout:
            first = b""
        if first:
            assert first.startswith(b"HTTP/1.1 100"), first
        s.settimeout(5)
        s.sendall(body)
        data = b""
        while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
            c = s.recv(65536)
            if not c:
                break
            data += c
    assert b" 201 " in data.split(b"\r\n")[0], data[:300]


def test_answers_either_side_of_the_one_write_size(caller, responder):
    """Bodies up to 64 KiB are copied into one write, larger ones are sent from the store in
    pieces: GET /data and GET / are byte-exact on both sides of that size, while it is crossed."""
    stored = {"r": 0, "c": 0}

    def fill(port, prefix, target):
        # one object (about 920 bytes) at a time, so the first target stays under 64 KiB
        while len(http_request(port, "GET", "/data").body) < target:
            obj = {"k": f"{prefix}{stored[prefix]}", "pad": "x" * 900}
            assert post_json(port, obj).status == 201
            stored[prefix] += 1

    for target in (60_000, 70_000, 140_000):
        fill(responder.port, "r", target)
        fill(caller.port, "c", target)
        mine = expect_json(http_request(caller.port, "GET", "/data"), 200)["stored_data"]
        theirs = expect_json(http_request(responder.port, "GET", "/data"), 200)["stored_data"]
        assert [o["k"] for o in theirs] == [f"r{i}" for i in range(stored["r"])]
        assert [o["k"] for o in mine] == [f"c{i}" for i in range(stored["c"])]
        merged = http_request(caller.port, "GET", "/")
        assert int(merged.header("Content-Length")) == len(merged.body)
        assert expect_json(merged, 200) == {"caller_service_data": mine,
                                            "responder_service_data": theirs}
