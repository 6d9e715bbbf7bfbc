"""Mutual TLS (issue #8) against the real daemons; see /tmp/shared-spec/mtls-interface.md.

Certificates are made once per session with openssl in a temporary directory: a CA,
a server certificate (SAN responder, localhost, 127.0.0.1; serverAuth+clientAuth like
scripts/gen-certs.sh), a second one for the reload test, a client certificate, an
expired client certificate from the same CA (`openssl ca` can backdate, `openssl x509
-req` cannot), a client certificate from another CA, and a server certificate naming
only another host. The client is Python's ssl module. All traffic goes to 127.0.0.1;
every wait is bounded.
"""

import http.client
import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import warnings
from pathlib import Path

import pytest

from blackbox_util import (HOST, REQUEST_TIMEOUT_S, UPSTREAM_ERROR_PREFIX, base_env, binary, expect_json,
                           free_port, http_connection, http_request, post_json, raw_exchange,
                           wait_until)
from test_observability import Metrics
from tls_certs import OPENSSL_TIMEOUT_S, Certs

CONFIG_EXIT_TIMEOUT_S = 3
HEALTHCHECK_TIMEOUT_S = 6
RELOAD_TIMEOUT_S = 5
RELOADED_LINE = "reloaded TLS certificates"
BOTH = ["caller", "responder"]
UNUSED_UPSTREAM = "http://127.0.0.1:9"      # the caller needs a RESPONDER_URL to start
REFUSED = (ssl.SSLError, ConnectionResetError, BrokenPipeError,
           http.client.RemoteDisconnected)
TLS_MAX = pytest.mark.parametrize("tls_max", ["TLSv1_2", "TLSv1_3"])


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    return Certs(tmp_path_factory.mktemp("mtls-certs"))


def test_certificate_fixture_is_sound(certs):
    """The fixture itself: what verifies and what does not (openssl verify)."""
    def verify(ca, cert):
        return subprocess.run(["openssl", "verify", "-CAfile", str(ca), str(cert)],
                              capture_output=True, timeout=OPENSSL_TIMEOUT_S,
                              stdin=subprocess.DEVNULL)
    for good in (certs.server, certs.server_b, certs.wronghost, certs.client):
        p = verify(certs.ca, good)
        assert p.returncode == 0, f"{good.name} does not verify against the CA: {p.stdout!r}"
    p = verify(certs.ca, certs.expired_client)
    assert p.returncode != 0 and b"expired" in p.stdout + p.stderr, \
        f"expired-client.pem should fail as expired: {p.stdout!r} {p.stderr!r}"
    assert certs.not_after(certs.expired_client) < time.time() - 86400
    assert verify(certs.ca, certs.other_client).returncode != 0, \
        "the other CA's client certificate must not verify against the test CA"
    assert certs.serial(certs.server) != certs.serial(certs.server_b)


# ---------------------------------------------------------------- helpers

