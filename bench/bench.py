#!/usr/bin/python3
"""Benchmark of the caller and responder against nginx on the same machine (`make bench`).

Started by bench/run.sh, which installs wrk, nginx and curl when missing, builds the daemons and
copies them into a temporary directory (--bin). Everything here uses the Python standard library.

What it does, all on 127.0.0.1 and on free ports:
  - starts one nginx (bench/nginx.conf.in) serving static files that hold exactly the bytes each
    daemon workload answers (fetched with curl from the daemon right before that workload);
  - for each workload: a 2 s warm-up of the daemon and of nginx, then REPS (5) rounds of
    `wrk -t2 -c32 -dSECS --latency` (4 s), alternating daemon and nginx; the medians are reported and
    every req/s figure is a ratio to nginx measured minutes apart in the same run;
  - each caller GET / also against a second nginx in front of the static one, a two-hop reverse
    proxy answering the same merged bytes (bench/nginx-proxy.conf.in), in the same rounds;
  - the scale curve: the responder's GET /data and the caller's GET / at 10, 1,000, 10,000 and
    100,000 objects per store, as a table and a PNG (gnuplot) beside BENCH.md;
  - the caller's GET / with its hop to the responder over mutual TLS (certificates from
    scripts/gen-certs.sh; wrk to the caller stays plain HTTP), measured in the same rounds as the
    plain caller GET / and reported as a ratio to nginx and to that plain row;
  - resident memory idle and after 100,000 objects, time from exec to the first 200 on /health,
    and the image sizes when Docker has them;
  - prints one table and writes BENCH.md.

Exit status: 0 when everything ran (whether or not the targets are met), 1 when something failed to
run (a daemon did not start, wrk failed or saw errors or non-2xx answers, ...). Every process it
starts is stopped by its PID on the way out; run.sh's EXIT trap catches the ones left by a crash.

Environment knobs (defaults in brackets): BENCH_SECS [4], BENCH_REPS [5], BENCH_WARMUP [2],
BENCH_PAIRED_REPS [60] and BENCH_PAIRED_SECS [1] (the extra back-to-back rounds of a cost with a
target, the X-Ray rows), BENCH_CONNECTIONS [32], BENCH_THREADS [2], BENCH_BIG [100000], BENCH_STARTS [7],
BENCH_NGINX_WORKERS [2], BENCH_DEADLINE_S [1500].
BENCH_ONLY: comma-separated workload keys to run alone (get10, get10info, caller10, caller10mtls,
post10, get10xray, caller10xray, get1k, caller1k, get10k, caller10k, post10k, get100k, caller100k,
startup, images;
caller10mtls brings caller10, its baseline); the table is printed and BENCH.md left unchanged
(BENCH_PARTIAL_OUT=DIR writes that partial BENCH.md and its PNG into DIR). E.g. a short check of
the mTLS row:
  BENCH_ONLY=caller10mtls BENCH_SECS=2 BENCH_REPS=2 bench/run.sh
"""

import argparse
import concurrent.futures
import datetime
import http.client
import json
import os
import platform
import re
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def env_int(name, default):
    v = os.environ.get(name, "")
    return int(v) if v.strip() else default


SECS = env_int("BENCH_SECS", 4)
REPS = env_int("BENCH_REPS", 5)
WARMUP = env_int("BENCH_WARMUP", 2)
# A cost with a target (X-Ray's) is a difference of a few per cent between two daemons, on a
# machine whose req/s moves by 20-40% from one second to the next: besides the REPS rounds, the
# two are measured back to back in PAIRED_REPS short rounds, in alternating order.
PAIRED_REPS = env_int("BENCH_PAIRED_REPS", 60)
PAIRED_SECS = env_int("BENCH_PAIRED_SECS", 1)
CONNS = env_int("BENCH_CONNECTIONS", 32)
THREADS = env_int("BENCH_THREADS", 2)
BIG = env_int("BENCH_BIG", 100000)
STARTS = env_int("BENCH_STARTS", 7)
NGINX_WORKERS = env_int("BENCH_NGINX_WORKERS", 2)
DEADLINE_S = env_int("BENCH_DEADLINE_S", 1500)
PARTIAL_OUT = os.environ.get("BENCH_PARTIAL_OUT", "")
ONLY = set(filter(None, (k.strip() for k in os.environ.get("BENCH_ONLY", "").split(","))))
WORKLOADS = {"get10", "get10info", "caller10", "caller10mtls", "post10", "get10xray",
             "caller10xray", "get1k", "caller1k",
             "get10k", "caller10k", "post10k", "get100k", "caller100k", "startup", "images"}
MID = 10000
SMALL = 10
LARGE_BODY = 64 * 1024  # bodies at least this big go to nginx's sendfile location
# Targets (issue #20): every row's p99 within this factor of its anchor's p99 in the same rounds,
# and the caller's GET / at least this share of the two-hop nginx proxy's req/s.
P99_FACTOR = 1.5
PROXY_RATIO_MIN = 0.9
# The store sizes of the scale curve (objects in each daemon's store).
SCALE = (SMALL, 1000, MID, BIG)
MIB = 1024 * 1024

# Every daemon this script starts gets these (limits far above what the POST workloads store).
DAEMON_ENV = {
    "STORE_MAX_ITEMS": str(100_000_000),
    "STORE_MAX_BYTES": str(16 << 30),
    "DRAIN_TIMEOUT_MS": "2000",
    # 32 connections each waiting for a 12 MB answer at 100,000 + 100,000 objects pass the default
    # 128 MiB, which would close connections (the documented protection against slow readers).
    "ANSWER_MEMORY_MAX_BYTES": str(4 << 30),
}
# The caller of the 100,000-object pair: 32 calls for 6 MB each queue past the default 2 s.
BIG_CALLER_ENV = {"UPSTREAM_TIMEOUT_MS": "30000"}


class BenchError(Exception):
    """Something failed to run: the benchmark's figures would be meaningless."""


class Deadline(BaseException):
    pass


def log(msg):
    print("bench: " + msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# processes


class Procs:
    """Every process started here, stopped by PID. The PIDs are also kept in a file that run.sh's
    EXIT trap reads, in case this script is killed before its own cleanup runs."""

    def __init__(self, pidfile):
        self.pidfile = pidfile
        self.live = []  # (name, Popen)
        self._write()

    def _write(self):
        tmp = self.pidfile + ".new"
        with open(tmp, "w") as f:
            for _, p in self.live:
                f.write("%d\n" % p.pid)
                for c in descendants(p.pid):
                    f.write("%d\n" % c)
        os.replace(tmp, self.pidfile)

    def start(self, name, argv, env=None, stdout=subprocess.DEVNULL, stderr=None):
        p = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=stdout,
                             stderr=stderr if stderr is not None else subprocess.DEVNULL)
        self.live.append((name, p))
        self._write()
        return p

    def note_children(self):
        self._write()

    def stop(self, p, grace=5.0):
        kids = descendants(p.pid) if p.poll() is None else []
        if p.poll() is None:
            try:
                p.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                p.wait(grace)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        for k in kids:  # e.g. nginx workers, should they outlive their master
            try:
                os.kill(k, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self.live = [(n, q) for n, q in self.live if q is not p]
        self._write()
        return p.returncode

    def stop_all(self):
        for _, p in list(reversed(self.live)):
            try:
                self.stop(p)
            except Exception as e:  # keep stopping the others
                log("could not stop pid %d: %s" % (p.pid, e))


def descendants(pid):
    out = []
    todo = [pid]
    while todo:
        q = todo.pop()
        try:
            for t in os.listdir("/proc/%d/task" % q):
                with open("/proc/%d/task/%s/children" % (q, t)) as f:
                    for c in f.read().split():
                        out.append(int(c))
                        todo.append(int(c))
        except OSError:
            pass
    return out


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("0.0.0.0", 0))  # the daemons listen on all addresses
        return s.getsockname()[1]
    finally:
        s.close()


