#!/usr/bin/python3
"""Connection floods against a daemon and against nginx, side by side (a script; not run in CI).

Usage (from the repository, after `make`):
  /usr/bin/python3 bench/flood.py                      # every attack, FLOOD_SECONDS (30) each
  FLOOD_SECONDS=10 /usr/bin/python3 bench/flood.py --attacks slowloris,h2load
  /usr/bin/python3 bench/flood.py --bin /some/bin --daemon caller --out /tmp/flood.md

Attacks (tests/hostile/flood_attacks.py, the same code as tests/hostile/test_hostile_flood.py):
  idle_one, idle_many, partial_line, partial_headers, slowloris, slow_body, slow_read, h2load.
Each runs FLOOD_SECONDS against a fresh daemon with default settings (the responder, or --daemon;
slow_read always hits the caller's GET / with a responder holding 1,000 objects of 1 KiB), then
against a fresh nginx (bench/nginx.conf.in, started the way bench/bench.py starts it, serving
static files: /health, a small /data, and for slow_read / the same bytes as the caller's GET /).
Meanwhile the Prober asks GET /health (from 127.0.0.1) and POST + GET /data (from 127.0.1.1) once
a second with a 1 s timeout; nginx cannot store, so its probes are GETs only. Prints one markdown
table per attack (probes ok/total, ok within 1 s, worst latency, max RSS, the attack's own
figures; for h2load the slowest time to first byte and connect), and writes them to --out if
given. Takes about 2 x (FLOOD_SECONDS + 5) s per attack: about 9 minutes for all at 30 s.

Installs slowhttptest, nghttp2-client (h2load), nginx and curl when missing (through
scripts/install-deps.sh, as root or with sudo). The daemons are copied into a temporary directory
first, so a rebuild during the run cannot change them. Every process started is stopped by its PID.
Only 127.0.0.0/8 traffic. Exit status 0 when everything ran, 1 when something failed to run.
"""

import argparse
import http.client
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "hostile"))

import bench  # noqa: E402  (bench/bench.py: Procs, Daemon, Nginx)
import flood_attacks as fa  # noqa: E402

# bench.py's daemons get huge store limits; these attacks want the defaults back.
DEFAULTS = {"STORE_MAX_ITEMS": "1000000", "STORE_MAX_BYTES": "67108864",
            "DRAIN_TIMEOUT_MS": "10000"}
ORDER = ["idle_one", "idle_many", "partial_line", "partial_headers", "slowloris", "slow_body",
         "slow_read", "h2load"]
MiB = 1024 * 1024


def log(msg):
    print("flood: " + msg, file=sys.stderr, flush=True)


def kib_object(i):
    head = b'{"id":%d,"pad":"' % i
    return head + b"x" * (1024 - len(head) - 2) + b'"}'