def client_ctx(certs, cert=None, key=None, ca=None, check_hostname=True):
    """A client SSLContext trusting ca (default the test CA), presenting cert/key if given."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile=str(ca or certs.ca))
    ctx.check_hostname = check_hostname
    if cert is not None:
        ctx.load_cert_chain(str(cert), str(key))
    return ctx


def good_ctx(certs):
    return client_ctx(certs, certs.client, certs.client_key)


def server_env(certs, client_ca=True, cert=None, key=None, name="responder"):
    env = {"TLS_CERT_FILE": cert or certs.server, "TLS_KEY_FILE": key or certs.server_key}
    if client_ca:
        env["TLS_CLIENT_CA_FILE"] = certs.ca
    if name == "caller":
        env.setdefault("RESPONDER_URL", UNUSED_UPSTREAM)
    return env


def start_tls(daemons, certs, name="responder", client_ca=True, cert=None, key=None,
              tls=None, **extra):
    env = server_env(certs, client_ca=client_ca, cert=cert, key=key, name=name)
    env.update(extra)
    return daemons.start(name, env=env, tls=tls or good_ctx(certs))


def stored(d, tls):
    return expect_json(http_request(d.port, "GET", "/data", tls=tls), 200)["stored_data"]


def _not_our_verification(e, what):
    assert not isinstance(e, ssl.SSLCertVerificationError), \
        f"{what}: the test client rejected the daemon's certificate, so this proves " \
        f"nothing about the daemon: {e!r}"


def expect_refused(d, ctx, what, good, tls_max=None):
    """POST /data with ctx must fail in the TLS layer, never get an HTTP answer, and store
    nothing; the daemon keeps serving a good client.

    tls_max "TLSv1_2": the handshake itself must fail (in TLS 1.2 the server checks the
    client's certificate before its Finished message; in TLS 1.3 the client's side of the
    handshake completes first, so the refusal can only show on the first read)."""
    if tls_max is not None:
        ctx.maximum_version = ssl.TLSVersion[tls_max]
    before = stored(d, good)
    if tls_max == "TLSv1_2":
        with socket.create_connection((HOST, d.port), timeout=REQUEST_TIMEOUT_S) as s:
            try:
                with ctx.wrap_socket(s, server_hostname=HOST) as ts:
                    version = ts.version()
            except REFUSED as e:
                _not_our_verification(e, what)
            except socket.timeout:
                pytest.fail(f"{what}: TLS 1.2 handshake neither failed nor completed within "
                            f"{REQUEST_TIMEOUT_S} s")
            else:
                pytest.fail(f"{what}: the {version} handshake completed; the daemon must "
                            f"refuse it")
    try:
        r = post_json(d.port, {"refused": what}, tls=ctx)
    except REFUSED as e:
        _not_our_verification(e, what)
        err = e
    except socket.timeout:
        pytest.fail(f"{what}: neither refused nor answered within the request timeout "
                    f"(the daemon should refuse the handshake)")
    else:
        pytest.fail(f"{what}: the daemon answered over HTTP ({r!r}); it must refuse the "
                    f"TLS handshake")
    assert d.running(), f"{d.name} died after refusing {what}: {d.stderr()[-1500:]!r}"
    after = stored(d, good)
    assert after == before, \
        f"{what}: the refused request reached the application (store {before} -> {after})"
    return err


def upstream_failure(resp):
    """The caller's answer to GET / when the call to the responder failed.

    The contract says a failed handshake is "an upstream failure like any other ... (the
    existing behaviour)": the existing behaviour (README, test_caller_upstream.py) is
    HTTP 200 with responder_service_data {"error": "Failed to reach Service B: <reason>"}.
    Returns <reason>."""
    body = expect_json(resp, 200)
    rsd = body.get("responder_service_data") if isinstance(body, dict) else None
    assert isinstance(rsd, dict) and set(rsd) == {"error"}, \
        f"a failed TLS call to the responder must be an upstream failure like any other " \
        f"(200, responder_service_data {{'error': 'Failed to reach Service B: ...'}}), " \
        f"got {resp!r}"
    msg = rsd["error"]
    assert isinstance(msg, str) and msg.startswith(UPSTREAM_ERROR_PREFIX) \
        and len(msg) > len(UPSTREAM_ERROR_PREFIX), \
        f"upstream error must be {UPSTREAM_ERROR_PREFIX!r} + curl's reason, got {msg!r}"
    return msg[len(UPSTREAM_ERROR_PREFIX):]


def get_metrics(d, tls):
    r = http_request(d.port, "GET", "/metrics", tls=tls)
    assert r.status == 200, f"GET /metrics over TLS: {r!r}"
    return Metrics(r.body.decode("utf-8"))


def peer_der(port, tls):
    conn = http_connection(port, tls=tls)
    try:
        conn.connect()
        return conn.sock.getpeercert(binary_form=True)
    finally:
        conn.close()


def replace_file(path, data):
    """Replace path's content atomically (write a sibling, rename over it)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".new")
    tmp.write_bytes(data if isinstance(data, bytes) else Path(data).read_bytes())
    os.replace(tmp, path)


def live_copy(tmp_path, cert, key, name="live"):
    d = tmp_path / name
    d.mkdir()
    shutil.copyfile(cert, d / "cert.pem")
    shutil.copyfile(key, d / "key.pem")
    return d / "cert.pem", d / "key.pem"


def logs(d):
    return d.stdout() + d.stderr()


