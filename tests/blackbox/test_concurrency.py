"""Concurrency: a slow responder must not stall the caller; stores stay consistent."""

import json
import os
import threading
import time

from blackbox_util import expect_json, http_request, post_json

FAST_BOUND_S = 0.050
STALL_BOUND_S = 0.500


def test_slow_responder_does_not_stall_health_or_post(caller_with_fake, fake_responder):
    """Functional bound from the issue: with 50 GET / waiting on a responder that
    takes 1.5 s, the caller's /health and POST /data still answer in under 50 ms."""
    n = 50
    fake_responder.configure(delay=1.5, body={"stored_data": [{"r": 1}]})
    c = caller_with_fake(UPSTREAM_TIMEOUT_MS="5000")
    # warm up
    assert http_request(c.port, "GET", "/health").status == 200

    results = [None] * n

    def slow(i):
        try:
            results[i] = http_request(c.port, "GET", "/", timeout=10)
        except Exception as e:          # recorded, asserted below
            results[i] = e

    threads = [threading.Thread(target=slow, args=(i,), daemon=True) for i in range(n)]
    t_start = time.monotonic()
    for t in threads:
        t.start()
    arrived = fake_responder.wait_for_requests(n, timeout=0.8)
    time.sleep(0.05)

    timings = []
    for i in range(5):
        r = http_request(c.port, "GET", "/health", timeout=5)
        timings.append(("GET /health", r.elapsed, r.status))
        r = post_json(c.port, {"fast": i}, timeout=5)
        timings.append(("POST /data", r.elapsed, r.status))
    measured_until = time.monotonic() - t_start
    in_flight_then = fake_responder.in_flight

    for t in threads:
        t.join(timeout=12)

    assert all(s in (200, 201) for _, _, s in timings), timings
    # The bound is 50 ms. A stall behind the slow calls would take 1.5 s, so the
    # test asks the median to meet the bound and every sample to stay far from a stall:
    # one scheduling hiccup on a loaded 2-core machine must not fail it, a stall must.
    samples = sorted(e for _, e, _ in timings)
    median = samples[len(samples) // 2]
    slow_ones = [(what, round(e * 1000, 1)) for what, e, _ in timings if e >= STALL_BOUND_S]
    assert median < FAST_BOUND_S and not slow_ones, (
        f"with {n} GET / waiting on a 1.5 s responder ({arrived} had reached it, "
        f"{in_flight_then} still in flight when measuring ended at {measured_until:.2f} s), "
        f"median {median * 1000:.1f} ms (bound {FAST_BOUND_S * 1000:.0f} ms); these took >= "
        f"{STALL_BOUND_S * 1000:.0f} ms (ms): {slow_ones}; "
        f"all samples (ms): {[round(e * 1000, 1) for _, e, _ in timings]}; machine load "
        f"average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (a heavily loaded "
        f"machine can also cause this)")
    assert in_flight_then > 0, "measurement happened after the slow calls finished; not meaningful"

    failures = [(i, r) for i, r in enumerate(results)
                if isinstance(r, Exception) or r is None or r.status != 200]
    assert not failures, f"{len(failures)} of {n} GET / failed: {failures[:3]}"
    not_served = [i for i, r in enumerate(results)
                  if expect_json(r, 200)["responder_service_data"] != [{"r": 1}]]
    assert not not_served, \
        f"{len(not_served)} of {n} concurrent GET / did not get the responder's data " \
        f"(a 1.5 s responder with a 5 s deadline): e.g. {results[not_served[0]].body!r}"



def test_concurrent_posts_all_stored_in_order(responder):
    writers, per_writer = 8, 25
    errors = []

    def writer(w):
        for i in range(per_writer):
            try:
                r = post_json(responder.port, {"w": w, "i": i})
                if r.status != 201:
                    errors.append((w, i, r))
            except Exception as e:       # recorded, asserted below
                errors.append((w, i, e))

    threads = [threading.Thread(target=writer, args=(w,), daemon=True) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors, errors[:3]
    stored = expect_json(http_request(responder.port, "GET", "/data"), 200)["stored_data"]
    assert len(stored) == writers * per_writer
    for w in range(writers):
        mine = [o["i"] for o in stored if o["w"] == w]
        assert mine == list(range(per_writer)), f"writer {w}: {mine}"
    assert len({json.dumps(o, sort_keys=True) for o in stored}) == len(stored)


def test_concurrent_readers_and_writers(responder):
    stop = threading.Event()
    problems = []

    def reader():
        last = 0
        while not stop.is_set():
            try:
                r = http_request(responder.port, "GET", "/data")
                data = expect_json(r, 200)["stored_data"]
                if len(data) < last:
                    problems.append(f"store shrank from {last} to {len(data)}")
                last = len(data)
            except Exception as e:       # recorded, asserted below
                problems.append(repr(e))

    readers = [threading.Thread(target=reader, daemon=True) for _ in range(3)]
    for t in readers:
        t.start()
    for i in range(60):
        r = post_json(responder.port, {"i": i})
        if r.status != 201:
            problems.append(repr(r))
    stop.set()
    for t in readers:
        t.join(timeout=10)
    assert not problems, problems[:3]
    stored = expect_json(http_request(responder.port, "GET", "/data"), 200)["stored_data"]
    assert stored == [{"i": i} for i in range(60)]
