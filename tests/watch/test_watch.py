"""scripts/watch-versions.sh against the real daemons: two responder versions behind a weighted
nginx splitter (a deterministic stand-in for a canary's split), the caller in front.

The watcher's shares must match the split nginx was given (TOLERANCE points), what it counts
must match what reached the responders (nginx's access log), errors form their own category,
the rate stays at or under --rate, bad options are refused, SIGINT prints the summary, and the
PNG is drawn where gnuplot is installed.
"""

import os
import re
import signal
import statistics

import pytest

from blackbox_util import free_port
from watch_util import GNUPLOT, watcher, shares

TOLERANCE = 3.0           # percentage points, whole run
WINDOW_TOLERANCE = 5.0    # percentage points, each full window (50 requests: 5 smooth-WRR cycles)
RATE = 50
COUNT = 200


def line_rows(out):
    """The live window lines (before the summary): [(window, n)]."""
    rows = []
    for line in out.split("\nsummary:")[0].splitlines():
        m = re.match(r"^\s+[\d.]+\s+(\d+)\*?\s+(\d+)\s", line)
        if m:
            rows.append((int(m.group(1)), int(m.group(2))))
    return rows


@pytest.mark.parametrize("w1,w2", [(9, 1), (1, 1), (1, 0)], ids=["90-10", "50-50", "100-0"])
def test_shares_match_the_split(split_caller, responders, tmp_path, w1, w2):
    caller, ngx = split_caller(w1, w2)
    run = watcher(["--rate", RATE, "--count", COUNT, "--interval", 1, caller.url], tmp_path)
    assert run.rc == 0, run
    samples = run.samples()
    assert len(samples) == COUNT, run
    want = {"1.0.0": 100.0 * w1 / (w1 + w2), "2.0.0": 100.0 * w2 / (w1 + w2)}
    got = shares(samples)
    print(f"split {w1}:{w2}: given {want}, observed {got}")
    assert "error" not in got, f"errors: {[s['detail'] for s in samples if s['category'] == 'error'][:5]}"
    for version, share in want.items():
        assert abs(got.get(version, 0.0) - share) <= TOLERANCE, \
            f"{version}: observed {got.get(version, 0.0):.1f}%, given {share:.1f}% (±{TOLERANCE})\n{run}"
    # what the watcher counted is what reached each responder
    reached = ngx.upstream_counts()
    for version, d in responders.items():
        counted = sum(1 for s in samples if s["category"] == version)
        assert counted == reached.get(d.port, 0), f"{version}: counted {counted}, nginx sent {reached}"
    # each full window shows the split too
    per_window = {}
    for s in samples:
        per_window.setdefault(int(s["window"]), []).append(s)
    assert sorted(per_window) == [1, 2, 3, 4], sorted(per_window)
    for w, ss in per_window.items():
        ws = shares(ss)
        for version, share in want.items():
            assert abs(ws.get(version, 0.0) - share) <= WINDOW_TOLERANCE, f"window {w}: {ws}"
    # the summary table agrees with the CSV, and one live line per window was shown
    table = run.summary()
    for version, share in want.items():
        n = sum(1 for s in samples if s["category"] == version)
        assert table.get(version, (0, 0.0)) == (n, round(100.0 * n / COUNT, 1)), table
    assert table["error"] == (0, 0.0), table
    assert line_rows(run.out) == [(1, 50), (2, 50), (3, 50), (4, 50)], run
    # the CSV's own columns
    assert [int(s["seq"]) for s in samples] == list(range(1, COUNT + 1))
    times = [float(s["t_s"]) for s in samples]
    assert times == sorted(times) and times[-1] < COUNT / RATE + 1, times[-5:]
    assert all(s["http_status"] == "200" and s["served_by"] and float(s["latency_ms"]) >= 0
               and s["upstream_version"] == s["category"] and s["detail"] == "" for s in samples)