def want(*keys):
    """Whether BENCH_ONLY (when set) names one of these workloads."""
    return not ONLY or bool(ONLY & set(keys))


def health_status(port, timeout=1.0, ctx=None):
    """Status code of GET /health over a fresh raw socket (TLS with ctx), or None when nothing
    listens yet."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(("127.0.0.1", port))
        if ctx is not None:
            try:
                s = ctx.wrap_socket(s, server_hostname="127.0.0.1")
            except (ssl.SSLError, OSError):
                return 0
        s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        buf = b""
        while b"\r\n" not in buf:
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
        m = re.match(rb"HTTP/1\.[01] (\d{3})", buf)
        return int(m.group(1)) if m else 0
    except (ConnectionRefusedError, ConnectionResetError):
        return None
    finally:
        s.close()


def read_status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0]) * 1024
    return out


class Daemon:
    def __init__(self, procs, tmp, bindir, kind, name, log_level="warn", extra_env=None,
                 tls=None):
        """tls: when the daemon serves mutual TLS, the (ca, cert, key) files a client uses."""
        self.kind, self.name, self.port = kind, name, free_port()
        self.tls, self.ctx = tls, None
        if tls:
            self.ctx = ssl.create_default_context(cafile=tls[0])
            self.ctx.load_cert_chain(tls[1], tls[2])
        env = dict(os.environ)
        env.update(DAEMON_ENV)
        env.update({"PORT": str(self.port), "LOG_LEVEL": log_level})
        env.update(extra_env or {})
        self.errpath = os.path.join(tmp, "%s.stderr" % name)
        self.procs = procs
        self.t0 = time.perf_counter()
        with open(self.errpath, "wb") as err:
            self.p = procs.start(name, [os.path.join(bindir, kind)], env=env, stderr=err)
        self.startup_s = self.wait_ready()

    def wait_ready(self, limit=10.0):
        while True:
            st = health_status(self.port, ctx=self.ctx)
            if st == 200:
                return time.perf_counter() - self.t0
            if self.p.poll() is not None:
                raise BenchError("%s exited with status %s before answering /health: %s"
                                 % (self.name, self.p.returncode, tail(self.errpath)))
            if time.perf_counter() - self.t0 > limit:
                raise BenchError("%s did not answer 200 on /health within %.0f s (last: %s)"
                                 % (self.name, limit, st))
            time.sleep(0.0002)

    @property
    def url(self):
        return "%s://127.0.0.1:%d" % ("https" if self.tls else "http", self.port)

    def rss(self):
        return read_status(self.p.pid)

    def stop(self):
        rc = self.procs.stop(self.p)
        if rc not in (0, -signal.SIGTERM):
            log("%s exited with status %s: %s" % (self.name, rc, tail(self.errpath)))


def tail(path, n=600):
    try:
        with open(path, "rb") as f:
            data = f.read()
        return data[-n:].decode("utf-8", "replace").strip() or "(no stderr)"
    except OSError:
        return "(no stderr)"


# ---------------------------------------------------------------------------------------------
# nginx


class Nginx:
    """An nginx of its own under tmp/<name>: the static one (bench/nginx.conf.in) by default, or
    the two-hop proxy in front of it (bench/nginx-proxy.conf.in, back_port the static one's)."""

    def __init__(self, procs, tmp, name="nginx", template="nginx.conf.in", back_port=None):
        self.prefix = os.path.join(tmp, name)
        for d in ("www/s", "www/l", "www/merge", "tmp"):
            os.makedirs(os.path.join(self.prefix, d), exist_ok=True)
        self.port = free_port()
        with open(os.path.join(HERE, template)) as f:
            conf = f.read()
        for k, v in (("prefix", self.prefix), ("port", str(self.port)),
                     ("workers", str(NGINX_WORKERS)), ("back_port", str(back_port))):
            conf = conf.replace("${%s}" % k, v)
        self.conf = os.path.join(self.prefix, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(conf)
        argv = [shutil.which("nginx") or "/usr/sbin/nginx", "-p", self.prefix, "-c", self.conf,
                "-e", os.path.join(self.prefix, "error.log")]
        self.user = "(current user)"
        if os.geteuid() == 0 and shutil.which("setpriv"):
            # root: run nginx as nobody, on its own prefix
            import pwd
            import grp
            try:
                uid = pwd.getpwnam("nobody").pw_uid
                gid = grp.getgrnam("nogroup").gr_gid
            except KeyError:
                uid = gid = None
            if uid is not None:
                os.chmod(tmp, 0o755)
                for root, dirs, files in os.walk(self.prefix):
                    for n in dirs + files:
                        os.chown(os.path.join(root, n), uid, gid)
                os.chown(self.prefix, uid, gid)
                argv = ["setpriv", "--reuid=%d" % uid, "--regid=%d" % gid, "--clear-groups"] + argv
                self.user = "nobody"
                self.uid, self.gid = uid, gid
        self.procs = procs
        self.errpath = os.path.join(tmp, name + ".stderr")
        with open(self.errpath, "wb") as err:
            self.p = procs.start(name, argv, stderr=err)
        t0 = time.perf_counter()
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), 1).close()
                break
            except OSError:
                pass
            if self.p.poll() is not None or time.perf_counter() - t0 > 10:
                raise BenchError("nginx did not start: %s %s" % (
                    tail(self.errpath), tail(os.path.join(self.prefix, "error.log"))))
            time.sleep(0.01)
        time.sleep(0.2)
        procs.note_children()  # record the workers' PIDs too

    def write(self, sub, name, data):
        """Puts data in www/<sub>/<name>, readable by nginx; returns its URL path."""
        path = os.path.join(self.prefix, "www", sub, name)
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, 0o644)
        if getattr(self, "uid", None) is not None:
            os.chown(path, self.uid, self.gid)
        return "/%s/%s" % (sub, name)

    def put(self, name, data):
        url = "http://127.0.0.1:%d%s" % (
            self.port, self.write("l" if len(data) >= LARGE_BODY else "s", name, data))
        got = curl(url)
        if got != data:
            raise BenchError("nginx serves %d bytes for %s, expected %d" % (len(got), url, len(data)))
        return url

    def put_merge(self, name, merged, back_path, back_body):
        """The two-hop proxy (bench/nginx-proxy.conf.in) answering merged, the caller's exact
        bytes, from its own part in a file and the back nginx's back_path, which serves
        back_body (the responder's exact bytes, {"stored_data":[...]}). Returns the URL."""
        wrapper = b'{"stored_data":'
        tail = back_body[len(wrapper):]
        if not back_body.startswith(wrapper) or not merged.endswith(tail):
            raise BenchError("the caller's answer does not end with the responder's array")
        head = merged[:len(merged) - len(tail)]
        own = self.write("l" if len(head) >= LARGE_BODY else "s", name + ".head", head)
        tmpl = ('<!--# include virtual="%s" -->'
                '<!--# include virtual="/hop%s" -->' % (own, back_path)).encode()
        url = "http://127.0.0.1:%d%s" % (self.port, self.write("merge", name, tmpl))
        got = curl(url)
        if got != merged:
            raise BenchError("the nginx proxy serves %d bytes for %s, expected %d"
                             % (len(got), url, len(merged)))
        return url


# ---------------------------------------------------------------------------------------------
# HTTP helpers


