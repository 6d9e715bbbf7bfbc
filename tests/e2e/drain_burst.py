#!/usr/bin/env python3
"""SIGTERM-under-load check for the caller container (standard library only).

Sends a burst of requests to the caller's published port on 127.0.0.1 while
`docker compose stop caller` is run, and checks that no request that was in
flight when the daemon got SIGTERM failed:

* SLOW requests are certainly in flight: each sends the headers and half of a
  POST /data body before the stop, and the rest of the body only once the
  container has been signalled (docker's `kill` event) plus a second. Each
  must answer 201 with the full JSON body.
* BURST threads loop on short requests (GET / and POST /data, one connection
  each). A request that started connecting more than MARGIN seconds before
  the signal (the daemon's own "signal 15: draining" log line, else docker's
  kill event) must succeed. Later ones may be refused (no answer at all: the
  daemon stopped accepting), but a response cut in the middle, or an error
  status, is always a failure.

Every loop is bounded in count and time. Prints one JSON summary line and
exits 0 when nothing failed, 1 otherwise.

usage: drain_burst.py --port P --container ID [--threads N] [--slow N]
                      -- STOP COMMAND...
"""
import argparse
import datetime
import json
import socket
import subprocess
import sys
import threading
import time

# A request counts as in flight when it started connecting at least MARGIN
# seconds before the daemon logged the signal ("signal 15: draining ..."), or
# EVENT_MARGIN seconds before docker's kill event when that line is missing
# (the event can be logged a few hundred ms after the signal on a busy machine).
MARGIN = 0.1
EVENT_MARGIN = 0.5


def read_response(sock, deadline):
    """Read one HTTP/1.1 response on a Connection: close socket.

    Returns (status or None, body bytes, complete flag, received any bytes)."""
    data = b""
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            break
        except OSError:
            break
        if not chunk:
            break
        data += chunk
        if len(data) > 8 * 1024 * 1024:
            break
    if not data:
        return None, b"", False, False
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return None, b"", False, True
    lines = head.split(b"\r\n")
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError):
        return None, b"", False, True
    clen = None
    chunked = False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            clen = int(value.strip())
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if clen is not None:
        complete = len(body) >= clen
        body = body[:clen]
    elif chunked:
        complete = body.endswith(b"0\r\n\r\n")
    else:
        complete = True  # delimited by close, which we saw
    return status, body, complete, True


