"""Connection floods on the public port, against the connection-admission contract.

The contract (defaults): CONNECTION_LIMIT=1024 connections in all; when full, the connection that
has waited longest for a complete request (idle keep-alive, partial request line or headers, slow
body, lingering after a refusal) is closed to make room, and only when none can give way does the
newcomer get an immediate 503 {"error":"Connection limit reached: CONNECTION_LIMIT is 1024"}
with Connection: close. CONNECTION_LIMIT_PER_ADDRESS=64 per client address (IPv4-mapped IPv6
counts as IPv4; CONNECTION_LIMIT_EXEMPT, default 127.0.0.1,::1, is not limited): past it an
immediate 429 {"error":"Too many connections from one address: CONNECTION_LIMIT_PER_ADDRESS is
64"} with Connection: close. Nobody is left in the listen queue. REQUEST_READ_TIMEOUT_S=30 for a
whole request. ANSWER_MEMORY_MAX_BYTES (128 MiB) of answers queued and unsent, past which the
slowest readers are closed. A refusal sent before the body is read (413, 415, 429, 400, and the
refusals at accept) is followed by reading and discarding what the client still sends for at most
REFUSAL_DRAIN_MS=5000 / REFUSAL_DRAIN_BYTES=8 MiB, so the client reads its answer. /metrics:
http_connections_open, http_connection_limit, http_connections_closed_total{reason=...},
http_answer_bytes_held, http_answer_bytes_limit.

Attacks (tests/hostile/flood_attacks.py) run FLOOD_SECONDS (env, default 30) each while a Prober
asks GET /health from 127.0.0.1 and POST/GET /data from 127.0.1.1 once a second with a 1 s
timeout. Each flood runs against one daemon, alternating (the admission code is shared);
FLOOD_BOTH_DAEMONS=1 runs each against both (3 minutes more). About 5 minutes at FLOOD_SECONDS=30.
"""

import http.client
import json
import os
import select
import shutil
import socket
import time

import pytest

from flood_attacks import ATTACKS, FLOOD_SECONDS, attack_with_probes, metrics, summary_line
from hostile_util import (
    HOST, MiB, SANITIZED, StoreGuard, expect_error, http_request, parse_raw_response, raise_nofile,
    wait_until,
)
from tls_certs import Certs

NOFILE = 65536                       # asked for (capped by the hard limit); daemons inherit it
CONNECTION_LIMIT = 1024
PER_ADDRESS = 64
REFUSAL_DRAIN_S = 5.0
# http_connections_open counts connections being closed too: a thread shuts down at most one
# connection per accept, 64 a batch, before libmicrohttpd closes them; 2 threads here (a daemon
# that stops evicting goes far past the limit)
OPEN_SLACK = 2 * 64
MIN_OK_RATIO = 0.99
# A probe's answer must come within 1 s; sanitized binaries run at about half speed.
PROBE_S = 2.0 if SANITIZED else 1.0
PER_ADDRESS_MSG = ("Too many connections from one address: CONNECTION_LIMIT_PER_ADDRESS is "
                   f"{PER_ADDRESS}")
BOTH = os.environ.get("FLOOD_BOTH_DAEMONS", "") not in ("", "0")
UNUSED_UPSTREAM = "http://127.0.0.1:9"      # the caller's GET / is not used by these cases


@pytest.fixture(scope="module", autouse=True)
def _nofile():
    have = raise_nofile(NOFILE)
    if have < 4096:
        pytest.skip(f"RLIMIT_NOFILE hard limit too low ({have}) for 2,000-connection floods")


def start(daemons, name, env=None, tls=None):
    """A daemon with default settings (plus env); the caller's upstream points nowhere."""
    env = dict(env or {})
    if name == "caller":
        env.setdefault("RESPONDER_URL", UNUSED_UPSTREAM)
    return daemons.start(name, env=env, tls=tls)


def seeded(daemon):
    g = StoreGuard(daemon)
    g.seed()
    return g


