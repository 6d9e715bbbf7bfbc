"""Connection-flood attacks on a daemon's public port, a Prober, and after-attack checks.

Reusable without pytest: tests/hostile/test_hostile_flood.py asserts on what these return, and
bench/flood.py prints the same figures for a daemon beside nginx. Every attack is bounded in
connections and in time, stops by itself and closes what it opened; the external tools
(slowhttptest, h2load) are started here and stopped by their PID.

Attacks, each run as fn(port, seconds, ...) -> dict of counts:
  idle_flood            hold N silent connections (one source address, or spread over
                        127.0.0.2-127.0.0.250 with many_sources())
  partial_line_flood    "GET /" and then a path byte every few seconds
  partial_headers_flood a request line and "Host: x", then nothing or a header byte every few s
  slowhttptest          the Debian tool in slowloris (-H), slow body (-B) or slow read (-X) mode
  h2load                many concurrent real HTTP/1.1 clients (h2load --h1 -D)
The Python floods reconnect (at most `rate` new connections a second) whenever the server closes
one, like a real attacker keeping up the pressure.

Loopback addresses 127.0.0.2 ... 127.0.0.254 are distinct clients for the daemon (the client
socket's source address is bound before connect); 127.0.0.1 (and ::1) is the exempt address of the
task's own proxy and health check. The Prober asks /health from 127.0.0.1 and POSTs/GETs /data
from 127.0.1.1, a non-exempt address no attack uses.
"""

import errno
import http.client
import json
import os
import re
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

# The battery's own helpers (hostile_util imports the black-box suite, and so pytest:
# bench/flood.py runs with /usr/bin/python3, which has it).
from hostile_util import http_request, raise_nofile, rss_bytes  # noqa: E402

MiB = 1024 * 1024
TARGET = "127.0.0.1"            # every attack and probe goes to this address only
HEALTH_SOURCE = "127.0.0.1"     # the ECS health check / Service Connect proxy: exempt
DATA_SOURCE = "127.0.1.1"       # the Prober's data client: an ordinary, non-exempt client
FLOOD_SECONDS = int(os.environ.get("FLOOD_SECONDS") or 30)
NOFILE = 65536                  # asked for; capped by the hard limit
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
STATUS_LINE = re.compile(rb"^HTTP/1\.[01] (\d{3})")


def many_sources(first=2, last=250):
    """127.0.0.first ... 127.0.0.last: distinct client addresses on loopback."""
    return [f"127.0.0.{i}" for i in range(first, last + 1)]


def _percentile(values, p):
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, int(p / 100.0 * len(v)))]


# --------------------------------------------------------------------------------------------
# raw connection floods (idle, partial request line, partial headers)
# --------------------------------------------------------------------------------------------