def curl(url, post=None, tls=None):
    argv = ["curl", "-sS", "--fail", "--max-time", "30", "-o", "-"]
    if tls:
        argv += ["--cacert", tls[0], "--cert", tls[1], "--key", tls[2]]
    if post is not None:
        argv += ["-H", "Content-Type: application/json", "--data-binary", post]
    argv.append(url)
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    if r.returncode != 0:
        raise BenchError("curl %s failed: %s" % (url, r.stderr.decode(errors="replace").strip()))
    return r.stdout


def obj(i):
    # 60 bytes, compact, unique
    return '{"id":"%07d","name":"object-%07d","value":"abcdefghi"}' % (i, i)


def fill(d, n, start=0, workers=4):
    """POST n objects into daemon d over `workers` keep-alive connections; returns stored bytes."""
    def run(lo, hi):
        if d.ctx:
            c = http.client.HTTPSConnection("127.0.0.1", d.port, timeout=30, context=d.ctx)
        else:
            c = http.client.HTTPConnection("127.0.0.1", d.port, timeout=30)
        try:
            for i in range(lo, hi):
                c.request("POST", "/data", body=obj(i), headers={"Content-Type": "application/json"})
                r = c.getresponse()
                r.read()
                if r.status != 201:
                    raise BenchError("filling %s: POST /data answered %d" % (d.name, r.status))
        finally:
            c.close()
        return sum(len(obj(i)) for i in range(lo, hi))

    step = (n + workers - 1) // workers
    with concurrent.futures.ThreadPoolExecutor(workers) as ex:
        futs = [ex.submit(run, start + k * step, start + min(n, (k + 1) * step))
                for k in range(workers) if k * step < n]
        return sum(f.result() for f in futs)


def stored_count(d):
    body = json.loads(curl(d.url + "/data", tls=d.tls))
    return len(body["stored_data"])


# ---------------------------------------------------------------------------------------------
# wrk

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


PROCS = None  # the Bench's Procs, set in Bench.__init__