def assert_store_kept(guard, objects):
    """The seeded objects are still first in GET /data, and every probe object answered 201 is
    listed (the probes' own POSTs that timed out may or may not be there)."""
    r = http_request(guard.port, "GET", "/data", timeout=10)
    assert r.status == 200, f"GET /data after the flood: {r!r}"
    assert r.body.startswith(guard.PREFIX + guard.inner), \
        f"seeded objects changed after the flood: {r.body[:600]!r}"
    missing = [o for o in objects if o not in r.body]
    assert not missing, f"{len(missing)} objects answered 201 are not in GET /data: {missing[:5]}"


def assert_probes(report, what):
    p = report["probes"]
    assert p["total"] >= max(3, FLOOD_SECONDS // 2), f"{what}: too few probes ran: {p}"
    assert p["ok_ratio"] >= MIN_OK_RATIO, \
        f"{what}: only {p['ok_in_time']} of {p['total']} probes ok within {p['bound_s']:g} s " \
        f"({100 * p['ok_ratio']:.1f}%, need {100 * MIN_OK_RATIO:.0f}%), worst " \
        f"{p['worst_latency_s']} s; by kind {p['by_kind']}; failures: {p['failures']}"


def assert_accepts_at_once(report, what):
    a = report["after"]
    assert a["accepts_at_once"], \
        f"{what}: a fresh GET /health was not answered 200 within 1 s after the attack: {a}"
    assert not a.get("missing_objects"), \
        f"{what}: objects answered 201 missing from GET /data: {a['missing_objects'][:5]}"


def assert_attack_ran(result):
    """The attack itself worked: no crash, and it did open its connections."""
    crashed = [e for e in result.get("errors", {}) if e.startswith("crashed")]
    assert not crashed, f"the attack crashed: {result}"
    if "target_connections" in result:          # the Python floods
        assert result["connect_attempts"] >= result["target_connections"], \
            f"the flood did not open its connections: {result}"
    elif result.get("attack", "").startswith("slowhttptest"):
        assert result["runs"] >= 1 and result["seconds_observed"] > 0 and \
            result["max_connected"] > 0, f"slowhttptest did not run: {result}"


def reason(report, name):
    return (report.get("closed") or {}).get(name)


def source_conn(src, port, timeout=2.0, family=socket.AF_INET, dst=HOST, rcvbuf=None):
    """A connection to dst:port from source address src (bound before connect)."""
    s = socket.socket(family, socket.SOCK_STREAM)
    try:
        s.settimeout(timeout)
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.bind((src, 0))
        s.connect((dst, port))
    except OSError:
        s.close()
        raise
    return s


def read_answer(s, timeout):
    """Reads until a whole answer (by Content-Length) is in, the peer closes, or timeout.

    Returns (bytes, seconds, closed)."""
    t0 = time.monotonic()
    data, closed = b"", False
    while time.monotonic() - t0 < timeout:
        s.settimeout(max(0.01, timeout - (time.monotonic() - t0)))
        try:
            c = s.recv(65536)
        except socket.timeout:
            break
        except ConnectionResetError:
            closed = True
            break
        if not c:
            closed = True
            break
        data += c
        if b"\r\n\r\n" in data:
            try:
                _, hdrs, body = parse_raw_response(data)
            except (ValueError, IndexError):
                continue
            if "content-length" in hdrs and len(body) >= int(hdrs["content-length"]):
                break
    return data, time.monotonic() - t0, closed


def wait_closed(s, timeout):
    """Seconds until the peer closes (EOF or reset), or None after timeout. Discards data."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        s.settimeout(max(0.01, timeout - (time.monotonic() - t0)))
        try:
            c = s.recv(65536)
        except socket.timeout:
            return None
        except ConnectionResetError:
            return time.monotonic() - t0
        if not c:
            return time.monotonic() - t0
    return None


def get_health_on(s, timeout=2.0):
    """GET /health on an open connection; returns the status (None: no answer)."""
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    data, _, _ = read_answer(s, timeout)
    try:
        return parse_raw_response(data)[0] if data.startswith(b"HTTP/") else None
    except (ValueError, IndexError):
        return None


# ------------------------------------------------------------------------------------------
# item 1: at the connection limit, connections timing out must not stop accepting for good
# ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return Certs(tmp_path_factory.mktemp("flood-certs"))


@pytest.mark.parametrize("scheme", ["http", "https"])
@pytest.mark.parametrize("name", ["responder", "caller"])
def test_limit_reached_then_timed_out_connections_do_not_lock_the_port(daemons, certs, name,
                                                                      scheme):
    """The reported reproduction, exactly: THREADS=2 CONNECTION_LIMIT=40 CONNECTION_TIMEOUT_S=3
    REQUEST_READ_TIMEOUT_S=100; open 50 connections, sleep 6 (the idle ones time out), close
    them; GET /health must then answer 200 within 3 s, and again 2 s later."""
    env = {"THREADS": 2, "CONNECTION_LIMIT": 40, "CONNECTION_TIMEOUT_S": 3,
           "REQUEST_READ_TIMEOUT_S": 100}
    tls = None
    if scheme == "https":
        env.update(TLS_CERT_FILE=certs.server, TLS_KEY_FILE=certs.server_key,
                   TLS_CLIENT_CA_FILE=certs.ca)
        tls = certs.ctx()
    d = start(daemons, name, env=env, tls=tls)
    held = []
    try:
        for _ in range(50):
            held.append(socket.create_connection((HOST, d.port), timeout=2))
        time.sleep(6)
    finally:
        for s in held:
            s.close()
    for attempt in ("right after closing them", "2 s later"):
        t0 = time.monotonic()
        try:
            r = http_request(d.port, "GET", "/health", timeout=3, tls=tls)
            status, body = r.status, r.body
        except (OSError, http.client.HTTPException) as e:
            status, body = None, repr(e)
        took = time.monotonic() - t0
        assert status == 200 and took <= 3.0, \
            f"{name} over {scheme}: GET /health {attempt}: {status} {body!r} after {took:.2f} s " \
            f"(the daemon stopped accepting once it had reached its limit)"
        time.sleep(2)
    assert d.running()


# ------------------------------------------------------------------------------------------
# floods, with the Prober running
# ------------------------------------------------------------------------------------------

FLOODS = [
    # (attack, daemon it runs against by default, close reason it must make the daemon count)
    ("idle_one", "responder", "per_address_limit"),
    ("idle_many", "caller", "evicted_idle"),
    ("partial_line", "responder", "evicted_idle"),
    ("partial_headers", "caller", "evicted_idle"),
    ("slowloris", "responder", "evicted_idle"),
    ("slow_body", "caller", "evicted_idle"),
]


def flood_params():
    out = []
    for attack, daemon, why in FLOODS:
        for name in (("responder", "caller") if BOTH else (daemon,)):
            out.append(pytest.param(attack, name, why, id=f"{attack}-{name}"))
    return out


@pytest.mark.parametrize("attack,name,why", flood_params())
def test_flood_leaves_the_port_serving(daemons, attack, name, why):
    """FLOOD_SECONDS of the attack against a daemon with default settings: >= 99% of probes ok
    within 1 s, the port accepts at once afterwards, every object answered 201 is in GET /data,
    the open connections never exceed CONNECTION_LIMIT, and the close reason is counted."""
    if attack.startswith("slow") and not shutil.which("slowhttptest"):
        pytest.skip("slowhttptest is not installed (scripts/install-deps.sh)")
    d = start(daemons, name)
    guard = seeded(d)
    report = attack_with_probes(attack, d.port, FLOOD_SECONDS, pid=d.pid, probe_timeout=PROBE_S)
    print(f"\n{name}: {ATTACKS[attack][1]}\n  {summary_line(report)}\n  attack: "
          f"{json.dumps(report['result'])}\n  gauges max: {report['gauges_max']}\n  closed: "
          f"{report['closed']}")
    what = f"{attack} on the {name}"
    assert d.running(), f"{what}: the daemon died: {d.stderr()[-3000:]}"
    assert_attack_ran(report["result"])
    assert_probes(report, what)
    assert_accepts_at_once(report, what)
    assert_store_kept(guard, report["probes"]["objects"])
    top = report["gauges_max"]["http_connections_open"]
    assert top is not None, f"{what}: no http_connections_open gauge in /metrics"
    assert top <= CONNECTION_LIMIT + OPEN_SLACK, \
        f"{what}: http_connections_open reached {top} (CONNECTION_LIMIT {CONNECTION_LIMIT}; " \
        f"refused connections lingering count in it and give way like idle ones)"
    m = metrics(d.port)
    assert m.get("http_connection_limit") == CONNECTION_LIMIT, \
        f"http_connection_limit: {m.get('http_connection_limit')}"
    count = reason(report, why)
    assert count is not None and count > 0, \
        f"{what}: http_connections_closed_total{{reason=\"{why}\"}} is {count}; all: " \
        f"{report['closed']}"


# ------------------------------------------------------------------------------------------
# slow readers of a large answer: ANSWER_MEMORY_MAX_BYTES bounds the caller's memory
# ------------------------------------------------------------------------------------------

ANSWER_MEMORY = 32 * MiB
SLOW_READ_THREADS = 2
SLOW_READ_CALLS_MAX = 16


def slow_read_rss_limit(answer_bytes, upstream_bytes):
    """The README's sizing ("Connections under load"), for the caller of this test: 32 MiB of
    code, libraries and stacks, ANSWER_MEMORY_MAX_BYTES and one answer more, 32 KiB per
    connection (CONNECTION_LIMIT 1024), and UPSTREAM_CALLS_MAX x THREADS responder answers being
    received. ASan's shadow memory and quarantine add their own."""
    return (32 * MiB + ANSWER_MEMORY + answer_bytes + 1024 * 32 * 1024
            + SLOW_READ_CALLS_MAX * SLOW_READ_THREADS * upstream_bytes
            + (512 * MiB if SANITIZED else 0))


def kib_object(i):
    """A compact JSON object of exactly 1,024 bytes."""
    head = b'{"id":%d,"pad":"' % i
    return head + b"x" * (1024 - len(head) - 2) + b'"}'


def test_slow_readers_cannot_grow_the_caller_without_bound(daemons):
    """slowhttptest -X with 1,000 connections on the caller's GET / (about 1 MiB: the responder
    holds 1,000 objects of 1 KiB), caller started with ANSWER_MEMORY_MAX_BYTES=32 MiB: its RSS
    stays under the README's bound (slow_read_rss_limit), slow readers are closed and counted, and
    >= 99% of probes are ok within 1 s."""
    if not shutil.which("slowhttptest"):
        pytest.skip("slowhttptest is not installed (scripts/install-deps.sh)")
    responder = start(daemons, "responder")
    conn = http.client.HTTPConnection(HOST, responder.port, timeout=10)
    try:
        for i in range(1000):
            r = http_request(responder.port, "POST", "/data", body=kib_object(i),
                             headers={"Content-Type": "application/json"}, conn=conn)
            assert r.status == 201, r
    finally:
        conn.close()
    caller = start(daemons, "caller", env={"RESPONDER_URL": responder.url,
                                           "ANSWER_MEMORY_MAX_BYTES": ANSWER_MEMORY,
                                           "THREADS": SLOW_READ_THREADS,
                                           "UPSTREAM_CALLS_MAX": SLOW_READ_CALLS_MAX})
    g = http_request(caller.port, "GET", "/", timeout=10)
    assert g.status == 200 and len(g.body) > 1000 * 1024, (g.status, len(g.body))
    upstream = http_request(responder.port, "GET", "/data", timeout=10)
    limit = slow_read_rss_limit(len(g.body), len(upstream.body))
    guard = seeded(caller)
    report = attack_with_probes("slow_read", caller.port, FLOOD_SECONDS, pid=caller.pid,
                                probe_timeout=PROBE_S)
    print(f"\ncaller: {ATTACKS['slow_read'][1]}, GET / of {len(g.body)} bytes\n  "
          f"{summary_line(report)}\n  attack: {json.dumps(report['result'])}\n  gauges max: "
          f"{report['gauges_max']}\n  closed: {report['closed']}")
    assert caller.running(), f"the caller died: {caller.stderr()[-3000:]}"
    assert report["rss_max"] < limit, \
        f"caller VmRSS peaked at {report['rss_max'] / MiB:.0f} MiB under slow readers " \
        f"({report['rss_before'] / MiB:.0f} MiB before; the README's bound is " \
        f"{limit / MiB:.0f} MiB with ANSWER_MEMORY_MAX_BYTES=32 MiB)"
    m = metrics(caller.port)
    assert m.get("http_answer_bytes_limit") == ANSWER_MEMORY, \
        f"http_answer_bytes_limit: {m.get('http_answer_bytes_limit')}"
    held = report["gauges_max"]["http_answer_bytes_held"]
    assert held is not None and held <= ANSWER_MEMORY + 4 * MiB, \
        f"http_answer_bytes_held peaked at {held} (limit {ANSWER_MEMORY}, newest answer ~1 MiB)"
    slow = reason(report, "slow_reader")
    assert slow is not None and slow > 0, \
        f"http_connections_closed_total{{reason=\"slow_reader\"}} is {slow}: {report['closed']}"
    assert_probes(report, "slow read on the caller")
    assert_accepts_at_once(report, "slow read on the caller")
    assert_store_kept(guard, report["probes"]["objects"])


# ------------------------------------------------------------------------------------------
# 2,000 concurrent real clients: served or refused at once, never queued
# ------------------------------------------------------------------------------------------

def test_2000_concurrent_clients_are_served_or_refused_at_once(daemons):
    """h2load --h1 -c 2000 for FLOOD_SECONDS on GET /health: no connection waits more than 1 s
    for its connect or its first byte (an answer or a 503), and /health answers every probe."""
    if not shutil.which("h2load"):
        pytest.skip("h2load is not installed (Debian package nghttp2-client)")
    d = start(daemons, "responder")
    report = attack_with_probes("h2load", d.port, FLOOD_SECONDS, pid=d.pid, probe_timeout=PROBE_S)
    res = report["result"]
    print(f"\nresponder: {ATTACKS['h2load'][1]}\n  {summary_line(report)}\n  h2load: "
          f"{json.dumps(res)}\n  closed: {report['closed']}")
    assert d.running(), f"the responder died: {d.stderr()[-3000:]}"
    assert "ttfb" in res and "connect" in res, f"h2load gave no summary: {res}"
    assert res["connect"]["max"] <= 1.0, \
        f"a connection took {res['connect']['max']:.2f} s to connect (listen queue full?)"
    assert res["ttfb"]["max"] <= 1.0, \
        f"a connection waited {res['ttfb']['max']:.2f} s for its first byte (served or " \
        f"refused); h2load: {res}"
    health = report["probes"]["by_kind"].get("health", {})
    assert health.get("total", 0) >= max(3, FLOOD_SECONDS // 2) and \
        health["ok"] == health["total"] and health["worst_s"] <= 1.0, \
        f"/health did not answer every probe within 1 s: {health}; " \
        f"failures: {report['probes']['failures']}"
    assert_accepts_at_once(report, "h2load on the responder")


# ------------------------------------------------------------------------------------------
# a whole-body POST over BODY_MAX_BYTES from a client that sends everything before reading
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["responder", "caller"])
def test_whole_body_2mib_post_reads_its_413(daemons, name):
    """20 of 20 http.client POSTs of 2 MiB (sent whole, then the answer read) read the 413:
    the daemon drains what the client still sends after refusing."""
    d = start(daemons, name)
    before = metrics(d.port).get('http_connections_closed_total{reason="drained_after_refusal"}')
    # (counted when such a connection closes, after the client has read its answer)
    body = b'{"big":"' + b"x" * (2 * MiB - 10) + b'"}'
    outcomes = []
    for _ in range(20):
        conn = http.client.HTTPConnection(HOST, d.port, timeout=15)
        try:
            conn.request("POST", "/data", body=body, headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            data = r.read()
            ok = r.status == 413
            if ok:
                msg = expect_error(_Resp(r, data), 413)
                ok = "BODY_MAX_BYTES" in msg
            outcomes.append("413" if ok else f"{r.status} {data[:100]!r}")
        except (OSError, http.client.HTTPException) as e:
            outcomes.append(type(e).__name__)
        finally:
            conn.close()
    good = outcomes.count("413")
    assert good == 20, f"{name}: {good} of 20 whole-body 2 MiB POSTs read their 413; " \
                       f"the others: {sorted(set(o for o in outcomes if o != '413'))}"
    key = 'http_connections_closed_total{reason="drained_after_refusal"}'
    wait_until(lambda: (metrics(d.port).get(key) or 0) > (before or 0), REFUSAL_DRAIN_S + 2,
               interval=0.2)
    after = metrics(d.port).get(key)
    assert after is not None and after > (before or 0), \
        f'http_connections_closed_total{{reason="drained_after_refusal"}}: {before} -> {after}'
    assert d.running()


BAD_FRAMING = {
    # two Content-Length values that disagree: the server's own early 400
    "conflicting_lengths": b"POST /data HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                           b"Content-Length: %d\r\nContent-Length: 5\r\n\r\n",
    # a chunk size that is not hexadecimal: libmicrohttpd's own 400
    "bad_chunk": b"POST /data HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\nzz\r\n",
}


@pytest.mark.parametrize("case", sorted(BAD_FRAMING))
def test_whole_body_after_bad_framing_reads_its_400(daemons, case):
    """A client that sends 2 MiB after a badly framed request head, all of it before reading,
    still reads the 400: refused connections are drained, not reset."""
    d = start(daemons, "responder")
    body = b"x" * (2 * MiB)
    head = BAD_FRAMING[case]
    if b"%d" in head:
        head = head % len(body)
    for _ in range(5):
        s = socket.create_connection((HOST, d.port), timeout=15)
        try:
            s.sendall(head + body)
            data, _, _ = read_answer(s, 10)
        finally:
            s.close()
        assert data.startswith(b"HTTP/1.1 400"), f"{case}: {data[:200]!r}"
    assert d.running()


class _Resp:
    """Adapts an http.client answer for expect_error()."""

    def __init__(self, r, body):
        self.status = r.status
        self.body = body
        self.content_type = r.getheader("Content-Type")

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        return f"<{self.status} {self.content_type} {self.body[:200]!r}>"


# ------------------------------------------------------------------------------------------
# the per-address limit
# ------------------------------------------------------------------------------------------

def ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.parametrize("name", ["responder", "caller"])
def test_per_address_limit(daemons, name):
    """64 connections from 127.0.0.2 are accepted; the 65th gets the 429 JSON at once, with
    Connection: close, and is closed (after at most REFUSAL_DRAIN_MS); the same address seen as
    IPv4-mapped IPv6 counts the same; 127.0.0.1 (and ::1) is not limited; the 64 still work; the
    address is admitted again once its connections close; /metrics counts it."""
    d = start(daemons, name)
    before = metrics(d.port).get('http_connections_closed_total{reason="per_address_limit"}') or 0
    held, exempt = [], []
    try:
        for _ in range(PER_ADDRESS):
            held.append(source_conn("127.0.0.2", d.port))
        time.sleep(0.3)
        readable, _, _ = select.select(held, [], [], 0)
        assert not readable, f"{len(readable)} of the first {PER_ADDRESS} connections from " \
                             f"127.0.0.2 were answered or closed without asking anything"

        extra = source_conn("127.0.0.2", d.port)
        try:
            data, took, _ = read_answer(extra, 1.0)
            assert data.startswith(b"HTTP/1.1 429"), \
                f"connection {PER_ADDRESS + 1} from 127.0.0.2: {data[:300]!r} after {took:.2f} s"
            status, headers, body = parse_raw_response(data)
            assert headers.get("content-type", "").split(";")[0].strip() == "application/json", \
                headers
            assert "close" in headers.get("connection", "").lower(), headers
            assert json.loads(body) == {"error": PER_ADDRESS_MSG}, body
            closed_after = wait_closed(extra, REFUSAL_DRAIN_S + 2)
            assert closed_after is not None, \
                f"the refused connection was not closed within {REFUSAL_DRAIN_S + 2} s"
        finally:
            extra.close()

        # the same address through the dual-stack socket, as ::ffff:127.0.0.2
        if socket.has_ipv6:
            try:
                mapped = source_conn("::ffff:127.0.0.2", d.port, family=socket.AF_INET6,
                                     dst="::ffff:127.0.0.1")
            except OSError as e:
                mapped = None
                print(f"IPv4-mapped IPv6 not tried: {e!r}")
            if mapped is not None:
                try:
                    data, took, _ = read_answer(mapped, 1.0)
                    assert data.startswith(b"HTTP/1.1 429"), \
                        f"::ffff:127.0.0.2 (= 127.0.0.2, at its limit): {data[:300]!r}"
                finally:
                    mapped.close()

        # exempt: 127.0.0.1 (and ::1) past 64
        for _ in range(PER_ADDRESS + 36):
            exempt.append(source_conn("127.0.0.1", d.port))
        if ipv6_loopback():
            for _ in range(PER_ADDRESS + 6):
                exempt.append(source_conn("::1", d.port, family=socket.AF_INET6, dst="::1"))
        statuses = [get_health_on(s) for s in exempt]
        assert statuses.count(200) == len(exempt), \
            f"exempt connections past {PER_ADDRESS}: statuses {sorted(set(map(str, statuses)))}"

        statuses = [get_health_on(s) for s in held]
        assert statuses.count(200) == PER_ADDRESS, \
            f"the {PER_ADDRESS} admitted connections from 127.0.0.2 no longer all work: " \
            f"{sorted(set(map(str, statuses)))}"

        m = metrics(d.port)
        assert m.get("http_connection_limit") == CONNECTION_LIMIT, m.get("http_connection_limit")
        open_now = m.get("http_connections_open")
        assert open_now is not None and len(held) + len(exempt) <= open_now <= CONNECTION_LIMIT, \
            f"http_connections_open is {open_now} with {len(held) + len(exempt)} connections open"
        after = m.get('http_connections_closed_total{reason="per_address_limit"}')
        assert after is not None and after >= before + 1, \
            f'http_connections_closed_total{{reason="per_address_limit"}}: {before} -> {after}'
    finally:
        for s in held + exempt:
            s.close()

    # its connections gone, 127.0.0.2 is admitted again
    def admitted():
        try:
            s = source_conn("127.0.0.2", d.port)
        except OSError:
            return False
        try:
            return get_health_on(s, timeout=1.0) == 200
        finally:
            s.close()
    assert wait_until(admitted, 3.0, interval=0.2), \
        "127.0.0.2 was not admitted again within 3 s of closing its connections"
    assert d.running()


def test_over_limit_answer_when_nothing_can_give_way(daemons):
    """With every place taken by a connection whose answer is still being sent (none waiting
    for a request), a newcomer gets the 503 JSON at once with Connection: close; never a wait
    in the listen queue. CONNECTION_LIMIT=4, filled by four slow readers of a 12 MiB GET /data
    (far more than the socket buffers hold; 48 MiB in all, under ANSWER_MEMORY_MAX_BYTES)."""
    limit = 4
    # one thread: CONNECTION_LIMIT is shared out over the threads, and which thread accepts
    # which reader is the kernel's choice
    d = start(daemons, "responder", env={"CONNECTION_LIMIT": limit, "THREADS": 1})
    conn = http.client.HTTPConnection(HOST, d.port, timeout=10)
    try:
        big = b'{"pad":"' + b"y" * (512 * 1024) + b'"}'
        for _ in range(24):
            r = http_request(d.port, "POST", "/data", body=big,
                             headers={"Content-Type": "application/json"}, conn=conn)
            assert r.status == 201, r
    finally:
        conn.close()
    readers = []
    try:
        for i in range(limit):
            s = source_conn(f"127.0.0.{10 + i}", d.port, rcvbuf=4096)
            s.sendall(b"GET /data HTTP/1.1\r\nHost: x\r\n\r\n")
            assert s.recv(1024).startswith(b"HTTP/1.1 200"), "GET /data did not start"
            readers.append(s)       # from now on, read nothing more
        time.sleep(0.5)
        newcomer = source_conn("127.0.0.200", d.port)
        try:
            data, took, _ = read_answer(newcomer, 1.0)
        finally:
            newcomer.close()
    finally:
        for s in readers:
            s.close()
    assert data.startswith(b"HTTP/1.1 503"), \
        f"newcomer with {limit} slow readers holding CONNECTION_LIMIT={limit}: " \
        f"{data[:300]!r} after {took:.2f} s"
    _, headers, body = parse_raw_response(data)
    assert "close" in headers.get("connection", "").lower(), headers
    assert json.loads(body) == {"error": f"Connection limit reached: CONNECTION_LIMIT is "
                                         f"{limit}"}, body
    # the readers are gone: places free again, and the refusal was counted
    key = 'http_connections_closed_total{reason="over_limit"}'
    wait_until(lambda: (metrics(d.port).get(key) or 0) >= 1, 3.0, interval=0.2)
    over = metrics(d.port).get(key)
    assert over is not None and over >= 1, f'reason="over_limit": {over}'
    assert d.running()
