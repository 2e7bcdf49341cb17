"""
The unlock-request store contract (L{xmppchat.storage.unlocks}), for every
backend in L{tests.storage.test_contract.FACTORIES}.
"""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from tests.storage.test_contract import BACKENDS, failure, openBackend, result


@pytest.fixture(params=BACKENDS)
def clockAndStore(request):
    clock = Clock()
    clock.advance(1_700_000_000)
    storage = openBackend(request.param, clock)
    yield clock, storage.unlocks
    result(storage.stop())


def test_requestsListedNewestFirst(clockAndStore):
    """Each request gets its own id; the list is newest first."""
    clock, store = clockAndStore
    first = result(store.addUnlock("203.0.113.5"))
    clock.advance(1)
    second = result(store.addUnlock("alice"))
    assert first != second
    assert result(store.listUnlocks()) == [(second, "alice"), (first, "203.0.113.5")]


def test_oldRequestsDropped(clockAndStore):
    """Requests older than a day are dropped when a new one is stored."""
    clock, store = clockAndStore
    result(store.addUnlock("old"))
    clock.advance(86401)
    new = result(store.addUnlock("new"))
    assert result(store.listUnlocks()) == [(new, "new")]


def test_badKeyRefused(clockAndStore):
    """An empty or non-string key is a failed Deferred (ValueError)."""
    _, store = clockAndStore
    failure(store.addUnlock(""), ValueError)
    failure(store.addUnlock(None), ValueError)
