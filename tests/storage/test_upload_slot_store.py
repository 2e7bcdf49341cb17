"""
The XEP-0363 upload-slot store contract (L{xmppchat.storage.uploads}), for
every backend in L{tests.storage.test_contract.FACTORIES}: a slot is taken
once, by a PUT or by the sweep, never both.
"""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from tests.storage.test_contract import BACKENDS, failure, openBackend, result
from xmppchat.storage.uploads.interface import UploadSlot, tokenHash


@pytest.fixture(params=BACKENDS)
def store(request):
    clock = Clock()
    clock.advance(1_700_000_000)
    storage = openBackend(request.param, clock)
    yield storage.uploads
    result(storage.stop())


def slot(uid, owner=7, expires=1000.0):
    return UploadSlot(uid, int(uid, 16) % 1000, owner, tokenHash(uid), expires)


def test_addGetTake(store):
    """A stored slot reads back; taking it returns it once, then None."""
    s = slot("a1")
    result(store.addSlot(s))
    assert result(store.getSlot("a1")) == s
    assert result(store.takeSlot("a1")) == s
    assert result(store.takeSlot("a1")) is None
    assert result(store.getSlot("a1")) is None


def test_liveSlotsCountsUnexpiredOfOwner(store):
    """liveSlots counts the owner's slots expiring after now, with the first expiry."""
    for uid, owner, expires in (("b1", 7, 500.0), ("b2", 7, 300.0), ("b3", 7, 100.0), ("b4", 8, 400.0)):
        result(store.addSlot(slot(uid, owner, expires)))
    assert result(store.liveSlots(7, 200.0)) == (2, 300.0)
    assert result(store.liveSlots(9, 200.0)) == (0, None)


def test_takeExpiredOnlyExpired(store):
    """The sweep takes expired slots (oldest first, in batches) and leaves live ones."""
    for uid, expires in (("c1", 100.0), ("c2", 50.0), ("c3", 900.0)):
        result(store.addSlot(slot(uid, expires=expires)))
    assert [s.uid for s in result(store.takeExpiredSlots(200.0, 1))] == ["c2"]
    assert [s.uid for s in result(store.takeExpiredSlots(200.0))] == ["c1"]
    assert result(store.takeExpiredSlots(200.0)) == []
    assert result(store.getSlot("c3")) is not None


def test_badSlotRefused(store):
    """A slot without uid or token hash is a failed Deferred (ValueError)."""
    failure(store.addSlot(UploadSlot("", 1, 1, "h", 1.0)), ValueError)
    failure(store.addSlot(UploadSlot("d1", 1, 1, "", 1.0)), ValueError)