def test_errors_are_their_own_category(split_caller, responders, tmp_path):
    caller, ngx = split_caller(1, 1, BREAKER_THRESHOLD="0")
    rc, _killed = responders["2.0.0"].stop()          # stopped: nginx answers 502 for its half
    run = watcher(["--rate", RATE, "--count", 100, "--interval", 1, caller.url], tmp_path)
    assert run.rc == 0, run
    samples = run.samples()
    got = shares(samples)
    print(f"responder 2.0.0 stopped, split 1:1: observed {got}")
    assert set(got) == {"1.0.0", "error"}, got
    assert abs(got["error"] - 50.0) <= TOLERANCE and abs(got["1.0.0"] - 50.0) <= TOLERANCE, got
    errors = [s for s in samples if s["category"] == "error"]
    assert all(s["upstream_version"] == "" and "no X-Upstream-Version" in s["detail"] for s in errors), errors[:3]
    assert run.summary()["error"] == (len(errors), round(100.0 * len(errors) / len(samples), 1))
    assert "errors by cause:" in run.out, run


def test_unreachable_caller_is_all_errors(tmp_path):
    run = watcher(["--rate", 20, "--count", 10, f"http://127.0.0.1:{free_port()}"], tmp_path)
    assert run.rc == 0, run
    samples = run.samples()
    assert len(samples) == 10
    assert all(s["category"] == "error" and s["http_status"] == "000"
               and s["detail"].startswith("curl exit 7:") for s in samples), samples[:2]
    assert run.summary() == {"error": (10, 100.0)}, run


def test_rate_is_steady_and_bounded(split_caller, responders, tmp_path):
    caller, ngx = split_caller(1, 0)
    rate, duration = 20, 3
    run = watcher(["--rate", rate, "--duration", duration, "--interval", 1, caller.url], tmp_path)
    assert run.rc == 0, run
    samples = run.samples()
    reached = sum(ngx.upstream_counts().values())
    print(f"--rate {rate} --duration {duration}: {len(samples)} samples, {reached} requests reached "
          f"the responders, {run.elapsed:.2f} s")
    assert reached == len(samples), (reached, len(samples))
    assert rate * duration * 0.95 <= len(samples) <= rate * duration, len(samples)
    starts = [float(s["t_s"]) for s in samples]
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert abs(statistics.median(gaps) - 1.0 / rate) <= 0.01, statistics.median(gaps)
    # steady: no burst, in any half-second span at most rate / 2 + 2 starts (2 for the starts
    # dated from a late read: the first of each window)
    for i, t in enumerate(starts):
        assert sum(1 for u in starts[i:] if u < t + 0.5) <= rate / 2 + 2, f"burst after {t} s: {starts}"
    assert duration - 0.3 <= run.elapsed <= duration + 2.0, run.elapsed
    # --count: exactly that many, spaced by the rate
    run = watcher(["--rate", 10, "--count", 25, "--interval", 1, caller.url], tmp_path, csv_name="count.csv")
    assert run.rc == 0 and len(run.samples()) == 25, run
    assert 2.3 <= run.elapsed <= 4.5, run.elapsed


BAD = [
    ([], "no URL given"),
    (["--rate", "0", "U"], "--rate must be a number from 0.1 to 100, got '0'"),
    (["--rate", "abc", "U"], "--rate must be a number from 0.1 to 100, got 'abc'"),
    (["--rate", "101", "U"], "--rate must be a number from 0.1 to 100"),
    (["--rate=-1", "U"], "--rate must be a number from 0.1 to 100, got '-1'"),
    (["--count", "0", "U"], "--count must be a whole number from 1 to 1000000"),
    (["--count", "2.5", "U"], "--count must be a whole number from 1 to 1000000"),
    (["--duration", "86401", "U"], "--duration must be a number from 0.001 to 86400"),
    (["--interval", "0.5", "U"], "--interval must be a number from 1 to 3600"),
    (["--timeout", "0", "U"], "--timeout must be a number from 0.1 to 60"),
    (["--rate", "0.5", "--interval", "1", "U"], "at least one request per window"),
    (["--rate", "0.1", "--duration", "2", "--interval", "10", "U"], "at least one request (got"),
    (["--bogus", "U"], "unknown option '--bogus'"),
    (["--rate"], "--rate needs a value"),
    (["--csv", "", "U"], "--csv needs a file name"),
    (["--png", "/no/such/dir/x.png", "U"], "no such directory for '/no/such/dir/x.png'"),
    (["U", "U"], "one URL only"),
    (["ftp://127.0.0.1/"], "URL must start with http:// or https://"),
    (["http://127.0.0.1/a b"], "one URL only"),
    (['http://127.0.0.1/"x'], "URL must start with http:// or https:// and hold no spaces, quotes"),
]


