"""Configuration from the environment: invalid values, aliases, limits that show."""

import socket
import subprocess
import time

import pytest

from blackbox_util import (HOST, base_env, binary, expect_json, free_port, http_request,
                           post_json)

INVALID = [
    ("responder", "PORT", "abc"),
    ("responder", "PORT", "70000"),
    ("responder", "PORT", "0"),
    ("responder", "PORT", "-1"),
    ("responder", "PORT", "50x"),
    ("caller", "PORT", "abc"),
    ("caller", "PORT", "65536"),
    ("responder", "BODY_MAX_BYTES", "-1"),
    ("responder", "BODY_MAX_BYTES", "lots"),
    ("caller", "BODY_MAX_BYTES", "-1"),
    ("responder", "THREADS", "0"),
    ("responder", "THREADS", "65"),
    ("responder", "THREADS", "two"),
    ("responder", "LOG_LEVEL", "loud"),
    ("responder", "STORE_MAX_ITEMS", "many"),
    ("responder", "STORE_MAX_BYTES", "-5"),
    ("responder", "CONNECTION_LIMIT", "x"),
    ("responder", "CONNECTION_TIMEOUT_S", "soon"),
    ("responder", "DRAIN_TIMEOUT_MS", "-1"),
    ("responder", "CONNECTION_LIMIT_PER_ADDRESS", "-1"),
    ("responder", "CONNECTION_LIMIT_EXEMPT", "localhost"),
    ("caller", "CONNECTION_LIMIT_EXEMPT", "10.0.0.0/8"),
    ("responder", "ANSWER_MEMORY_MAX_BYTES", "1000"),
    ("caller", "ANSWER_MEMORY_MAX_BYTES", "big"),
    ("responder", "REFUSAL_DRAIN_MS", "60001"),
    ("responder", "REFUSAL_DRAIN_BYTES", "-1"),
    ("caller", "UPSTREAM_TIMEOUT_MS", "x"),
    ("caller", "UPSTREAM_TIMEOUT_MS", "-100"),
    ("caller", "UPSTREAM_CONNECT_TIMEOUT_MS", "fast"),
    ("caller", "UPSTREAM_MAX_BYTES", "-1"),
    ("caller", "UPSTREAM_DNS_CACHE_S", "y"),
    ("caller", "UPSTREAM_CALLS_MAX", "0"),
    ("caller", "UPSTREAM_CONNECTION_REUSE", "2"),
    ("caller", "UPSTREAM_BODY_CACHE_BYTES", "-1"),
    ("caller", "UPSTREAM_BODY_CACHE_BYTES", "4 MiB"),
    ("responder", "APP_VERSION", "2.0 beta"),
    ("responder", "APP_VERSION", "v" * 65),
    ("caller", "APP_VERSION", "1/2"),
    ("caller", "APP_VERSION", 'x"y'),
    ("responder", "XRAY_TRACING", "2"),
    ("caller", "XRAY_TRACING", "yes"),
    ("responder", "XRAY_SAMPLING_RATE", "1.5"),
    ("caller", "XRAY_SAMPLING_RATE", "-0.1"),
    ("responder", "XRAY_SAMPLING_RESERVOIR", "-1"),
    ("responder", "XRAY_SEGMENT_MAX_BYTES", "100"),
    ("caller", "XRAY_SEGMENT_MAX_BYTES", "70000"),
    ("responder", "XRAY_BATCH_HOLD_MS", "1001"),
    ("caller", "XRAY_BATCH_HOLD_MS", "soon"),
    ("responder", "AWS_XRAY_DAEMON_ADDRESS", "127.0.0.1"),
    ("caller", "AWS_XRAY_DAEMON_ADDRESS", "127.0.0.1:99999"),
    ("caller", "AWS_XRAY_DAEMON_ADDRESS", "tcp:127.0.0.1:2000"),
    ("responder", "AWS_XRAY_TRACING_NAME", "a;b"),
    ("caller", "AWS_XRAY_TRACING_NAME", "n" * 201),
    ("responder", "XRAY_SAMPLING_SKIP_PATHS", "health"),
    ("caller", "XRAY_SAMPLING_SKIP_PATHS", "/health,,/metrics"),
    ("responder", "XRAY_SAMPLING_SKIP_PATHS", "/a b"),
]