class ConnFlood:
    """Holds up to `connections` connections for `seconds`, one selector loop in one thread.

    On each new connection it sends `first` (may be empty), then one byte of `drip` (cycled)
    every `drip_every` seconds (None: nothing more). Whatever the server sends is read: an HTTP
    status line is counted by status (429, 503, 408, ...), then the connection is kept, as an
    attacker would, until the server closes it. A closed connection is replaced (reconnect=True)
    within the connection rate `rate` a second. A connect that has not completed within
    `connect_timeout` (the listen queue is full) is given up and counted.

    Sources are bound round-robin before connect (IP_BIND_ADDRESS_NO_PORT, so the port is
    chosen per destination and 2,000 connections from one address do not run out of ports)."""

    def __init__(self, port, seconds, connections=2000, sources=("127.0.0.2",), first=b"",
                 drip=b"", drip_every=None, reconnect=True, rate=1000, connect_timeout=3.0,
                 name="flood", host=TARGET):
        self.port, self.seconds, self.n, self.host = port, float(seconds), int(connections), host
        self.sources = list(sources) or [None]
        self.first, self.drip, self.drip_every = first, drip, drip_every
        self.reconnect, self.rate, self.connect_timeout = reconnect, float(rate), connect_timeout
        self.name = name
        self.stop_event = threading.Event()
        self._thread = None
        self.result = None
        self.stats = {
            "attack": name, "target_connections": self.n, "connect_attempts": 0,
            "connected": 0, "connect_failed": 0, "connect_timeouts": 0, "bind_failed": 0,
            "answered": {}, "closed_by_server": 0, "reset_by_server": 0, "held_max": 0,
            "held_at_end": 0, "bytes_sent": 0, "errors": {},
        }
        self._answer_latencies = []     # connect start -> first byte of an answer (s)
        self._held_for = []             # connected -> closed by the server (s)

    # -- running

    def start(self):
        self._thread = threading.Thread(target=self._run_safe, name=self.name, daemon=True)
        self._thread.start()
        return self

    def join(self, timeout=None):
        """Waits for the end (at most seconds + 30 by default); returns the stats."""
        if self._thread is not None:
            self._thread.join(timeout if timeout is not None else self.seconds + 30)
        return self.result

    def stop(self):
        self.stop_event.set()

    def run(self):
        self._run_safe()
        return self.result

    def _run_safe(self):
        try:
            self._run()
        except Exception as e:  # report, never hang the caller
            self.stats["errors"][f"crashed: {e!r}"] = 1
        finally:
            self.result = self._summary()

    def _count_error(self, what):
        self.stats["errors"][what] = self.stats["errors"].get(what, 0) + 1

    def _open_one(self, sel, conns, now, src_index):
        src = self.sources[src_index % len(self.sources)]
        st = self.stats
        st["connect_attempts"] += 1
        try:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        except OSError as e:
            self._count_error(f"socket: {errno.errorcode.get(e.errno, e.errno)}")
            return False
        try:
            s.setblocking(False)
            if src is not None:
                try:
                    s.setsockopt(socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
                except OSError:
                    pass
                try:
                    s.bind((src, 0))
                except OSError:
                    st["bind_failed"] += 1
                    s.close()
                    return False
            rc = s.connect_ex((self.host, self.port))
        except OSError as e:
            self._count_error(f"connect: {errno.errorcode.get(e.errno, e.errno)}")
            s.close()
            return False
        if rc not in (0, errno.EINPROGRESS):
            st["connect_failed"] += 1
            self._count_error(f"connect: {errno.errorcode.get(rc, rc)}")
            s.close()
            return False
        conns[s] = {"phase": "connecting", "t0": now, "t_conn": None, "head": b"",
                    "answered": False, "next_drip": None, "drip_pos": 0}
        sel.register(s, selectors.EVENT_WRITE)
        return True

    def _close(self, sel, conns, s):
        try:
            sel.unregister(s)
        except (KeyError, ValueError):
            pass
        conns.pop(s, None)
        try:
            s.close()
        except OSError:
            pass

    def _send(self, s, data):
        try:
            n = s.send(data)
            self.stats["bytes_sent"] += n
            return True
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            return False

    def _run(self):
        raise_nofile(NOFILE)
        st = self.stats
        sel = selectors.DefaultSelector()
        conns = {}
        t_start = time.monotonic()
        deadline = t_start + self.seconds
        tokens, last = min(self.rate, 50.0), t_start
        src_index = 0
        opened_total = 0
        next_housekeeping = t_start
        try:
            while not self.stop_event.is_set():
                now = time.monotonic()
                if now >= deadline:
                    break
                tokens = min(max(1.0, self.rate / 10.0), tokens + (now - last) * self.rate)
                last = now
                while len(conns) < self.n and tokens >= 1.0 and \
                        (self.reconnect or opened_total < self.n):
                    tokens -= 1.0
                    opened_total += 1
                    self._open_one(sel, conns, now, src_index)
                    src_index += 1
                held = sum(1 for c in conns.values() if c["phase"] == "open")
                st["held_max"] = max(st["held_max"], held)
                for key, ev in sel.select(timeout=0.02):
                    s = key.fileobj
                    c = conns.get(s)
                    if c is None:
                        continue
                    now = time.monotonic()
                    if c["phase"] == "connecting":
                        err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                        if err:
                            st["connect_failed"] += 1
                            self._count_error(f"connect: {errno.errorcode.get(err, err)}")
                            self._close(sel, conns, s)
                            continue
                        st["connected"] += 1
                        c["phase"], c["t_conn"] = "open", now
                        if self.first and not self._send(s, self.first):
                            self._count_error("send failed")
                        if self.drip and self.drip_every:
                            c["next_drip"] = now + self.drip_every
                        sel.modify(s, selectors.EVENT_READ)
                        continue
                    try:
                        data = s.recv(65536)
                    except (BlockingIOError, InterruptedError):
                        continue
                    except ConnectionResetError:
                        st["reset_by_server"] += 1
                        self._held_for.append(now - c["t_conn"])
                        self._close(sel, conns, s)
                        continue
                    except OSError as e:
                        self._count_error(f"recv: {errno.errorcode.get(e.errno, e.errno)}")
                        self._close(sel, conns, s)
                        continue
                    if not data:
                        st["closed_by_server"] += 1
                        self._held_for.append(now - c["t_conn"])
                        self._close(sel, conns, s)
                        continue
                    if not c["answered"]:
                        c["head"] += data[:64]
                        if len(c["head"]) >= 12 or b"\n" in c["head"]:
                            c["answered"] = True
                            m = STATUS_LINE.match(c["head"])
                            code = m.group(1).decode() if m else "non-HTTP"
                            st["answered"][code] = st["answered"].get(code, 0) + 1
                            self._answer_latencies.append(now - c["t0"])
                now = time.monotonic()
                if now >= next_housekeeping:
                    next_housekeeping = now + 0.1
                    for s, c in list(conns.items()):
                        if c["phase"] == "connecting":
                            if now - c["t0"] > self.connect_timeout:
                                st["connect_timeouts"] += 1
                                self._close(sel, conns, s)
                        elif c["next_drip"] is not None and now >= c["next_drip"]:
                            b = self.drip[c["drip_pos"] % len(self.drip):][:1]
                            c["drip_pos"] += 1
                            c["next_drip"] = now + self.drip_every
                            if not self._send(s, b):
                                # the server closed: its FIN or RST is read next
                                c["next_drip"] = None
        finally:
            st["held_at_end"] = sum(1 for c in conns.values() if c["phase"] == "open")
            for s in list(conns):
                try:
                    s.close()
                except OSError:
                    pass
            conns.clear()
            sel.close()
            st["seconds"] = round(time.monotonic() - t_start, 2)

    def _summary(self):
        st = dict(self.stats)
        lat = self._answer_latencies
        st["answer_latency_max_s"] = round(max(lat), 3) if lat else None
        st["answer_latency_p99_s"] = round(_percentile(lat, 99), 3) if lat else None
        held = self._held_for
        st["held_for_median_s"] = round(_percentile(held, 50), 2) if held else None
        st["held_for_max_s"] = round(max(held), 2) if held else None
        return st


def idle_flood(port, seconds, connections=2000, sources=("127.0.0.2",), **kw):
    """Open connections and hold them silent; from one address, or many (many_sources())."""
    name = "idle_flood_one" if len(sources) == 1 else "idle_flood_many"
    return ConnFlood(port, seconds, connections, sources, name=kw.pop("name", name), **kw).run()


def partial_line_flood(port, seconds, connections=2000, sources=None, drip_every=5.0, **kw):
    """Each connection sends "GET /" and then one more path byte every drip_every s."""
    return ConnFlood(port, seconds, connections, sources or many_sources(), first=b"GET /",
                     drip=b"a", drip_every=drip_every, name="partial_line_flood", **kw).run()


def partial_headers_flood(port, seconds, connections=2000, sources=None, drip_every=5.0, **kw):
    """Each connection sends a request line and a Host header, then one header byte every
    drip_every s (None: nothing more)."""
    return ConnFlood(port, seconds, connections, sources or many_sources(),
                     first=b"GET / HTTP/1.1\r\nHost: x\r\n", drip=b"X-a: b\r\n",
                     drip_every=drip_every, name="partial_headers_flood", **kw).run()


# --------------------------------------------------------------------------------------------
# external tools
# --------------------------------------------------------------------------------------------

class _Tool:
    """A subprocess started here, stopped by its PID (SIGTERM, then SIGKILL)."""

    def __init__(self, argv, cwd=None):
        raise_nofile(NOFILE)    # the tool inherits it
        self.argv = argv
        self.p = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  start_new_session=True)
        self.out = b""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        chunks = []
        while True:
            c = self.p.stdout.read(65536)
            if not c:
                break
            chunks.append(c)
            if sum(len(x) for x in chunks) > 32 * MiB:  # bounded: keep the newest
                chunks = chunks[-64:]
        self.out = b"".join(chunks)

    def wait(self, timeout):
        """The exit status, after stopping the tool by PID if it outlives timeout."""
        try:
            rc = self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            rc = self.p.wait(10)
        self._reader.join(10)
        return rc

    def kill(self):
        if self.p.poll() is None:
            try:
                os.kill(self.p.pid, signal.SIGTERM)
                self.p.wait(3)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.kill(self.p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def text(self):
        return ANSI.sub("", self.out.decode("utf-8", "replace"))


SLOWHTTPTEST_MODES = {
    # mode: (flag, default path, method, extra arguments)
    "slowloris": ("-H", "/health", "GET", ["-i", "5", "-x", "24"]),
    # a JSON body, so the daemon accepts the headers and waits for the body (a form type would
    # get a 415 before the body)
    "slow_body": ("-B", "/data", "POST", ["-i", "5", "-x", "10", "-s", "8192",
                                          "-f", "application/json"]),
    # a small advertised window, 32 bytes read every 5 s, 3 requests pipelined per connection
    "slow_read": ("-X", "/", "GET", ["-w", "512", "-y", "1024", "-n", "5", "-z", "32",
                                     "-k", "3"]),
}


def slowhttptest(port, seconds, mode, connections=2000, path=None, rate=200, restart=True,
                 extra=()):
    """Runs slowhttptest against http://127.0.0.1:port<path> for `seconds` (-l).

    The tool stops by itself when its connections are all closed; with restart it is started
    again (at most 20 times) while 3 s or more remain, as an attacker would. Returns the runs'
    exit lines and, from its per-second CSV: the most connections it held, the connections the
    server closed, and the seconds its own probe (-p 3) found the service unavailable."""
    flag, default_path, method, mode_args = SLOWHTTPTEST_MODES[mode]
    exe = shutil.which("slowhttptest")
    stats = {"attack": f"slowhttptest_{mode}", "connections": connections, "runs": 0,
             "exit": [], "max_connected": 0, "closed": 0, "seconds_unavailable": 0,
             "seconds_observed": 0, "errors": {}}
    if exe is None:
        stats["errors"]["slowhttptest is not installed (Debian package slowhttptest)"] = 1
        return stats
    url = f"http://{TARGET}:{port}{path or default_path}"
    t_end = time.monotonic() + seconds
    with tempfile.TemporaryDirectory(prefix="slowhttptest.") as tmp:
        while stats["runs"] < 20:
            left = int(t_end - time.monotonic())
            if left < 3 or (stats["runs"] and not restart):
                break
            base = os.path.join(tmp, f"run{stats['runs']}")
            argv = [exe, flag, "-c", str(connections), "-r", str(rate), "-p", "3",
                    "-l", str(left), "-t", method, "-u", url, "-g", "-o", base,
                    *mode_args, *extra]
            tool = _Tool(argv, cwd=tmp)
            rc = tool.wait(left + 30)
            stats["runs"] += 1
            text = tool.text()
            m = re.findall(r"Exit status:\s*(.+)", text)
            stats["exit"].append(m[-1].strip() if m else f"rc={rc}: {text.strip()[-300:]!r}")
            rows = []
            try:
                with open(base + ".csv") as f:
                    for line in f.read().splitlines()[1:]:
                        parts = line.split(",")
                        if len(parts) >= 5:
                            rows.append([int(x) for x in parts[:5]])
            except (OSError, ValueError):
                stats["errors"]["no CSV report"] = stats["errors"].get("no CSV report", 0) + 1
            # Seconds, Closed, Pending, Connected, Service Available (0 when its probe failed)
            if rows:
                stats["max_connected"] = max(stats["max_connected"], max(r[3] for r in rows))
                stats["closed"] += rows[-1][1]
                stats["seconds_observed"] += len(rows) - 1
                stats["seconds_unavailable"] += sum(1 for r in rows[1:] if r[4] == 0)
    return stats


_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


def _seconds(text):
    m = re.match(r"([\d.]+)(us|ms|s)$", text)
    return float(m.group(1)) * _UNITS[m.group(2)] if m else None


def parse_h2load(text):
    """The summary of h2load's output: requests, status codes, and min/max/mean of request
    time, connect time, time to first byte (per connection, seconds) and req/s per client."""
    out = {}
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                  r"(\d+) failed, (\d+) errored, (\d+) timeout", text)
    if m:
        out["requests"] = dict(zip(("total", "started", "done", "succeeded", "failed",
                                    "errored", "timeout"), map(int, m.groups())))
    m = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text)
    if m:
        out["status"] = dict(zip(("2xx", "3xx", "4xx", "5xx"), map(int, m.groups())))
    for key, label in (("request", "time for request"), ("connect", "time for connect"),
                       ("ttfb", "time to 1st byte")):
        m = re.search(label + r":\s+(\S+)\s+(\S+)\s+(\S+)", text)
        if m:
            out[key] = dict(zip(("min", "max", "mean"), map(_seconds, m.groups())))
    m = re.search(r"req/s\s+:\s+(\S+)\s+(\S+)\s+(\S+)", text)
    if m:
        out["rps_per_client"] = dict(zip(("min", "max", "mean"), map(float, m.groups())))
    m = re.search(r"finished in (\S+), ([\d.]+) req/s", text)
    if m:
        out["finished_in_s"], out["req_per_s"] = _seconds(m.group(1)), float(m.group(2))
    return out


