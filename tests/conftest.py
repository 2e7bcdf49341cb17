"""
Suite-wide fixtures: test modules that set C{BOTH_BACKENDS = True} run
every test once per storage backend (SQLite and MongoDB on mongomock), so
the chat behaviour is proven on both, not only the storage contract.
"""

from __future__ import annotations

import pytest

from tests.helpers import HostHarness

BACKENDS = ["sqlite", "mongomock"]


def pytest_generate_tests(metafunc):
    if getattr(metafunc.module, "BOTH_BACKENDS", False) and "harnessBackend" in metafunc.fixturenames:
        metafunc.parametrize("harnessBackend", BACKENDS, indirect=True)


@pytest.fixture(autouse=True)
def harnessBackend(request):
    """The storage backend of the HostHarness instances a test builds."""
    backend = getattr(request, "param", "sqlite")
    HostHarness.backend = backend
    yield backend
    HostHarness.backend = "sqlite"