def wait_for_log(d, text, since=0, timeout=RELOAD_TIMEOUT_S):
    """Wait until text appears in stdout+stderr beyond the first `since` occurrences."""
    return wait_until(lambda: logs(d).count(text) > since, timeout)


def run_config_error(name, env_extra):
    """Run a daemon with a bad TLS configuration; returns (exit status, stderr lines)."""
    env = base_env(PORT=free_port())
    if name == "caller":
        env["RESPONDER_URL"] = "https://127.0.0.1:9"
    env.update({k: str(v) for k, v in env_extra.items()})
    proc = subprocess.Popen([str(binary(name))], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _, err = proc.communicate(timeout=CONFIG_EXIT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate(timeout=5)
        pytest.fail(f"{name} started with {sorted(env_extra)} instead of exiting with "
                    f"status 2 within {CONFIG_EXIT_TIMEOUT_S} s")
    lines = [ln for ln in err.decode("utf-8", "replace").splitlines() if ln.strip()]
    return proc.returncode, lines


def expect_config_error(name, env_extra, must_name, also=()):
    """Exit 2 with one stderr line naming one of must_name (str or tuple) and all of also."""
    rc, lines = run_config_error(name, env_extra)
    assert rc == 2, f"{name} with {env_extra}: exit status {rc} (expected 2), stderr {lines!r}"
    assert len(lines) == 1, f"{name} with {env_extra}: expected one stderr line, got {lines!r}"
    names = (must_name,) if isinstance(must_name, str) else tuple(must_name)
    assert any(n in lines[0] for n in names), \
        f"{name} with {sorted(env_extra)}: stderr line does not name {' or '.join(names)}: " \
        f"{lines[0]!r}"
    for a in also:
        assert str(a) in lines[0], f"stderr line does not name {a}: {lines[0]!r}"


def run_healthcheck(name, env_extra, timeout=HEALTHCHECK_TIMEOUT_S):
    env = base_env(**{k: str(v) for k, v in env_extra.items()})
    t0 = time.monotonic()
    p = subprocess.run([str(binary(name)), "--healthcheck"], env=env,
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    return p.returncode, time.monotonic() - t0, p


# ---------------------------------------------------------------- happy path

def test_responder_https_with_client_cert_stores_and_serves(daemons, certs):
    good = good_ctx(certs)
    d = start_tls(daemons, certs)
    assert d.url.startswith("https://")
    r = post_json(d.port, {"over": "mtls"}, tls=good)
    assert expect_json(r, 201)["stored_data"] == {"over": "mtls"}, r
    assert stored(d, good) == [{"over": "mtls"}], "GET /data over mTLS lost the stored object"


def test_tls_version_is_1_3_or_at_least_1_2(daemons, certs):
    good = good_ctx(certs)
    d = start_tls(daemons, certs)
    conn = http_connection(d.port, tls=good)
    try:
        r = http_request(d.port, "GET", "/health", conn=conn)
        assert r.status == 200, r
        version = conn.sock.version()
    finally:
        conn.close()
    assert version in ("TLSv1.3", "TLSv1.2"), \
        f"negotiated {version} with a client offering up to TLS 1.3 (contract: 1.2 at least, " \
        f"1.3 preferred)"


def _tls11_client(certs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx = client_ctx(certs, certs.client, certs.client_key)
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")      # OpenSSL 3 needs level 0 below TLS 1.2
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    return ctx


def _tls11_control(certs, ctx):
    """Prove ctx really can negotiate TLS 1.1 here (against a Python server that allows
    it), so a refusal by the daemon is the daemon's doing. Returns the version."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        sctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        sctx.minimum_version = ssl.TLSVersion.TLSv1
        sctx.load_cert_chain(str(certs.server), str(certs.server_key))
    result = {}
    with socket.create_server((HOST, 0)) as ls:
        ls.settimeout(5)

        def serve():
            try:
                conn, _ = ls.accept()
                conn.settimeout(5)
                with sctx.wrap_socket(conn, server_side=True) as t:
                    t.recv(1)
            except Exception as e:                  # reported through result
                result["server"] = e
        th = threading.Thread(target=serve, daemon=True)
        th.start()
        try:
            with socket.create_connection((HOST, ls.getsockname()[1]), timeout=5) as s:
                with ctx.wrap_socket(s, server_hostname=HOST) as t:
                    result["version"] = t.version()
                    t.sendall(b"x")
        finally:
            th.join(timeout=5)
    return result.get("version")


def test_tls_1_1_client_refused(daemons, certs):
    ctx = _tls11_client(certs)
    version = _tls11_control(certs, ctx)
    assert version == "TLSv1.1", \
        f"control failed: the TLS 1.1 test client cannot negotiate TLS 1.1 here ({version})"
    d = start_tls(daemons, certs)
    expect_refused(d, ctx, "a client limited to TLS 1.1", good_ctx(certs))


# ---------------------------------------------------------------- refused at the handshake

@TLS_MAX
@pytest.mark.parametrize("name", BOTH)
def test_no_client_cert_refused_at_handshake(daemons, certs, name, tls_max):
    d = start_tls(daemons, certs, name=name)
    expect_refused(d, client_ctx(certs), "a client without a certificate", good_ctx(certs),
                   tls_max)
    missing = get_metrics(d, good_ctx(certs)).value("tls_client_certificates_refused_total",
                                                    reason="missing")
    assert missing >= 1, f"a client without a certificate must count as missing, got {missing}"


@TLS_MAX
def test_client_cert_from_other_ca_refused_at_handshake(daemons, certs, tls_max):
    d = start_tls(daemons, certs)
    ctx = client_ctx(certs, certs.other_client, certs.other_client_key)
    expect_refused(d, ctx, "a client certificate from another CA", good_ctx(certs), tls_max)
    refused = get_metrics(d, good_ctx(certs)).value("tls_client_certificates_refused_total",
                                                    reason="untrusted")
    assert refused >= 1, f"a certificate from another CA must count as untrusted, got {refused}"


@TLS_MAX
def test_expired_client_cert_refused_at_handshake(daemons, certs, tls_max):
    d = start_tls(daemons, certs)
    ctx = client_ctx(certs, certs.expired_client, certs.expired_client_key)
    expect_refused(d, ctx, "an expired client certificate from the right CA", good_ctx(certs),
                   tls_max)
    m = get_metrics(d, good_ctx(certs))
    expired = m.value("tls_client_certificates_refused_total", reason="expired")
    untrusted = m.value("tls_client_certificates_refused_total", reason="untrusted")
    assert expired >= 1 and untrusted == 0, \
        f"an expired certificate must count as expired, got expired={expired} " \
        f"untrusted={untrusted}"


@TLS_MAX
def test_good_client_cert_served_with_tls_max(daemons, certs, tls_max):
    """Control for the refusals above: the same client limits with a good certificate."""
    ctx = good_ctx(certs)
    ctx.maximum_version = ssl.TLSVersion[tls_max]
    d = start_tls(daemons, certs)
    conn = http_connection(d.port, tls=ctx)
    try:
        r = http_request(d.port, "GET", "/health", conn=conn)
        version = conn.sock.version()
    finally:
        conn.close()
    assert r.status == 200, r
    assert version == tls_max.replace("_", "."), version


def test_plaintext_http_to_tls_port_gets_no_http_answer(daemons, certs):
    d = start_tls(daemons, certs)
    try:
        data = raw_exchange(d.port, b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                    b"Connection: close\r\n\r\n", timeout=3)
    except (ConnectionResetError, BrokenPipeError):
        data = b""
    assert b"HTTP/1." not in data, \
        f"plain HTTP to the TLS port got an HTTP answer: {data[:200]!r}"
    assert d.running(), f"responder died after plain HTTP on its TLS port: {d.stderr()!r}"
    assert http_request(d.port, "GET", "/health", tls=good_ctx(certs)).status == 200


def test_tls_without_client_ca_serves_client_without_cert(daemons, certs):
    anonymous = client_ctx(certs)
    d = start_tls(daemons, certs, client_ca=False, tls=anonymous)
    r = post_json(d.port, {"anonymous": True}, tls=anonymous)
    assert expect_json(r, 201)["stored_data"] == {"anonymous": True}, \
        f"without TLS_CLIENT_CA_FILE a client without a certificate must be served: {r!r}"
    assert stored(d, anonymous) == [{"anonymous": True}]


# ---------------------------------------------------------------- caller -> responder over TLS

def _caller_env(certs, responder, client_cert=True, ca=None):
    env = {"RESPONDER_URL": f"https://{HOST}:{responder.port}",
           "RESPONDER_CA_FILE": ca or certs.ca}
    if client_cert:
        env["CLIENT_CERT_FILE"] = certs.client
        env["CLIENT_KEY_FILE"] = certs.client_key
    return env


def test_caller_https_to_responder_merges_both_stores(daemons, certs):
    good = good_ctx(certs)
    r = start_tls(daemons, certs)
    c = daemons.start("caller", env=_caller_env(certs, r))
    assert expect_json(post_json(c.port, {"side": "caller"}), 201)
    assert expect_json(post_json(r.port, {"side": "responder"}, tls=good), 201)
    resp = http_request(c.port, "GET", "/")
    body = expect_json(resp, 200)
    assert body == {"caller_service_data": [{"side": "caller"}],
                    "responder_service_data": [{"side": "responder"}]}, \
        f"GET / over mTLS to the responder should merge both stores, got {resp.body!r}"


def test_caller_refuses_responder_cert_naming_other_host(daemons, certs):
    # the responder's certificate is from the right CA but names only other-host.invalid
    nameless = client_ctx(certs, certs.client, certs.client_key, check_hostname=False)
    r = start_tls(daemons, certs, cert=certs.wronghost, key=certs.wronghost_key, tls=nameless)
    # control: apart from the name the responder is fine (our CA, accepts the client cert)
    assert expect_json(post_json(r.port, {"secret": 1}, tls=nameless), 201)
    c = daemons.start("caller", env=_caller_env(certs, r))
    resp = http_request(c.port, "GET", "/")
    reason = upstream_failure(resp)
    assert any(w in reason.lower() for w in ("ssl", "tls", "certificate", "name")), \
        f"the reason should be curl's TLS/certificate complaint, got {reason!r}"
    assert b"secret" not in resp.body, \
        f"the caller used a responder whose certificate names another host: {resp.body!r}"


def test_caller_without_client_cert_fails_against_responder_requiring_one(daemons, certs):
    good = good_ctx(certs)
    r = start_tls(daemons, certs)
    assert expect_json(post_json(r.port, {"secret": 2}, tls=good), 201)
    c = daemons.start("caller", env=_caller_env(certs, r, client_cert=False))
    resp = http_request(c.port, "GET", "/")
    upstream_failure(resp)
    assert b"secret" not in resp.body, \
        f"the responder's data reached a caller without a client certificate: {resp.body!r}"


def test_caller_sighup_rereads_responder_ca(daemons, certs, tmp_path):
    """RESPONDER_CA_FILE is read again on SIGHUP; new connections use it."""
    good = good_ctx(certs)
    r = start_tls(daemons, certs)
    assert expect_json(post_json(r.port, {"after": "reload"}, tls=good), 201)
    ca_file = tmp_path / "responder-ca.pem"
    shutil.copyfile(certs.other_ca, ca_file)            # the wrong CA first
    c = daemons.start("caller", env=_caller_env(certs, r, ca=ca_file))
    upstream_failure(http_request(c.port, "GET", "/"))
    before = logs(c).count(RELOADED_LINE)
    replace_file(ca_file, certs.ca)
    c.signal(signal.SIGHUP)
    assert wait_for_log(c, RELOADED_LINE, since=before), \
        f"caller logged no {RELOADED_LINE!r} within {RELOAD_TIMEOUT_S} s of SIGHUP; " \
        f"stderr {c.stderr()[-1500:]!r}"
    resp = http_request(c.port, "GET", "/")
    assert expect_json(resp, 200)["responder_service_data"] == [{"after": "reload"}], \
        f"after SIGHUP with the right RESPONDER_CA_FILE the caller should reach the " \
        f"responder: {resp.body!r}"


# ---------------------------------------------------------------- _PEM twins

def test_pem_twins_work_like_files(daemons, certs):
    good = good_ctx(certs)
    env = {"TLS_CERT_PEM": certs.server.read_text(),
           "TLS_KEY_PEM": certs.server_key.read_text(),
           "TLS_CLIENT_CA_PEM": certs.ca.read_text()}
    d = daemons.start("responder", env=env, tls=good)
    assert expect_json(post_json(d.port, {"from": "pem"}, tls=good), 201)
    assert stored(d, good) == [{"from": "pem"}]
    assert peer_der(d.port, good) == certs.der(certs.server), \
        "the daemon does not serve the certificate given in TLS_CERT_PEM"
    # TLS_CLIENT_CA_PEM is in force: no certificate, no service
    expect_refused(d, client_ctx(certs), "a client without a certificate (TLS_CLIENT_CA_PEM)",
                   good)


def test_pem_twin_metrics_use_file_setting_label(daemons, certs):
    good = good_ctx(certs)
    env = {"TLS_CERT_PEM": certs.server.read_text(),
           "TLS_KEY_PEM": certs.server_key.read_text(),
           "TLS_CLIENT_CA_PEM": certs.ca.read_text()}
    d = daemons.start("responder", env=env, tls=good)
    m = get_metrics(d, good)
    name = "tls_certificate_expiry_timestamp_seconds"
    assert m.need(name, setting="TLS_CERT_FILE") == certs.not_after(certs.server)
    assert m.need(name, setting="TLS_CLIENT_CA_FILE") == certs.not_after(certs.ca)
    labels = sorted(l.get("setting") for l, _ in m.series(name))
    assert not any(s.endswith("_PEM") for s in labels), \
        f"the label is the _FILE name even when the _PEM twin is used, got {labels}"


TWINS = [
    ("responder", "TLS_CERT"),
    ("responder", "TLS_KEY"),
    ("responder", "TLS_CLIENT_CA"),
    ("caller", "RESPONDER_CA"),
    ("caller", "CLIENT_CERT"),
    ("caller", "CLIENT_KEY"),
]


@pytest.mark.parametrize("name,setting", TWINS, ids=[f"{n}-{s}" for n, s in TWINS])
def test_both_file_and_pem_twin_exit_2(certs, name, setting):
    files = {"TLS_CERT": certs.server, "TLS_KEY": certs.server_key,
             "TLS_CLIENT_CA": certs.ca, "RESPONDER_CA": certs.ca,
             "CLIENT_CERT": certs.client, "CLIENT_KEY": certs.client_key}
    if name == "responder":
        env = {"TLS_CERT_FILE": certs.server, "TLS_KEY_FILE": certs.server_key,
               "TLS_CLIENT_CA_FILE": certs.ca}
    else:
        env = {"RESPONDER_CA_FILE": certs.ca, "CLIENT_CERT_FILE": certs.client,
               "CLIENT_KEY_FILE": certs.client_key}
    env[f"{setting}_PEM"] = files[setting].read_text()
    expect_config_error(name, env, (f"{setting}_FILE", f"{setting}_PEM"))


# ---------------------------------------------------------------- configuration errors

def test_cert_file_without_key_file_exit_2(certs):
    expect_config_error("responder", {"TLS_CERT_FILE": certs.server}, "TLS_KEY_FILE")


def test_key_file_without_cert_file_exit_2(certs):
    expect_config_error("responder", {"TLS_KEY_FILE": certs.server_key}, "TLS_CERT_FILE")


def test_caller_cert_file_without_key_file_exit_2(certs):
    expect_config_error("caller", {"TLS_CERT_FILE": certs.server}, "TLS_KEY_FILE")


def test_key_file_missing_path_exit_2(certs, tmp_path):
    missing = tmp_path / "no-such-key.pem"
    expect_config_error("responder", {"TLS_CERT_FILE": certs.server, "TLS_KEY_FILE": missing},
                        "TLS_KEY_FILE", also=(missing,))


def test_cert_file_missing_path_exit_2(certs, tmp_path):
    missing = tmp_path / "no-such-cert.pem"
    expect_config_error("responder", {"TLS_CERT_FILE": missing, "TLS_KEY_FILE": certs.server_key},
                        "TLS_CERT_FILE", also=(missing,))


@pytest.mark.parametrize("setting", ["TLS_CERT_FILE", "TLS_KEY_FILE", "TLS_CLIENT_CA_FILE"])
def test_file_not_pem_exit_2(certs, setting):
    env = {"TLS_CERT_FILE": certs.server, "TLS_KEY_FILE": certs.server_key,
           "TLS_CLIENT_CA_FILE": certs.ca}
    env[setting] = certs.not_pem
    expect_config_error("responder", env, setting)


def test_client_ca_without_cert_file_exit_2(certs):
    expect_config_error("responder", {"TLS_CLIENT_CA_FILE": certs.ca},
                        ("TLS_CERT_FILE", "TLS_CLIENT_CA_FILE"))


def test_caller_client_cert_without_key_exit_2(certs):
    expect_config_error("caller", {"CLIENT_CERT_FILE": certs.client}, "CLIENT_KEY_FILE")


def test_caller_client_key_without_cert_exit_2(certs):
    expect_config_error("caller", {"CLIENT_KEY_FILE": certs.client_key}, "CLIENT_CERT_FILE")


def test_caller_responder_ca_missing_path_exit_2(tmp_path):
    missing = tmp_path / "no-such-ca.pem"
    expect_config_error("caller", {"RESPONDER_CA_FILE": missing}, "RESPONDER_CA_FILE",
                        also=(missing,))


def test_caller_client_cert_not_pem_exit_2(certs):
    expect_config_error("caller", {"CLIENT_CERT_FILE": certs.not_pem,
                                   "CLIENT_KEY_FILE": certs.client_key}, "CLIENT_CERT_FILE")


# ---------------------------------------------------------------- SIGHUP reload

def test_sighup_reloads_certificate_keeping_open_connections(daemons, certs, tmp_path):
    good = good_ctx(certs)
    cert, key = live_copy(tmp_path, certs.server, certs.server_key)
    d = start_tls(daemons, certs, cert=cert, key=key)
    pid = d.pid
    der_a, der_b = certs.der(certs.server), certs.der(certs.server_b)
    assert der_a != der_b

    old = http_connection(d.port, tls=good)
    try:
        assert http_request(d.port, "GET", "/health", conn=old).status == 200
        old_sock = old.sock
        assert old_sock is not None, "the first request's connection was not kept alive"
        assert old_sock.getpeercert(binary_form=True) == der_a

        before = logs(d).count(RELOADED_LINE)
        replace_file(key, certs.server_b_key)
        replace_file(cert, certs.server_b)
        d.signal(signal.SIGHUP)
        assert wait_for_log(d, RELOADED_LINE, since=before), \
            f"no {RELOADED_LINE!r} log line within {RELOAD_TIMEOUT_S} s of SIGHUP; " \
            f"stderr {d.stderr()[-1500:]!r}"
        assert d.running() and d.pid == pid, "the daemon did not survive SIGHUP"

        r = http_request(d.port, "GET", "/health", conn=old)
        assert r.status == 200, f"the connection opened before SIGHUP got {r!r}"
        assert old.sock is old_sock, \
            "the connection opened before SIGHUP was closed (http.client had to reconnect)"
        assert old_sock.getpeercert(binary_form=True) == der_a
    finally:
        old.close()

    new_der = peer_der(d.port, good)
    assert certs.serial_of_der(new_der) == certs.serial(certs.server_b), \
        f"a new connection after SIGHUP shows serial {certs.serial_of_der(new_der)}, " \
        f"expected cert B's {certs.serial(certs.server_b)} (cert A is " \
        f"{certs.serial(certs.server)})"
    assert new_der == der_b
    m = get_metrics(d, good)
    assert m.need("tls_reloads_total", result="ok") == 1
    assert m.need("tls_reloads_total", result="failed") == 0
    assert m.need("tls_certificate_expiry_timestamp_seconds", setting="TLS_CERT_FILE") == \
        certs.not_after(certs.server_b), "the expiry metric must follow the reloaded cert"


def test_sighup_with_broken_file_keeps_old_certificate(daemons, certs, tmp_path):
    good = good_ctx(certs)
    cert, key = live_copy(tmp_path, certs.server, certs.server_key)
    d = start_tls(daemons, certs, cert=cert, key=key)
    m = get_metrics(d, good)
    assert m.need("tls_reloads_total", result="failed") == 0
    assert m.need("tls_reloads_total", result="ok") == 0

    replace_file(cert, b"-----BEGIN CERTIFICATE-----\nnot base64 at all\n"
                       b"-----END CERTIFICATE-----\n")
    d.signal(signal.SIGHUP)

    def failed_count():
        if not d.running():
            return None
        return get_metrics(d, good).value("tls_reloads_total", result="failed")
    assert wait_until(lambda: failed_count() == 1, RELOAD_TIMEOUT_S, interval=0.1), \
        f"tls_reloads_total{{result=\"failed\"}} is {failed_count()} {RELOAD_TIMEOUT_S} s " \
        f"after a SIGHUP with a broken TLS_CERT_FILE (expected 1); running={d.running()}, " \
        f"stderr {d.stderr()[-1500:]!r}"
    m = get_metrics(d, good)
    assert m.need("tls_reloads_total", result="ok") == 0
    assert peer_der(d.port, good) == certs.der(certs.server), \
        "after a failed reload new connections must still get the old certificate"
    assert expect_json(post_json(d.port, {"still": "serving"}, tls=good), 201)
    assert RELOADED_LINE not in logs(d), \
        f"a failed reload must not log {RELOADED_LINE!r}"


# ---------------------------------------------------------------- /metrics

def test_metrics_certificate_expiry_is_not_after(daemons, certs, tmp_path):
    good = good_ctx(certs)
    bundle = tmp_path / "two-cas.pem"          # the earlier-expiring CA second
    bundle.write_text(certs.ca.read_text() + certs.other_ca.read_text())
    d = daemons.start("responder", env={"TLS_CERT_FILE": certs.server,
                                        "TLS_KEY_FILE": certs.server_key,
                                        "TLS_CLIENT_CA_FILE": bundle}, tls=good)
    m = get_metrics(d, good)
    name = "tls_certificate_expiry_timestamp_seconds"
    got = m.need(name, setting="TLS_CERT_FILE")
    want = certs.not_after(certs.server)
    assert got == want, f"{name}{{setting=\"TLS_CERT_FILE\"}} is {got}, the certificate's " \
                        f"notAfter is {want}"
    got = m.need(name, setting="TLS_CLIENT_CA_FILE")
    want = min(certs.not_after(certs.ca), certs.not_after(certs.other_ca))
    assert got == want, f"{name}{{setting=\"TLS_CLIENT_CA_FILE\"}} is {got}, expected the " \
                        f"earliest notAfter in the bundle, {want}"
    assert m.need("tls_reloads_total", result="ok") == 0
    assert m.need("tls_reloads_total", result="failed") == 0


def test_caller_metrics_expiry_for_client_settings(daemons, certs):
    r = start_tls(daemons, certs)
    c = daemons.start("caller", env=_caller_env(certs, r))
    resp = http_request(c.port, "GET", "/metrics")
    assert resp.status == 200, resp
    m = Metrics(resp.body.decode("utf-8"))
    name = "tls_certificate_expiry_timestamp_seconds"
    assert m.need(name, setting="RESPONDER_CA_FILE") == certs.not_after(certs.ca)
    assert m.need(name, setting="CLIENT_CERT_FILE") == certs.not_after(certs.client)


# ---------------------------------------------------------------- --healthcheck

@pytest.mark.parametrize("name", BOTH)
def test_healthcheck_ok_against_mtls_daemon(daemons, certs, name):
    d = start_tls(daemons, certs, name=name)
    env = server_env(certs, name=name)
    env["PORT"] = d.port
    rc, took, p = run_healthcheck(name, env)
    assert rc == 0, f"--healthcheck with the TLS settings against a healthy {name} requiring " \
                    f"client certificates: exit {rc}, stderr {p.stderr!r}"
    assert took < 2.5, f"--healthcheck took {took:.2f} s"


@pytest.mark.parametrize("name", BOTH)
def test_healthcheck_with_tls_settings_fails_when_nothing_listens(certs, name):
    env = server_env(certs, name=name)
    env["PORT"] = free_port()
    rc, took, p = run_healthcheck(name, env)
    assert rc == 1, f"--healthcheck (TLS settings) with nothing listening: exit {rc}, " \
                    f"stderr {p.stderr!r}"
    assert took < 3.0, f"--healthcheck took {took:.2f} s"
