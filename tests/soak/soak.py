#!/usr/bin/python3
"""Soak test: mixed load on the caller and the responder while the responder is
killed (SIGKILL) and restarted on the same port every few seconds.

Starts bin/responder and bin/caller (RESPONDER_URL pointing at the responder) on
free loopback ports from BIN_DIR (default <repo>/bin), runs several load threads
for --seconds (POST /data to both, GET / on the caller, GET /data on both) and
checks:
  - the caller never answers 5xx and never fails at the transport level;
  - no caller answer takes longer than UPSTREAM_TIMEOUT_MS + slack;
  - every GET / answer is 200 with the documented shape (a list, or the
    "Failed to reach Service B: ..." error while the responder is down);
  - every object the caller acknowledged with 201 is in its GET /data at the end,
    exactly once and byte for byte as sent;
  - the responder fails only while it is down (connection refused or reset
    around a kill is expected, not a failure), never answers 5xx, and keeps every
    object it acknowledged since its last restart;
  - both daemons exit 0 on SIGTERM at the end, with no sanitizer report.
Prints requests served, errors by kind, the longest answers, and as its last line
"N passed, N failed"; exits 1 when a check failed.

Standard library only; all traffic to 127.0.0.1; every loop bounded in time.
Only the processes this script starts are signalled, by PID.
"""

