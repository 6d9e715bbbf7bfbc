"""Fixtures for the hostile-input battery (helpers live in hostile_util.py)."""

import pytest

from hostile_util import READ_TIMEOUT_S, DaemonFactory, seeded_pair


@pytest.fixture(scope="module")
def module_daemons(tmp_path_factory):
    """Daemons shared by one test module; stopped by PID (and checked for sanitizer reports)."""
    f = DaemonFactory(tmp_path_factory.mktemp("logs"))
    yield f
    f.teardown()


@pytest.fixture
def daemons(tmp_path):
    """Daemons for one test; stopped by PID (and checked for sanitizer reports)."""
    f = DaemonFactory(tmp_path / "logs")
    yield f
    f.teardown()


@pytest.fixture(scope="module")
def guarded(module_daemons):
    """{'responder': StoreGuard, 'caller': StoreGuard}: both daemons, seeded with objects.

    The caller points at the responder (only GET / uses it). REQUEST_READ_TIMEOUT_S
    is short, so a connection the daemon fails to close by itself is still
    closed quickly by the read deadline (and the cases can assert on that)."""
    return seeded_pair(module_daemons, READ_TIMEOUT_S)


@pytest.fixture(params=["responder", "caller"])
def target(request, guarded):
    """One seeded daemon; after the test, its store is checked byte for byte."""
    g = guarded[request.param]
    g.check("before the case")
    yield g
    g.check("after the case")
