"""The caller's GET / against a misbehaving responder (a fake one, or none at all)."""

import json
import re
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from blackbox_util import (UPSTREAM_ERROR_PREFIX, expect_json, free_port, http_request,
                           post_json)

MINE = {"mine": 1, "order": "kept"}


def prime(caller):
    """Store one object in the caller so we can check caller_service_data."""
    assert expect_json(post_json(caller.port, MINE), 201)["stored_data"] == MINE


def get_root(caller, headers=None, timeout=10):
    r = http_request(caller.port, "GET", "/", headers=headers, timeout=timeout)
    body = expect_json(r, 200)
    assert isinstance(body, dict) and set(body) == {"caller_service_data",
                                                     "responder_service_data"}, r.body
    assert body["caller_service_data"] == [MINE], \
        f"caller_service_data must be the caller's own list whatever the responder does: {r.body!r}"
    return r, body


def upstream_error(body):
    rsd = body["responder_service_data"]
    assert isinstance(rsd, dict) and set(rsd) == {"error"}, \
        f"responder_service_data should be {{'error': ...}}, got {rsd!r}"
    msg = rsd["error"]
    assert isinstance(msg, str) and msg.startswith(UPSTREAM_ERROR_PREFIX), msg
    assert len(msg) > len(UPSTREAM_ERROR_PREFIX), f"empty reason: {msg!r}"
    return msg[len(UPSTREAM_ERROR_PREFIX):]


# ---------------------------------------------------------------- normal path via the fake

def test_caller_calls_responder_get_data(caller_with_fake, fake_responder):
    fake_responder.configure(body={"stored_data": [{"z": 1}, {"y": [2]}]})
    c = caller_with_fake()
    prime(c)
    _, body = get_root(c)
    assert body["responder_service_data"] == [{"z": 1}, {"y": [2]}]
    assert fake_responder.requests, "the caller never called the responder"
    last = fake_responder.requests[-1]
    assert (last["method"], last["path"]) == ("GET", "/data")


def test_caller_forwards_request_id(caller_with_fake, fake_responder):
    c = caller_with_fake()
    prime(c)
    r, _ = get_root(c, headers={"X-Request-Id": "trace-abc.123"})
    assert r.header("X-Request-Id") == "trace-abc.123"
    assert fake_responder.requests[-1]["headers"].get("x-request-id") == "trace-abc.123"


def test_caller_forwards_generated_request_id(caller_with_fake, fake_responder):
    c = caller_with_fake()
    prime(c)
    r, _ = get_root(c)
    rid = r.header("X-Request-Id")
    assert rid
    assert fake_responder.requests[-1]["headers"].get("x-request-id") == rid, \
        "the caller should forward the id it generated for the request"


def test_caller_forwards_replacement_for_invalid_request_id(caller_with_fake, fake_responder):
    c = caller_with_fake()
    prime(c)
    r, _ = get_root(c, headers={"X-Request-Id": "bad id!"})
    rid = r.header("X-Request-Id")
    assert rid and rid != "bad id!"
    assert fake_responder.requests[-1]["headers"].get("x-request-id") == rid


# ---------------------------------------------------------------- failures

def test_responder_down_connect_error(daemons):
    c = daemons.start("caller", env={"RESPONDER_URL": f"http://127.0.0.1:{free_port()}"})
    prime(c)
    r, body = get_root(c)
    reason = upstream_error(body)
    assert "connect" in reason.lower(), reason
    assert r.elapsed < 1.5, f"connection refused should answer fast, took {r.elapsed:.2f} s"
    # the caller's own health never depends on the responder
    h = http_request(c.port, "GET", "/health")
    assert expect_json(h, 200) == {"status": "ok"}


def test_responder_slow_times_out_within_deadline(caller_with_fake, fake_responder):
    fake_responder.configure(delay=5)
    c = caller_with_fake(UPSTREAM_TIMEOUT_MS="300")
    prime(c)
    r, body = get_root(c)
    reason = upstream_error(body)
    assert "timed out" in reason.lower(), reason
    assert r.elapsed < 0.3 + 1.0, \
        f"UPSTREAM_TIMEOUT_MS=300 but GET / took {r.elapsed:.2f} s"


def test_default_upstream_deadline_is_two_seconds(caller_with_fake, fake_responder):
    fake_responder.configure(delay=6)
    c = caller_with_fake()
    prime(c)
    r, body = get_root(c)
    reason = upstream_error(body)
    assert "timed out" in reason.lower(), reason
    assert 1.5 < r.elapsed < 2.0 + 1.5, \
        f"default UPSTREAM_TIMEOUT_MS is 2000 but GET / took {r.elapsed:.2f} s"


@pytest.mark.parametrize("status", [503, 500, 502, 404, 201, 204])
def test_responder_http_error_status(caller_with_fake, fake_responder, status):
    body = b"" if status == 204 else b'{"stored_data": []}'
    fake_responder.configure(status=status, body=body)
    c = caller_with_fake()
    prime(c)
    _, answer = get_root(c)
    reason = upstream_error(answer)
    assert str(status) in reason, f"reason should mention HTTP {status}: {reason!r}"


