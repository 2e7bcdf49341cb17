"""
The per-user XML store contract (L{xmppchat.storage.userxml}: vCards and
XEP-0049 private storage, issue 16), for every backend in
L{tests.storage.test_contract.FACTORIES}.
"""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from tests.storage.test_contract import BACKENDS, failure, openBackend, result
from xmppchat.storage.interfaces import QuotaExceeded
from xmppchat.storage.userxml.interface import PRIVATE, VCARD


@pytest.fixture(params=BACKENDS)
def storage(request):
    storage = openBackend(request.param, Clock())
    yield storage
    result(storage.stop())


def test_roundTripReplaceDelete(storage):
    """A document reads back, is replaced by the next set and gone after a delete."""
    store = storage.userXML
    assert result(store.getXML("alice", VCARD, "")) is None
    result(store.setXML("alice", VCARD, "", "<vCard xmlns='vcard-temp'/>"))
    result(store.setXML("alice", VCARD, "", "<vCard xmlns='vcard-temp'><FN>A</FN></vCard>"))
    assert result(store.getXML("alice", VCARD, "")) == "<vCard xmlns='vcard-temp'><FN>A</FN></vCard>"
    result(store.setXML("alice", VCARD, "", None))
    assert result(store.getXML("alice", VCARD, "")) is None


def test_usersKindsAndKeysSeparate(storage):
    """Each (user, kind, key) is its own document."""
    store = storage.userXML
    result(store.setXML("alice", PRIVATE, "a:x", "<a xmlns='x'/>"))
    result(store.setXML("alice", PRIVATE, "b:x", "<b xmlns='x'/>"))
    result(store.setXML("bob", PRIVATE, "a:x", "<a xmlns='x'>bob</a>"))
    assert result(store.getXML("alice", PRIVATE, "a:x")) == "<a xmlns='x'/>"
    assert result(store.getXML("bob", PRIVATE, "a:x")) == "<a xmlns='x'>bob</a>"
    assert result(store.getXML("alice", VCARD, "a:x")) is None


def test_keyQuota(storage):
    """A new key beyond maxKeys is refused with QuotaExceeded; replacing one and other kinds are not."""
    store = storage.userXML
    result(store.setXML("alice", PRIVATE, "a:x", "<a xmlns='x'/>", maxKeys=2))
    result(store.setXML("alice", PRIVATE, "b:x", "<b xmlns='x'/>", maxKeys=2))
    failure(store.setXML("alice", PRIVATE, "c:x", "<c xmlns='x'/>", maxKeys=2), QuotaExceeded)
    result(store.setXML("alice", PRIVATE, "a:x", "<a xmlns='x'>new</a>", maxKeys=2))
    result(store.setXML("alice", VCARD, "", "<vCard xmlns='vcard-temp'/>", maxKeys=1))
    assert result(store.getXML("alice", PRIVATE, "c:x")) is None


def test_deletedWithTheAccount(storage):
    """Deleting an account deletes its documents."""
    account = result(storage.accounts.createAccount("alice", {}))
    result(storage.userXML.setXML("alice", VCARD, "", "<vCard xmlns='vcard-temp'/>"))
    result(storage.accounts.deleteAccount(account.id))
    assert result(storage.userXML.getXML("alice", VCARD, "")) is None


def test_badArgumentsRefused(storage):
    """An empty localpart, an unknown kind or a non-string document is a failed Deferred."""
    store = storage.userXML
    failure(store.getXML("", VCARD, ""), ValueError)
    failure(store.setXML("alice", "other", "", "<x/>"), ValueError)
    failure(store.setXML("alice", VCARD, "", b"<x/>"), TypeError)


def test_listXML(storage):
    """listXML lists every document of one user, by kind and key, and no other user's (issue 18 export)."""
    store = storage.userXML
    result(store.setXML("alice", VCARD, "", "<vCard xmlns='vcard-temp'/>"))
    result(store.setXML("alice", PRIVATE, "b:x", "<b xmlns='x'/>"))
    result(store.setXML("alice", PRIVATE, "a:x", "<a xmlns='x'/>"))
    result(store.setXML("bob", PRIVATE, "a:x", "<a xmlns='x'>bob</a>"))
    assert result(store.listXML("alice")) == [
        (PRIVATE, "a:x", "<a xmlns='x'/>"), (PRIVATE, "b:x", "<b xmlns='x'/>"),
        (VCARD, "", "<vCard xmlns='vcard-temp'/>")]
    assert result(store.listXML("carol")) == []
