"""Helpers for the watcher suite: a throwaway nginx splitter, running the watcher, reading its CSV
and summary.

nginx runs from its own prefix in a temporary directory as one process (master_process off: no
workers, so one smooth weighted round robin sees every request, and one PID to stop), the
system's nginx and its configuration untouched. Its access log records each proxied request's
upstream address, so the tests can count what really reached the responders.
"""

import csv
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from blackbox_util import HOST, free_port

REPO = Path(__file__).resolve().parents[2]
WATCH = REPO / "scripts" / "watch-versions.sh"
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
GNUPLOT = shutil.which("gnuplot")
CSV_COLUMNS = ["seq", "t_s", "epoch_s", "window", "category", "http_status", "upstream_version",
               "served_by", "latency_ms", "detail"]

NGINX_CONF = """\
daemon off;
master_process off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 256; }}
http {{
    log_format up '$upstream_addr $status';
    access_log {prefix}/access.log up;
    client_body_temp_path {prefix}/tmp/client_body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    upstream responders {{
{servers}
    }}
    server {{
        listen {host}:{port};
        location / {{
            proxy_pass http://responders;
            # a stopped responder stays an error: no second try on the other one
            proxy_next_upstream off;
            proxy_connect_timeout 1s;
            proxy_read_timeout 2s;
        }}
    }}
}}
"""


class Nginx:
    def __init__(self, prefix, servers):
        """servers: [(port, weight)], weight 0 meaning `down` (in the group, never chosen)."""
        if NGINX is None:
            pytest.fail("nginx not installed (scripts/install-deps.sh installs it)", pytrace=False)
        self.prefix = Path(prefix)
        (self.prefix / "tmp").mkdir(parents=True, exist_ok=True)
        self.servers = servers
        self.port = free_port()
        lines = []
        for port, weight in servers:
            # max_fails=0: a failed server is not taken out, so the split stays the configured one
            opt = "down" if weight == 0 else f"weight={weight} max_fails=0"
            lines.append(f"        server {HOST}:{port} {opt};")
        self.conf = self.prefix / "nginx.conf"
        self.conf.write_text(NGINX_CONF.format(prefix=self.prefix, servers="\n".join(lines),
                                               host=HOST, port=self.port))
        self.proc = None

    @property
    def url(self):
        return f"http://{HOST}:{self.port}"

    def start(self):
        self.err = open(self.prefix / "stderr", "wb")
        self.proc = subprocess.Popen([NGINX, "-p", str(self.prefix), "-c", str(self.conf),
                                      "-e", str(self.prefix / "error.log")],
                                     stdout=subprocess.DEVNULL, stderr=self.err,
                                     stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 5
        while True:
            try:
                socket.create_connection((HOST, self.port), 0.5).close()
                return self
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                log = (self.prefix / "error.log")
                pytest.fail(f"nginx did not start: {(self.prefix / 'stderr').read_text()} "
                            f"{log.read_text() if log.exists() else ''}", pytrace=False)
            time.sleep(0.02)

    def upstream_counts(self):
        """{port: requests proxied to it} from the access log."""
        counts = {}
        path = self.prefix / "access.log"
        if not path.exists():
            return counts
        for line in path.read_text().splitlines():
            m = re.match(r"\S+:(\d+) ", line)
            if m:
                counts[int(m.group(1))] = counts.get(int(m.group(1)), 0) + 1
        return counts

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)      # fast shutdown
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        if getattr(self, "err", None):
            self.err.close()


class Run:
    def __init__(self, proc, out, err, elapsed, csv_path):
        self.rc = proc.returncode
        self.out = out
        self.err = err
        self.elapsed = elapsed
        self.csv_path = csv_path

    def samples(self):
        with open(self.csv_path, newline="") as f:
            rows = list(csv.reader(f))
        assert rows and rows[0] == CSV_COLUMNS, f"CSV header is {rows[:1]}"
        for r in rows[1:]:
            assert len(r) == len(CSV_COLUMNS), f"CSV row with {len(r)} fields: {r}"
        return [dict(zip(CSV_COLUMNS, r)) for r in rows[1:]]

    def summary(self):
        """{category: (samples, share_percent)} from the summary's category table."""
        table = {}
        lines = self.out.splitlines()
        try:
            start = next(i for i, l in enumerate(lines) if l.split()[:3] == ["category", "samples", "share"])
        except StopIteration:
            raise AssertionError(f"no category table in the output:\n{self.out}")
        for line in lines[start + 1:]:
            m = re.match(r"^(\S+)\s+(\d+)\s+([\d.]+)%\s+\d+\s+\S+\s+\S+$", line)
            if not m:
                break
            table[m.group(1)] = (int(m.group(2)), float(m.group(3)))
        return table

    def __repr__(self):
        return f"<watcher rc={self.rc} stdout:\n{self.out}\nstderr:\n{self.err}>"


def watcher(args, tmp_path, timeout=60, csv_name="samples.csv", interrupt_after=None):
    """Runs scripts/watch-versions.sh ARGS --csv tmp_path/csv_name; returns Run. With
    interrupt_after=seconds, sends SIGINT to the script's PID then."""
    csv_path = tmp_path / csv_name
    argv = ["bash", str(WATCH), "--csv", str(csv_path)] + [str(a) for a in args]
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True, cwd=tmp_path)
    try:
        if interrupt_after is not None:
            try:
                proc.wait(timeout=interrupt_after)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"watcher did not end within {timeout} s: {out}\n{err}")
    return Run(proc, out, err, time.monotonic() - t0, csv_path)


def shares(samples):
    """{category: percent} over the samples."""
    n = len(samples)
    counts = {}
    for s in samples:
        counts[s["category"]] = counts.get(s["category"], 0) + 1
    return {c: 100.0 * k / n for c, k in counts.items()}