@pytest.mark.parametrize("garbage", [b"<html>oops</html>", b'{"stored_data": [', b"",
                                     b"\xff\xfe\x00garbage", b'{"stored_data":[1,]}'],
                         ids=["html", "truncated", "empty", "binary", "trailing-comma"])
def test_responder_garbage_is_invalid_json(caller_with_fake, fake_responder, garbage):
    fake_responder.configure(body=garbage)
    c = caller_with_fake()
    prime(c)
    _, answer = get_root(c)
    reason = upstream_error(answer)
    assert "json" in reason.lower(), reason


@pytest.mark.parametrize("shape", [{"x": 1}, {"stored_data": 5}, {"stored_data": {"a": 1}},
                                   {"stored_data": "list"}, {"stored_data": None}, [1, 2],
                                   "a string", None, 7],
                         ids=["other-key", "number", "object", "string", "null", "top-array",
                              "top-string", "top-null", "top-number"])
def test_responder_wrong_shape(caller_with_fake, fake_responder, shape):
    fake_responder.configure(body=json.dumps(shape))
    c = caller_with_fake()
    prime(c)
    _, answer = get_root(c)
    upstream_error(answer)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_responder_answer_too_big(caller_with_fake, fake_responder, chunked):
    fake_responder.configure(body={"stored_data": [{"blob": "x" * 20000}]}, chunked=chunked)
    c = caller_with_fake(UPSTREAM_MAX_BYTES="2048")
    prime(c)
    r, answer = get_root(c)
    reason = upstream_error(answer)
    assert "UPSTREAM_MAX_BYTES" in reason or "larg" in reason.lower(), reason
    assert b"xxxxxxxxxx" not in r.body


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_responder_answer_under_max_bytes_accepted(caller_with_fake, fake_responder, chunked):
    data = [{"blob": "x" * 1900}]
    fake_responder.configure(body={"stored_data": data}, chunked=chunked)
    c = caller_with_fake(UPSTREAM_MAX_BYTES="2048")
    prime(c)
    _, answer = get_root(c)
    assert answer["responder_service_data"] == data


@pytest.mark.parametrize("cache_bytes, reuse", [(None, True), ("0", False), ("262144", False)],
                         ids=["default", "off", "smaller-than-every-body"])
def test_large_answers_reuse_kept_body_buffers_and_stay_exact(caller_with_fake, fake_responder,
                                                              cache_bytes, reuse):
    """A large answer is received into a buffer kept from an earlier one (the pages stay), within
    UPSTREAM_BODY_CACHE_BYTES. Sizes grow and shrink around the 256 KiB that makes a body worth
    keeping, each answer made of its own letter: a kept buffer reused for a smaller answer must
    not leak a byte of the larger one before it."""
    env = {"THREADS": "1"}
    if cache_bytes is not None:
        env["UPSTREAM_BODY_CACHE_BYTES"] = cache_bytes
    c = caller_with_fake(**env)
    prime(c)
    for i, kib in enumerate([600, 300, 900, 280, 600, 100, 900, 290]):
        data = [{"i": i, "blob": chr(ord("a") + i) * (kib * 1024)}]
        fake_responder.configure(body={"stored_data": data})
        _, answer = get_root(c)
        assert answer["responder_service_data"] == data, f"answer {i} ({kib} KiB) differs"
    text = http_request(c.port, "GET", "/metrics").body.decode()
    reused = int(re.search(r"^upstream_body_buffers_reused_total (\d+)$", text, re.M).group(1))
    if reuse:
        assert reused >= 2, text
    else:
        assert reused == 0, text


def test_recovery_after_responder_comes_back(daemons):
    port = free_port()
    c = daemons.start("caller", env={"RESPONDER_URL": f"http://127.0.0.1:{port}"})
    prime(c)

    _, body = get_root(c)
    assert "connect" in upstream_error(body).lower()

    resp = daemons.start("responder", port=port)
    assert post_json(resp.port, {"back": 1}).status == 201
    _, body = get_root(c)
    assert body["responder_service_data"] == [{"back": 1}], body

    rc, killed = resp.stop()
    assert rc == 0 and not killed
    _, body = get_root(c)
    upstream_error(body)

    resp2 = daemons.start("responder", port=port)
    assert post_json(resp2.port, {"again": 2}).status == 201
    for _ in range(2):
        _, body = get_root(c)
        assert body["responder_service_data"] == [{"again": 2}], body


def test_recovery_after_slow_and_broken_answers(caller_with_fake, fake_responder):
    c = caller_with_fake(UPSTREAM_TIMEOUT_MS="300")
    prime(c)
    fake_responder.configure(delay=2)
    _, body = get_root(c)
    assert "timed out" in upstream_error(body).lower()
    fake_responder.configure(delay=0, body=b"garbage")
    _, body = get_root(c)
    upstream_error(body)
    fake_responder.configure(body={"stored_data": [{"ok": True}]})
    _, body = get_root(c)
    assert body["responder_service_data"] == [{"ok": True}]


