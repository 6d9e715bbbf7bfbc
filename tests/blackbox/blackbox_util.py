"""Helpers for the black-box suite: HTTP client, the real daemons, a fake responder.

The daemons are started from BIN_DIR (env, default <repo>/bin) on free
loopback ports, with a minimal environment, and stopped by PID at teardown.
All traffic goes to 127.0.0.1 only; every network call has a timeout.
Requests go over HTTPS when given tls=<ssl.SSLContext> (a daemon started with
TLS settings is given one too, for its readiness wait).
"""

import http.client
import json
import os
import re
import select
import signal
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN_DIR = Path(os.environ.get("BIN_DIR") or (REPO / "bin"))

HOST = "127.0.0.1"
READY_TIMEOUT_S = 5.0
STOP_TIMEOUT_S = 5.0
REQUEST_TIMEOUT_S = 5.0
REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
UPSTREAM_ERROR_PREFIX = "Failed to reach Service B: "

# Environment passed through to the daemons (sanitizer settings only).
_PASSTHROUGH_PREFIXES = ("ASAN_", "UBSAN_", "LSAN_", "TSAN_", "MSAN_")


# --------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------

def free_port():
    """A port that was free on 127.0.0.1 a moment ago (bind port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def binary(name):
    path = BIN_DIR / name
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"daemon binary {path} not found or not executable "
                    f"(run `make`, or set BIN_DIR)", pytrace=False)
    return path


def base_env(**extra):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C"}
    for k, v in os.environ.items():
        if k.startswith(_PASSTHROUGH_PREFIXES):
            env[k] = v
    for k, v in extra.items():
        env[k] = str(v)
    return env


class Response:
    def __init__(self, status, reason, headers, body, elapsed):
        self.status = status
        self.reason = reason
        self.header_list = headers          # list of (name, value)
        self.body = body
        self.elapsed = elapsed

    def header(self, name, default=None):
        vals = [v for k, v in self.header_list if k.lower() == name.lower()]
        if not vals:
            return default
        return ", ".join(vals)

    def header_count(self, name):
        return sum(1 for k, _ in self.header_list if k.lower() == name.lower())

    @property
    def content_type(self):
        return self.header("Content-Type")

    def json(self):
        try:
            return json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise AssertionError(
                f"answer is not valid JSON ({e}): status {self.status}, body {self.body[:300]!r}")

    def __repr__(self):
        return f"<Response {self.status} {self.header_list} {self.body[:200]!r}>"


def http_connection(port, timeout=REQUEST_TIMEOUT_S, tls=None):
    """An (unconnected) HTTPConnection to 127.0.0.1:port, or HTTPSConnection with tls
    (an ssl.SSLContext; the host name it checks is "127.0.0.1")."""
    if tls is not None:
        return http.client.HTTPSConnection(HOST, port, timeout=timeout, context=tls)
    return http.client.HTTPConnection(HOST, port, timeout=timeout)


def http_request(port, method, path, body=None, headers=None, timeout=REQUEST_TIMEOUT_S,
                 conn=None, tls=None):
    """One HTTP request to 127.0.0.1:port; returns Response.

    http.client adds Host, Accept-Encoding and (for a body) Content-Length,
    never a Content-Type. Pass conn to reuse a keep-alive connection, tls (an
    ssl.SSLContext) to use HTTPS on a new one.
    """
    if isinstance(body, str):
        body = body.encode("utf-8")
    own = conn is None
    if own:
        conn = http_connection(port, timeout=timeout, tls=tls)
    t0 = time.perf_counter()
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        elapsed = time.perf_counter() - t0
        return Response(r.status, r.reason, r.getheaders(), data, elapsed)
    finally:
        if own:
            conn.close()


def post_json(port, obj_or_bytes, path="/data", content_type="application/json",
              headers=None, timeout=REQUEST_TIMEOUT_S, tls=None):
    if isinstance(obj_or_bytes, (bytes, str)):
        body = obj_or_bytes
    else:
        body = json.dumps(obj_or_bytes)
    h = dict(headers or {})
    if content_type is not None:
        h["Content-Type"] = content_type
    return http_request(port, "POST", path, body=body, headers=h, timeout=timeout, tls=tls)


def media_type(content_type):
    if content_type is None:
        return None
    return content_type.split(";")[0].strip().lower()


def expect_json(resp, status):
    """Assert status and application/json content type; return parsed body."""
    assert resp.status == status, f"expected HTTP {status}, got {resp!r}"
    assert media_type(resp.content_type) == "application/json", \
        f"JSON answer must have Content-Type application/json, got {resp.content_type!r}"
    return resp.json()


def expect_error(resp, status):
    """Assert a JSON error answer {"error": "<non-empty string>"}; return the message."""
    body = expect_json(resp, status)
    assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"], \
        f"error answer must be a JSON object with an 'error' string, got {resp.body!r}"
    return body["error"]


def raw_exchange(port, data, timeout=REQUEST_TIMEOUT_S):
    """Send raw bytes and read until the server closes or timeout; returns bytes."""
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                c = s.recv(65536)
            except socket.timeout:
                break
            if not c:
                break
            chunks.append(c)
        return b"".join(chunks)


def parse_raw_response(data):
    """Parse the first HTTP response in data: (status, headers dict lower, body)."""
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    if "content-length" in headers:
        rest = rest[:int(headers["content-length"])]
    return status, headers, rest


def recv_response_while_sending(sock, chunks, timeout=REQUEST_TIMEOUT_S):
    """Send chunks one by one, stopping as soon as the server starts answering.

    Returns all bytes read (the server's answer) once the answer's headers and
    body have arrived or the server closed the connection.
    """
    received = b""
    for chunk in chunks:
        r, _, _ = select.select([sock], [], [], 0)
        if r:
            break
        try:
            sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            break
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r, _, _ = select.select([sock], [], [], max(0.0, deadline - time.monotonic()))
        if not r:
            break
        try:
            c = sock.recv(65536)
        except (ConnectionResetError, socket.timeout):
            break
        if not c:
            break
        received += c
        if b"\r\n\r\n" in received:
            _, hdrs, body = parse_raw_response(received)
            if "content-length" in hdrs and len(body) >= int(hdrs["content-length"]):
                break
    return received


def wait_until(pred, timeout, interval=0.02):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            return v
        time.sleep(interval)


# --------------------------------------------------------------------------
# real daemons
# --------------------------------------------------------------------------

class Daemon:
    def __init__(self, name, port, env, logdir, tls=None):
        self.name = name
        self.port = port
        self.env = env
        self.tls = tls          # ssl.SSLContext of the readiness wait when serving HTTPS
        self.logdir = Path(logdir)
        self.proc = None
        self.stopped_by_teardown = False
        self.stdout_path = self.logdir / f"{name}-{port}.stdout"
        self.stderr_path = self.logdir / f"{name}-{port}.stderr"

    @property
    def url(self):
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://{HOST}:{self.port}"

    @property
    def pid(self):
        return self.proc.pid

    def start(self):
        self.logdir.mkdir(parents=True, exist_ok=True)
        out = open(self.stdout_path, "wb")
        err = open(self.stderr_path, "wb")
        try:
            self.proc = subprocess.Popen([str(binary(self.name))], env=self.env,
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                         cwd=str(self.logdir))
        finally:
            out.close()
            err.close()
        return self

    def wait_ready(self, timeout=READY_TIMEOUT_S):
        """Poll GET /health until 200 (over HTTPS with self.tls); returns True, or False
        if the process died."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                r = http_request(self.port, "GET", "/health", timeout=0.5, tls=self.tls)
                if r.status == 200:
                    return True
                last = r
            except (OSError, http.client.HTTPException) as e:
                last = e
            time.sleep(0.02)
        scheme = "HTTPS" if self.tls is not None else "HTTP"
        raise AssertionError(f"{self.name} on port {self.port} did not answer GET /health "
                             f"over {scheme} with 200 within {timeout} s (last: {last!r}); "
                             f"stderr: {self.stderr()!r}")

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        os.kill(self.proc.pid, sig)

    def wait_exit(self, timeout):
        """Returns the exit status, or None if still running after timeout."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout=STOP_TIMEOUT_S):
        """SIGTERM by PID, then SIGKILL after timeout. Returns (status, killed).

        Sets self.stopped_by_teardown when the process was still running."""
        if self.proc is None:
            return None, False
        if self.proc.poll() is not None:
            return self.proc.returncode, False
        self.stopped_by_teardown = True
        try:
            os.kill(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        rc = self.wait_exit(timeout)
        if rc is not None:
            return rc, False
        try:
            os.kill(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return self.proc.wait(timeout=5), True

    def stdout(self):
        return self.stdout_path.read_bytes().decode("utf-8", "replace")

    def stderr(self):
        return self.stderr_path.read_bytes().decode("utf-8", "replace")

    def log_records(self):
        """Every complete stdout line, parsed as JSON (raises if one is not JSON)."""
        text = self.stdout()
        lines = text.split("\n")
        if not text.endswith("\n"):
            lines = lines[:-1]          # last line still being written
        records = []
        for line in lines:
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except ValueError:
                raise AssertionError(f"{self.name} stdout line is not JSON: {line!r}")
        return records

    def records_for(self, request_id, timeout=2.0):
        """Request-log records with this request_id, waiting up to timeout for one."""
        def find():
            return [r for r in self.log_records()
                    if isinstance(r, dict) and r.get("request_id") == request_id]
        return wait_until(find, timeout)


class DaemonFactory:
    def __init__(self, logdir):
        self.logdir = logdir
        self.daemons = []

    def start(self, name, env=None, port=None, wait=True, tls=None):
        """Start bin/<name> with PORT and extra env; wait for /health unless wait=False.

        tls: an ssl.SSLContext for a daemon started with TLS settings; the readiness
        wait then speaks HTTPS with it, and the daemon's url is https://."""
        attempts = 1 if port is not None else 3
        last = None
        for _ in range(attempts):
            p = port if port is not None else free_port()
            e = base_env(PORT=p, **(env or {}))
            d = Daemon(name, p, e, self.logdir, tls=tls).start()
            self.daemons.append(d)
            if not wait:
                return d
            if d.wait_ready():
                return d
            last = d            # died during startup (maybe the port was taken): retry
        raise AssertionError(f"{name} exited during startup with status {last.proc.returncode}; "
                             f"stderr: {last.stderr()!r}")

    def teardown(self):
        problems = []
        for d in self.daemons:
            rc, killed = d.stop()
            if killed:
                problems.append(f"{d.name} (pid {d.pid}) ignored SIGTERM for "
                                f"{STOP_TIMEOUT_S} s and was killed")
            elif d.stopped_by_teardown and rc != 0:
                problems.append(f"{d.name} (pid {d.pid}) exited with status {rc} on SIGTERM "
                                f"(expected 0); stderr tail: {d.stderr()[-1500:]!r}")
            err = d.stderr()
            if "ERROR: AddressSanitizer" in err or "runtime error:" in err or \
               "ERROR: LeakSanitizer" in err or "WARNING: ThreadSanitizer" in err:
                problems.append(f"{d.name} sanitizer report:\n{err[-4000:]}")
        if problems:
            pytest.fail("\n".join(problems), pytrace=False)


# --------------------------------------------------------------------------
# fake responder
# --------------------------------------------------------------------------

class _FakeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self.server.fake._handle(self)

    do_POST = do_GET
    do_HEAD = do_GET
    do_PUT = do_GET
    do_DELETE = do_GET

    def log_message(self, *args):
        pass


class _FakeServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 256
    allow_reuse_address = True


class FakeResponder:
    """A stand-in responder whose answer can be configured per test.

    configure(delay=seconds, status=int, body=bytes|str|obj, content_type=str,
              chunked=bool, headers={name: value}). Records every request (method, path, headers, peer: the caller's
    address and port, one per connection).
    """

    def __init__(self):
        self._lock = threading.Condition()
        self._stop = threading.Event()
        self.delay = 0.0
        self.status = 200
        self.body = b'{"stored_data": []}'
        self.content_type = "application/json"
        self.chunked = False
        self.headers = {}
        self.requests = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.server = _FakeServer((HOST, 0), _FakeHandler)
        self.server.fake = self
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f"http://{HOST}:{self.port}"

    def configure(self, **kw):
        with self._lock:
            for k, v in kw.items():
                if not hasattr(self, k):
                    raise AttributeError(k)
                if k == "body":
                    if isinstance(v, str):
                        v = v.encode("utf-8")
                    elif not isinstance(v, bytes):
                        v = json.dumps(v).encode("utf-8")
                setattr(self, k, v)

    def wait_for_requests(self, n, timeout):
        with self._lock:
            self._lock.wait_for(lambda: len(self.requests) >= n, timeout)
            return len(self.requests)

    def _handle(self, h):
        with self._lock:
            self.requests.append({"method": h.command, "path": h.path,
                                  "headers": {k.lower(): v for k, v in h.headers.items()},
                                  "peer": h.client_address})
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self._lock.notify_all()
            delay, status, body = self.delay, self.status, self.body
            ctype, chunked, extra = self.content_type, self.chunked, dict(self.headers)
        try:
            length = int(h.headers.get("Content-Length") or 0)
            if length:
                h.rfile.read(length)
            if delay:
                self._stop.wait(delay)
            h.send_response(status)
            if ctype:
                h.send_header("Content-Type", ctype)
            for name, value in extra.items():
                h.send_header(name, value)
            if chunked:
                h.send_header("Transfer-Encoding", "chunked")
            else:
                h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            if h.command != "HEAD":
                if chunked:
                    for i in range(0, len(body), 1024):
                        part = body[i:i + 1024]
                        h.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                    h.wfile.write(b"0\r\n\r\n")
                else:
                    h.wfile.write(body)
            h.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            h.close_connection = True
        finally:
            with self._lock:
                self.in_flight -= 1
                self._lock.notify_all()

    def close(self):
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
