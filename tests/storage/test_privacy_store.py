"""
The privacy-list store contract (L{IPrivacyStore}), for every backend in
L{tests.storage.test_contract.FACTORIES}.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.storage.test_contract import BACKENDS, failure, openBackend, result
from xmppchat.storage.interfaces import NotFound, PrivacyRecord


def item(order, value="bad@localhost", action="deny", stanzas=()):
    return {"type": "jid", "value": value, "action": action, "order": order, "stanzas": list(stanzas)}


@pytest.fixture(params=BACKENDS)
def storage(request):
    storage = openBackend(request.param)
    yield storage
    result(storage.stop())


@pytest.fixture
def store(storage):
    return storage.privacy


class TestPrivacyStore:
    """
    IPrivacyStore: lists stored whole, creation order kept, one default per user.
    """

    def test_emptyRecord(self, store):
        """A user with nothing stored gets an empty record."""
        assert result(store.getPrivacy("alice")) == PrivacyRecord(None, {})

    def test_setAndReplaceKeepsPosition(self, store):
        """Lists come back in creation order, exactly as stored; replacing a list keeps its place."""
        result(store.setPrivacyList("alice", "one", [item(2), item(1, stanzas=["message", "iq"])]))
        result(store.setPrivacyList("alice", "two", []))
        result(store.setPrivacyList("alice", "one", [item(5, "x@localhost", "allow")]))
        record = result(store.getPrivacy("alice"))
        assert list(record.lists) == ["one", "two"]
        assert record.lists["one"] == [item(5, "x@localhost", "allow")]
        assert record.lists["two"] == []
        assert result(store.getPrivacy("bob")).lists == {}

    def test_defaultNeedsExistingList(self, store):
        """Setting a missing list as default fails with NotFound; declining clears it."""
        failure(store.setDefaultPrivacyList("alice", "nope"), NotFound)
        result(store.setPrivacyList("alice", "one", [item(1)]))
        result(store.setDefaultPrivacyList("alice", "one"))
        assert result(store.getPrivacy("alice")).default == "one"
        result(store.setDefaultPrivacyList("alice", None))
        assert result(store.getPrivacy("alice")).default is None

    def test_deleteClearsDefault(self, store):
        """Deleting the default list removes it and leaves no default; deleting twice reports False."""
        result(store.setPrivacyList("alice", "one", [item(1)]))
        result(store.setPrivacyList("alice", "two", [item(1)]))
        result(store.setDefaultPrivacyList("alice", "one"))
        assert result(store.deletePrivacyList("alice", "two")) is True
        assert result(store.getPrivacy("alice")).default == "one"
        assert result(store.deletePrivacyList("alice", "one")) is True
        assert result(store.deletePrivacyList("alice", "one")) is False
        assert result(store.getPrivacy("alice")) == PrivacyRecord(None, {})

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.lists(st.fixed_dictionaries({
        "type": st.sampled_from(["jid", "group", "subscription", None]),
        "value": st.one_of(st.none(), st.text(max_size=20)),
        "action": st.sampled_from(["allow", "deny"]),
        "order": st.integers(0, 2**32 - 1),
        "stanzas": st.lists(st.sampled_from(["message", "iq", "presence-in", "presence-out"]), unique=True),
    }), max_size=8), st.text(min_size=1, max_size=30))
    def test_roundTrip(self, store, items, name):
        """Any list of items and any name round-trip unchanged."""
        result(store.setPrivacyList("rt", name, items))
        assert result(store.getPrivacy("rt")).lists[name] == items


def test_deleteAccountDeletesLists(storage):
    """Deleting an account deletes its privacy lists and default, not other users'."""
    account = result(storage.accounts.createAccount("alice", None))
    result(storage.accounts.deleteAccount(result(storage.accounts.createAccount("early", None)).id))
    for user in ("alice", "bob"):
        result(storage.privacy.setPrivacyList(user, "x", [item(1)]))
        result(storage.privacy.setDefaultPrivacyList(user, "x"))
    assert result(storage.accounts.deleteAccount(account.id)) is True
    assert result(storage.privacy.getPrivacy("alice")) == PrivacyRecord(None, {})
    assert result(storage.privacy.getPrivacy("bob")).default == "x"