def test_recovery_after_many_consecutive_failures(caller_with_fake, fake_responder):
    """However many calls failed before, once the responder answers properly again
    the caller's GET / gets its data back within a bounded time (10 s)."""
    import time
    fake_responder.configure(status=503, body={"stored_data": []})
    c = caller_with_fake()
    prime(c)
    for _ in range(12):
        r, body = get_root(c)
        upstream_error(body)
        assert r.elapsed < 2.0 + 1.0
    fake_responder.configure(status=200, body={"stored_data": [{"healed": 1}]})
    t0 = time.monotonic()
    last = None
    while time.monotonic() - t0 < 10:
        r, body = get_root(c)
        last = body["responder_service_data"]
        if last == [{"healed": 1}]:
            break
        upstream_error(body)
        time.sleep(0.1)
    assert last == [{"healed": 1}], \
        f"caller still failing 10 s after the responder recovered: {last!r}"


@pytest.mark.parametrize("keepalive_max,reused", [(None, True), (1, False)])
def test_connections_to_responder_are_kept_and_reused(caller_with_fake, fake_responder,
                                                       keepalive_max, reused):
    """Waves of concurrent GET / reuse the connections of the waves before: libcurl keeps
    UPSTREAM_KEEPALIVE_MAX (64) of them per server thread (one thread here, so that which
    thread takes which request cannot change the count). With 1, the control case, most
    calls open a new one, which shows the test can tell."""
    concurrent, waves = 12, 5
    fake_responder.configure(delay=0.05)
    env = {"THREADS": 1}
    if keepalive_max is not None:
        env["UPSTREAM_KEEPALIVE_MAX"] = keepalive_max
    c = caller_with_fake(**env)
    with ThreadPoolExecutor(concurrent) as pool:
        for _ in range(waves):
            answers = list(pool.map(lambda _: http_request(c.port, "GET", "/"),
                                    range(concurrent)))
            assert all(a.status == 200 for a in answers), answers
    peers = {r["peer"] for r in fake_responder.requests}
    calls = len(fake_responder.requests)
    assert calls == concurrent * waves
    if reused:
        assert len(peers) <= concurrent + 2, \
            f"{calls} calls used {len(peers)} connections; at most {concurrent} are ever " \
            f"needed at once, so the rest should have been reused"
    else:
        assert len(peers) > 2 * concurrent, \
            f"with UPSTREAM_KEEPALIVE_MAX=1, {calls} calls used only {len(peers)} connections"


def test_calls_in_flight_bounded_by_upstream_calls_max(caller_with_fake, fake_responder):
    """UPSTREAM_CALLS_MAX=2 on one thread: eight concurrent GET / all succeed, over two
    connections at most, in about four rounds of the responder's delay (the rest wait
    their turn). Without the bound, all eight would be in flight at once."""
    concurrent, delay = 8, 0.2
    fake_responder.configure(delay=delay)
    c = caller_with_fake(THREADS=1, UPSTREAM_CALLS_MAX=2)
    t0 = time.monotonic()
    with ThreadPoolExecutor(concurrent) as pool:
        answers = list(pool.map(lambda _: http_request(c.port, "GET", "/"), range(concurrent)))
    took = time.monotonic() - t0
    assert all(a.status == 200 for a in answers), answers
    peers = {r["peer"] for r in fake_responder.requests}
    assert len(fake_responder.requests) == concurrent
    assert len(peers) <= 2, f"{len(peers)} connections to the responder; at most 2 allowed"
    assert took >= (concurrent / 2) * delay * 0.9, f"8 calls with 2 at a time took {took:.2f} s"


def test_waiting_for_a_call_slot_counts_against_the_deadline(caller_with_fake, fake_responder):
    """UPSTREAM_CALLS_MAX=1, UPSTREAM_TIMEOUT_MS=600, the responder takes 0.4 s: of two
    concurrent GET /, the second waits 0.4 s for the slot and has 0.2 s left, so it answers
    200 with "Failed to reach Service B" at about 0.6 s from its start, not at 1.0 s: the
    wait is part of its deadline, and at most one call is ever in flight."""
    fake_responder.configure(delay=0.4)
    c = caller_with_fake(THREADS=1, UPSTREAM_CALLS_MAX=1, UPSTREAM_TIMEOUT_MS="600",
                         RETRY_MAX="0")
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda _: http_request(c.port, "GET", "/"), range(2)))
    assert all(a.status == 200 for a in answers), answers
    ok = [a for a in answers if isinstance(json.loads(a.body)["responder_service_data"], list)]
    failed = [a for a in answers if a not in ok]
    assert len(ok) == 1 and len(failed) == 1, [a.body for a in answers]
    error = json.loads(failed[0].body)["responder_service_data"]["error"]
    assert error.startswith("Failed to reach Service B: "), error
    assert failed[0].elapsed < 0.9, \
        f"the waiting call answered after {failed[0].elapsed:.2f} s; its deadline is 0.6 s"