@pytest.mark.parametrize("name,var,value", INVALID,
                         ids=[f"{n}-{v}={x}" for n, v, x in INVALID])
def test_invalid_value_exits_2_naming_variable(name, var, value):
    env = base_env(PORT=free_port(), RESPONDER_URL="http://127.0.0.1:9")
    env[var] = value
    proc = subprocess.Popen([str(binary(name))], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=3)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate(timeout=5)
        pytest.fail(f"{name} started with {var}={value!r} instead of exiting with status 2")
    assert proc.returncode == 2, \
        f"{name} with {var}={value!r}: exit status {proc.returncode}, stderr {err!r}"
    lines = [ln for ln in err.decode("utf-8", "replace").splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one stderr line, got {lines!r}"
    assert var in lines[0], f"stderr line does not name {var}: {lines[0]!r}"


@pytest.mark.parametrize("name", ["caller", "responder"])
def test_valid_non_default_values_start(daemons, name):
    d = daemons.start(name, env={"LOG_LEVEL": "debug", "THREADS": "1",
                                 "CONNECTION_LIMIT": "64", "DRAIN_TIMEOUT_MS": "1000",
                                 "UPSTREAM_TIMEOUT_MS": "500",
                                 "RESPONDER_URL": "http://127.0.0.1:9"})
    assert expect_json(post_json(d.port, {"a": 1}), 201)["stored_data"] == {"a": 1}


@pytest.mark.parametrize("level", ["debug", "info", "warn", "error"])
def test_log_levels_accepted(daemons, level):
    d = daemons.start("responder", env={"LOG_LEVEL": level})
    assert http_request(d.port, "GET", "/health").status == 200


def test_service_b_url_alias(daemons, responder):
    c = daemons.start("caller", env={"SERVICE_B_URL": responder.url})
    assert post_json(responder.port, {"via": "alias"}).status == 201
    r = http_request(c.port, "GET", "/")
    assert expect_json(r, 200)["responder_service_data"] == [{"via": "alias"}]


def test_responder_url_used(daemons, responder):
    c = daemons.start("caller", env={"RESPONDER_URL": responder.url})
    assert post_json(responder.port, {"via": "main"}).status == 201
    r = http_request(c.port, "GET", "/")
    assert expect_json(r, 200)["responder_service_data"] == [{"via": "main"}]


def test_port_is_honoured(daemons):
    port = free_port()
    d = daemons.start("responder", port=port)
    assert d.port == port
    assert http_request(port, "GET", "/health").status == 200


def test_port_in_use_fails_fast(daemons):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as blocker:
        blocker.bind(("0.0.0.0", 0))
        blocker.listen(1)
        port = blocker.getsockname()[1]
        d = daemons.start("responder", port=port, wait=False)
        rc = d.wait_exit(5)
        assert rc is not None, "responder kept running although its PORT was taken"
        assert rc != 0, "responder exited 0 although it could not listen"
        assert d.stderr().strip(), "no diagnostic on stderr when the port is taken"


def test_connection_timeout_closes_idle_connection(daemons):
    d = daemons.start("responder", env={"CONNECTION_TIMEOUT_S": "1"})
    with socket.create_connection((HOST, d.port), timeout=5) as s:
        t0 = time.monotonic()
        try:
            data = s.recv(1024)
        except ConnectionResetError:
            data = b""
        except socket.timeout:
            pytest.fail("idle connection still open 5 s after connect with CONNECTION_TIMEOUT_S=1")
        took = time.monotonic() - t0
    assert data == b"" or data.startswith(b"HTTP/1.1 408"), data
    assert 0.5 < took < 3.5, f"idle connection closed after {took:.2f} s, CONNECTION_TIMEOUT_S=1"