class Burst:
    def __init__(self, port, threads, max_per_thread):
        self.port = port
        self.threads = threads
        self.max_per_thread = max_per_thread
        self.stop_at = None  # monotonic time, set once the signal is known
        self.hard_stop = time.monotonic() + 60
        self.records = []
        self.lock = threading.Lock()

    def one(self, i, n):
        if n % 2:
            body = json.dumps({"burst": i, "n": n}).encode()
            req = (b"POST /data HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                   b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)) + body
            want = 201
        else:
            req = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
            want = 200
        t0 = time.monotonic()
        rec = {"t0": t0, "want": want}
        try:
            s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        except OSError as e:
            rec.update(outcome="refused", err=str(e), t1=time.monotonic())
            return rec
        try:
            s.sendall(req)
            status, rbody, complete, got_any = read_response(s, time.monotonic() + 10)
        except OSError as e:
            status, rbody, complete, got_any = None, b"", False, False
            rec["err"] = str(e)
        finally:
            s.close()
        rec["t1"] = time.monotonic()
        rec["status"] = status
        if not got_any:
            rec["outcome"] = "no-answer"
        elif status is None or not complete:
            rec["outcome"] = "truncated"
        elif status != want:
            rec["outcome"] = "bad-status"
            rec["body"] = rbody[:200].decode("utf-8", "replace")
        else:
            try:
                json.loads(rbody)
                rec["outcome"] = "ok"
            except ValueError:
                rec["outcome"] = "bad-json"
        return rec

    def worker(self, i):
        for n in range(self.max_per_thread):
            now = time.monotonic()
            if now > self.hard_stop or (self.stop_at is not None and now > self.stop_at):
                break
            rec = self.one(i, n)
            with self.lock:
                self.records.append(rec)
            if rec["outcome"] in ("refused", "no-answer"):
                time.sleep(0.02)


def daemon_signal_time(container):
    """Wall-clock time of the daemon's own "signal N: draining" log line, or None."""
    try:
        out = subprocess.run(["docker", "logs", container], capture_output=True, text=True,
                             timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in (out.stdout + "\n" + out.stderr).splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            d = json.loads(line)
        except ValueError:
            continue
        msg = str(d.get("msg", d.get("message", ""))).lower()
        if "signal" in msg and "drain" in msg and isinstance(d.get("time"), str):
            try:
                ts = datetime.datetime.strptime(d["time"].replace("Z", "+0000"),
                                                "%Y-%m-%dT%H:%M:%S.%f%z")
            except ValueError:
                try:
                    ts = datetime.datetime.strptime(d["time"].replace("Z", "+0000"),
                                                    "%Y-%m-%dT%H:%M:%S%z")
                except ValueError:
                    continue
            return ts.timestamp()
    return None


def slow_request(port, idx, release_evt, results):
    body = json.dumps({"slow": idx, "pad": "x" * 64}).encode()
    half = len(body) // 2
    head = (b"POST /data HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            b"Content-Type: application/json\r\nX-Request-Id: e2e-slow-%d\r\n"
            b"Content-Length: %d\r\n\r\n" % (idx, len(body)))
    res = {"idx": idx}
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(head + body[:half])
        res["sent_first_half"] = time.monotonic()
        release_evt.wait(timeout=30)
        res["released"] = release_evt.is_set()
        s.sendall(body[half:])
        status, rbody, complete, got_any = read_response(s, time.monotonic() + 15)
        s.close()
        res["status"] = status
        res["complete"] = complete
        ok = status == 201 and complete
        if ok:
            doc = json.loads(rbody)
            ok = doc.get("stored_data") == json.loads(body)
        res["ok"] = bool(ok)
        if not ok:
            res["body"] = rbody[:200].decode("utf-8", "replace")
    except Exception as e:  # noqa: BLE001 - report anything as a failure
        res["ok"] = False
        res["err"] = repr(e)
    results.append(res)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--container", required=True, help="caller container id (for docker events)")
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--slow", type=int, default=6)
    ap.add_argument("--max-per-thread", type=int, default=3000)
    ap.add_argument("stop_cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    stop_cmd = a.stop_cmd[1:] if a.stop_cmd[:1] == ["--"] else a.stop_cmd
    if not stop_cmd:
        ap.error("missing stop command")

    # Watch for the moment docker signals the container.
    since = str(int(time.time()) - 1)
    events = subprocess.Popen(
        ["docker", "events", "--since", since, "--filter", "container=" + a.container,
         "--filter", "event=kill", "--format", "{{.TimeNano}}"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    kill_info = {}

    def watch():
        line = events.stdout.readline()
        if line.strip():
            kill_info["wall_ns"] = int(line.strip())
            kill_info["mono_seen"] = time.monotonic()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()

    burst = Burst(a.port, a.threads, a.max_per_thread)
    workers = [threading.Thread(target=burst.worker, args=(i,), daemon=True) for i in range(a.threads)]
    release = threading.Event()
    slow_results = []
    slows = [threading.Thread(target=slow_request, args=(a.port, i, release, slow_results), daemon=True)
             for i in range(a.slow)]
    for t in slows:
        t.start()
    for t in workers:
        t.start()
    time.sleep(1.0)  # let the burst run

    t_stop_cmd = time.monotonic()
    stopper = subprocess.Popen(stop_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    watcher.join(timeout=30)
    if "wall_ns" in kill_info:
        # translate the event's wall-clock time to our monotonic clock
        lag = time.time() - kill_info["wall_ns"] / 1e9
        t_kill = time.monotonic() - max(0.0, lag)
    else:
        t_kill = None
    if t_kill is not None:
        time.sleep(max(0.0, t_kill + 1.0 - time.monotonic()))
    release.set()
    burst.stop_at = (t_kill if t_kill is not None else time.monotonic()) + 1.5
    for t in slows:
        t.join(timeout=20)
    for t in workers:
        t.join(timeout=20)
    try:
        _, stop_err = stopper.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        stopper.kill()
        _, stop_err = stopper.communicate()
    t_stopped = time.monotonic()
    events.terminate()
    try:
        events.wait(timeout=5)
    except subprocess.TimeoutExpired:
        events.kill()

    # When did the daemon itself get the signal?
    sig_wall = daemon_signal_time(a.container)
    if sig_wall is not None:
        t_sig = time.monotonic() - (time.time() - sig_wall)
        margin = MARGIN
    else:
        t_sig = t_kill
        margin = EVENT_MARGIN

    failures = []
    counts = {}
    in_flight_ok = 0
    for r in burst.records:
        counts[r["outcome"]] = counts.get(r["outcome"], 0) + 1
        started_before = t_sig is not None and r["t0"] < t_sig - margin
        if r["outcome"] == "ok":
            if t_sig is not None and r["t0"] < t_sig and r["t1"] > t_sig:
                in_flight_ok += 1
            continue
        if r["outcome"] in ("refused", "no-answer") and not started_before:
            continue  # not accepted after the signal: expected
        failures.append({k: (round(v - t_stop_cmd, 3) if k in ("t0", "t1") else v) for k, v in r.items()})
    for r in slow_results:
        if not r.get("ok"):
            failures.append({"slow": r})
    if len(slow_results) != a.slow:
        failures.append({"slow_missing": a.slow - len(slow_results)})
    if t_kill is None:
        failures.append({"error": "no kill event seen for the container"})
    if stopper.returncode != 0:
        failures.append({"error": "stop command failed", "rc": stopper.returncode, "stderr": stop_err[-300:]})

    summary = {
        "requests": len(burst.records),
        "outcomes": counts,
        "ok_across_signal": in_flight_ok,
        "slow_ok": sum(1 for r in slow_results if r.get("ok")),
        "slow": a.slow,
        "kill_event_after_s": None if t_kill is None else round(t_kill - t_stop_cmd, 3),
        "daemon_signal_after_s": None if sig_wall is None else round(t_sig - t_stop_cmd, 3),
        "stop_took_s": round(t_stopped - t_stop_cmd, 3),
        "failures": failures[:10],
        "failure_count": len(failures),
    }
    print(json.dumps(summary))
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