def wrk(url, secs, script=None, raw_log=None):
    argv = ["wrk", "-t%d" % THREADS, "-c%d" % CONNS, "-d%ds" % secs, "--latency", "--timeout", "10s"]
    if script:
        argv += ["-s", script]
    argv.append(url)
    p = PROCS.start("wrk", argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        raw, _ = p.communicate(timeout=secs + 60)
    except subprocess.TimeoutExpired:
        raise BenchError("wrk did not finish: %s" % " ".join(argv))
    finally:
        PROCS.stop(p)
    r = p
    out = raw.decode(errors="replace")
    if raw_log:
        with open(raw_log, "a") as f:
            f.write("$ %s\n%s\n" % (" ".join(argv), out))
    if r.returncode != 0:
        raise BenchError("wrk failed (status %d): %s\n%s" % (r.returncode, " ".join(argv), out))
    res = {"cmd": " ".join(argv)}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not m:
        raise BenchError("no Requests/sec in wrk output:\n" + out)
    res["rps"] = float(m.group(1))
    for pct in ("50", "75", "90", "99"):
        m = re.search(r"^\s+%s%%\s+([\d.]+)(us|ms|s|m)\s*$" % pct, out, re.M)
        if not m:
            raise BenchError("no %s%% latency in wrk output:\n%s" % (pct, out))
        res["p" + pct] = float(m.group(1)) * UNITS[m.group(2)]
    m = re.search(r"Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s|m)", out)
    res["max"] = float(m.group(1)) * UNITS[m.group(2)] if m else None
    m = re.search(r"(\d+) requests in", out)
    res["requests"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    res["errors"] = dict(zip(("connect", "read", "write", "timeout"),
                             map(int, m.groups()))) if m else {}
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    res["non2xx"] = int(m.group(1)) if m else 0
    return res


def quartiles(values):
    """The first and third quartiles of values."""
    q = statistics.quantiles(values, n=4)
    return q[0], q[2]


def summarize(runs):
    return {
        "rps": statistics.median(r["rps"] for r in runs),
        "p50": statistics.median(r["p50"] for r in runs),
        "p99": statistics.median(r["p99"] for r in runs),
        "p99_worst": max(r["p99"] for r in runs),
        "runs": runs,
    }


# ---------------------------------------------------------------------------------------------
# the benchmark


class Bench:
    def __init__(self, args):
        self.args = args
        self.tmp = args.tmp
        self.bindir = args.bin
        global PROCS
        self.procs = PROCS = Procs(os.path.join(self.tmp, "pids"))
        self.rows = []      # workload rows
        self.other = []     # memory / startup / image rows
        self.odd = []       # things worth a look
        self.failed = []    # things that failed to run
        self.bodies = {}
        self.xray_counts = {}  # traced daemon -> (segments sent, dropped) in the tracing rows
        self.wrklog = os.path.join(self.tmp, "wrk.log")

    # -- workloads --------------------------------------------------------------------------
    def workload(self, key, label, daemon_url, nginx_url, body_len, ratio_target, p99_target,
                 script=None, note="", also=None, proxy=None):
        """Warm-up, then REPS rounds of: daemon, [the `also` daemon,] nginx[, the proxy]. `also`
        is (key, label, url, note, what) for a second daemon measured in the same rounds (no
        target), reported as a ratio to this one too: `what` it adds costs that share of req/s.
        `proxy` is (url, label) of the two-hop nginx proxy answering the same bytes: it gets a
        row of its own (read against the static nginx), and the daemon a second row read
        against it, with PROXY_RATIO_MIN as the target."""
        log("%s: %d s warm-up, %d x %d s, alternating with nginx%s%s" % (
            label, WARMUP, REPS, SECS, " and " + also[1] if also else "",
            " and the nginx two-hop proxy" if proxy else ""))
        t0 = time.time()
        targets = [(key, label, daemon_url, script, ratio_target, p99_target, note)]
        if also:
            targets.append((also[0], also[1], also[2], script, None, None, also[3]))
        for t in targets:
            wrk(t[2], WARMUP, script, self.wrklog)
        wrk(nginx_url, WARMUP, None, self.wrklog)
        if proxy:
            wrk(proxy[0], WARMUP, None, self.wrklog)
        runs = [[] for _ in targets]
        n_runs, p_runs = [], []
        for rep in range(REPS):
            # With two daemons, every other round measures them in the other order, so that a
            # machine speeding up or slowing down within a round favours neither.
            order = list(enumerate(targets))
            if rep % 2:
                order.reverse()
            for i, t in order:
                runs[i].append(wrk(t[2], SECS, t[3], self.wrklog))
            n_runs.append(wrk(nginx_url, SECS, None, self.wrklog))
            if proxy:
                p_runs.append(wrk(proxy[0], SECS, None, self.wrklog))
        n = summarize(n_runs)
        self.check_runs(label + " (nginx)", n_runs, n)
        rows = []
        for (k, lab, _url, _s, rt, pt, nt), d_runs in zip(targets, runs):
            rows.append(self.add_row(k, lab, summarize(d_runs), n, "nginx", rt, pt, body_len, nt,
                                     time.time() - t0))
        if also:
            base, other = rows
            per_round = [1 - a["rps"] / b["rps"] for a, b in zip(other["d"]["runs"], base["d"]["runs"])]
            if len(also) > 5 and also[5] is not None:
                per_round += self.paired_rounds(label, targets[0], targets[1])
            other["overhead"] = statistics.median(per_round)
            other["overhead_rounds"] = per_round
            other["overhead_what"] = also[4]
            other["overhead_max"] = also[5] if len(also) > 5 else None
            log("  %s: %.2f of the req/s of %s" % (other["label"], 1 - other["overhead"],
                                                   base["label"]))
        if proxy:
            p = summarize(p_runs)
            self.add_row(key + "-proxy", proxy[1], p, n, "nginx", None, None, body_len,
                         "nginx in front of nginx: bench/nginx-proxy.conf.in", time.time() - t0,
                         check=False)
            self.check_runs(proxy[1], p_runs, p)
            rows[0]["proxy"] = p
            self.add_row(key + "-vs-proxy", label + ", against the nginx two-hop proxy",
                         rows[0]["d"], p, "proxy", PROXY_RATIO_MIN, P99_FACTOR, body_len, "",
                         time.time() - t0, check=False)
        return rows[0]

    def paired_rounds(self, label, base, other):
        """PAIRED_REPS rounds of PAIRED_SECS each: base then other, other then base, and so on,
        nothing in between; returns each round's cost (1 - other's req/s / base's)."""
        log("  %s: %d more rounds of %d s, back to back in alternating order" % (
            label, PAIRED_REPS, PAIRED_SECS))
        costs, runs = [], {id(base): [], id(other): []}
        for rep in range(PAIRED_REPS):
            pair = [base, other] if rep % 2 == 0 else [other, base]
            for t in pair:
                runs[id(t)].append(wrk(t[2], PAIRED_SECS, t[3], self.wrklog))
            costs.append(1 - runs[id(other)][-1]["rps"] / runs[id(base)][-1]["rps"])
        for t in (base, other):
            self.check_runs(t[1] + " (short rounds)", runs[id(t)], summarize(runs[id(t)]))
        return costs

    def add_row(self, key, label, d, n, anchor, ratio_target, p99_target, body_len, note, secs,
                check=True):
        """One table row: d read against n (the anchor: "nginx" for the static nginx on the same
        bytes, "proxy" for the two-hop proxy). p99_target is a factor of the anchor's p99."""
        row = {"key": key, "label": label, "d": d, "n": n, "anchor": anchor,
               "ratio": d["rps"] / n["rps"],
               "paired": [a["rps"] / b["rps"] for a, b in zip(d["runs"], n["runs"])],
               "ratio_target": ratio_target, "p99_target": p99_target, "body": body_len,
               "note": note, "secs": secs}
        if check:
            self.check_runs(label, d["runs"], d)
        log("  %s: %.0f req/s p50 %.2f ms p99 %.2f ms | %s %.0f req/s p99 %.2f ms | "
            "ratio %.2f" % (label, d["rps"], d["p50"], d["p99"], anchor, n["rps"], n["p99"],
                            row["ratio"]))
        self.rows.append(row)
        return row

    def check_runs(self, label, runs, summ):
        non2xx = sum(r["non2xx"] for r in runs)
        errs = {k: sum(r["errors"].get(k, 0) for r in runs)
                for k in ("connect", "read", "write", "timeout")}
        if non2xx:
            self.failed.append("%s: %d non-2xx responses" % (label, non2xx))
        if errs["connect"] or errs["read"] or errs["write"]:
            self.failed.append("%s: socket errors %s" % (label, errs))
        if errs["timeout"]:
            self.odd.append("%s: %d wrk timeouts (10 s)" % (label, errs["timeout"]))
        if summ["rps"] <= 0:
            self.failed.append("%s: no answer completed in a round" % label)
            return
        spread = (max(r["rps"] for r in runs) - min(r["rps"] for r in runs)) / summ["rps"]
        if spread > 0.15:
            self.odd.append("%s: req/s varied by %.0f%% across rounds (%s)" % (
                label, spread * 100, ", ".join("%.0f" % r["rps"] for r in runs)))
        if summ["p99_worst"] > 2 * max(summ["p99"], 0.5):
            self.odd.append("%s: one round's p99 was %.1f ms (median %.1f ms)" % (
                label, summ["p99_worst"], summ["p99"]))

    def get_workload(self, key, label, d, path, ratio_target, p99_target, note="", also=None,
                     proxy_back=None):
        """proxy_back: for the caller's GET /, its responder, whose GET /data bytes the back
        nginx serves to the two-hop proxy measured in the same rounds."""
        body = curl(d.url + path)
        self.bodies[key] = len(body)
        proxy = None
        if proxy_back is not None:
            back = curl(proxy_back.url + "/data")
            back_url = self.nginx.put(key + "-back.json", back)
            purl = self.proxy.put_merge(key + ".json", body, "/" + back_url.split("/", 3)[3],
                                        back)
            proxy = (purl, "nginx two-hop reverse proxy, %s (same bytes)"
                     % label.split(", ", 1)[1].replace(" (two hops)", ""))
        if also:
            other = curl(also[2].url + path)
            if len(other) != len(body):  # same objects; the order may differ (parallel fill)
                raise BenchError("%s and %s answer different sizes" % (label, also[1]))
            also = (also[0], also[1], also[2].url + path) + tuple(also[3:])
        nurl = self.nginx.put(key + ".json", body)
        return self.workload(key, label, d.url + path, nurl, len(body), ratio_target, p99_target,
                             note=note, also=also, proxy=proxy)

    def post_workload(self, key, label, d, ratio_target, p99_target):
        with open(os.path.join(HERE, "post.lua")) as f:
            m = re.search(r"wrk\.body\s*=\s*'([^']*)'", f.read())
        answer = curl(d.url + "/data", post=m.group(1))
        self.bodies[key] = len(answer)
        nurl = self.nginx.put(key + ".json", answer)
        return self.workload(key, label, d.url + "/data", nurl, len(answer), ratio_target,
                             p99_target, script=os.path.join(HERE, "post.lua"),
                             note="nginx: GET of the %d-byte 201 answer" % len(answer))

    def pair(self, n, tag, caller_env=None):
        r = Daemon(self.procs, self.tmp, self.bindir, "responder", "responder-" + tag)
        env = {"RESPONDER_URL": r.url}
        env.update(caller_env or {})
        c = Daemon(self.procs, self.tmp, self.bindir, "caller", "caller-" + tag, extra_env=env)
        return r, c

    def mtls_pair(self, n, tag):
        """A responder serving mutual TLS and a caller reaching it with its client certificate;
        the caller itself serves plain HTTP (the hop measured is caller to responder)."""
        d = os.path.join(self.tmp, "certs")
        if not os.path.exists(os.path.join(d, "ca.pem")):
            r = subprocess.run(["sh", os.path.join(REPO, "scripts", "gen-certs.sh"), d],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
            if r.returncode != 0:
                raise BenchError("scripts/gen-certs.sh failed: %s" % r.stdout.decode(errors="replace"))

        def f(name):
            return os.path.join(d, name)

        r = Daemon(self.procs, self.tmp, self.bindir, "responder", "responder-" + tag,
                   extra_env={"TLS_CERT_FILE": f("responder.pem"),
                              "TLS_KEY_FILE": f("responder-key.pem"),
                              "TLS_CLIENT_CA_FILE": f("ca.pem")},
                   tls=(f("ca.pem"), f("client.pem"), f("client-key.pem")))
        c = Daemon(self.procs, self.tmp, self.bindir, "caller", "caller-" + tag,
                   extra_env={"RESPONDER_URL": r.url, "RESPONDER_CA_FILE": f("ca.pem"),
                              "CLIENT_CERT_FILE": f("caller.pem"),
                              "CLIENT_KEY_FILE": f("caller-key.pem")})
        return r, c

    def fill_pair(self, r, c, n):
        t0 = time.time()
        with concurrent.futures.ThreadPoolExecutor(2) as ex:
            fr = ex.submit(fill, r, n)
            fc = ex.submit(fill, c, n)
            sr, sc = fr.result(), fc.result()
        for d in (r, c):
            got = stored_count(d)
            if got != n:
                raise BenchError("%s holds %d objects after filling %d" % (d.name, got, n))
        log("filled %d objects into each daemon in %.1f s" % (n, time.time() - t0))
        return sr, sc

    def phase_small(self):
        if not want("get10", "get10info", "caller10", "caller10mtls", "post10"):
            return
        r, c = self.pair(SMALL, "10")
        self.fill_pair(r, c, SMALL)
        if want("get10", "get10info"):
            ri = Daemon(self.procs, self.tmp, self.bindir, "responder", "responder-10-info",
                        log_level="info")
            fill(ri, SMALL)
            self.get_workload("get10", "responder GET /data, 10 objects", r, "/data", 0.50,
                              P99_FACTOR,
                              also=("get10info", "responder GET /data, 10 objects, LOG_LEVEL=info",
                                    ri, "request log lines written to /dev/null", "logging on"))
            ri.stop()
        if want("caller10", "caller10mtls"):
            also, mr, mc = None, None, None
            if want("caller10mtls"):
                mr, mc = self.mtls_pair(SMALL, "10-mtls")
                self.fill_pair(mr, mc, SMALL)
                got = json.loads(curl(mc.url + "/")).get("responder_service_data")
                if not isinstance(got, list) or len(got) != SMALL:
                    raise BenchError("caller over mTLS: responder_service_data is %s"
                                     % json.dumps(got)[:300])
                also = ("caller10mtls", "caller GET /, 10 + 10 objects, mTLS caller to responder",
                        mc, "wrk to the caller plain HTTP; the caller's kept-alive connections to "
                        "the responder use mutual TLS", "mTLS to the responder")
            self.get_workload("caller10", "caller GET /, 10 + 10 objects (two hops)", c, "/", 0.25,
                              P99_FACTOR, also=also, proxy_back=r)
            for d in (mc, mr):
                if d:
                    d.stop()
        if want("post10"):
            self.post_workload("post10", "responder POST /data, store from 10 objects", r, 0.40,
                               P99_FACTOR)
        c.stop()
        r.stop()

    def phase_tracing(self):
        """X-Ray tracing with every request sampled, next to the same daemons untraced, measured
        in the same rounds and then in PAIRED_REPS short rounds back to back. The segments go to a UDP socket that is bound and never read: each
        send costs what it costs with the X-Ray daemon listening, and no reader takes CPU from
        the daemons (the kernel drops what overflows the socket's buffer)."""
        if not want("get10xray", "caller10xray"):
            return
        sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sink.bind(("127.0.0.1", 0))
        xray = {"XRAY_TRACING": "1", "XRAY_SAMPLING_RATE": "1",
                "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:%d" % sink.getsockname()[1]}
        note = "XRAY_SAMPLING_RATE=1; segments to a bound UDP socket nobody reads"
        r, c = self.pair(SMALL, "10-xoff")
        rt = Daemon(self.procs, self.tmp, self.bindir, "responder", "responder-10-xray",
                    extra_env=xray)
        ct = Daemon(self.procs, self.tmp, self.bindir, "caller", "caller-10-xray",
                    extra_env=dict(xray, RESPONDER_URL=rt.url))
        self.fill_pair(r, c, SMALL)
        self.fill_pair(rt, ct, SMALL)
        if want("get10xray"):
            self.get_workload(
                "get10xoff", "responder GET /data, 10 objects, X-Ray off (the next row's baseline)",
                r, "/data", None, None,
                also=("get10xray", "responder GET /data, 10 objects, X-Ray on, every request "
                      "sampled", rt, note, "one segment a request", 0.10))
        if want("caller10xray"):
            self.get_workload(
                "caller10xoff", "caller GET /, 10 + 10 objects, X-Ray off (the next row's "
                "baseline)", c, "/", None, None,
                also=("caller10xray", "caller GET /, 10 + 10 objects, X-Ray on in both daemons, "
                      "every request sampled", ct, note, "two segments a request", 0.10))
        for d, name in ((rt, "responder"), (ct, "caller")):
            text = curl(d.url + "/metrics").decode()
            sent = re.search(r"^xray_segments_sent_total (\d+)", text, re.M)
            dropped = sum(int(x) for x in re.findall(r"^xray_segments_dropped_total\S* (\d+)",
                                                      text, re.M))
            if sent is None or int(sent.group(1)) == 0:
                raise BenchError("the traced %s sent no X-Ray segment" % name)
            log("  traced %s: %s segments sent, %d dropped" % (name, sent.group(1), dropped))
            self.xray_counts[name] = (int(sent.group(1)), dropped)
        for d in (ct, rt, c, r):
            d.stop()
        sink.close()

    def phase_1k(self):
        """The scale curve's second point: 1,000 objects in each store."""
        if not want("get1k", "caller1k"):
            return
        r, c = self.pair(1000, "1k")
        self.fill_pair(r, c, 1000)
        if want("get1k"):
            self.get_workload("get1k", "responder GET /data, 1,000 objects", r, "/data", 0.50,
                              P99_FACTOR)
        if want("caller1k"):
            self.get_workload("caller1k", "caller GET /, 1,000 + 1,000 objects (two hops)", c,
                              "/", 0.25, P99_FACTOR, proxy_back=r)
        c.stop()
        r.stop()

    def phase_mid(self):
        if not want("get10k", "caller10k", "post10k"):
            return
        r, c = self.pair(MID, "10k")
        self.fill_pair(r, c, MID)
        if want("get10k"):
            self.get_workload("get10k", "responder GET /data, 10,000 objects", r, "/data", 0.50,
                              P99_FACTOR)
        if want("caller10k"):
            self.get_workload("caller10k", "caller GET /, 10,000 + 10,000 objects (two hops)", c,
                              "/", 0.25, P99_FACTOR, proxy_back=r)
        if want("post10k"):
            self.post_workload("post10k", "responder POST /data, store from 10,000 objects", r,
                               0.40, P99_FACTOR)
        c.stop()
        r.stop()

    def phase_big(self):
        if not want("get100k", "caller100k"):
            return
        r, c = self.pair(BIG, "big", BIG_CALLER_ENV)
        time.sleep(0.3)
        idle = {"responder": r.rss()["VmRSS"], "caller": c.rss()["VmRSS"]}
        sr, sc = self.fill_pair(r, c, BIG)
        time.sleep(0.3)
        after = {"responder": r.rss()["VmRSS"], "caller": c.rss()["VmRSS"]}
        stored = {"responder": sr, "caller": sc}
        self.mem = {"idle": idle, "after": after, "stored": stored}
        for who in ("responder", "caller"):
            self.other.append({
                "label": "%s RSS idle" % who, "value": "%.1f MiB" % (idle[who] / MIB),
                "target": "<= 8 MiB", "pass": idle[who] <= 8 * MIB})
        floor = self.libcurl_floor()
        if floor is not None:
            self.other.append({
                "label": "libcurl alone: a program that only initializes Debian's libcurl and "
                         "makes one multi and one easy handle (bench/libcurl_floor.c)",
                "value": "%.1f MiB" % (floor / MIB),
                "target": "report: the floor under the caller's idle RSS", "pass": None})
        floor = self.libcurl_floor("libs_floor")
        if floor is not None:
            self.other.append({
                "label": "the caller's libraries without libcurl: the same program built "
                         "-DWITHOUT_LIBCURL, linked with libmicrohttpd, jansson and GnuTLS",
                "value": "%.1f MiB" % (floor / MIB),
                "target": "report: the floor a caller without libcurl would have",
                "pass": None})
        for who in ("responder", "caller"):
            growth = after[who] - idle[who]
            ratio = growth / stored[who]
            self.other.append({
                "label": "%s RSS growth / stored bytes, %s objects" % (who, "{:,}".format(BIG)),
                "value": "%.2fx (%.1f MiB for %.1f MiB of JSON; RSS %.1f MiB)" % (
                    ratio, growth / MIB, stored[who] / MIB, after[who] / MIB),
                "target": "<= 2x", "pass": ratio <= 2.0})
        if want("get100k"):
            self.get_workload("get100k", "responder GET /data, %s objects" % "{:,}".format(BIG), r,
                              "/data", None, P99_FACTOR, note="shows how cost grows with the store")
        if want("caller100k"):
            self.get_workload("caller100k", "caller GET /, %s + %s objects (two hops)" % (
                "{:,}".format(BIG), "{:,}".format(BIG)), c, "/", None, P99_FACTOR,
                              proxy_back=r)
        st = r.rss()
        self.mem["after_get_big"] = st
        c.stop()
        r.stop()

    def libcurl_floor(self, name="libcurl_floor"):
        """VmRSS of bench/libcurl_floor.c (built by run.sh as name) once it says ready; None
        without it."""
        path = os.path.join(self.bindir, name)
        if not os.path.exists(path):
            return None
        p = self.procs.start(name, [path], stdout=subprocess.PIPE)
        try:
            if p.stdout.readline().strip() != b"ready":
                log("%s did not start" % name)
                return None
            return read_status(p.pid)["VmRSS"]
        finally:
            self.procs.stop(p)
            p.stdout.close()

    def phase_startup(self):
        if not want("startup"):
            return
        for kind in ("responder", "caller"):
            samples = []
            for i in range(STARTS):
                extra = {"RESPONDER_URL": "http://127.0.0.1:9"} if kind == "caller" else {}
                d = Daemon(self.procs, self.tmp, self.bindir, kind, "%s-start%d" % (kind, i),
                           extra_env=extra)
                samples.append(d.startup_s * 1000)
                d.stop()
            med = statistics.median(samples)
            self.other.append({
                "label": "%s exec to first 200 on /health" % kind,
                "value": "%.1f ms (median of %d; %s)" % (
                    med, len(samples), ", ".join("%.1f" % s for s in samples)),
                "target": "<= 50 ms", "pass": med <= 50.0})

    def images(self):
        if not want("images"):
            return
        docker = shutil.which("docker")
        names = {
            "caller": [os.environ.get("CALLER_IMAGE"), "ecs-sc-demo-caller",
                       "ecs-service-connect-demo/caller:latest"],
            "responder": [os.environ.get("RESPONDER_IMAGE"), "ecs-sc-demo-responder",
                          "ecs-service-connect-demo/responder:latest"],
        }
        for kind in ("caller", "responder"):
            value = "not built"
            if not docker:
                value = "not built (no docker)"
            else:
                for n in filter(None, names[kind]):
                    try:
                        r = subprocess.run([docker, "image", "inspect", "--format", "{{.Size}}", n],
                                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                           timeout=15)
                    except subprocess.TimeoutExpired:
                        value = "not built (docker did not answer)"
                        break
                    if r.returncode == 0 and r.stdout.strip():
                        size = int(r.stdout.split()[0])
                        value = "%.1f MiB (%s)" % (size / MIB, n)
                        break
            self.other.append({"label": "%s image size" % kind, "value": value, "target": "",
                               "pass": None})

    # -- report ---------------------------------------------------------------------------
    def machine(self):
        def cmd(argv):
            try:
                r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   timeout=10)
                return r.stdout.decode(errors="replace").strip()
            except (OSError, subprocess.TimeoutExpired):
                return ""

        cpu = ""
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        mem = 0
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem = int(line.split()[1]) * 1024
        def pc(name):
            return cmd(["pkg-config", "--modversion", name]).splitlines()[0:1] or ["?"]
        wrkv = cmd(["wrk", "-v"]).splitlines()
        commit = cmd(["git", "-C", REPO, "--no-optional-locks", "rev-parse", "--short", "HEAD"])
        dirty = cmd(["git", "-C", REPO, "--no-optional-locks", "status", "--porcelain", "--",
                     "common", "caller", "responder", "Makefile"])
        return {
            "nproc": os.cpu_count(),
            "cpu": cpu,
            "mem": "%.1f GiB" % (mem / (1 << 30)),
            "kernel": platform.release(),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "wrk": re.sub(r"\s*Copyright.*", "", wrkv[0]) if wrkv else "?",
            "nginx": cmd(["nginx", "-v"]).replace("nginx version: ", ""),
            "libmicrohttpd": pc("libmicrohttpd")[0],
            "jansson": pc("jansson")[0],
            "libcurl": pc("libcurl")[0],
            "cc": (cmd(["cc", "--version"]).splitlines() or ["?"])[0],
            "commit": (commit or "?") + (" with uncommitted changes to the daemons" if dirty else ""),
        }

    def table(self):
        head = ["workload", "req/s", "p50", "p99", "anchor", "anchor req/s", "anchor p99",
                "ratio to anchor (or value)", "target", "result"]
        lines = []
        for r in self.rows:
            d, n = r["d"], r["n"]
            tgt, ok, why = [], True, []
            what = "the two-hop proxy" if r["anchor"] == "proxy" else "nginx"
            if r["ratio_target"] is not None:
                tgt.append(">= %d%% of %s" % (round(r["ratio_target"] * 100), what))
                if r["ratio"] < r["ratio_target"]:
                    ok = False
                    why.append("ratio")
            if r["p99_target"] is not None:
                tgt.append("p99 <= %gx %s's" % (r["p99_target"], what))
                if d["p99"] > r["p99_target"] * n["p99"]:
                    ok = False
                    why.append("p99 %.1fx" % (d["p99"] / n["p99"]))
            if "overhead" in r:
                tgt = ["report: %.2f of the row above (%s costs %.0f%% of req/s)" % (
                    1 - r["overhead"], r["overhead_what"], r["overhead"] * 100)]
            result = ("pass" if ok else "FAIL (%s)" % ", ".join(why)) if r["ratio_target"] is not None \
                or r["p99_target"] is not None else "-"
            if r.get("overhead_max") is not None:
                tgt = [">= %.2f of the row above, measured back to back (%s costs %.0f%% of req/s: "
                       "median of %d paired rounds, half of them between %.0f%% and %.0f%%)" % (
                           1 - r["overhead_max"], r["overhead_what"], r["overhead"] * 100,
                           len(r["overhead_rounds"]),
                           quartiles(r["overhead_rounds"])[0] * 100,
                           quartiles(r["overhead_rounds"])[1] * 100)]
                result = "pass" if r["overhead"] <= r["overhead_max"] else "FAIL (cost)"
            if not tgt:
                tgt = ["report only"]
            anchor = ("nginx two-hop proxy" if r["anchor"] == "proxy"
                      else "nginx, static file")
            lines.append([r["label"], "%.0f" % d["rps"], fmt_ms(d["p50"]), fmt_ms(d["p99"]),
                          anchor, "%.0f" % n["rps"], fmt_ms(n["p99"]), "%.2f" % r["ratio"],
                          ", ".join(tgt), result])
        for o in self.other:
            lines.append([o["label"], "-", "-", "-", "-", "-", "-", o["value"],
                          o["target"] or "report only",
                          "-" if o["pass"] is None else ("pass" if o["pass"] else "FAIL")])
        return head, lines

    def scale(self):
        """The scale curve: for each store size measured, req/s and p99 of the responder's GET
        /data, the caller's GET / and their anchors. Returns (head, lines, points)."""
        by = {r["key"]: r for r in self.rows}
        keys = {SMALL: "10", 1000: "1k", MID: "10k", BIG: "100k"}
        head = ["objects per store", "responder req/s", "p99", "nginx static (same bytes)",
                "p99", "caller req/s", "p99", "nginx static (same bytes)", "p99",
                "nginx two-hop proxy", "p99"]
        lines, points = [], []
        for n in SCALE:
            g, c = by.get("get" + keys[n]), by.get("caller" + keys[n])
            if g is None and c is None:
                continue
            cells = ["{:,}".format(n)]
            pt = [n]
            for summ in ((g or {}).get("d"), (g or {}).get("n"), (c or {}).get("d"),
                         (c or {}).get("n"), (c or {}).get("proxy")):
                if summ is None:
                    cells += ["-", "-"]
                    pt += ["NaN", "NaN"]
                else:
                    cells += ["%.0f" % summ["rps"], fmt_ms(summ["p99"])]
                    pt += ["%.1f" % summ["rps"], "%.3f" % summ["p99"]]
            lines.append(cells)
            points.append(pt)
        return head, lines, points

    def plot(self, points, png):
        """Draws the scale curve into png with gnuplot (installed by run.sh); False without it."""
        gp = shutil.which("gnuplot")
        if not gp or len(points) < 2:
            return False
        data = os.path.join(self.tmp, "scale.dat")
        with open(data, "w") as f:
            for pt in points:
                f.write(" ".join(str(x) for x in pt) + "\n")
        series = ((2, "responder GET /data"), (4, "nginx static, responder bytes"),
                  (6, "caller GET /"), (8, "nginx static, caller bytes"),
                  (10, "nginx two-hop proxy, caller bytes"))
        script = ["set terminal pngcairo size 1200,500 font 'sans,10'" if "cairo" in
                  subprocess.run([gp, "-e", "set terminal"], stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, timeout=30).stdout.decode(errors="replace")
                  else "set terminal png size 1200,500",
                  "set output '%s'" % png, "set multiplot layout 1,2",
                  "set logscale xy", "set grid", "set key bottom left",
                  "set xlabel 'objects in each store'", "set format x '%.0s%c'",
                  "set ylabel 'requests per second'",
                  "set title 'Throughput (wrk -t%d -c%d, %d cores)'" % (THREADS, CONNS,
                                                                         os.cpu_count())]
        plots = ["'%s' using 1:%d with linespoints title '%s'" % (data, col, t)
                 for col, t in series]
        script.append("plot " + ", ".join(plots))
        script += ["set ylabel 'p99 latency (ms)'", "set key top left",
                   "set title 'p99 latency'"]
        plots = ["'%s' using 1:%d with linespoints title '%s'" % (data, col + 1, t)
                 for col, t in series]
        script.append("plot " + ", ".join(plots))
        script.append("unset multiplot")
        r = subprocess.run([gp], input="\n".join(script).encode(), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=60)
        if r.returncode != 0:
            log("gnuplot failed: %s" % r.stdout.decode(errors="replace")[:300])
            return False
        return True

    def report(self, elapsed):
        m = self.machine()
        head, lines = self.table()
        # text table on stdout
        widths = [max([len(head[i])] + [len(l[i]) for l in lines]) for i in range(len(head))]
        out = []
        out.append("  ".join(h.ljust(widths[i]) for i, h in enumerate(head)))
        out.append("  ".join("-" * w for w in widths))
        for l in lines:
            out.append("  ".join(c.ljust(widths[i]) for i, c in enumerate(l)))
        print()
        print("\n".join(out))
        print()
        print("%s, %s CPUs (%s), %s, Linux %s; run took %.0f s" % (
            m["date"], m["nproc"], m["cpu"], m["mem"], m["kernel"], elapsed))
        for o in self.odd:
            print("note: " + o)
        for f in self.failed:
            print("FAILED: " + f)

        md = []
        md.append("# Benchmark")
        md.append("")
        md.append("Generated by `make bench` (bench/run.sh, bench/bench.py) on %s; do not edit by hand."
                  % m["date"])
        md.append("")
        md.append("Each daemon runs on 127.0.0.1 with `LOG_LEVEL=warn` and its output sent to /dev/null, "
                  "and is driven by `wrk -t%d -c%d -d%ds --latency` (after a %d s warm-up; median of %d "
                  "rounds). In the same run, alternating round by round, nginx (%d workers, access log off) "
                  "serves a static file holding exactly the bytes the daemon answered, fetched from the "
                  "daemon right before; **every req/s figure is read as its ratio to that nginx**, the upper "
                  "bound on this machine. For POST, nginx serves the 201 answer body to a GET. "
                  "wrk, the daemons and nginx share the same CPUs."
                  % (THREADS, CONNS, SECS, WARMUP, REPS, NGINX_WORKERS))
        md.append("")
        md.append("The static file is the ceiling for the responder, but not the fair reference for "
                  "the caller, whose job is one request in, one call out, one merged answer back: "
                  "the program a user would put there instead is a reverse proxy. So each caller "
                  "`GET /` is also measured, in the same rounds, against **nginx as a two-hop "
                  "reverse proxy** (bench/nginx-proxy.conf.in; a second nginx of %d workers in front "
                  "of the static one, so four processes against the caller's and responder's "
                  "threads): per request it expands a two-include SSI template, reads the caller's "
                  "own part from a file, and fetches the responder's exact `GET /data` bytes from "
                  "the static nginx over a kept-alive HTTP/1.1 upstream connection (`keepalive 64`, "
                  "held in memory, never in a temporary file), drops their 15-byte "
                  "`{\"stored_data\":` with `sub_filter` and answers the caller's exact merged "
                  "bytes (chunked). It does not validate the upstream JSON, nor keep the caller's "
                  "timeouts, retries, breaker or metrics: it is the cost of the hop and the bytes "
                  "alone, the pace a proxy sets. Rows `against the nginx two-hop proxy` are read "
                  "against it (target >= %d%%); every p99 target is a factor of the anchor's p99 "
                  "in the same rounds, since on 2 cores shared with wrk even nginx's tail grows "
                  "with the bytes. Where the caller's time and memory go, and what stands between "
                  "it and each target it misses: [bench/PROFILE.md](bench/PROFILE.md) (perf, "
                  "strace, callgrind, with the commands)." % (NGINX_WORKERS,
                                                              round(PROXY_RATIO_MIN * 100)))
        md.append("")
        md.append("| " + " | ".join(head) + " |")
        md.append("|" + "|".join("---" for _ in head) + "|")
        for l in lines:
            md.append("| " + " | ".join(c.replace("|", "\\|") for c in l) + " |")
        md.append("")
        shead, slines, points = self.scale()
        if slines:
            md.append("## Scale")
            md.append("")
            md.append("How req/s and p99 move with the size of the stores (the same rows as above; "
                      "each daemon holds the given number of 60-byte objects, the caller's answer "
                      "carries both stores).")
            md.append("")
            if self.plot(points, self.png):
                md.append("![req/s and p99 against the objects in each store](%s)"
                          % os.path.basename(self.png))
                md.append("")
            md.append("| " + " | ".join(shead) + " |")
            md.append("|" + "|".join("---" for _ in shead) + "|")
            for l in slines:
                md.append("| " + " | ".join(l) + " |")
            md.append("")
        md.append("## Machine")
        md.append("")
        md.append("| | |")
        md.append("|---|---|")
        for k, label in (("nproc", "CPUs (nproc)"), ("cpu", "CPU model"), ("mem", "memory"),
                         ("kernel", "kernel"), ("date", "date"), ("wrk", "wrk"), ("nginx", "nginx"),
                         ("libmicrohttpd", "libmicrohttpd"), ("jansson", "jansson"),
                         ("libcurl", "libcurl"), ("cc", "compiler"), ("commit", "commit")):
            md.append("| %s | %s |" % (label, m[k]))
        md.append("| run time | %.0f s |" % elapsed)
        md.append("| CPU steal during the run | %.1f%% |" % (getattr(self, "steal", 0.0) * 100))
        md.append("| load average at the start | %s |" % " ".join(getattr(self, "load0", [])))
        md.append("")
        md.append("## Details")
        md.append("")
        md.append("Answer sizes (body bytes, identical for daemon and nginx): " + ", ".join(
            "%s %s" % (k, "{:,}".format(v)) for k, v in self.bodies.items()) + ". "
                  "Headers differ: the daemons send Date, Content-Type, X-Request-Id and "
                  "Content-Length; nginx sends Server, Date, Content-Type, Content-Length, "
                  "Last-Modified, Connection and Accept-Ranges.")
        if self.xray_counts:
            md.append("")
            md.append("X-Ray rows: the traced daemons sent every segment (their /metrics after "
                      "the rows): " + ", ".join(
                          "%s %s sent, %d dropped" % (k, "{:,}".format(v[0]), v[1])
                          for k, v in self.xray_counts.items()) + ".")
        md.append("")
        md.append("Per round (req/s, p50 / p99 in ms), daemon then nginx:")
        md.append("")
        for r in self.rows:
            md.append("- %s: daemon %s; nginx %s; ratio per round %s" % (
                r["label"], rounds(r["d"]["runs"]), rounds(r["n"]["runs"]),
                ", ".join("%.2f" % x for x in r["paired"])))
            if "overhead" in r:
                md.append("  - cost of %s per round (1 - its req/s / the row above's, measured "
                          "back to back%s): %s" % (
                              r["overhead_what"],
                              "; the first %d rounds above, then %d of %d s" % (
                                  REPS, len(r["overhead_rounds"]) - REPS, PAIRED_SECS)
                              if len(r["overhead_rounds"]) > REPS else "",
                              ", ".join("%.0f%%" % (x * 100) for x in r["overhead_rounds"])))
        md.append("")
        if hasattr(self, "mem"):
            a = self.mem.get("after_get_big", {})
            md.append("Memory: VmRSS from /proc/PID/status, idle right after start and after %s "
                      "POSTs of 60-byte objects to each daemon. After the %s-object GET workload the "
                      "responder's VmRSS was %.1f MiB (peak VmHWM %.1f MiB, serving %d connections "
                      "answers of %.1f MiB each)." % (
                          "{:,}".format(BIG), "{:,}".format(BIG), a.get("VmRSS", 0) / MIB,
                          a.get("VmHWM", 0) / MIB, CONNS, self.bodies.get("get100k", 0) / MIB))
            md.append("")
        md.append("Limits for the run: STORE_MAX_ITEMS=%s, STORE_MAX_BYTES=%s (the POST "
                  "workloads grow the store by one object per request), ANSWER_MEMORY_MAX_BYTES=%s "
                  "(32 answers of 12 MB in flight at %s + %s objects); the caller of the %s-object "
                  "pair has UPSTREAM_TIMEOUT_MS=%s. THREADS is the default (number of CPUs)." % (
                      DAEMON_ENV["STORE_MAX_ITEMS"], DAEMON_ENV["STORE_MAX_BYTES"],
                      DAEMON_ENV["ANSWER_MEMORY_MAX_BYTES"], "{:,}".format(BIG),
                      "{:,}".format(BIG), "{:,}".format(BIG), BIG_CALLER_ENV["UPSTREAM_TIMEOUT_MS"]))
        md.append("")
        if self.odd or self.failed:
            md.append("Notes:")
            md.append("")
            for o in self.odd:
                md.append("- " + o)
            for f in self.failed:
                md.append("- FAILED: " + f)
            md.append("")
        return "\n".join(md)


def cpu_times():
    with open("/proc/stat") as f:
        return [int(x) for x in f.readline().split()[1:]]


def steal_share(a, b):
    d = [y - x for x, y in zip(a, b)]
    total = sum(d[:8])
    return d[7] / total if total > 0 and len(d) > 7 else 0.0


def fmt_ms(v):
    return "%.2f ms" % v if v < 10 else "%.1f ms" % v


def rounds(runs):
    return "; ".join("%.0f (%s / %s)" % (r["rps"], fmt_num(r["p50"]), fmt_num(r["p99"])) for r in runs)


def fmt_num(v):
    return "%.2f" % v if v < 10 else "%.0f" % v


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", required=True, help="directory holding caller and responder")
    ap.add_argument("--tmp", required=True, help="scratch directory (removed by run.sh)")
    ap.add_argument("--out", default=os.path.join(REPO, "BENCH.md"))
    args = ap.parse_args()

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)

    def on_alarm(_signum, _frame):
        raise Deadline()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(DEADLINE_S)

    if ONLY - WORKLOADS:
        log("BENCH_ONLY: unknown %s (known: %s)" % (", ".join(sorted(ONLY - WORKLOADS)),
                                                     ", ".join(sorted(WORKLOADS))))
        return 1
    for tool in ("wrk", "nginx", "curl", "openssl"):
        if not shutil.which(tool) and not os.path.exists("/usr/sbin/" + tool):
            log("%s is missing (bench/run.sh installs it)" % tool)
            return 1

    b = Bench(args)
    # The scale curve's PNG sits beside BENCH.md; a partial run draws it in the scratch directory.
    b.png = os.path.join(PARTIAL_OUT if ONLY and PARTIAL_OUT else
                         os.path.dirname(os.path.abspath(args.out)) if not ONLY else args.tmp,
                         "BENCH-scale.png")
    t0 = time.time()
    cpu0 = cpu_times()
    with open("/proc/loadavg") as f:
        b.load0 = f.read().split()[:3]
    if float(b.load0[0]) > 0.5:
        b.odd.append("the machine was busy when the run started (load average %s): other work "
                     "shares the CPUs, so the figures are noisier than on an idle machine"
                     % " ".join(b.load0))
    status = 0
    try:
        b.nginx = Nginx(b.procs, b.tmp)
        b.proxy = Nginx(b.procs, b.tmp, "nginx-proxy", "nginx-proxy.conf.in", b.nginx.port)
        b.phase_small()
        b.phase_tracing()
        b.phase_1k()
        b.phase_mid()
        b.phase_big()
        b.phase_startup()
        b.images()
    except BenchError as e:
        b.failed.append(str(e))
    except Deadline:
        b.failed.append("stopped after the %d s deadline (BENCH_DEADLINE_S)" % DEADLINE_S)
    except KeyboardInterrupt:
        b.failed.append("interrupted")
    except SystemExit as e:
        b.failed.append("stopped by a signal (status %s)" % e.code)
    finally:
        signal.alarm(0)
        b.procs.stop_all()
    elapsed = time.time() - t0
    b.steal = steal_share(cpu0, cpu_times())
    if b.steal > 0.02:
        b.odd.append("the hypervisor took %.0f%% of the CPU time during the run (steal in /proc/stat)"
                     % (b.steal * 100))
    md = b.report(elapsed)
    if b.failed:
        status = 1
        log("something failed to run; %s left unchanged. The end of the wrk output:" % args.out)
        try:
            with open(b.wrklog) as f:
                sys.stderr.write(f.read()[-4000:])
        except OSError:
            pass
    elif ONLY:
        log("BENCH_ONLY=%s: a partial run; %s left unchanged" % (",".join(sorted(ONLY)), args.out))
        if PARTIAL_OUT:
            with open(os.path.join(PARTIAL_OUT, "BENCH.md"), "w") as f:
                f.write(md + "\n")
            log("wrote the partial run to %s" % PARTIAL_OUT)
    else:
        with open(args.out, "w") as f:
            f.write(md + "\n")
        log("wrote %s" % args.out)
    return status


if __name__ == "__main__":
    sys.exit(main())