def h2load(port, seconds, clients=2000, path="/health", threads=1, tls=False):
    """h2load --h1 -c clients -D seconds against http://127.0.0.1:port<path>.

    Each client connects, sends a request, waits for the answer, sends the next; a client
    answered with Connection: close reconnects. Returns the parsed summary (see parse_h2load):
    ttfb.max is the longest any connection waited from its connect to its first byte (served
    or refused), connect.max its longest connect; plus, from the per-request log, how many
    requests took over 1 s and the slowest one."""
    exe = shutil.which("h2load")
    stats = {"attack": "h2load", "clients": clients, "errors": {}}
    if exe is None:
        stats["errors"]["h2load is not installed (Debian package nghttp2-client)"] = 1
        return stats
    scheme = "https" if tls else "http"
    with tempfile.TemporaryDirectory(prefix="h2load.") as tmp:
        log = os.path.join(tmp, "requests.log")
        # No -N/-T: h2load 1.52 aborts on an epoll assertion when they fire at the end of -D.
        argv = [exe, "--h1", "-c", str(clients), "-t", str(threads), "-D", str(int(seconds)),
                f"--log-file={log}", f"{scheme}://{TARGET}:{port}{path}"]
        tool = _Tool(argv, cwd=tmp)
        rc = tool.wait(seconds + 60)
        text = tool.text()
        stats["rc"] = rc
        stats.update(parse_h2load(text))
        if "ttfb" not in stats:
            stats["errors"][f"no summary (rc={rc}): {text.strip()[-400:]!r}"] = 1
        durations, statuses = [], {}
        try:
            with open(log) as f:
                for line in f:
                    parts = line.split("\t")
                    if len(parts) >= 3:
                        statuses[parts[1]] = statuses.get(parts[1], 0) + 1
                        durations.append(int(parts[2]) / 1e6)
        except (OSError, ValueError):
            pass
        stats["log_statuses"] = statuses
        stats["log_requests_over_1s"] = sum(1 for d in durations if d > 1.0)
        stats["log_request_max_s"] = round(max(durations), 3) if durations else None
    return stats


