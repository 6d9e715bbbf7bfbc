"""Fixtures for the black-box suite (helpers live in blackbox_util.py)."""

import sys
from pathlib import Path

import pytest

# scripts/xray_collector.py holds X-Ray's segment rules the tracing tests check against.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

from blackbox_util import DaemonFactory, FakeResponder


@pytest.fixture
def daemons(tmp_path):
    """Factory: daemons.start('caller'|'responder', env={...}, port=None, wait=True)."""
    f = DaemonFactory(tmp_path / "logs")
    yield f
    f.teardown()


@pytest.fixture
def responder(daemons):
    return daemons.start("responder")


@pytest.fixture
def caller(daemons, responder):
    return daemons.start("caller", env={"RESPONDER_URL": responder.url})


@pytest.fixture
def fake_responder():
    f = FakeResponder()
    yield f
    f.close()


@pytest.fixture
def caller_with_fake(daemons, fake_responder):
    """Factory: a caller pointed at the fake responder, with extra env."""
    def start(**env):
        e = {"RESPONDER_URL": fake_responder.url}
        e.update(env)
        return daemons.start("caller", env=e)
    return start