@pytest.mark.parametrize("args,message", BAD, ids=[" ".join(a) or "none" for a, _ in BAD])
def test_invalid_options_are_refused(tmp_path, args, message):
    url = f"http://127.0.0.1:{free_port()}"
    argv = [url if a == "U" else a for a in args]
    # http://127.0.0.1/a b arrives as two words
    argv = [w for a in argv for w in (a.split(" ") if a.startswith("http://127.0.0.1/a ") else [a])]
    run = watcher(argv, tmp_path, timeout=10)
    assert run.rc == 2, run
    assert message in run.err, f"expected {message!r} in stderr: {run.err!r}"
    assert "--help" in run.err and run.out == "", run
    assert not run.csv_path.exists(), "a refused run must not start sampling"


def test_help(tmp_path):
    run = watcher(["--help"], tmp_path, timeout=10)
    assert run.rc == 0 and run.out.startswith("usage: scripts/watch-versions.sh"), run
    for opt in ("--rate", "--duration", "--count", "--interval", "--timeout", "--csv", "--png"):
        assert opt in run.out


@pytest.mark.parametrize("rate,interrupt_after", [(10, 2.5), (1, 1.5)], ids=["during-a-window", "between-windows"])
def test_sigint_prints_the_summary(split_caller, tmp_path, rate, interrupt_after):
    caller, _ = split_caller(1, 1)
    run = watcher(["--rate", rate, "--duration", 30, "--interval", 1, caller.url], tmp_path,
                  interrupt_after=interrupt_after)
    assert run.rc == 128 + signal.SIGINT, run
    # a trapped SIGINT ends the run at once, also from the sleep between windows
    assert run.elapsed <= interrupt_after + 1.5, run.elapsed
    assert "stopped by SIGINT" in run.out and "summary:" in run.out, run
    samples = run.samples()
    assert 1 <= len(samples) <= rate * interrupt_after + 1, len(samples)
    table = run.summary()
    assert sum(n for n, _ in table.values()) == len(samples), (table, len(samples))


@pytest.mark.skipif(GNUPLOT is None, reason="gnuplot not installed (Debian: gnuplot-nox; scripts/install-deps.sh)")
def test_png_is_drawn(split_caller, tmp_path):
    caller, _ = split_caller(9, 1)
    png = tmp_path / "shares.png"
    run = watcher(["--rate", RATE, "--count", 100, "--interval", 1, "--png", png, caller.url], tmp_path)
    assert run.rc == 0, run
    assert f"PNG: {png}" in run.out, run
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, len(data)


def test_png_without_gnuplot_warns(tmp_path):
    """A PATH with everything but gnuplot: the run completes, says why there is no PNG."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for d in ("/usr/local/bin", "/usr/bin", "/bin"):
        if not os.path.isdir(d):
            continue
        for name in os.listdir(d):
            if name != "gnuplot" and not (bindir / name).exists():
                os.symlink(os.path.join(d, name), bindir / name)
    png = tmp_path / "none.png"
    env = dict(os.environ, PATH=str(bindir))
    import subprocess
    from watch_util import WATCH
    p = subprocess.run(["bash", str(WATCH), "--count", "2", "--rate", "20", "--png", str(png),
                        f"http://127.0.0.1:{free_port()}"], env=env, capture_output=True, text=True,
                       timeout=20)
    assert p.returncode == 0, p
    assert "gnuplot not found: no PNG will be drawn" in p.stderr, p.stderr
    assert not png.exists()