# --------------------------------------------------------------------------------------------
# the Prober
# --------------------------------------------------------------------------------------------

class Prober:
    """Once a second, in its own threads: GET /health from 127.0.0.1 (like the ECS health check),
    and, from a non-exempt address (127.0.1.1), POST /data of a unique small object then GET
    /data (post=False, e.g. for nginx: GET data_path only, whose body must be expect_data).

    Each request has a `timeout` (1 s) and is one probe: ok when its status and body are right
    (200 {"status":"ok"}; 201 echoing the object; 200 listing the object just stored).
    stats() gives total, ok, ok within `timeout`, their ratio, the worst latency, failures by kind,
    and the objects answered 201 (each must later be in GET /data)."""

    def __init__(self, port, post=True, interval=1.0, timeout=1.0, health_source=HEALTH_SOURCE,
                 data_source=DATA_SOURCE, health_path="/health", data_path="/data",
                 expect_data=None, tls=None, tag=None):
        self.port, self.post, self.interval, self.timeout = port, post, interval, timeout
        self.health_source, self.data_source = health_source, data_source
        self.health_path, self.data_path, self.expect_data = health_path, data_path, expect_data
        self.tls = tls
        self.tag = tag or uuid.uuid4().hex[:12]
        self.records = []       # dicts: kind, t, ok, status, latency, error
        self.objects = []       # compact bytes of every object answered 201
        self._n = 0
        self._stop = threading.Event()
        self._threads = []

    def start(self):
        self._stop.clear()
        for fn in (self._health_loop, self._data_loop):
            t = threading.Thread(target=fn, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(self.timeout * 4 + 5)
        self._threads = []
        return self.stats()

    def _conn(self, source):
        if self.tls is not None:
            return http.client.HTTPSConnection(TARGET, self.port, timeout=self.timeout,
                                               context=self.tls, source_address=(source, 0))
        return http.client.HTTPConnection(TARGET, self.port, timeout=self.timeout,
                                          source_address=(source, 0))

    def _request(self, kind, source, method, path, body=None, headers=None, check=None):
        t0 = time.monotonic()
        rec = {"kind": kind, "t": time.time(), "ok": False, "status": None, "error": None}
        conn = self._conn(source)
        try:
            r = http_request(self.port, method, path, body=body, headers=headers, conn=conn)
            rec["status"] = r.status
            rec["ok"], why = check(r)
            if not rec["ok"]:
                rec["error"] = why
            resp = r
        except (OSError, http.client.HTTPException) as e:
            rec["error"] = type(e).__name__ + (f": {e}" if str(e) else "")
            resp = None
        finally:
            conn.close()
        rec["latency"] = time.monotonic() - t0
        self.records.append(rec)
        return rec, resp

    def _ticks(self):
        nxt = time.monotonic()
        while not self._stop.is_set():
            yield
            nxt = max(nxt + self.interval, time.monotonic())
            self._stop.wait(max(0.0, nxt - time.monotonic()))

    def _health_loop(self):
        def check(r):
            ok = r.status == 200 and r.body.replace(b" ", b"") == b'{"status":"ok"}'
            return ok, f"{r.status} {r.body[:120]!r}"
        for _ in self._ticks():
            self._request("health", self.health_source, "GET", self.health_path, check=check)

    def _data_loop(self):
        for _ in self._ticks():
            if not self.post:
                def check_get(r):
                    ok = r.status == 200 and (self.expect_data is None or
                                              r.body == self.expect_data)
                    return ok, f"{r.status} {r.body[:120]!r}"
                self._request("get_data", self.data_source, "GET", self.data_path,
                              check=check_get)
                continue
            self._n += 1
            obj = b'{"probe":"%s-%d","n":%d}' % (self.tag.encode(), self._n, self._n)

            def check_post(r, obj=obj):
                try:
                    body = json.loads(r.body)
                    echoed = body.get("stored_data") == json.loads(obj)
                except (ValueError, AttributeError):
                    echoed = False
                return r.status == 201 and echoed, f"{r.status} {r.body[:120]!r}"
            rec, _ = self._request("post_data", self.data_source, "POST", self.data_path,
                                   body=obj, headers={"Content-Type": "application/json"},
                                   check=check_post)
            if rec["ok"]:
                self.objects.append(obj)
            else:
                obj = None

            def check_get(r, obj=obj):
                ok = r.status == 200 and r.body.startswith(b'{"stored_data":[') and \
                    (obj is None or obj in r.body)
                return ok, f"{r.status} {r.body[:80]!r}...{r.body[-80:]!r}"
            self._request("get_data", self.data_source, "GET", self.data_path,
                          check=check_get)

    def stats(self):
        recs = list(self.records)
        ok = [r for r in recs if r["ok"]]
        fast = [r for r in ok if r["latency"] <= self.timeout]
        by_kind = {}
        for r in recs:
            k = by_kind.setdefault(r["kind"], {"total": 0, "ok": 0, "worst_s": 0.0})
            k["total"] += 1
            k["ok"] += r["ok"]
            k["worst_s"] = round(max(k["worst_s"], r["latency"]), 3)
        return {
            "total": len(recs), "ok": len(ok), "ok_in_time": len(fast), "bound_s": self.timeout,
            "ok_ratio": (len(fast) / len(recs)) if recs else 0.0,
            "worst_latency_s": round(max((r["latency"] for r in recs), default=0.0), 3),
            "by_kind": by_kind,
            "failures": [f"{r['kind']}: {r['error'] or 'slow'} ({r['latency']:.2f} s)"
                         for r in recs if not (r["ok"] and r["latency"] <= self.timeout)][:8],
            "objects": list(self.objects),
        }


# --------------------------------------------------------------------------------------------
# memory and after-attack checks
# --------------------------------------------------------------------------------------------

def descendants(pid):
    """PIDs of a process's children, grandchildren, ... (for nginx's workers)."""
    out, todo = [], [pid]
    while todo:
        q = todo.pop()
        try:
            for t in os.listdir(f"/proc/{q}/task"):
                with open(f"/proc/{q}/task/{t}/children") as f:
                    for c in f.read().split():
                        out.append(int(c))
                        todo.append(int(c))
        except OSError:
            pass
    return out


class RssSampler:
    """Samples the summed VmRSS of pid (and, with children=True, its descendants) every
    `interval` s in its own thread; .max is the highest sum seen."""

    def __init__(self, pid, children=False, interval=0.1):
        self.pid, self.children, self.interval = pid, children, interval
        self.max = 0
        self._stop = threading.Event()
        self._t = None

    def sample(self):
        pids = [self.pid] + (descendants(self.pid) if self.children else [])
        v = sum(rss_bytes(p) for p in pids)
        self.max = max(self.max, v)
        return v

    def start(self):
        self.sample()
        self._t = threading.Thread(target=self._loop, daemon=True)
        self._t.start()
        return self

    def _loop(self):
        while not self._stop.wait(self.interval):
            self.sample()

    def stop(self):
        self._stop.set()
        if self._t is not None:
            self._t.join(5)
        self.sample()
        return self.max


def accepts_at_once(port, timeout=1.0, source=HEALTH_SOURCE, path="/health", tls=None):
    """A fresh GET /health answered 200 within timeout? Returns (ok, seconds, detail)."""
    t0 = time.monotonic()
    conn = (http.client.HTTPSConnection(TARGET, port, timeout=timeout, context=tls,
                                        source_address=(source, 0)) if tls is not None else
            http.client.HTTPConnection(TARGET, port, timeout=timeout, source_address=(source, 0)))
    try:
        r = http_request(port, "GET", path, conn=conn)
        dt = time.monotonic() - t0
        return r.status == 200 and dt <= timeout, dt, f"{r.status} {r.body[:100]!r}"
    except (OSError, http.client.HTTPException) as e:
        return False, time.monotonic() - t0, repr(e)
    finally:
        conn.close()


def missing_objects(port, objects, timeout=10.0, path="/data"):
    """The objects (compact bytes, each answered 201) that GET /data does not list."""
    if not objects:
        return []
    r = http_request(port, "GET", path, timeout=timeout)
    if r.status != 200:
        return list(objects)
    return [o for o in objects if o not in r.body]


def metric(port, name, timeout=5.0):
    """A sample's value from GET /metrics (name with labels, exactly as written), or None."""
    try:
        r = http_request(port, "GET", "/metrics", timeout=timeout)
    except (OSError, http.client.HTTPException):
        return None
    if r.status != 200:
        return None
    for line in r.body.decode("utf-8", "replace").splitlines():
        if line.startswith(name + " "):
            try:
                return float(line.split()[-1])
            except ValueError:
                return None
    return None


def metrics(port, timeout=2.0, source=HEALTH_SOURCE):
    """Every sample of GET /metrics as {name-with-labels: value} ({} when it does not answer)."""
    conn = http.client.HTTPConnection(TARGET, port, timeout=timeout, source_address=(source, 0))
    try:
        r = http_request(port, "GET", "/metrics", conn=conn)
    except (OSError, http.client.HTTPException):
        return {}
    finally:
        conn.close()
    if r.status != 200:
        return {}
    out = {}
    for line in r.body.decode("utf-8", "replace").splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            try:
                out[name] = float(value)
            except ValueError:
                pass
    return out


class MetricSampler:
    """Reads /metrics (from 127.0.0.1) every `interval` s in its own thread and keeps the
    highest value of each gauge in `names` (missing gauges stay None)."""

    def __init__(self, port, names=("http_connections_open", "http_answer_bytes_held"),
                 interval=1.0):
        self.port, self.names, self.interval = port, names, interval
        self.max = {n: None for n in names}
        self.samples = 0
        self._stop = threading.Event()
        self._t = None

    def start(self):
        self._t = threading.Thread(target=self._loop, daemon=True)
        self._t.start()
        return self

    def _loop(self):
        while not self._stop.is_set():
            m = metrics(self.port)
            if m:
                self.samples += 1
            for n in self.names:
                if n in m:
                    self.max[n] = m[n] if self.max[n] is None else max(self.max[n], m[n])
            self._stop.wait(self.interval)

    def stop(self):
        self._stop.set()
        if self._t is not None:
            self._t.join(10)
        return self.max


CLOSE_REASONS = ("evicted_idle", "per_address_limit", "over_limit", "read_deadline",
                 "slow_reader", "drained_after_refusal")


def close_reasons(port):
    """{reason: http_connections_closed_total{reason=...}} (None where the daemon has none)."""
    return {r: metric(port, f'http_connections_closed_total{{reason="{r}"}}')
            for r in CLOSE_REASONS}


# --------------------------------------------------------------------------------------------
# one attack with the Prober and the RSS sampler around it
# --------------------------------------------------------------------------------------------

ATTACKS = {
    # name: (runner(port, seconds), description)
    "idle_one": (lambda port, s: idle_flood(port, s, 2000, sources=("127.0.0.2",)),
                 "2,000 silent connections from 127.0.0.2"),
    "idle_many": (lambda port, s: idle_flood(port, s, 2000, sources=many_sources()),
                  "2,000 silent connections from 127.0.0.2-127.0.0.250"),
    "partial_line": (lambda port, s: partial_line_flood(port, s, 2000),
                     "2,000 connections sending 'GET /' then a byte every 5 s"),
    "partial_headers": (lambda port, s: partial_headers_flood(port, s, 2000),
                        "2,000 connections sending a request line and Host, then a header "
                        "byte every 5 s"),
    "slowloris": (lambda port, s: slowhttptest(port, s, "slowloris", 2000),
                  "slowhttptest -H -c 2000 -r 200 -i 5 (GET /health)"),
    "slow_body": (lambda port, s: slowhttptest(port, s, "slow_body", 2000),
                  "slowhttptest -B -c 2000 -r 200 -i 5 -s 8192 (POST /data, JSON)"),
    "slow_read": (lambda port, s: slowhttptest(port, s, "slow_read", 1000),
                  "slowhttptest -X -c 1000 -r 200 -w 512 -y 1024 -n 5 -z 32 -k 3 (GET /)"),
    "h2load": (lambda port, s: h2load(port, s, 2000, "/health"),
               "h2load --h1 -c 2000 -D <seconds> GET /health"),
}


def attack_with_probes(attack, port, seconds=FLOOD_SECONDS, pid=None, children=False, post=True,
                       expect_data=None, settle=0.5, runner=None, daemon_metrics=True,
                       probe_timeout=1.0):
    """Runs ATTACKS[attack] (or runner(port, seconds)) while a Prober probes the port, an
    RssSampler watches pid and (daemon_metrics) a MetricSampler reads the daemon's gauges; then
    checks that the port accepts at once and that every object answered 201 is listed by GET
    /data. Returns a dict: attack, seconds, result (the attack's own counts), probes (Prober
    stats), rss_before, rss_max, gauges_max, closed (close reasons after), after."""
    run = runner or ATTACKS[attack][0]
    sampler = RssSampler(pid, children=children).start() if pid else None
    rss_before = sampler.sample() if sampler else None
    gauges = MetricSampler(port).start() if daemon_metrics else None
    prober = Prober(port, post=post, expect_data=expect_data, timeout=probe_timeout).start()
    t0 = time.monotonic()
    try:
        result = run(port, seconds)
    finally:
        elapsed = time.monotonic() - t0
        probes = prober.stop()
        rss_max = sampler.stop() if sampler else None
        gauges_max = gauges.stop() if gauges else None
    time.sleep(settle)
    ok, dt, detail = accepts_at_once(port)
    after = {"accepts_at_once": ok, "accept_seconds": round(dt, 3), "detail": detail}
    if post:
        try:
            after["missing_objects"] = missing_objects(port, probes["objects"])
        except (OSError, http.client.HTTPException) as e:
            after["missing_objects"] = list(probes["objects"])
            after["detail"] += f"; GET /data failed: {e!r}"
    return {"attack": attack, "seconds": round(elapsed, 1), "result": result, "probes": probes,
            "rss_before": rss_before, "rss_max": rss_max, "gauges_max": gauges_max,
            "closed": close_reasons(port) if daemon_metrics else None, "after": after}


def summary_line(report):
    """One line for logs: probes, worst latency, RSS, after-checks."""
    p = report["probes"]
    rss = report.get("rss_max")
    line = (f"{report['attack']}: probes ok within {p['bound_s']:g} s {p['ok_in_time']}/{p['total']} "
            f"({100 * p['ok_ratio']:.1f}%), worst {p['worst_latency_s']:.2f} s, ")
    if rss:
        line += f"max RSS {rss / MiB:.1f} MiB"
        if report.get("rss_before"):
            line += f" (before {report['rss_before'] / MiB:.1f} MiB)"
        line += ", "
    return line + (f"accepts at once after: {report['after']['accepts_at_once']} "
                   f"({report['after']['accept_seconds']:.2f} s)")