import argparse
import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parents[2]
UPSTREAM_PREFIX = "Failed to reach Service B: "
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer",
                   "WARNING: ThreadSanitizer")


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def request(port, method, path, body=None, headers=None, timeout=10.0):
    """One request on a fresh connection: (status, body bytes). Raises OSError/HTTPException."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def error_kind(e):
    if isinstance(e, ConnectionRefusedError):
        return "connection refused"
    if isinstance(e, ConnectionResetError):
        return "connection reset"
    if isinstance(e, (socket.timeout, TimeoutError)):
        return "client timeout"
    if isinstance(e, http.client.RemoteDisconnected):
        return "closed without answer"
    if isinstance(e, BrokenPipeError):
        return "broken pipe"
    if isinstance(e, http.client.HTTPException):
        return f"bad HTTP ({type(e).__name__})"
    return f"{type(e).__name__}"


class Proc:
    """A daemon process started by this script (stopped only by its PID)."""

    def __init__(self, name, bin_dir, port, env, logdir, generation=0):
        self.name = name
        self.port = port
        self.out = Path(logdir) / f"{name}-{generation}.stdout"
        self.err = Path(logdir) / f"{name}-{generation}.stderr"
        full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C",
                    "PORT": str(port)}
        for k, v in os.environ.items():
            if k.startswith(("ASAN_", "UBSAN_", "LSAN_", "TSAN_")):
                full_env[k] = v
        full_env.update({k: str(v) for k, v in env.items()})
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.proc = subprocess.Popen([str(Path(bin_dir) / name)], env=full_env,
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                         cwd=str(logdir))

    @property
    def pid(self):
        return self.proc.pid

    def wait_ready(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                if request(self.port, "GET", "/health", timeout=0.5)[0] == 200:
                    return True
            except (OSError, http.client.HTTPException):
                pass
            time.sleep(0.02)
        return False

    def kill(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def terminate(self, timeout=15.0):
        """SIGTERM by PID; SIGKILL after timeout. Returns (status, killed)."""
        if self.proc.poll() is not None:
            return self.proc.returncode, False
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout), False
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            return self.proc.wait(timeout=10), True

    def stderr(self):
        try:
            return self.err.read_text(errors="replace")
        except OSError:
            return ""


class Soak:
    def __init__(self, args):
        self.args = args
        self.deadline_s = args.upstream_timeout_ms / 1000 + args.slack
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.served = Counter()                   # (daemon, op) -> answers received
        self.statuses = Counter()                 # (daemon, op, status)
        self.errors = Counter()                   # (daemon, op, kind) -> count
        self.failures = defaultdict(list)         # check name -> examples
        self.upstream = Counter()                 # GET / responder_service_data kinds
        self.longest = defaultdict(lambda: (0.0, ""))   # daemon -> (seconds, what)
        self.caller_acked = {}                    # id -> exact bytes sent
        self.responder_acked = []                 # (ack time, id, bytes)
        self.down_windows = []                    # [start, end] when the responder was not up
        self.down_since = None                    # start of the current down window
        self.kills = 0
        self.restart_failures = 0
        self.last_kill_at = 0.0

    # ---- bookkeeping -------------------------------------------------------

    def fail(self, check, example):
        with self.lock:
            if len(self.failures[check]) < 10:
                self.failures[check].append(example)
            else:
                self.failures[check].append(None)

    def note(self, daemon, op, elapsed, status=None, kind=None):
        with self.lock:
            if status is not None:
                self.served[(daemon, op)] += 1
                self.statuses[(daemon, op, status)] += 1
            if kind is not None:
                self.errors[(daemon, op, kind)] += 1
            if elapsed > self.longest[daemon][0]:
                self.longest[daemon] = (elapsed, f"{op} -> {status if status else kind}")

    def responder_was_down(self, t0, t1):
        """True when [t0, t1] touches a window in which the responder was not serving."""
        with self.lock:
            if self.down_since is not None and t1 >= self.down_since:
                return True
            return any(t1 >= a - 0.05 and t0 <= b + 0.05 for a, b in self.down_windows)

    # ---- processes ---------------------------------------------------------

    def start(self):
        a = self.args
        self.logdir = Path(a.logdir or tempfile.mkdtemp(prefix="soak-"))
        self.logdir.mkdir(parents=True, exist_ok=True)
        self.generation = 0
        for attempt in range(3):
            self.rport = free_port()
            self.responder = Proc("responder", a.bin_dir, self.rport, {}, self.logdir, 0)
            if self.responder.wait_ready():
                break
            self.responder.kill()
        else:
            raise SystemExit(f"responder did not start: {self.responder.stderr()[-2000:]}")
        self.responder_started_at = time.monotonic()
        for attempt in range(3):
            self.cport = free_port()
            self.caller = Proc("caller", a.bin_dir, self.cport,
                               {"RESPONDER_URL": f"http://{HOST}:{self.rport}",
                                "UPSTREAM_TIMEOUT_MS": a.upstream_timeout_ms,
                                "BREAKER_COOLDOWN_MS": a.breaker_cooldown_ms},
                               self.logdir, 0)
            if self.caller.wait_ready():
                break
            self.caller.terminate()
        else:
            raise SystemExit(f"caller did not start: {self.caller.stderr()[-2000:]}")
        self.dead_responders = []

    def killer(self):
        """SIGKILLs the responder every --kill-every seconds and restarts it on the same port."""
        rng = random.Random(self.args.seed + 1)
        while not self.stop.wait(self.args.kill_every * rng.uniform(0.7, 1.3)):
            with self.lock:
                self.down_since = time.monotonic()
            self.responder.kill()
            self.kills += 1
            self.last_kill_at = time.monotonic()
            self.dead_responders.append(self.responder)
            self.stop.wait(rng.uniform(0.1, self.args.down_for))
            self.generation += 1
            restarted = False
            for attempt in range(20):          # the port may take a moment to be free again
                self.responder = Proc("responder", self.args.bin_dir, self.rport, {},
                                      self.logdir, self.generation)
                if self.responder.wait_ready(timeout=5):
                    restarted = True
                    break
                self.responder.kill()
                self.dead_responders.append(self.responder)
                time.sleep(0.1)
            now = time.monotonic()
            with self.lock:
                self.down_windows.append((self.down_since, now))
                self.down_since = None
                self.responder_started_at = now
            if not restarted:
                self.restart_failures += 1
                self.fail("responder restarts on the same port", "could not restart")
                self.stop.set()
                return

    # ---- load --------------------------------------------------------------

    def worker(self, wid):
        rng = random.Random(self.args.seed * 1000 + wid)
        ops = [self.post_caller, self.post_responder, self.get_root,
               self.get_data_caller, self.get_data_responder]
        weights = [3, 2, 3, 1, 1]
        n = 0
        while not self.stop.is_set():
            n += 1
            op = rng.choices(ops, weights)[0]
            op(wid, n)
            if self.args.pause:
                time.sleep(self.args.pause)

    def call(self, daemon, op, method, path, body=None):
        """Runs a request; returns (status, body, t0, t1) or (None, kind, t0, t1)."""
        port = self.cport if daemon == "caller" else self.rport
        headers = {"Content-Type": "application/json"} if body is not None else {}
        t0 = time.monotonic()
        try:
            status, data = request(port, method, path, body, headers,
                                   timeout=self.deadline_s + 5)
        except (OSError, http.client.HTTPException) as e:
            t1 = time.monotonic()
            return None, error_kind(e), t0, t1
        return status, data, t0, time.monotonic()

    def check_caller(self, op, status, data, t0, t1):
        elapsed = t1 - t0
        if status is None:
            self.note("caller", op, elapsed, kind=data)
            self.fail("caller never fails at the transport level", f"{op}: {data}")
            return False
        self.note("caller", op, elapsed, status=status)
        if status >= 500:
            self.fail("caller never answers 5xx", f"{op}: {status} {data[:200]!r}")
        if elapsed > self.deadline_s:
            self.fail(f"caller answers within UPSTREAM_TIMEOUT_MS + {self.args.slack} s",
                      f"{op}: {elapsed:.2f} s")
        return True

    def post_caller(self, wid, n):
        oid = f"c-{wid}-{n}"
        body = json.dumps({"id": oid, "w": wid, "n": n, "pad": "x" * (n % 50)},
                          separators=(",", ":")).encode()
        status, data, t0, t1 = self.call("caller", "POST /data", "POST", "/data", body)
        if not self.check_caller("POST /data", status, data, t0, t1):
            return
        if status == 201:
            with self.lock:
                self.caller_acked[oid] = body
        else:
            self.fail("caller stores every valid object (201)", f"{status} {data[:200]!r}")

    def post_responder(self, wid, n):
        oid = f"r-{wid}-{n}"
        body = json.dumps({"id": oid, "w": wid, "n": n}, separators=(",", ":")).encode()
        status, data, t0, t1 = self.call("responder", "POST /data", "POST", "/data", body)
        self.check_responder("POST /data", status, data, t0, t1)
        if status == 201:
            with self.lock:
                self.responder_acked.append((t1, oid, body))
        elif status is not None:
            self.fail("responder stores every valid object (201)", f"{status} {data[:200]!r}")

    def get_root(self, wid, n):
        status, data, t0, t1 = self.call("caller", "GET /", "GET", "/")
        if not self.check_caller("GET /", status, data, t0, t1):
            return
        if status != 200:
            self.fail("GET / answers 200 with the documented shape", f"{status} {data[:200]!r}")
            return
        try:
            doc = json.loads(data)
            r = doc["responder_service_data"]
            assert isinstance(doc["caller_service_data"], list)
            if isinstance(r, list):
                kind = "ok"
            else:
                assert set(r) == {"error"} and r["error"].startswith(UPSTREAM_PREFIX), r
                reason = r["error"][len(UPSTREAM_PREFIX):]
                kind = ("refused (connect)" if "connect" in reason.lower()
                        else "breaker open" if "breaker" in reason
                        else "timed out" if "timed out" in reason
                        else "empty reply / reset" if ("Empty reply" in reason or
                                                       "reset" in reason.lower() or
                                                       "Recv failure" in reason)
                        else "HTTP status" if reason.startswith("HTTP ")
                        else "other: " + reason[:60])
                if kind not in ("refused (connect)", "breaker open", "empty reply / reset"):
                    # not a down-responder symptom: only acceptable around a kill
                    if not self.responder_was_down(t0 - 0.5, t1):
                        self.fail("GET / errors only while the responder is down",
                                  f"{reason[:200]}")
        except (ValueError, KeyError, TypeError, AssertionError) as e:
            self.fail("GET / answers 200 with the documented shape",
                      f"{type(e).__name__}: {data[:300]!r}")
            return
        with self.lock:
            self.upstream[kind] += 1

    def get_data_caller(self, wid, n):
        status, data, t0, t1 = self.call("caller", "GET /data", "GET", "/data")
        if self.check_caller("GET /data", status, data, t0, t1) and status != 200:
            self.fail("GET /data answers 200", f"caller {status}")

    def get_data_responder(self, wid, n):
        status, data, t0, t1 = self.call("responder", "GET /data", "GET", "/data")
        self.check_responder("GET /data", status, data, t0, t1)
        if status is not None and status != 200:
            self.fail("GET /data answers 200", f"responder {status}")

    def check_responder(self, op, status, data, t0, t1):
        if status is None:
            if self.responder_was_down(t0, t1):
                self.note("responder", op, t1 - t0, kind=data + " (responder down: expected)")
            else:
                self.note("responder", op, t1 - t0, kind=data + " (responder up: UNEXPECTED)")
                self.fail("responder fails only while it is down", f"{op}: {data}")
            return
        self.note("responder", op, t1 - t0, status=status)
        if status >= 500:
            self.fail("responder never answers 5xx", f"{op}: {status} {data[:200]!r}")

    # ---- the run -----------------------------------------------------------

    def run(self):
        a = self.args
        self.start()
        print(f"soak: {a.seconds} s, {a.threads} threads, responder on {self.rport} "
              f"(SIGKILL every ~{a.kill_every} s), caller on {self.cport}, "
              f"BIN_DIR={a.bin_dir}, logs in {self.logdir}", flush=True)
        threads = [threading.Thread(target=self.worker, args=(i,), daemon=True)
                   for i in range(a.threads)]
        killer = threading.Thread(target=self.killer, daemon=True)
        started = time.monotonic()
        for t in threads:
            t.start()
        killer.start()
        next_report = started + 10
        while time.monotonic() - started < a.seconds and not self.stop.is_set():
            time.sleep(0.2)
            if time.monotonic() >= next_report:
                next_report += 10
                with self.lock:
                    total = sum(self.served.values())
                print(f"  {time.monotonic() - started:5.0f} s: {total} answers, "
                      f"{self.kills} kills", flush=True)
            if self.caller.proc.poll() is not None:
                self.fail("caller stays up", f"exited with {self.caller.proc.returncode}")
                break
        self.stop.set()
        for t in threads:
            t.join(timeout=self.deadline_s + 10)
        killer.join(timeout=30)
        self.duration = time.monotonic() - started
        return self.final_checks()

    def final_checks(self):
        results = []
        alive = self.caller.proc.poll() is None
        # every acknowledged caller object is stored, once, byte for byte
        missing, dup, stored_n = [], [], 0
        if alive:
            try:
                status, data = request(self.cport, "GET", "/data", timeout=30)
                inner = data[len(b'{"stored_data":['):-2]
                stored = Counter()
                items = json.loads(data)["stored_data"]
                stored_n = len(items)
                raw = {}
                for obj in items:
                    if isinstance(obj, dict) and isinstance(obj.get("id"), str):
                        stored[obj["id"]] += 1
                        raw[obj["id"]] = json.dumps(obj, separators=(",", ":")).encode()
                for oid, body in self.caller_acked.items():
                    if stored[oid] == 0:
                        missing.append(oid)
                    elif stored[oid] > 1:
                        dup.append(oid)
                    elif body not in inner:
                        missing.append(oid + " (altered)")
            except (OSError, http.client.HTTPException, ValueError) as e:
                missing.append(f"GET /data failed: {e}")
        # responder: what it acknowledged since its last restart is there
        r_missing = []
        try:
            status, data = request(self.rport, "GET", "/data", timeout=30)
            ids = {o.get("id") for o in json.loads(data)["stored_data"] if isinstance(o, dict)}
            since = self.responder_started_at
            for t, oid, _ in self.responder_acked:
                if t > since + 0.05 and oid not in ids:
                    r_missing.append(oid)
        except (OSError, http.client.HTTPException, ValueError) as e:
            r_missing.append(f"GET /data failed: {e}")

        # stop both; each must exit 0 on SIGTERM
        c_rc, c_killed = self.caller.terminate()
        r_rc, r_killed = self.responder.terminate()
        sanitizer = []
        for p in [self.caller, self.responder] + self.dead_responders:
            err = p.stderr()
            if any(m in err for m in SANITIZER_MARKS):
                sanitizer.append(f"{p.err}: {err[-3000:]}")

        def check(name, ok, detail=""):
            results.append((name, ok, detail))

        f = self.failures
        check("responder was killed and restarted", self.kills >= 1 and self.restart_failures == 0,
              f"{self.kills} kills, {self.restart_failures} failed restarts")
        check("caller stays up", alive and not f.get("caller stays up"))
        for name in ["caller never fails at the transport level", "caller never answers 5xx",
                     f"caller answers within UPSTREAM_TIMEOUT_MS + {self.args.slack} s",
                     "caller stores every valid object (201)",
                     "GET / answers 200 with the documented shape",
                     "GET / errors only while the responder is down",
                     "GET /data answers 200",
                     "responder fails only while it is down", "responder never answers 5xx"]:
            ex = [e for e in f.get(name, []) if e is not None]
            n = len(f.get(name, []))
            check(name, n == 0, f"{n} times, e.g. {ex[:3]}" if n else "")
        check("caller acknowledged objects all stored, once, as sent",
              alive and not missing and not dup,
              f"{len(self.caller_acked)} acknowledged, {stored_n} stored; missing {missing[:5]}"
              f"{' (+%d)' % (len(missing) - 5) if len(missing) > 5 else ''}; duplicated {dup[:5]}")
        check("responder keeps what it acknowledged since its last restart", not r_missing,
              f"missing {r_missing[:5]}" if r_missing else "")
        check("caller exits 0 on SIGTERM", c_rc == 0 and not c_killed, f"status {c_rc}")
        check("responder exits 0 on SIGTERM", r_rc == 0 and not r_killed, f"status {r_rc}")
        check("no sanitizer report", not sanitizer, "\n".join(sanitizer)[:6000])
        self.report(results)
        return results

    def report(self, results):
        print(f"\n== soak report ({self.duration:.0f} s, {self.kills} responder kills)")
        total = sum(self.served.values())
        print(f"answers received: {total} ({total / max(self.duration, 1):.0f}/s)")
        for (d, op), n in sorted(self.served.items()):
            codes = ", ".join(f"{s}: {c}" for (dd, oo, s), c in sorted(self.statuses.items())
                              if dd == d and oo == op)
            print(f"  {d:9} {op:10} {n:7}  ({codes})")
        print("errors by kind:" + ("" if self.errors else " none"))
        for (d, op, kind), n in sorted(self.errors.items()):
            print(f"  {d:9} {op:10} {kind}: {n}")
        print("GET / responder_service_data:")
        for kind, n in self.upstream.most_common():
            print(f"  {kind}: {n}")
        for d, (s, what) in sorted(self.longest.items()):
            print(f"longest {d} answer: {s * 1000:.0f} ms ({what})")
        print(f"caller objects acknowledged: {len(self.caller_acked)}; responder objects "
              f"acknowledged: {len(self.responder_acked)}")
        print()
        for name, ok, detail in results:
            print(f"{'PASS' if ok else 'FAIL'}  {name}{': ' + detail if detail and not ok else ''}"
                  f"{' (' + detail + ')' if detail and ok else ''}")
        passed = sum(1 for _, ok, _ in results if ok)
        print(f"{passed} passed, {len(results) - passed} failed", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=120, help="load duration (default 120)")
    p.add_argument("--threads", type=int, default=6, help="load threads (default 6)")
    p.add_argument("--kill-every", type=float, default=3.0,
                   help="seconds between responder kills, +-30%% (default 3)")
    p.add_argument("--down-for", type=float, default=1.0,
                   help="longest pause before restarting the responder (default 1 s)")
    p.add_argument("--upstream-timeout-ms", type=int, default=2000,
                   help="caller's UPSTREAM_TIMEOUT_MS (default 2000)")
    p.add_argument("--breaker-cooldown-ms", type=int, default=1000,
                   help="caller's BREAKER_COOLDOWN_MS (default 1000, shorter than the daemon's "
                        "5000 so that more calls reach the restarting responder)")
    p.add_argument("--slack", type=float, default=1.0,
                   help="seconds a caller answer may exceed UPSTREAM_TIMEOUT_MS (default 1)")
    p.add_argument("--pause", type=float, default=0.0, help="sleep between a thread's requests")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--bin-dir", default=os.environ.get("BIN_DIR") or str(REPO / "bin"))
    p.add_argument("--logdir", default=None, help="daemon logs (default: a new temp dir)")
    args = p.parse_args()
    if args.seconds <= 0 or args.threads < 1 or args.kill_every <= 0:
        p.error("--seconds, --threads and --kill-every must be positive")
    for name in ("caller", "responder"):
        path = Path(args.bin_dir) / name
        if not (path.is_file() and os.access(path, os.X_OK)):
            print(f"soak: {path} not found (run `make`, or set BIN_DIR)", file=sys.stderr)
            print("0 passed, 1 failed")
            return 2
    soak = Soak(args)
    try:
        results = soak.run()
    except BaseException:
        soak.stop.set()
        for p_ in [getattr(soak, "caller", None), getattr(soak, "responder", None)]:
            if p_ is not None and p_.proc.poll() is None:
                p_.kill()
        raise
    return 0 if results and all(ok for _, ok, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