def post_many(port, objects):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        for o in objects:
            conn.request("POST", "/data", body=o, headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            r.read()
            if r.status != 201:
                raise bench.BenchError("POST /data answered %d" % r.status)
    finally:
        conn.close()


def get(port, path):
    r = fa.http_request(port, "GET", path, timeout=30)
    if r.status != 200:
        raise bench.BenchError("GET %s answered %d" % (path, r.status))
    return r.body


SEED = [b'{"key":"value"}', b'{"id":"seed-1","n":42}']


class Run:
    def __init__(self, args, tmp):
        self.args, self.tmp = args, tmp
        self.procs = bench.Procs(os.path.join(tmp, "pids"))
        self.bindir = os.path.join(tmp, "bin")
        os.makedirs(self.bindir)
        for name in ("caller", "responder"):
            src = os.path.join(args.bin, name)
            if not os.access(src, os.X_OK):
                raise bench.BenchError("%s is missing: run `make` (or pass --bin)" % src)
            shutil.copy2(src, self.bindir)

    def daemon(self, kind, extra=None):
        env = dict(DEFAULTS)
        env.update(extra or {})
        return bench.Daemon(self.procs, self.tmp, self.bindir, kind, kind, log_level="info",
                            extra_env=env)

    def nginx(self, files):
        n = bench.Nginx(self.procs, self.tmp)
        for name, data in files.items():
            path = os.path.join(n.prefix, "www", name)
            with open(path, "wb") as f:
                f.write(data)
            os.chmod(path, 0o644)
            if getattr(n, "uid", None) is not None:
                os.chown(path, n.uid, n.gid)
        return n

    def one(self, attack, seconds):
        """The attack on the daemon, then on nginx; returns [(target, report)]."""
        out = []
        kind = "caller" if attack == "slow_read" else self.args.daemon
        upstream = d = None
        try:
            if kind == "caller":
                upstream = self.daemon("responder")
                if attack == "slow_read":
                    post_many(upstream.port, [kib_object(i) for i in range(1000)])
                d = self.daemon("caller", {"RESPONDER_URL": upstream.url})
            else:
                d = self.daemon(kind)
            post_many(d.port, SEED)
            data = get(d.port, "/data")
            index = get(d.port, "/") if attack == "slow_read" else None
            log("%s on the %s (%d s)" % (attack, kind, seconds))
            rep = fa.attack_with_probes(attack, d.port, seconds, pid=d.p.pid)
            rep["alive"] = d.p.poll() is None
            out.append((kind, rep))
            log("  " + fa.summary_line(rep))
        finally:
            for p in (d, upstream):
                if p is not None:
                    p.stop()
        files = {"health": b'{"status":"ok"}', "data": data}
        if index is not None:
            files["index.html"] = index
        n = self.nginx(files)
        try:
            log("%s on nginx (%d s)" % (attack, seconds))
            rep = fa.attack_with_probes(attack, n.port, seconds, pid=n.p.pid, children=True,
                                        post=False, expect_data=data, daemon_metrics=False)
            rep["alive"] = n.p.poll() is None
            out.append(("nginx", rep))
            log("  " + fa.summary_line(rep))
        finally:
            self.procs.stop(n.p)
        return out


def attack_figures(res):
    """The attack's own figures, in a few words."""
    if res.get("attack") == "h2load":
        if "ttfb" not in res:
            return "h2load failed: %s" % res.get("errors")
        st = res.get("status", {})
        return ("slowest TTFB %.2f s, slowest connect %.3f s, %d requests (%s), "
                "per-client req/s min %.2f" % (
                    res["ttfb"]["max"], res["connect"]["max"], res["requests"]["done"],
                    ", ".join("%d %s" % (v, k) for k, v in st.items() if v),
                    res.get("rps_per_client", {}).get("min", 0.0)))
    if res.get("attack", "").startswith("slowhttptest"):
        return ("tool's probe: unavailable %d of %d s; max connected %d, closed by server %d, "
                "runs %d" % (res["seconds_unavailable"], res["seconds_observed"],
                             res["max_connected"], res["closed"], res["runs"]))
    answered = ", ".join("%s: %d" % kv for kv in sorted(res.get("answered", {}).items()))
    return ("held max %d, closed by server %d, reset %d, connect timeouts %d%s" % (
        res.get("held_max", 0), res.get("closed_by_server", 0), res.get("reset_by_server", 0),
        res.get("connect_timeouts", 0), ("; answers " + answered) if answered else ""))


def table(attack, rows, seconds):
    lines = ["### %s: %s, %d s" % (attack, fa.ATTACKS[attack][1], seconds), "",
             "| target | probes ok/total | ok within 1 s | worst latency | max RSS | "
             "accepts at once after | attack |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for target, rep in rows:
        p = rep["probes"]
        lines.append("| %s | %d/%d | %.1f%% | %.2f s | %s | %s | %s |" % (
            target + ("" if rep.get("alive", True) else " (DIED)"), p["ok"], p["total"],
            100.0 * p["ok_ratio"], p["worst_latency_s"],
            "%.1f MiB" % (rep["rss_max"] / MiB) if rep.get("rss_max") else "-",
            "yes (%.2f s)" % rep["after"]["accept_seconds"] if rep["after"]["accepts_at_once"]
            else "NO (%s)" % rep["after"]["detail"][:60],
            attack_figures(rep["result"])))
    notes = []
    for target, rep in rows:
        kinds = {}
        for f in rep["probes"]["failures"]:
            kinds.setdefault(f.split(" (")[0], 0)
            kinds[f.split(" (")[0]] += 1
        if kinds:
            notes.append("- %s, first failed probes: %s" % (target, "; ".join(
                "%s (x%d)" % kv for kv in kinds.items())))
    if notes:
        lines += [""] + notes
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(REPO, "bin"),
                    help="directory holding caller and responder (default bin/)")
    ap.add_argument("--attacks", default=",".join(ORDER),
                    help="comma-separated, from: " + ", ".join(ORDER))
    ap.add_argument("--seconds", type=int, default=fa.FLOOD_SECONDS,
                    help="per attack and target (default FLOOD_SECONDS, else 30)")
    ap.add_argument("--daemon", choices=("responder", "caller"), default="responder",
                    help="the daemon for every attack but slow_read (default responder)")
    ap.add_argument("--out", help="also write the tables to this markdown file")
    args = ap.parse_args()
    attacks = [a.strip() for a in args.attacks.split(",") if a.strip()]
    unknown = [a for a in attacks if a not in fa.ATTACKS]
    if unknown:
        log("unknown attack(s): %s (known: %s)" % (", ".join(unknown), ", ".join(ORDER)))
        return 1

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    if not all(shutil.which(t) or os.path.exists("/usr/sbin/" + t)
               for t in ("slowhttptest", "h2load", "nginx", "curl")):
        rc = subprocess.call([os.path.join(REPO, "scripts", "install-deps.sh"), "slowhttptest",
                              "nghttp2-client", "nginx", "curl", "python3-pytest"])
        if rc != 0:
            log("could not install the tools (see above)")
            return 1
    os.environ["PATH"] = os.environ.get("PATH", "/usr/bin:/bin") + ":/usr/sbin"
    have = fa.raise_nofile(fa.NOFILE)   # the daemons, nginx and the tools inherit it
    if have < 8192:
        log("RLIMIT_NOFILE is only %d; the 2,000-connection attacks need more" % have)

    tmp = tempfile.mkdtemp(prefix="flood.")
    run = None
    status = 0
    out = ["## Connection floods: daemon vs nginx (%s, %d s per attack, %d cores)\n" % (
        time.strftime("%Y-%m-%d %H:%M"), args.seconds, os.cpu_count() or 0)]
    try:
        run = Run(args, tmp)
        for attack in attacks:
            try:
                rows = run.one(attack, args.seconds)
            except bench.BenchError as e:
                log("%s: %s" % (attack, e))
                status = 1
                continue
            t = table(attack, rows, args.seconds)
            print(t, flush=True)
            out.append(t)
    finally:
        if run is not None:
            run.procs.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    if args.out:
        with open(args.out, "w") as f:
            f.write("\n".join(out))
    return status


if __name__ == "__main__":
    sys.exit(main())
