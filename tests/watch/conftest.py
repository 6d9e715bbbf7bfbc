"""Fixtures for the watcher suite (scripts/watch-versions.sh against the real daemons).

Two responders (bin/responder with APP_VERSION 1.0.0 and 2.0.0) behind nginx as a weighted
splitter, the caller (bin/caller) pointed at nginx: nginx's smooth weighted round robin in one
process sends exactly `weight` of every sum-of-weights requests to each server, a deterministic
stand-in for a canary's traffic split. Everything listens on 127.0.0.1 free ports and is stopped
by PID at teardown (the daemons by blackbox_util.DaemonFactory, nginx here).
"""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "blackbox"))

from blackbox_util import DaemonFactory  # noqa: E402

from watch_util import Nginx  # noqa: E402


@pytest.fixture
def daemons(tmp_path):
    f = DaemonFactory(tmp_path / "logs")
    yield f
    f.teardown()


@pytest.fixture
def responders(daemons):
    """The two versions: {"1.0.0": daemon, "2.0.0": daemon}."""
    return {v: daemons.start("responder", env={"APP_VERSION": v}) for v in ("1.0.0", "2.0.0")}


@pytest.fixture
def splitter(tmp_path):
    """Factory: splitter([(port, weight_or_"down"), ...]) -> a running nginx in front of them."""
    started = []

    def start(servers):
        n = Nginx(tmp_path / f"nginx{len(started)}", servers)
        started.append(n)
        return n.start()

    yield start
    for n in started:
        n.stop()


@pytest.fixture
def split_caller(daemons, responders, splitter):
    """Factory: split_caller(w1, w2) -> (caller, nginx) with responder 1.0.0 at weight w1 and
    2.0.0 at weight w2 (0: marked down, so it gets nothing). The caller opens a new connection
    per call and does not retry, as in compose.versions.yaml."""
    def start(w1, w2, **env):
        servers = [(responders["1.0.0"].port, w1), (responders["2.0.0"].port, w2)]
        ngx = splitter(servers)
        e = {"RESPONDER_URL": ngx.url, "UPSTREAM_CONNECTION_REUSE": "0", "UPSTREAM_DNS_CACHE_S": "0",
             "RETRY_MAX": "0"}
        e.update(env)
        return daemons.start("caller", env=e), ngx
    return start
